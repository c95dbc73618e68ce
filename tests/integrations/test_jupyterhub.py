"""The JupyterHub adapter against a real JupyterHub running the configuration Clusterweb ships
(deploy/jupyterhub/: the real KubeSpawner, the launch hooks), which creates each server's pod in
the Kubernetes simulator; the simulator's scheduler binds it to a node of the profile's pool and
its kubelet runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clusterweb.errors import PermanentError, TransientError
from clusterweb.integrations import jupyterhub as hub_adapter
from clusterweb.integrations.jupyterhub import JupyterHub
from sandbox.jupyterhub import JupyterHubHarness
from sandbox.services.base import ManagedProcess, free_port, wait_for_port
from tests.fixtures.jupyterhub import hub_login, jupyter_nodes

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "jupyter"
SINGLEUSER_IMAGE = "quay.io/jupyterhub/singleuser:5.3"  # the shipped c.KubeSpawner.image
TIMEOUT = 10  # seconds, every direct call to the simulator


@pytest.fixture
def hub(jupyterhub) -> Iterator[JupyterHub]:
    client = JupyterHub(jupyterhub.url, jupyterhub.token, timeout=5)
    yield client
    client.close()


@pytest.fixture
def nodes(jupyterhub, kube) -> dict[str, str]:
    """One Ready node per pool a profile uses (admin, jupyter, gpu), by pool."""
    return jupyter_nodes(kube)


def launch_node(kube, request: int, owner: str, pool: str = "jupyter") -> str:
    """A node of launch ``request`` as its join script registers it (CONVENTIONS.md): labelled
    with pool, owner and request, tainted for the request (and for the GPU on a gpu node)."""
    taints = [{"key": "clusterweb.io/request", "value": str(request), "effect": "NoSchedule"}]
    allocatable = None
    if pool == "gpu":
        taints.append({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"})
        allocatable = {"cpu": "4", "memory": "16Gi", "pods": "110", "nvidia.com/gpu": "1"}
    return kube.node(
        f"launch{request}",
        labels={
            "clusterweb.io/pool": pool,
            "clusterweb.io/owner": owner,
            "clusterweb.io/request": str(request),
        },
        taints=taints,
        allocatable=allocatable,
    )


def tolerations(found) -> set[tuple]:
    return {(t.key, t.operator, t.value, t.effect) for t in found.spec.tolerations or []}


def pod(kube, name: str):
    return kube.core.read_namespaced_pod(name, NAMESPACE, _request_timeout=TIMEOUT)


def pod_names(kube) -> list[str]:
    pods = kube.core.list_namespaced_pod(NAMESPACE, _request_timeout=TIMEOUT).items
    return sorted(p.metadata.name for p in pods)


# -- start ---------------------------------------------------------------------------------------


def test_it_starts_a_new_users_default_server_and_waits_until_ready(hub, jupyterhub, kube, nodes):
    status = hub.server_start("bob")

    assert status.state == "ready"
    assert status.profile == "small"
    assert status.url == f"{jupyterhub.url}/user/bob/"
    assert status.started is not None and status.started.tzinfo == UTC
    started = pod(kube, "jupyter-bob")
    assert started.spec.node_selector == {"clusterweb.io/pool": "admin"}
    assert (started.spec.node_name, started.status.phase) == (nodes["admin"], "Running")


def test_it_starts_a_named_server_with_a_profile(hub, kube, nodes):
    status = hub.server_start("bob", name="analysis", profile="large")

    assert (status.name, status.state, status.profile) == ("analysis", "ready", "large")
    started = pod(kube, "jupyter-bob--analysis")
    assert started.spec.node_selector == {"clusterweb.io/pool": "jupyter"}
    assert started.spec.node_name == nodes["jupyter"]


def test_it_pins_a_server_to_its_launchs_node(hub, kube, nodes):
    # Another jupyter node is free, but the server must land on the one launched for it.
    launched = launch_node(kube, 42, "bob")

    hub.server_start("bob", profile="large", request_id=42)

    started = pod(kube, "jupyter-bob")
    assert started.spec.node_selector == {
        "clusterweb.io/pool": "jupyter",
        "clusterweb.io/request": "42",
    }
    assert ("clusterweb.io/request", "Equal", "42", "NoSchedule") in tolerations(started)
    assert started.spec.node_name == launched


def test_a_pinned_gpu_server_keeps_the_gpu_toleration_and_lands_on_its_gpu_node(hub, kube, nodes):
    launched = launch_node(kube, 7, "alice", pool="gpu")

    hub.server_start("alice", profile="gpu", request_id=7)

    started = pod(kube, "jupyter-alice")
    assert {
        ("nvidia.com/gpu", "Equal", "present", "NoSchedule"),
        ("clusterweb.io/request", "Equal", "7", "NoSchedule"),
    } <= tolerations(started)
    assert started.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    assert started.spec.node_name == launched


def test_starting_a_server_that_already_runs_with_that_profile_is_success(hub, kube, nodes):
    first = hub.server_start("bob", profile="large")

    again = hub.server_start("bob", profile="large")

    assert again.state == "ready"
    assert again.started == first.started
    assert pod_names(kube) == ["jupyter-bob"]


def test_starting_a_server_that_runs_with_another_profile_is_refused(hub, nodes):
    hub.server_start("bob", profile="small")

    with pytest.raises(PermanentError) as refused:
        hub.server_start("bob", profile="gpu")

    assert refused.value.code == "profile_mismatch"
    assert "already runs with profile 'small'" in str(refused.value)


def test_starting_a_server_that_runs_for_another_launch_is_refused(hub, kube, nodes):
    # Same profile, another launch: "already running" is not success, the server sits on the
    # first launch's node while the second launch's instance bills for nothing.
    first = launch_node(kube, 41, "bob")
    launch_node(kube, 42, "bob")
    running = hub.server_start("bob", profile="large", request_id=41)

    with pytest.raises(PermanentError) as refused:
        hub.server_start("bob", profile="large", request_id=42)
    again = hub.server_start("bob", profile="large", request_id=41)

    assert running.request == "41"
    assert refused.value.code == "launch_mismatch"
    assert "already runs for launch request '41'" in str(refused.value)
    assert (again.state, again.started) == ("ready", running.started)
    assert pod(kube, "jupyter-bob").spec.node_name == first


def test_a_slow_start_is_polled_until_ready(hub, kube):
    # No node for the profile yet: the hub answers 202 after a second, the node is Ready half a
    # second later, and the pod runs on it.
    node_comes_up = threading.Timer(1.5, jupyter_nodes, args=(kube, "admin"))
    node_comes_up.start()
    try:
        status = hub.server_start("bob", wait_timeout=20)
    finally:
        node_comes_up.join()

    assert status.state == "ready"


def test_without_waiting_a_start_with_no_node_yet_is_pending_and_can_be_stopped(
    hub, jupyterhub, kube
):
    status = hub.server_start("bob", profile="large", wait=False)
    hub.server_stop("bob")

    assert status.state == "pending"
    assert status.url == f"{jupyterhub.url}/user/bob/"
    assert hub.server_status("bob").state == "stopped"
    assert pod_names(kube) == []


def test_a_start_still_pending_at_the_deadline_is_a_transient_timeout(hub, kube):
    started = time.monotonic()
    with pytest.raises(TransientError) as late:
        hub.server_start("bob", profile="gpu", wait_timeout=0.3)

    unscheduled = pod(kube, "jupyter-bob")
    assert late.value.code == "timeout"
    assert "still pending after 0.3 s" in str(late.value)
    # The hub's own 1 s, the 0.3 s wait, some slack for a busy machine.
    assert time.monotonic() - started < 4.5
    assert hub.server_status("bob").state == "pending"
    assert (unscheduled.spec.node_name, unscheduled.status.phase) == (None, "Pending")


def test_a_pod_that_never_becomes_ready_is_a_transient_spawn_failure_and_goes_away(
    hub, kube, nodes
):
    # The single-user container keeps crashing: KubeSpawner waits for it until the hub's
    # start_timeout, then the hub gives the spawn up and KubeSpawner deletes the pod.
    kube.simulator.fail_containers("CrashLoopBackOff", image=SINGLEUSER_IMAGE)

    with pytest.raises(TransientError) as failed:
        hub.server_start("bob", wait_timeout=60)

    # KubeSpawner's own wait and the hub's start timeout end together: either gives the reason.
    assert failed.value.code == "spawn_failed"
    assert "Spawn failed: " in str(failed.value)
    assert "did not start in 10 seconds" in str(failed.value) or "start timeout" in str(
        failed.value
    )
    assert hub.server_status("bob").state == "stopped"
    assert pod_names(kube) == []


def test_an_unknown_profile_is_refused_before_anything_starts(hub, kube):
    with pytest.raises(PermanentError) as refused:
        hub.server_start("bob", profile="huge")

    assert refused.value.code == "unknown_profile"
    assert "Unknown profile 'huge': choose one of small, large, gpu" in str(refused.value)
    assert hub.server_status("bob").state == "stopped"
    assert pod_names(kube) == []


def test_someone_elses_launch_is_refused_before_anything_starts(hub, kube, nodes):
    launch_node(kube, 42, "alice")

    with pytest.raises(PermanentError) as refused:
        hub.server_start("bob", profile="large", request_id=42)

    assert refused.value.code == "launch_not_owned"
    assert "Launch request 42 is not bob's" in str(refused.value)
    assert hub.server_status("bob").state == "stopped"
    assert pod_names(kube) == []


def test_a_launch_with_no_node_is_refused(hub, kube, nodes):
    with pytest.raises(PermanentError) as refused:
        hub.server_start("bob", profile="large", request_id=43)

    assert refused.value.code == "launch_not_owned"
    assert "Launch request 43 has no node in the cluster" in str(refused.value)
    assert pod_names(kube) == []


@pytest.fixture(scope="module")
def z2jh_timed_hub(kube_server, tmp_path_factory) -> Iterator[JupyterHubHarness]:
    """A second hub with z2jh's `slow_spawn_timeout: 0` (its jupyterhub_config.py sets it; a plain
    hub waits 10 s): every start answers 202 at once, and a refusal by the shipped hooks arrives
    later, as a failed spawn, not as the start request's answer."""
    if kube_server.simulator is None:
        pytest.skip("the hub's identity and pods' stand-ins exist only in the simulator")
    kubeconfig = kube_server.simulator.write_kubeconfig(
        tmp_path_factory.mktemp("z2jh-hub") / "kubeconfig-hub", identity="jupyterhub"
    )
    harness = JupyterHubHarness(
        kubeconfig, slow_spawn_timeout=0, start_timeout=10, http_timeout=5, poll_interval=1
    ).start()
    yield harness
    harness.stop()


