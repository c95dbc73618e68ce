"""Containers that do not start: image pull errors, crash loops, OOM kills.

Kubernetes documentation: "Pod Lifecycle › Container states / Container restarts" (back-off
10 s doubling to 5 min), "Images › Image pull back-off", "Debug Running Pods", "Assign Memory
Resources to Containers and Pods › Exceed a Container's memory limit" (OOMKilled, 137); kubelet
source: pkg/kubelet/images (ErrImagePull, ImagePullBackOff, the events), pkg/kubelet/
kuberuntime (CrashLoopBackOff's message). The trigger (a missing image, a crashing process) is
outside the API: the simulator's ``fail_containers`` control stands in, so these tests are
simulator_only.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.kube import Kube, pod_manifest, wait_until

pytestmark = pytest.mark.simulator_only

TIMEOUT = 10
MISSING = "registry.example.com/clusterweb/missing:1.0"


def container(pods: dict[str, Any], name: str) -> dict[str, Any]:
    statuses = pods.get(name, {}).get("status", {}).get("containerStatuses") or [{}]
    return statuses[0]


def condition(pod: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in pod["status"]["conditions"] if c["type"] == type_)


def waiting_reason(name: str, reason: str):
    def check(pods: dict[str, Any]) -> bool:
        return container(pods, name).get("state", {}).get("waiting", {}).get("reason") == reason

    return check


def events(kube: Kube, ns: str, name: str) -> list[tuple[str, str, str]]:
    return [
        (e.type, e.reason, e.message)
        for e in kube.core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name={name}", _request_timeout=TIMEOUT
        ).items
    ]


def not_ready(pod: dict[str, Any], name: str = "main") -> None:
    for type_ in ("Ready", "ContainersReady"):
        cond = condition(pod, type_)
        assert (cond["status"], cond["reason"], cond["message"]) == (
            "False",
            "ContainersNotReady",
            f"containers with unready status: [{name}]",
        )


def test_an_image_that_cannot_be_pulled_is_err_image_pull_then_image_pull_back_off(
    kube: Kube,
) -> None:
    kube.controllers()
    kube.node()
    assert kube.simulator is not None
    kube.simulator.fail_containers("ErrImagePull", image=MISSING)
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p", image=MISSING), _request_timeout=TIMEOUT)
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=waiting_reason("p", "ErrImagePull"))
    assert container(pods, "p")["state"]["waiting"]["message"].startswith(
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{MISSING}"'
    )
    pods = wait_until(
        kube.core.list_namespaced_pod, ns, until=waiting_reason("p", "ImagePullBackOff")
    )
    status = container(pods, "p")
    assert status["state"]["waiting"]["message"] == f'Back-off pulling image "{MISSING}"'
    assert (status["ready"], status["restartCount"], status["started"]) == (False, 0, False)
    assert pods["p"]["status"]["phase"] == "Pending"
    not_ready(pods["p"])
    seen = events(kube, ns, "p")
    for expected in (
        ("Normal", "Pulling", f'Pulling image "{MISSING}"'),
        ("Warning", "Failed", "Error: ErrImagePull"),
        ("Normal", "BackOff", f'Back-off pulling image "{MISSING}"'),
        ("Warning", "Failed", "Error: ImagePullBackOff"),
    ):
        assert expected in seen, seen
    # The image appears (the fault is cleared): the next pull succeeds.
    kube.simulator.clear_container_faults()
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: p.get("p", {}).get("status", {}).get("phase") == "Running",
    )
    assert condition(pods["p"], "Ready")["status"] == "True"


def test_a_crashing_container_restarts_with_back_off_in_crash_loop_back_off(kube: Kube) -> None:
    kube.controllers()
    kube.node()
    assert kube.simulator is not None
    ns = kube.namespace()
    kube.simulator.fail_containers("CrashLoopBackOff", pod="crasher", exit_code=3)
    kube.core.create_namespaced_pod(ns, pod_manifest("crasher"), _request_timeout=TIMEOUT)
    kube.core.create_namespaced_pod(ns, pod_manifest("fine"), _request_timeout=TIMEOUT)
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: container(p, "crasher").get("restartCount", 0) >= 2,
    )
    status = container(pods, "crasher")
    uid = pods["crasher"]["metadata"]["uid"]
    # 10 s after the first restart, doubling (the kubelet's durations, whatever the scale).
    delay = {2: "20s", 3: "40s", 4: "1m20s", 5: "2m40s"}.get(status["restartCount"], "5m0s")
    assert status["state"]["waiting"] == {
        "reason": "CrashLoopBackOff",
        "message": f"back-off {delay} restarting failed container=main pod=crasher_{ns}({uid})",
    }
    terminated = status["lastState"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert pods["crasher"]["status"]["phase"] == "Running"
    not_ready(pods["crasher"])
    assert (
        "Warning",
        "BackOff",
        f"Back-off restarting failed container main in pod crasher_{ns}({uid})",
    ) in events(kube, ns, "crasher")
    # The fault matched by pod name only: the other pod runs.
    assert condition(pods["fine"], "Ready")["status"] == "True"


def test_a_container_over_its_memory_limit_is_oom_killed_with_exit_code_137(kube: Kube) -> None:
    kube.controllers()
    node = kube.node()
    assert kube.simulator is not None
    kube.simulator.fail_containers("OOMKilled", node=node)
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("always"), _request_timeout=TIMEOUT)
    never = pod_manifest("never")
    never["spec"]["restartPolicy"] = "Never"
    kube.core.create_namespaced_pod(ns, never, _request_timeout=TIMEOUT)
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: (
            waiting_reason("always", "CrashLoopBackOff")(p)
            and p.get("never", {}).get("status", {}).get("phase") == "Failed"
        ),
    )
    last = container(pods, "always")["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137)
    assert container(pods, "always")["restartCount"] >= 1
    terminated = container(pods, "never")["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert container(pods, "never")["restartCount"] == 0
    not_ready(pods["never"])
