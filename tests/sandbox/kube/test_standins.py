"""Stand-in processes: containers of known images run, answer on their pod's address, and exit
as real containers do.

Kubernetes documentation: "Pod Lifecycle › Container states, Container restarts, Pod conditions"
(Ready only when every container is; restarts with back-off, ``restartCount``,
``lastState.terminated``), "Configure Liveness, Readiness and Startup Probes" (tcpSocket,
httpGet), "Pod Lifecycle › Termination of Pods" (SIGTERM, then SIGKILL). Spark: "Spark
Standalone Mode" and the master's JSON status (core/src/main/scala/org/apache/spark/deploy/
JsonProtocol.scala). The processes are the simulator's (sandbox/kube/runtime.py): simulator_only.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.kube import KubeSimulator
from sandbox.kube.cluster import SPARK_IMAGE, spark_master_manifests
from tests.fixtures.kube import Kube, pod_manifest, wait_until

pytestmark = pytest.mark.simulator_only

TIMEOUT = 10
SINGLEUSER_IMAGE = "quay.io/jupyterhub/singleuser:5.3"
SCOPES = '["access:servers!server=bob/", "access:servers!user=bob"]'


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or ()
    )


def container_status(pod: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return next((s for s in statuses if name is None or s.get("name") == name), {})


def ready_pods(count: int, prefix: str = "") -> Callable[[dict[str, Any]], bool]:
    def check(pods: dict[str, Any]) -> bool:
        return sum(1 for n, p in pods.items() if n.startswith(prefix) and is_ready(p)) >= count

    return check


def eventually(check: Callable[[], Any], timeout: float = TIMEOUT, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise TimeoutError(f"{what or check}: last {last!r}")


def fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 - http only
        return json.load(response)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is gone for our purposes; so is one reaped between the
    # signal and the read (opening or reading /proc/PID/stat then fails).
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def events_of(kube: Kube, ns: str, name: str) -> list[tuple[str, str]]:
    return [
        (e.reason, e.message)
        for e in kube.core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name={name}", _request_timeout=TIMEOUT
        ).items
    ]


def event_counts(kube: Kube, ns: str, name: str) -> dict[str, int]:
    """Reason -> how many times (the recorder counts repeats of one event in ``count``)."""
    counts: dict[str, int] = {}
    for e in kube.core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name}", _request_timeout=TIMEOUT
    ).items:
        counts[e.reason] = counts.get(e.reason, 0) + (e.count or 1)
    return counts


def spark_cluster(kube: Kube, ns: str, *, workers: int, master_url: str) -> str:
    """The sandbox's Spark master Deployment and Service in ``ns`` and a worker Deployment
    whose command line names ``master_url``; returns the master pod's name once all are
    Ready."""
    deployment, service = spark_master_manifests(ns)
    del deployment["spec"]["template"]["spec"]["nodeSelector"]
    kube.apps.create_namespaced_deployment(ns, deployment, _request_timeout=TIMEOUT)
    kube.core.create_namespaced_service(ns, service, _request_timeout=TIMEOUT)
    worker = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "spark-worker"},
        "spec": {
            "replicas": workers,
            "selector": {"matchLabels": {"app": "spark-worker"}},
            "template": {
                "metadata": {"labels": {"app": "spark-worker"}},
                "spec": {
                    "containers": [
                        {
                            "name": "spark-worker",
                            "image": SPARK_IMAGE,
                            "command": ["/opt/spark/bin/spark-class"],
                            "args": ["org.apache.spark.deploy.worker.Worker", master_url],
                            "ports": [{"name": "http", "containerPort": 8081}],
                            "resources": {"limits": {"cpu": "2", "memory": "3Gi"}},
                        }
                    ]
                },
            },
        },
    }
    kube.apps.create_namespaced_deployment(ns, worker, _request_timeout=TIMEOUT)
    pods = wait_until(kube.core.list_namespaced_pod, ns, until=ready_pods(workers + 1))
    return next(n for n in pods if n.startswith("spark-master"))


def master_status(kube: Kube, ns: str, master: str) -> dict[str, Any]:
    pod = kube.core.read_namespaced_pod(master, ns, _request_timeout=TIMEOUT)
    return fetch_json(f"http://{pod.status.pod_ip}:8080/json/")


def alive_workers(count: int, kube: Kube, ns: str, master: str) -> Callable[[], Any]:
    def check() -> Any:
        status = master_status(kube, ns, master)
        return status if status["aliveworkers"] == count else None

    return check


def test_workers_register_with_the_master_named_on_their_command_line_through_its_service(
    kube: Kube,
) -> None:
    kube.controllers()
    kube.node(allocatable={"cpu": "8", "memory": "32Gi", "pods": "110"})
    ns = kube.namespace()
    master = spark_cluster(kube, ns, workers=2, master_url=f"spark://spark-master.{ns}.svc:7077")
    pods = {
        p.metadata.name: p
        for p in kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).items
    }

    status = eventually(alive_workers(2, kube, ns, master), what="two alive workers")

    master_ip = pods[master].status.pod_ip
    assert status["url"] == f"spark://{master_ip}:7077"
    assert status["status"] == "ALIVE"
    worker_ips = {p.status.pod_ip for n, p in pods.items() if n.startswith("spark-worker")}
    assert {w["host"] for w in status["workers"]} == worker_ips
    for worker in status["workers"]:
        assert worker["state"] == "ALIVE"
        assert worker["id"].startswith("worker-") and worker["id"].endswith(
            f"-{worker['host']}-{worker['port']}"
        )
        assert worker["webuiaddress"] == f"http://{worker['host']}:8081"
        # The container's limits, as the JVM sees its cgroup: 2 CPUs, 3 GiB less 1 GiB.
        assert (worker["cores"], worker["memory"]) == (2, 2048)
        assert worker["coresfree"] == 2 and worker["memoryfree"] == 2048
        assert worker["lastheartbeat"] > (time.time() - 60) * 1000
    assert (status["cores"], status["memory"]) == (4, 4096)
    # Each worker's own web UI answers on its pod's address.
    some = status["workers"][0]
    assert fetch_json(f"{some['webuiaddress']}/json/")["masterurl"] == status["url"]


def test_a_worker_finds_a_master_named_by_its_short_service_name(kube: Kube) -> None:
    kube.controllers()
    kube.node(allocatable={"cpu": "8", "memory": "32Gi", "pods": "110"})
    ns = kube.namespace()
    master = spark_cluster(kube, ns, workers=1, master_url="spark://spark-master:7077")

    status = eventually(alive_workers(1, kube, ns, master), what="one alive worker")

    assert status["workers"][0]["state"] == "ALIVE"


def test_a_killed_worker_is_dropped_at_once_and_its_restarted_container_registers_again(
    kube: Kube,
) -> None:
    kube.controllers()
    kube.node(allocatable={"cpu": "8", "memory": "32Gi", "pods": "110"})
    ns = kube.namespace()
    master = spark_cluster(kube, ns, workers=1, master_url=f"spark://spark-master.{ns}.svc:7077")
    first = eventually(alive_workers(1, kube, ns, master))["workers"][0]
    worker = next(
        p.metadata.name
        for p in kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).items
        if p.metadata.name.startswith("spark-worker")
    )
    assert kube.simulator is not None

    assert kube.simulator.kill_container(ns, worker, "spark-worker")

    def dead_and_back() -> Any:
        status = master_status(kube, ns, master)
        states = {w["id"]: w["state"] for w in status["workers"]}
        return status if states.get(first["id"]) == "DEAD" and status["aliveworkers"] == 1 else None

    status = eventually(dead_and_back, what="the old worker DEAD, a new one ALIVE")
    assert [w["host"] for w in status["workers"] if w["state"] == "ALIVE"] == [first["host"]]
    pod = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda pods: (
            container_status(pods[worker]).get("restartCount") == 1 and is_ready(pods[worker])
        ),
    )[worker]
    last = container_status(pod)["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (137, "Error")


def test_a_silent_worker_is_dropped_after_the_heartbeat_timeout_and_rejoins_when_it_speaks(
    kube: Kube,
) -> None:
    kube.controllers(spark_worker_timeout=1.0)
    kube.node(allocatable={"cpu": "8", "memory": "32Gi", "pods": "110"})
    ns = kube.namespace()
    master = spark_cluster(kube, ns, workers=1, master_url=f"spark://spark-master.{ns}.svc:7077")
    worker_id = eventually(alive_workers(1, kube, ns, master))["workers"][0]["id"]
    worker = next(
        p.metadata.name
        for p in kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).items
        if p.metadata.name.startswith("spark-worker")
    )
    assert kube.simulator is not None
    pid = kube.simulator.container_pid(ns, worker, "spark-worker")
    assert pid is not None

    os.kill(pid, signal.SIGSTOP)  # alive, connected, silent: a frozen or unreachable node
    try:
        status = eventually(alive_workers(0, kube, ns, master), what="no alive worker")
        assert [(w["id"], w["state"]) for w in status["workers"]] == [(worker_id, "DEAD")]
    finally:
        os.kill(pid, signal.SIGCONT)

    # Its next heartbeat is answered "re-register" (Master.scala ReconnectWorker).
    status = eventually(alive_workers(1, kube, ns, master), what="the worker back")
    assert [(w["id"], w["state"]) for w in status["workers"]] == [(worker_id, "ALIVE")]


def test_a_pod_is_ready_only_when_its_stand_in_answers_its_readiness_probe(kube: Kube) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    deployment, _ = spark_master_manifests(ns)
    template = deployment["spec"]["template"]["spec"]["containers"][0]
    right = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "right"},
        "spec": {"nodeName": node, "containers": [copy.deepcopy(template)]},
    }
    wrong = copy.deepcopy(right)
    wrong["metadata"]["name"] = "wrong"
    wrong["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 7078}}
    http = copy.deepcopy(right)
    http["metadata"]["name"] = "http"
    http["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/json/", "port": "http"}
    }
    for body in (right, wrong, http):
        kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)

    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: is_ready(p.get("right", {})) and is_ready(p.get("http", {})),
    )
    time.sleep(0.3)  # many probe intervals
    pods = {
        p.metadata.name: p
        for p in kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).items
    }

    wrong_pod = pods["wrong"]
    assert wrong_pod.status.phase == "Running"
    ready = next(c for c in wrong_pod.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "ContainersNotReady")
    status = wrong_pod.status.container_statuses[0]
    assert (status.ready, status.started, status.restart_count) == (False, True, 0)
    assert status.state.running is not None


def test_a_killed_container_restarts_with_its_exit_recorded_then_backs_off(kube: Kube) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    deployment, _ = spark_master_manifests(ns)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "master"},
        "spec": {
            "nodeName": node,
            "containers": [deployment["spec"]["template"]["spec"]["containers"][0]],
        },
    }
    kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: is_ready(p.get("master", {})))
    assert kube.simulator is not None
    first_pid = kube.simulator.container_pid(ns, "master", "spark-master")
    first_id = (
        kube.core.read_namespaced_pod("master", ns, _request_timeout=TIMEOUT)
        .status.container_statuses[0]
        .container_id
    )

    assert kube.simulator.kill_container(ns, "master", "spark-master")

    pod = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: (
            container_status(p["master"]).get("restartCount") == 1 and is_ready(p["master"])
        ),
    )["master"]
    status = container_status(pod)
    last = status["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"], last["containerID"]) == (137, "Error", first_id)
    assert "running" in status["state"]
    assert status["containerID"] != first_id  # another container
    assert kube.simulator.container_pid(ns, "master", "spark-master") not in (None, first_pid)
    assert not pid_alive(first_pid)
    counts = event_counts(kube, ns, "master")
    assert (counts["Started"], counts["Pulled"], counts["Created"]) == (2, 1, 1)

    # A second exit right after: CrashLoopBackOff before the next start, as a kubelet backs off.
    assert kube.simulator.kill_container(ns, "master", "spark-master")
    pod = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: (
            container_status(p["master"]).get("state", {}).get("waiting", {}).get("reason")
            == "CrashLoopBackOff"
        ),
    )["master"]
    status = container_status(pod)
    assert status["state"]["waiting"]["message"].startswith(
        "back-off 10s restarting failed container=spark-master pod=master_"
    )
    assert status["restartCount"] == 1 and status["ready"] is False
    assert any(r == "BackOff" for r, _ in events_of(kube, ns, "master"))
    pod = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: (
            container_status(p["master"]).get("restartCount") == 2 and is_ready(p["master"])
        ),
    )["master"]


def test_a_container_that_must_not_restart_leaves_its_pod_failed_and_its_address_free(
    kube: Kube,
) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    deployment, _ = spark_master_manifests(ns)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "once"},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [deployment["spec"]["template"]["spec"]["containers"][0]],
        },
    }
    kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    ip = wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: is_ready(p.get("once", {})))[
        "once"
    ]["status"]["podIP"]
    assert kube.simulator is not None

    assert kube.simulator.kill_container(ns, "once", "spark-master")

    pod = wait_until(
        kube.core.list_namespaced_pod, ns, until=lambda p: p["once"]["status"]["phase"] == "Failed"
    )["once"]
    status = container_status(pod)
    assert status["state"]["terminated"]["exitCode"] == 137
    assert status["restartCount"] == 0
    kube.core.create_namespaced_pod(
        ns, pod_manifest("next", node_name=node), _request_timeout=TIMEOUT
    )
    pods = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: p.get("next", {}).get("status", {}).get("podIP"),
    )
    assert pods["next"]["status"]["podIP"] == ip  # a finished pod's address is free again


def test_deleting_a_pod_stops_its_process(kube: Kube) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    deployment, _ = spark_master_manifests(ns)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "master"},
        "spec": {
            "nodeName": node,
            "containers": [deployment["spec"]["template"]["spec"]["containers"][0]],
        },
    }
    kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: is_ready(p.get("master", {})))
    assert kube.simulator is not None
    pid = kube.simulator.container_pid(ns, "master", "spark-master")
    assert pid is not None and pid_alive(pid)

    kube.core.delete_namespaced_pod("master", ns, _request_timeout=TIMEOUT)

    eventually(lambda: not pid_alive(pid), what="the process gone")
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: "master" not in p)
    assert ("Killing", "Stopping container spark-master") in events_of(kube, ns, "master")


def test_a_deleted_node_takes_its_processes_along(kube: Kube) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    deployment, _ = spark_master_manifests(ns)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "master"},
        "spec": {
            "nodeName": node,
            "containers": [deployment["spec"]["template"]["spec"]["containers"][0]],
        },
    }
    kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: is_ready(p.get("master", {})))
    assert kube.simulator is not None
    pid = kube.simulator.container_pid(ns, "master", "spark-master")

    kube.core.delete_node(node, _request_timeout=TIMEOUT)

    eventually(lambda: not pid_alive(pid), what="the process gone with its node")


def test_stopping_the_simulator_leaves_no_process_behind(tmp_path) -> None:
    sim = KubeSimulator(grace_scale=0.01).start()
    try:
        sim.start_controllers(pod_start_delay=0.02, probe_interval=0.02)
        node = pod_manifest("x")  # only for its shape
        del node
        sim.seed(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "n1"},
                "status": {
                    "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                    "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.9"}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
        deployment, _ = spark_master_manifests("default")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for name in ("a", "b"):
            sim.store.create(
                "pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"nodeName": "n1", "containers": [container]},
                },
            )
        pids = eventually(
            lambda: (
                [
                    p
                    for p in (sim.container_pid("default", n, "spark-master") for n in ("a", "b"))
                    if p
                ]
                if all(sim.container_pid("default", n, "spark-master") for n in ("a", "b"))
                else None
            ),
            what="two processes",
        )
        assert all(pid_alive(pid) for pid in pids)
    finally:
        sim.stop()
    assert not any(pid_alive(pid) for pid in pids)


def test_a_notebook_without_its_hub_token_crash_loops_and_is_never_ready(kube: Kube) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    body = pod_manifest("jupyter-bob", image=SINGLEUSER_IMAGE, node_name=node)
    body["spec"]["containers"][0]["ports"] = [{"name": "notebook-port", "containerPort": 8888}]
    kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)

    pod = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: container_status(p.get("jupyter-bob", {})).get("restartCount", 0) >= 1,
        timeout=20,
    )["jupyter-bob"]

    assert not is_ready(pod)
    assert container_status(pod)["lastState"]["terminated"]["exitCode"] == 1
    assert kube.simulator is not None
    assert "JUPYTERHUB_API_TOKEN env is required to run jupyterhub-singleuser" in (
        kube.simulator.container_log(ns, "jupyter-bob", "main")
    )


def test_a_notebook_answers_the_hubs_check_on_its_pod_address_and_sends_browsers_to_hub_login(
    kube: Kube,
) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    body = pod_manifest("jupyter-bob", image=SINGLEUSER_IMAGE, node_name=node)
    container = body["spec"]["containers"][0]
    container["ports"] = [{"name": "notebook-port", "containerPort": 8888}]
    # What KubeSpawner puts in the container (JupyterHub's Spawner.get_env).
    env = {
        "JUPYTERHUB_API_TOKEN": "abc123",
        "JPY_API_TOKEN": "abc123",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": "http://127.0.0.1:8081/hub/api/users/bob/activity",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-bob",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/bob/oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": SCOPES,
        "JUPYTERHUB_OAUTH_SCOPES": SCOPES,
        "JUPYTERHUB_SERVICE_PREFIX": "/user/bob/",
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/bob/",
        "JUPYTERHUB_USER": "bob",
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_HOST": "",
    }
    container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    kube.core.create_namespaced_pod(ns, body, _request_timeout=TIMEOUT)

    pod = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: is_ready(p.get("jupyter-bob", {})),
        timeout=20,
    )["jupyter-bob"]
    ip = pod["status"]["podIP"]

    import http.client

    connection = http.client.HTTPConnection(ip, 8888, timeout=TIMEOUT)
    connection.request("GET", "/user/bob/api")
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["version"]
    assert response.getheader("X-JupyterHub-Version")
    connection.request("GET", "/user/bob/lab")
    response = connection.getresponse()
    response.read()
    assert response.status == 302
    location = response.getheader("Location")
    assert location.startswith("/hub/api/oauth2/authorize?")
    assert "client_id=jupyterhub-user-bob" in location
    assert "redirect_uri=%2Fuser%2Fbob%2Foauth_callback" in location
    connection.close()


def master_pod(node: str, ns: str, name: str = "master", **probes: Any) -> dict[str, Any]:
    deployment, _ = spark_master_manifests(ns)
    container = copy.deepcopy(deployment["spec"]["template"]["spec"]["containers"][0])
    container.update(probes)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [container]},
    }


def test_a_container_failing_its_liveness_probe_is_killed_and_restarted(kube: Kube) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    probe = {"httpGet": {"path": "/no/such/page", "port": 8080}, "failureThreshold": 1}
    kube.core.create_namespaced_pod(
        ns, master_pod(node, ns, livenessProbe=probe), _request_timeout=TIMEOUT
    )

    pod = wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: container_status(p.get("master", {})).get("restartCount", 0) >= 1,
    )["master"]

    assert container_status(pod)["lastState"]["terminated"]["exitCode"] == 137
    found = events_of(kube, ns, "master")
    assert (
        "Unhealthy",
        f'Liveness probe failed: Get "http://{pod["status"]["podIP"]}:8080/no/such/page": failed',
    ) in found
    assert ("Killing", "Container spark-master failed liveness probe, will be restarted") in found


def test_a_ready_container_whose_readiness_probe_keeps_failing_becomes_unready_and_recovers(
    kube: Kube,
) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    probe = {"httpGet": {"path": "/json/", "port": "http"}, "timeoutSeconds": 1}
    kube.core.create_namespaced_pod(
        ns, master_pod(node, ns, readinessProbe=probe), _request_timeout=TIMEOUT
    )
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: is_ready(p.get("master", {})))
    assert kube.simulator is not None
    pid = kube.simulator.container_pid(ns, "master", "spark-master")
    assert pid is not None

    os.kill(pid, signal.SIGSTOP)  # the port still accepts (backlog), nothing answers
    try:
        pod = wait_until(
            kube.core.list_namespaced_pod,
            ns,
            until=lambda p: not is_ready(p["master"]),
            timeout=20,
        )["master"]
        assert container_status(pod)["restartCount"] == 0  # unready, not restarted
        assert any(r == "Unhealthy" for r, _ in events_of(kube, ns, "master"))
    finally:
        os.kill(pid, signal.SIGCONT)

    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: is_ready(p["master"]))


def test_a_stand_in_can_be_killed_over_http_by_another_process(kube: Kube) -> None:
    kube.controllers()
    node = kube.node()
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, master_pod(node, ns), _request_timeout=TIMEOUT)
    wait_until(kube.core.list_namespaced_pod, ns, until=lambda p: is_ready(p.get("master", {})))

    status, _, _ = kube.request(
        "POST",
        "/_simulator/kill-container",
        {"namespace": ns, "pod": "master", "container": "spark-master"},
    )
    missing, _, body = kube.request(
        "POST",
        "/_simulator/kill-container",
        {"namespace": ns, "pod": "nobody", "container": "spark-master"},
    )

    assert status == 200
    assert missing == 404 and body["reason"] == "NotFound"
    wait_until(
        kube.core.list_namespaced_pod,
        ns,
        until=lambda p: container_status(p["master"]).get("restartCount") == 1,
    )