@pytest.fixture
def z2jh_hub(z2jh_timed_hub, kube) -> Iterator[JupyterHub]:
    z2jh_timed_hub.reset()
    kube.core.create_namespace({"metadata": {"name": NAMESPACE}}, _request_timeout=TIMEOUT)
    kube.controllers()
    jupyter_nodes(kube)
    client = JupyterHub(z2jh_timed_hub.url, z2jh_timed_hub.token, timeout=5)
    yield client
    client.close()
    z2jh_timed_hub.reset()


def test_under_z2jhs_spawn_timing_the_hooks_refusals_keep_their_error_classes(z2jh_hub, kube):
    """z2jh answers every start 202 at once; the adapter must still see the shipped hooks'
    refusals for what they are (permanent, with their codes), not as a transient failed spawn
    that a task would retry for ever."""
    launch_node(kube, 42, "alice")

    with pytest.raises(PermanentError) as not_owned:
        z2jh_hub.server_start("bob", profile="large", request_id=42, wait_timeout=20)
    with pytest.raises(PermanentError) as unknown:
        z2jh_hub.server_start("carol", profile="huge", wait_timeout=20)

    assert not_owned.value.code == "launch_not_owned"
    assert "Launch request 42 is not bob's" in str(not_owned.value)
    assert unknown.value.code == "unknown_profile"
    assert "Unknown profile 'huge'" in str(unknown.value)
    assert z2jh_hub.server_status("bob").state == "stopped"
    assert pod_names(kube) == []


