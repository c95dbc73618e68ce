"""The simulated scheduler and kubelet: where pods land, and how they start.

Kubernetes documentation: "Kubernetes Scheduler", "Assigning Pods to Nodes" (nodeSelector, node
affinity and its operators), "Taints and Tolerations", "Resource Management for Pods and
Containers › How Pods with resource requests are scheduled", "Schedule GPUs", "Pod Lifecycle"
(phases, conditions, container states), "Nodes › Manual Node administration" (cordon).

Nodes here are Node objects with no machine behind them, so these tests are simulator_only.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.kube import Kube, wait_until

pytestmark = pytest.mark.simulator_only

TIMEOUT = 10
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pod(
    name: str,
    *,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "registry.k8s.io/pause:3.10"}
    if requests or limits:
        container["resources"] = {
            k: v for k, v in (("requests", requests), ("limits", limits)) if v
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [container], **spec},
    }


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next(
        (c for c in obj.get("status", {}).get("conditions", ()) if c["type"] == type_), None
    )


def running(name: str):
    def check(pods: dict[str, Any]) -> bool:
        status = pods.get(name, {}).get("status", {})
        ready = condition(pods.get(name, {}), "Ready")
        return status.get("phase") == "Running" and bool(ready) and ready["status"] == "True"

    return check


def unschedulable(name: str):
    def check(pods: dict[str, Any]) -> bool:
        scheduled = condition(pods.get(name, {}), "PodScheduled")
        return bool(scheduled) and scheduled.get("reason") == "Unschedulable"

    return check


def create(kube: Kube, ns: str, *pods: dict[str, Any]) -> None:
    for body in pods:
        kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)


def events_for(kube: Kube, ns: str, name: str, *, reason: str = "") -> list[Any]:
    """The object's events; with ``reason``, once one with that reason exists (the scheduler
    writes the pod's PodScheduled condition first and its event after, as kube-scheduler's
    asynchronous event broadcaster does: a client that saw the condition may not see the event
    yet)."""
    selector = f"involvedObject.name={name}"
    if reason:
        wait_until(
            kube.core.list_namespaced_event,
            ns,
            field_selector=selector,
            until=lambda events: any(e.get("reason") == reason for e in events.values()),
        )
    return kube.core.list_namespaced_event(
        ns, field_selector=selector, _request_timeout=TIMEOUT
    ).items


def test_a_pending_pod_is_bound_to_a_ready_node_and_runs(kube: Kube) -> None:
    """Kubernetes Scheduler: the scheduler binds the pod (PodScheduled, a Scheduled event);
    Pod Lifecycle: the kubelet then reports Running with every condition true, an IP, the
    node's IP as hostIP, a start time and running, ready containers."""
    kube.controllers()
    node = kube.node()
    host_ip = next(
        a.address
        for a in kube.core.read_node(node, _request_timeout=TIMEOUT).status.addresses
        if a.type == "InternalIP"
    )
    ns = kube.namespace()
    create(kube, ns, pod("p"))
    got = wait_until(kube.core.list_namespaced_pod, ns, until=running("p"))["p"]
    assert got["spec"]["nodeName"] == node
    status = got["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodScheduled": "True",
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
    }
    assert status["hostIP"] == host_ip
    assert status["podIP"] and status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["startTime"]
    (container,) = status["containerStatuses"]
    assert container["ready"] and container["started"]
    assert "running" in container["state"]
    assert container["containerID"].startswith("containerd://")
    reasons = {e.reason: e for e in events_for(kube, ns, "p", reason="Started")}
    assert reasons["Scheduled"].message == f"Successfully assigned {ns}/p to {node}"
    assert reasons["Scheduled"].source.component == "default-scheduler"
    assert "Started" in reasons


