"""Pod addresses: every pod its own IP, unique among live pods, released when the pod goes.

Kubernetes documentation: "Cluster Networking › The Kubernetes network model" (every pod gets its
own unique cluster-wide IP; pods on a node share its pod range), "Pod Lifecycle"
(``status.podIP``/``podIPs``, ``hostIP``), "Pod › hostNetwork" (a host-network pod has its node's
address). The simulator's CNI carves its ranges from 127.0.0.0/8 so that a stand-in process can
bind a pod's address on this machine (sandbox/kube/network.py): these tests are simulator_only.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.kube.network import PodNetwork
from tests.fixtures.kube import Kube, pod_manifest, wait_until

pytestmark = pytest.mark.simulator_only

TIMEOUT = 10
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def running(names: list[str]):
    def check(pods: dict[str, Any]) -> bool:
        return all(pods.get(n, {}).get("status", {}).get("podIP") for n in names)

    return check


def node_address(kube: Kube, node: str) -> str:
    addresses = kube.core.read_node(node, _request_timeout=TIMEOUT).status.addresses
    return next(a.address for a in addresses if a.type == "InternalIP")


def test_every_pod_gets_its_own_loopback_address_from_its_nodes_range(kube: Kube) -> None:
    kube.controllers()
    first, second = kube.node(), kube.node()
    ns = kube.namespace()
    names = [f"p{i}" for i in range(6)]
    for index, name in enumerate(names):
        node = first if index % 2 == 0 else second
        kube.core.create_namespaced_pod(
            ns, pod_manifest(name, node_name=node), _request_timeout=TIMEOUT
        )

    pods = wait_until(kube.core.list_namespaced_pod, ns, until=running(names))

    ips = [pods[n]["status"]["podIP"] for n in names]
    assert len(set(ips)) == len(ips)
    for name, ip in zip(names, ips, strict=True):
        status = pods[name]["status"]
        assert ipaddress.ip_address(ip) in LOOPBACK
        assert status["podIPs"] == [{"ip": ip}]
        assert status["hostIP"] == node_address(kube, pods[name]["spec"]["nodeName"])
    ranges = {
        node: {
            ipaddress.ip_network(f"{pods[n]['status']['podIP']}/24", strict=False)
            for n in names
            if pods[n]["spec"]["nodeName"] == node
        }
        for node in (first, second)
    }
    assert all(len(r) == 1 for r in ranges.values())  # one /24 per node...
    assert ranges[first] != ranges[second]  # ...and another for the other node
    assert not any(ip.endswith((".0", ".1", ".255")) for ip in ips)  # network, bridge, broadcast


def test_an_address_is_released_when_its_pod_goes(kube: Kube) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    kube.core.create_namespaced_pod(
        ns, pod_manifest("old", node_name=node), _request_timeout=TIMEOUT
    )
    old_ip = wait_until(kube.core.list_namespaced_pod, ns, until=running(["old"]))["old"]["status"][
        "podIP"
    ]
    kube.core.create_namespaced_pod(
        ns, pod_manifest("other", node_name=node), _request_timeout=TIMEOUT
    )
    other_ip = wait_until(kube.core.list_namespaced_pod, ns, until=running(["other"]))["other"][
        "status"
    ]["podIP"]
    assert other_ip != old_ip  # taken while "old" lives

    kube.core.delete_namespaced_pod("old", ns, grace_period_seconds=0, _request_timeout=TIMEOUT)
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda pods: "old" not in pods)
    kube.core.create_namespaced_pod(
        ns, pod_manifest("new", node_name=node), _request_timeout=TIMEOUT
    )
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=running(["new"]))

    assert pods["new"]["status"]["podIP"] == old_ip  # free again, and the lowest free one


def test_a_host_network_pod_has_its_nodes_address(kube: Kube) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    body = pod_manifest("host", node_name=node)
    body["spec"]["hostNetwork"] = True
    kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)

    pod = wait_until(kube.core.list_namespaced_pod, ns, until=running(["host"]))["host"]

    assert pod["status"]["podIP"] == pod["status"]["hostIP"] == node_address(kube, node)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["allocate", "release"]), st.integers(0, 2), st.integers(0, 9)),
        max_size=80,
    )
)
def test_addresses_stay_unique_among_live_pods_whatever_the_order(
    operations: list[tuple[str, int, int]],
) -> None:
    network = PodNetwork()
    live: dict[tuple[str, str], tuple[str, str]] = {}  # pod -> (node, ip)
    for op, node_index, pod_index in operations:
        node, key = f"n{node_index}", ("ns", f"p{node_index}-{pod_index}")
        if op == "allocate":
            ip = network.allocate(node, key)
            assert live.get(key, (node, ip))[1] == ip  # asking again gives the same address
            live[key] = (node, ip)
        else:
            network.release(key)
            live.pop(key, None)
        ips = [ip for _, ip in live.values()]
        assert len(set(ips)) == len(ips)
        for pod_node, ip in live.values():
            assert ipaddress.ip_address(ip) in ipaddress.ip_network(network.subnet(pod_node))
    network.clear()  # give the node ranges back to the machine


def test_two_simulators_on_one_machine_never_share_a_node_range() -> None:
    first, second = PodNetwork(), PodNetwork()
    try:
        first_ranges = {first.subnet(f"a{i}") for i in range(20)}
        second_ranges = {second.subnet(f"b{i}") for i in range(20)}
        assert len(first_ranges) == len(second_ranges) == 20
        assert not first_ranges & second_ranges
        octets = [int(part) for part in first.subnet("a0").split("/")[0].split(".")]
        block = (octets[1] << 8) + octets[2]
        assert not second._reserve(block)  # held by the first
        first.node_gone("a0")  # no address in use: the range goes back to the machine
        assert second._reserve(block)
    finally:
        first.clear()
        second.clear()


def test_after_a_resync_a_node_keeps_the_range_its_pods_addresses_are_from() -> None:
    before = PodNetwork()
    ip = before.allocate("n1", ("ns", "a"))
    before.clear()  # the controllers start again: only the stored pods remain
    after = PodNetwork()
    try:
        after.adopt("n1", ("ns", "a"), ip)
        again = after.allocate("n1", ("ns", "b"))

        assert after.address_of(("ns", "a")) == ip
        assert again != ip
        assert ipaddress.ip_network(f"{again}/24", strict=False) == ipaddress.ip_network(
            f"{ip}/24", strict=False
        )
    finally:
        after.clear()