def test_a_launch_whose_nodes_are_of_another_pool_than_the_profile_is_refused(hub, kube, nodes):
    # A gpu launch and a `large` server: the pod would need a jupyter-pool node of launch 42,
    # which cannot exist, and would wait Pending until the hub's start timeout.
    launch_node(kube, 42, "bob", pool="gpu")

    with pytest.raises(PermanentError) as refused:
        hub.server_start("bob", profile="large", request_id=42, wait_timeout=30)

    assert refused.value.code == "launch_profile_mismatch"
    assert "Launch request 42 has no node for profile 'large'" in str(refused.value)
    assert "its nodes are in pool gpu" in str(refused.value)
    assert pod_names(kube) == []


def test_a_server_name_the_hub_refuses_is_a_permanent_error(hub):
    with pytest.raises(PermanentError) as refused:
        hub.server_start("bob", name="My Analysis")

    assert refused.value.code == "bad_request"
    assert "Invalid server_name" in str(refused.value)


# -- status and activity -------------------------------------------------------------------------


def test_a_server_that_never_started_is_stopped(hub):
    hub.user_ensure("carol")

    assert hub.server_status("carol").state == "stopped"
    assert hub.server_status("carol", name="analysis").state == "stopped"
    assert hub.server_status("nobody").state == "stopped"