def test_a_pod_is_created_pending_then_bound_then_containers_created_then_running(
    kube: Kube,
) -> None:
    """Pod Lifecycle › Pod phase and Container states: Pending without a node, bound, then
    Pending with containers Waiting (ContainerCreating), then Running."""
    kube.controllers(pod_start_delay=0.2)
    kube.node()
    ns = kube.namespace()
    seen: list[tuple[str, bool, str]] = []

    def record(pods: dict[str, Any]) -> bool:
        got = pods.get("p")
        if got:
            states = got["status"].get("containerStatuses") or [{}]
            state = next(iter(states[0].get("state", {"none": {}})))
            step = (got["status"]["phase"], bool(got["spec"].get("nodeName")), state)
            if not seen or seen[-1] != step:
                seen.append(step)
        return running("p")(pods)

    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    create(kube, ns, pod("p"))
    wait_until(kube.core.list_namespaced_pod, ns, until=record, since=start)
    assert seen == [
        ("Pending", False, "none"),
        ("Pending", True, "none"),
        ("Pending", True, "waiting"),
        ("Running", True, "running"),
    ]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"key": "disk", "operator": "In", "values": ["ssd"]}, "fast"),
        ({"key": "disk", "operator": "NotIn", "values": ["ssd", "hdd"]}, "bare"),
        ({"key": "gen", "operator": "Exists"}, "fast"),
        ({"key": "disk", "operator": "DoesNotExist"}, "bare"),
        ({"key": "gen", "operator": "Gt", "values": ["5"]}, "fast"),
        ({"key": "gen", "operator": "Lt", "values": ["5"]}, "slow"),
    ],
)
def test_required_node_affinity_operators_pick_the_matching_node(
    kube: Kube, expression: dict[str, Any], expected: str
) -> None:
    """Assigning Pods to Nodes › Node affinity: requiredDuringSchedulingIgnoredDuringExecution
    with In, NotIn, Exists, DoesNotExist, Gt and Lt."""
    kube.controllers()
    nodes = {
        "fast": kube.node("fast", labels={"disk": "ssd", "gen": "7"}),
        "slow": kube.node("slow", labels={"disk": "hdd", "gen": "3"}),
        "bare": kube.node("bare"),
    }
    ns = kube.namespace()
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [expression]}]
            }
        }
    }
    create(kube, ns, pod("p", affinity=affinity))
    got = wait_until(kube.core.list_namespaced_pod, ns, until=running("p"))["p"]
    assert got["spec"]["nodeName"] == nodes[expected]


def test_a_node_selector_needs_every_label_and_a_pod_matching_no_node_stays_pending(
    kube: Kube,
) -> None:
    """Assigning Pods to Nodes › nodeSelector; Kubernetes Scheduler: a pod no node fits stays
    Pending with PodScheduled False (Unschedulable) and a FailedScheduling warning that counts
    the reasons per node."""
    kube.controllers()
    admin = kube.node("admin", labels={"clusterweb.io/pool": "admin"})
    kube.node("spark", labels={"clusterweb.io/pool": "spark"})
    ns = kube.namespace()
    create(
        kube,
        ns,
        pod("fits", nodeSelector={"clusterweb.io/pool": "admin"}),
        pod("nowhere", nodeSelector={"clusterweb.io/pool": "admin", "disk": "ssd"}),
    )
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: running("fits")(p) and unschedulable("nowhere")(p),
    )
    assert pods["fits"]["spec"]["nodeName"] == admin
    nowhere = pods["nowhere"]
    assert nowhere["status"]["phase"] == "Pending"
    assert "nodeName" not in nowhere["spec"]
    message = condition(nowhere, "PodScheduled")["message"]
    assert message.startswith(
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    )
    assert "preemption: 0/2 nodes are available: 2 Preemption is not helpful" in message
    failed = events_for(kube, ns, "nowhere", reason="FailedScheduling")
    (event,) = [e for e in failed if e.reason == "FailedScheduling"]
    assert (event.type, event.message, event.source.component) == (
        "Warning",
        message,
        "default-scheduler",
    )


def test_a_tainted_node_takes_only_pods_that_tolerate_its_taint(kube: Kube) -> None:
    """Taints and Tolerations: a NoSchedule taint keeps pods without a matching toleration
    off; a toleration allows (does not attract), so the GPU pod also selects the GPU node."""
    kube.controllers()
    gpu = kube.node("gpu", labels={"clusterweb.io/pool": "gpu"}, taints=[GPU_TAINT])
    plain = kube.node("plain")
    ns = kube.namespace()
    create(
        kube,
        ns,
        pod("cpu-job"),
        pod(
            "gpu-job",
            tolerations=[GPU_TOLERATION],
            nodeSelector={"clusterweb.io/pool": "gpu"},
        ),
        pod("lost", nodeSelector={"clusterweb.io/pool": "gpu"}),
    )
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: (
            running("cpu-job")(p) and running("gpu-job")(p) and unschedulable("lost")(p)
        ),
    )
    assert pods["cpu-job"]["spec"]["nodeName"] == plain
    assert pods["gpu-job"]["spec"]["nodeName"] == gpu
    assert condition(pods["lost"], "PodScheduled")["message"].startswith(
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {nvidia.com/gpu: present}."
    )


def test_prefer_no_schedule_is_only_a_preference(kube: Kube) -> None:
    """Taints and Tolerations: PreferNoSchedule is a soft NoSchedule: the scheduler avoids the
    node while another fits, and uses it when none does."""
    kube.controllers()
    avoided = kube.node("avoid", taints=[{"key": "spot", "effect": "PreferNoSchedule"}])
    other = kube.node("other")
    # Both schedulable first: a new node is tainted not-ready until the controller sees it Ready.
    wait_until(
        kube.core.list_node,
        until=lambda n: (
            not n[other]["spec"].get("taints") and len(n[avoided]["spec"].get("taints", ())) == 1
        ),
    )
    ns = kube.namespace()
    create(kube, ns, pod("first"))
    first = wait_until(kube.core.list_namespaced_pod, ns, until=running("first"))["first"]
    assert first["spec"]["nodeName"] == other
    kube.core.patch_node(other, {"spec": {"unschedulable": True}}, _request_timeout=TIMEOUT)
    create(kube, ns, pod("second"))
    second = wait_until(kube.core.list_namespaced_pod, ns, until=running("second"))["second"]
    assert second["spec"]["nodeName"] == avoided


def test_a_no_execute_taint_evicts_running_pods_that_do_not_tolerate_it(kube: Kube) -> None:
    """Taints and Tolerations › Taint based evictions: NoExecute evicts pods already running
    that lack a toleration (after marking them DisruptionTarget); tolerating pods stay."""
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    create(
        kube,
        ns,
        pod("plain"),
        pod("tolerant", tolerations=[{"key": "maintenance", "operator": "Exists"}]),
    )
    wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: running("plain")(p) and running("tolerant")(p),
    )
    kube.core.patch_node(
        node,
        {"spec": {"taints": [{"key": "maintenance", "effect": "NoExecute"}]}},
        _request_timeout=TIMEOUT,
    )
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: "plain" not in p)
    assert running("tolerant")(pods)
    reasons = [e.reason for e in events_for(kube, ns, "plain", reason="TaintManagerEviction")]
    assert "TaintManagerEviction" in reasons


def test_requests_must_fit_allocatable_minus_what_bound_pods_request(kube: Kube) -> None:
    """Resource Management for Pods and Containers › How Pods with resource requests are
    scheduled: the sum of requests on a node stays within its allocatable; a pod that does not
    fit waits and is scheduled once room is freed."""
    kube.controllers()
    node = kube.node(allocatable={"cpu": "2", "memory": "4Gi", "pods": "110"})
    ns = kube.namespace()
    create(kube, ns, pod("big", requests={"cpu": "1500m", "memory": "1Gi"}))
    wait_until(kube.core.list_namespaced_pod, ns, until=running("big"))
    create(kube, ns, pod("second", requests={"cpu": "1", "memory": "1Gi"}))
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=unschedulable("second"))
    assert condition(pods["second"], "PodScheduled")["message"].startswith(
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod"
    )
    kube.core.delete_namespaced_pod("big", ns, _request_timeout=TIMEOUT)
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=running("second"))
    assert pods["second"]["spec"]["nodeName"] == node


def test_the_pods_allocatable_caps_how_many_pods_a_node_runs(kube: Kube) -> None:
    """Resource Management › the ``pods`` resource: a node takes no more pods than it allows."""
    kube.controllers()
    kube.node(allocatable={"cpu": "4", "memory": "8Gi", "pods": "1"})
    ns = kube.namespace()
    create(kube, ns, pod("a"))
    wait_until(kube.core.list_namespaced_pod, ns, until=running("a"))
    create(kube, ns, pod("b"))
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=unschedulable("b"))
    assert "1 Too many pods" in condition(pods["b"], "PodScheduled")["message"]


def test_gpu_requests_fit_only_nodes_with_free_gpus(kube: Kube) -> None:
    """Schedule GPUs: ``nvidia.com/gpu`` is requested in whole units (limit = request) and
    counted against the node's allocatable like cpu and memory."""
    kube.controllers()
    gpu = kube.node(
        "gpu",
        taints=[GPU_TAINT],
        allocatable={"cpu": "4", "memory": "16Gi", "pods": "29", "nvidia.com/gpu": "1"},
    )
    kube.node("cpu")
    ns = kube.namespace()
    gpu_pod = {"tolerations": [GPU_TOLERATION]}
    create(kube, ns, pod("train", limits={"nvidia.com/gpu": "1"}, **gpu_pod))
    train = wait_until(kube.core.list_namespaced_pod, ns, until=running("train"))["train"]
    assert train["spec"]["nodeName"] == gpu
    assert train["spec"]["containers"][0]["resources"]["requests"] == {"nvidia.com/gpu": "1"}
    create(kube, ns, pod("second", limits={"nvidia.com/gpu": "1"}, **gpu_pod))
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=unschedulable("second"))
    assert condition(pods["second"], "PodScheduled")["message"].startswith(
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    )