def test_users_activity_reports_each_users_last_activity_and_servers(hub, jupyterhub, nodes):
    before = datetime.now(UTC).replace(microsecond=0)
    hub.server_start("alice", name="analysis")
    hub.user_ensure("carol")
    time.sleep(0.05)
    # Alice logs in to the hub and opens her notebook through the proxy; the server reports the
    # activity to the hub.
    opened = hub_login(jupyterhub.url, "alice").get(
        f"{jupyterhub.url}/user/alice/analysis/tree", timeout=TIMEOUT
    )

    activity = hub.users_activity()

    assert opened.status_code == 200
    assert opened.json()["user"] == "alice"  # the stand-in, not the hub's login page
    assert sorted(activity) == ["alice", "carol"]
    alice = activity["alice"]
    assert alice.last_activity >= before
    assert alice.servers["analysis"].state == "ready"
    assert alice.servers["analysis"].last_activity > alice.servers["analysis"].started
    # The hub lists every user's default server, stopped or not.
    assert [s.state for s in activity["carol"].servers.values()] == ["stopped"]


def test_users_activity_reads_every_page(hub, jupyterhub, monkeypatch):
    monkeypatch.setattr(hub_adapter, "_PAGE_SIZE", 2)
    for name in ("u1", "u2", "u3", "u4", "u5"):
        hub.user_ensure(name)

    assert sorted(hub.users_activity()) == ["u1", "u2", "u3", "u4", "u5"]


def test_creating_a_user_twice_is_fine(hub):
    assert hub.user_ensure("carol") is True
    assert hub.user_ensure("carol") is False


# -- stop ----------------------------------------------------------------------------------------


def test_it_stops_a_server_and_its_pod_is_deleted(hub, kube, nodes):
    hub.server_start("bob")

    hub.server_stop("bob")

    assert hub.server_status("bob").state == "stopped"
    assert pod_names(kube) == []


def test_stopping_is_idempotent(hub, nodes):
    hub.server_start("bob")

    hub.server_stop("bob")
    hub.server_stop("bob")
    hub.server_stop("bob", name="never-started")
    hub.server_stop("nobody")

    assert hub.server_status("bob").state == "stopped"


def test_removing_a_named_server_forgets_it(hub, kube, nodes):
    hub.server_start("bob", name="analysis", profile="large")

    hub.server_stop("bob", name="analysis", remove=True)
    hub.server_stop("bob", name="analysis", remove=True)

    assert "analysis" not in hub.users_activity()["bob"].servers
    assert pod_names(kube) == []


def test_the_default_server_cannot_be_removed(hub):
    hub.user_ensure("bob")

    with pytest.raises(PermanentError) as refused:
        hub.server_stop("bob", remove=True)

    assert refused.value.code == "bad_request"


# -- errors --------------------------------------------------------------------------------------


def test_a_wrong_token_is_a_permanent_error_naming_the_setting(jupyterhub):
    client = JupyterHub(jupyterhub.url, "not-the-token", timeout=5)

    with pytest.raises(PermanentError) as refused:
        client.server_status("bob")

    assert refused.value.code == "forbidden"
    assert "JUPYTERHUB_API_TOKEN" in str(refused.value)


def test_a_hub_that_is_down_is_a_transient_error():
    client = JupyterHub(f"http://127.0.0.1:{free_port()}", "token", timeout=1)

    with pytest.raises(TransientError) as down:
        client.server_start("bob")

    assert down.value.code == "unreachable"


def test_a_proxy_whose_hub_is_down_answers_503_which_is_transient(tmp_path):
    # The real configurable-http-proxy with nothing behind it: what a hub restart looks like.
    port = free_port()
    proxy = ManagedProcess(
        "configurable-http-proxy",
        [
            str(Path(sys.executable).with_name("configurable-http-proxy")),
            "--ip=127.0.0.1",
            f"--port={port}",
            "--api-ip=127.0.0.1",
            f"--api-port={free_port()}",
            f"--default-target=http://127.0.0.1:{free_port()}",
        ],
        env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": "proxy-token"},
        log=tmp_path / "proxy.log",
    ).start()
    try:
        wait_for_port(port, process=proxy.process, name="configurable-http-proxy")
        client = JupyterHub(f"http://127.0.0.1:{port}", "token", timeout=5)

        with pytest.raises(TransientError) as unavailable:
            client.server_status("bob")
    finally:
        proxy.stop()

    assert unavailable.value.code == "http_503"