def test_a_cordoned_node_is_tainted_unschedulable_and_gets_no_new_pods(kube: Kube) -> None:
    """Nodes › Manual Node administration: ``kubectl cordon`` sets spec.unschedulable; the
    node lifecycle controller adds the node.kubernetes.io/unschedulable:NoSchedule taint and
    the scheduler places nothing new there."""
    kube.controllers()
    node = kube.node()
    kube.core.patch_node(node, {"spec": {"unschedulable": True}}, _request_timeout=TIMEOUT)
    nodes = wait_until(
        kube.core.list_node,
        until=lambda n: any(
            t["key"] == "node.kubernetes.io/unschedulable"
            for t in n[node]["spec"].get("taints", ())
        ),
    )
    assert {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"} in nodes[node][
        "spec"
    ]["taints"]
    ns = kube.namespace()
    create(kube, ns, pod("p"))
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=unschedulable("p"))
    assert "1 node(s) were unschedulable" in condition(pods["p"], "PodScheduled")["message"]
    kube.core.patch_node(node, {"spec": {"unschedulable": None}}, _request_timeout=TIMEOUT)
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=running("p"))
    assert pods["p"]["spec"]["nodeName"] == node


def test_a_new_node_is_tainted_not_ready_until_ready_and_then_takes_the_waiting_pod(
    kube: Kube,
) -> None:
    """Admission Controllers › TaintNodesByCondition and Nodes › Node status: a new Node gets
    node.kubernetes.io/not-ready:NoSchedule; while not Ready it gets no pods (and NoExecute
    not-ready too); once Ready the taints go and the waiting pod is scheduled."""
    kube.controllers()
    ns = kube.namespace()
    create(kube, ns, pod("p"))
    wait_until(kube.core.list_namespaced_pod, ns, until=unschedulable("p"))
    node = kube.node(ready=False)
    nodes = wait_until(
        kube.core.list_node,
        until=lambda n: len(n[node]["spec"].get("taints", ())) == 2,
    )
    assert {(t["key"], t["effect"]) for t in nodes[node]["spec"]["taints"]} == {
        ("node.kubernetes.io/not-ready", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "NoExecute"),
    }
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: "not-ready" in condition(p["p"], "PodScheduled").get("message", ""),
    )
    assert "nodeName" not in pods["p"]["spec"]
    live = kube.core.read_node_status(node, _request_timeout=TIMEOUT)
    live.status.conditions[0].status = "True"
    kube.core.replace_node_status(node, live, _request_timeout=TIMEOUT)
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=running("p"))
    assert pods["p"]["spec"]["nodeName"] == node
    assert not kube.core.read_node(node, _request_timeout=TIMEOUT).spec.taints


def anti_affinity(labels: dict[str, str], key: str = "kubernetes.io/hostname") -> dict[str, Any]:
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": labels}, "topologyKey": key}
            ]
        }
    }


def test_required_pod_anti_affinity_puts_one_pod_per_node_and_the_next_waits(kube: Kube) -> None:
    """Assigning Pods to Nodes › Inter-pod affinity and anti-affinity: with a required
    anti-affinity term on ``kubernetes.io/hostname`` matching its own label, at most one such
    pod runs per node; one more stays Pending with the InterPodAffinity plugin's message
    (pkg/scheduler/framework/plugins/interpodaffinity/filtering.go,
    ErrReasonAntiAffinityRulesNotMatch). Without the rule nothing spreads them: the scheduler
    has no "same owner" preference of its own."""
    kube.controllers()
    nodes = {kube.node() for _ in range(3)}
    ns = kube.namespace()
    labels = {"app": "spark-worker"}
    create(
        kube,
        ns,
        *(pod(f"w{i}", labels=labels, affinity=anti_affinity(labels)) for i in range(3)),
    )
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: all(running(f"w{i}")(p) for i in range(3)),
    )
    assert {pods[f"w{i}"]["spec"]["nodeName"] for i in range(3)} == nodes
    create(kube, ns, pod("w3", labels=labels, affinity=anti_affinity(labels)))
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=unschedulable("w3"))
    message = condition(pods["w3"], "PodScheduled")["message"]
    assert message.startswith(
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    ), message
    assert "FailedScheduling" in [
        e.reason for e in events_for(kube, ns, "w3", reason="FailedScheduling")
    ]
    # The rule is symmetric: a pod without terms but with the label is kept off every node by
    # the running pods' terms (ErrReasonExistingAntiAffinityRulesNotMatch).
    create(kube, ns, pod("plain", labels=labels))
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=unschedulable("plain"))
    assert condition(pods["plain"], "PodScheduled")["message"].startswith(
        "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules."
    )
    # One worker goes: the waiting one takes its node.
    gone = pods["w0"]["spec"]["nodeName"]
    kube.core.delete_namespaced_pod("w0", ns, grace_period_seconds=0, _request_timeout=TIMEOUT)
    kube.core.delete_namespaced_pod("plain", ns, grace_period_seconds=0, _request_timeout=TIMEOUT)
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=running("w3"))
    assert pods["w3"]["spec"]["nodeName"] == gone


def test_without_constraints_a_workloads_pods_go_where_resources_score_best(kube: Kube) -> None:
    """kube-scheduler's default scores have no "fewer pods of the same owner" rule: a big node
    and a small one, pods requesting nothing (scored as 100m and 200Mi each, NonZeroRequested):
    NodeResourcesFit's LeastAllocated keeps preferring the big node, so the ReplicaSet's three
    pods share it. A test that needs them spread must ask for it."""
    kube.controllers()
    big = kube.node(allocatable={"cpu": "16", "memory": "64Gi", "pods": "110"})
    kube.node(allocatable={"cpu": "2", "memory": "4Gi", "pods": "110"})
    ns = kube.namespace()
    labels = {"app": "web"}
    kube.apps.create_namespaced_replica_set(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod("x")["spec"]},
            },
        },
        _request_timeout=TIMEOUT,
    )
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: len(p) == 3 and all(x["spec"].get("nodeName") for x in p.values()),
    )
    assert {p["spec"]["nodeName"] for p in pods.values()} == {big}


def spread(key: str, labels: dict[str, str], max_skew: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": max_skew,
            "topologyKey": key,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": labels},
        }
    ]


def test_topology_spread_do_not_schedule_keeps_the_skew_within_max_skew(kube: Kube) -> None:
    """Pod Topology Spread Constraints › Spread constraint definition: with ``maxSkew: 1`` over
    ``topology.kubernetes.io/zone``, pods alternate between zones a and b. Zone b's one node
    has room for one pod only, so after a, b, a the next pod would put zone a two ahead: it
    waits with the PodTopologySpread message (framework/plugins/podtopologyspread/filtering.go,
    ErrReasonConstraintsNotMatch), a node without the key failing with "(missing required
    label)" (ErrReasonNodeLabelNotMatch), until room in zone b is freed."""
    kube.controllers()
    zone = "topology.kubernetes.io/zone"
    a1 = kube.node(labels={zone: "a"})
    a2 = kube.node(labels={zone: "a"})
    b1 = kube.node(labels={zone: "b"}, allocatable={"cpu": "1", "memory": "4Gi", "pods": "110"})
    kube.node()  # no zone label
    ns = kube.namespace()
    labels = {"app": "spread"}

    def spreading(name: str) -> dict[str, Any]:
        return pod(
            name,
            labels=labels,
            requests={"cpu": "600m"},
            topologySpreadConstraints=spread(zone, labels),
        )

    for name in ("p0", "p1", "p2"):
        create(kube, ns, spreading(name))
        wait_until(kube.core.list_namespaced_pod, ns, until=running(name))
    pods = {p.metadata.name: p.spec.node_name for p in kube.core.list_namespaced_pod(ns).items}
    zones = {name: "a" if node in (a1, a2) else "b" for name, node in pods.items()}
    assert sorted(zones.values()) == ["a", "a", "b"]
    assert list(pods.values()).count(b1) == 1
    # Zone a has 2, zone b has 1 and no room: a third pod in zone a would make the skew 2.
    create(kube, ns, spreading("p3"))
    pods_now = wait_until(kube.core.list_namespaced_pod, ns, until=unschedulable("p3"))
    message = condition(pods_now["p3"], "PodScheduled")["message"]
    assert message.startswith(
        "0/4 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread "
        "constraints (missing required label), 2 node(s) didn't match pod topology spread "
        "constraints. "
    ), message
    # The pod in zone b goes: the waiting pod may (and must) go to zone b.
    in_b = next(name for name, node in pods.items() if node == b1)
    kube.core.delete_namespaced_pod(in_b, ns, grace_period_seconds=0, _request_timeout=TIMEOUT)
    pods_now = wait_until(kube.core.list_namespaced_pod, ns, until=running("p3"))
    assert pods_now["p3"]["spec"]["nodeName"] == b1