def test_a_hub_that_never_answers_is_a_transient_timeout():
    # A listening socket nobody accepts from: connected, then silence.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        client = JupyterHub(f"http://127.0.0.1:{silent.getsockname()[1]}", "token", timeout=0.3)

        started = time.monotonic()
        with pytest.raises(TransientError) as late:
            client.server_status("bob")

    assert late.value.code == "timeout"
    assert time.monotonic() - started < 3  # 0.3 s per attempt, not the default minutes


# -- settings ------------------------------------------------------------------------------------


def test_the_settings_built_client_reads_the_settings_on_first_use(settings, jupyterhub):
    settings.JUPYTERHUB_URL = jupyterhub.url + "/hub/api/"
    settings.JUPYTERHUB_API_TOKEN = jupyterhub.token
    settings.JUPYTERHUB_TIMEOUT = 3.0
    hub_adapter.reset_client()
    try:
        client = hub_adapter.client_from_settings()

        assert client is hub_adapter.client_from_settings()
        assert (client.base_url, client.timeout) == (jupyterhub.url, 3.0)
        assert client.server_status("bob").state == "stopped"
    finally:
        hub_adapter.reset_client()


def test_the_settings_built_client_names_what_is_missing(settings):
    settings.JUPYTERHUB_URL = ""
    settings.JUPYTERHUB_API_TOKEN = ""
    hub_adapter.reset_client()

    with pytest.raises(PermanentError) as missing:
        hub_adapter.client_from_settings()

    assert missing.value.code == "config"
    assert "set JUPYTERHUB_URL and JUPYTERHUB_API_TOKEN" in str(missing.value)


def test_the_token_can_come_from_a_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file\n")
    code = "from django.conf import settings as s; print(s.JUPYTERHUB_API_TOKEN)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": "clusterweb.settings",
            "CLUSTERWEB_VAR_DIR": str(tmp_path),
            "JUPYTERHUB_API_TOKEN_FILE": str(token_file),
        },
    )

    assert result.stdout.strip() == "from-the-file", result.stderr


def test_importing_the_adapter_reads_no_settings():
    code = (
        "import clusterweb.integrations.jupyterhub; "
        "from django.conf import settings; print(settings.configured)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, env=env
    )

    assert result.stdout.strip() == "False", result.stderr


# -- on a cluster with a scheduler: the acceptance line of issue 5 --------------------------------


def running_pod(kube, name: str, timeout: float = 15.0):
    """The pod once a kubelet runs it (bound to a node, phase Running)."""
    deadline = time.monotonic() + timeout
    while True:
        found = pod(kube, name)
        if found.spec.node_name and found.status.phase == "Running":
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} not running after {timeout} s: {found.status}")
        time.sleep(0.05)


def test_a_gpu_server_starts_through_the_rest_api_and_its_pod_is_bound_to_a_gpu_node(
    hub, kube, nodes
):
    status = hub.server_start("alice", profile="gpu")

    assert status.state == "ready"
    assert running_pod(kube, "jupyter-alice").spec.node_name == nodes["gpu"]


@pytest.mark.parametrize(("profile", "pool"), [("small", "admin"), ("large", "jupyter")])
def test_the_other_profiles_land_on_their_pools_nodes(hub, kube, nodes, profile, pool):
    hub.server_start("bob", profile=profile)

    assert running_pod(kube, "jupyter-bob").spec.node_name == nodes[pool]


def test_a_server_whose_node_is_lost_is_stopped(hub, kube, nodes):
    # A spot interruption: the node goes, pod GC deletes its pods, the hub's next poll sees it.
    hub.server_start("bob", profile="large")
    running_pod(kube, "jupyter-bob")

    kube.core.delete_node(nodes["jupyter"], _request_timeout=TIMEOUT)

    deadline = time.monotonic() + 15
    while hub.server_status("bob").state != "stopped":
        assert time.monotonic() < deadline, "the hub never noticed the lost node"
        time.sleep(0.1)


def test_a_server_is_ready_only_once_its_pod_runs(hub, kube, nodes):
    status = hub.server_start("bob", profile="small")

    assert status.state == "ready"
    assert pod(kube, "jupyter-bob").status.phase == "Running"


def test_a_gpu_server_with_no_gpu_node_stays_pending(hub, kube):
    # What a `gpu` start looks like before its node has come up: KubeSpawner's behaviour.
    jupyter_nodes(kube, "admin")

    with pytest.raises(TransientError) as late:
        hub.server_start("alice", profile="gpu", wait_timeout=1)

    unscheduled = pod(kube, "jupyter-alice")
    assert late.value.code == "timeout"
    assert hub.server_status("alice").state == "pending"
    assert (unscheduled.spec.node_name, unscheduled.status.phase) == (None, "Pending")
