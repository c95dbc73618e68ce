"""The JupyterHub harness: a real hub whose spawner starts a stand-in notebook and creates, in the
Kubernetes simulator, the Pod KubeSpawner would create for the chosen profile."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests
from kubernetes.client.exceptions import ApiException

from sandbox.jupyterhub import SCOPES, profiles
from tests.fixtures.jupyterhub import spawn_and_wait

NAMESPACE = "jupyter"
GPU_TOLERATION = {
    "key": "nvidia.com/gpu",
    "operator": "Equal",
    "value": "present",
    "effect": "NoSchedule",
}
TIMEOUT = 10  # seconds, every call to the simulator
MI, GI = 2**20, 2**30


def read_pod(kube, name: str) -> dict:
    pod = kube.core.read_namespaced_pod(name, NAMESPACE, _request_timeout=TIMEOUT)
    return kube.api_client.sanitize_for_serialization(pod)


def pod_names(kube) -> list[str]:
    pods = kube.core.list_namespaced_pod(NAMESPACE, _request_timeout=TIMEOUT).items
    return sorted(p.metadata.name for p in pods)


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


# -- the hub -------------------------------------------------------------------------------------


def test_the_hub_serves_its_rest_api_through_the_proxy_on_loopback(jupyterhub):
    response = requests.get(f"{jupyterhub.url}/hub/api/", timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.json()["version"] == "6.1.1"
    assert jupyterhub.url.startswith("http://127.0.0.1:")
    assert jupyterhub.env() == {
        "JUPYTERHUB_URL": jupyterhub.url,
        "JUPYTERHUB_API_TOKEN": jupyterhub.token,
    }


def test_the_service_token_grants_what_clusterweb_needs_and_no_more(jupyterhub):
    whoami = jupyterhub.api("GET", "/user").json()
    granted = set(whoami["scopes"])

    assert whoami["kind"] == "service"
    assert set(SCOPES) == {"admin:users", "servers"}
    # What the adapter calls: create users, start/stop/read servers, list users and activity.
    assert {"admin:users", "start:servers", "delete:servers", "read:servers"} <= granted
    assert {"list:users", "read:users", "read:users:activity"} <= granted
    # Not: server state blobs, other users' notebooks, the hub itself.
    assert not {"admin:servers", "admin:server_state", "access:servers", "shutdown"} & granted


def test_a_wrong_token_is_refused(jupyterhub):
    response = requests.get(
        f"{jupyterhub.url}/hub/api/users",
        headers={"Authorization": "token not-the-token"},
        timeout=TIMEOUT,
    )

    assert response.status_code == 403


# -- profiles become Pods ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "node_selector", "requests_", "limits", "tolerations"),
    [
        (
            "small",
            {"clusterweb.io/pool": "admin"},
            {"cpu": "100m", "memory": str(256 * MI)},
            {"cpu": "1", "memory": str(1 * GI)},
            [],
        ),
        (
            "large",
            {"clusterweb.io/pool": "jupyter"},
            {"cpu": "3", "memory": str(12 * GI)},
            {"cpu": "4", "memory": str(14 * GI)},
            [],
        ),
        (
            "gpu",
            {"clusterweb.io/pool": "gpu"},
            {"cpu": "3", "memory": str(12 * GI), "nvidia.com/gpu": "1"},
            {"cpu": "4", "memory": str(14 * GI), "nvidia.com/gpu": "1"},
            [GPU_TOLERATION],
        ),
    ],
)
def test_each_profile_creates_the_pod_kubespawner_would(
    jupyterhub, kube, profile, node_selector, requests_, limits, tolerations
):
    model = spawn_and_wait(jupyterhub, "alice", options={"profile": profile})

    pod = read_pod(kube, "jupyter-alice")
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert model["user_options"] == {"profile": profile}
    assert pod["metadata"]["labels"] == {
        "app": "jupyterhub",
        "component": "singleuser-server",
        "heritage": "jupyterhub",
        "hub.jupyter.org/username": "alice",
        "hub.jupyter.org/servername": "",
    }
    assert spec["nodeSelector"] == node_selector
    # Memory in bytes, as KubeSpawner writes it (JupyterHub's "1G" is 2**30 bytes).
    assert container["resources"] == {"requests": requests_, "limits": limits}
    # The API server adds its own 300 s not-ready/unreachable tolerations to every pod.
    own = [t for t in spec.get("tolerations", []) if t["effect"] != "NoExecute"]
    assert own == tolerations


def test_no_profile_means_the_default_small_one(jupyterhub, kube):
    spawn_and_wait(jupyterhub, "alice")

    assert read_pod(kube, "jupyter-alice")["spec"]["nodeSelector"] == {
        "clusterweb.io/pool": "admin"
    }


def test_a_restart_with_another_profile_keeps_nothing_of_the_previous_one(jupyterhub, kube):
    spawn_and_wait(jupyterhub, "alice", options={"profile": "gpu"})
    assert jupyterhub.api("DELETE", "/users/alice/server").status_code == 204

    spawn_and_wait(jupyterhub, "alice", options={"profile": "small"})

    spec = read_pod(kube, "jupyter-alice")["spec"]
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]
    assert not [t for t in spec.get("tolerations", []) if t["key"] == "nvidia.com/gpu"]


def test_a_launch_request_id_pins_the_server_to_that_launchs_nodes(jupyterhub, kube):
    spawn_and_wait(jupyterhub, "alice", options={"profile": "large", "request": "42"})

    spec = read_pod(kube, "jupyter-alice")["spec"]
    assert spec["nodeSelector"] == {"clusterweb.io/pool": "jupyter", "clusterweb.io/request": "42"}
    assert {
        "key": "clusterweb.io/request",
        "operator": "Equal",
        "value": "42",
        "effect": "NoSchedule",
    } in spec["tolerations"]


def test_an_unknown_profile_is_refused_before_anything_starts(jupyterhub, kube):
    jupyterhub.api("POST", "/users/alice")

    response = jupyterhub.api("POST", "/users/alice/server", {"user_options": {"profile": "huge"}})

    assert response.status_code == 400
    assert response.json()["message"] == ("Unknown profile 'huge': choose one of small, large, gpu")
    assert pod_names(kube) == []


# -- names and servers ---------------------------------------------------------------------------


def test_named_servers_get_their_own_pods_named_and_labelled_like_kubespawners(jupyterhub, kube):
    spawn_and_wait(jupyterhub, "bob")
    spawn_and_wait(jupyterhub, "bob", "analysis", {"profile": "large"})

    assert pod_names(kube) == ["jupyter-bob", "jupyter-bob--analysis"]
    named = read_pod(kube, "jupyter-bob--analysis")["metadata"]
    assert named["labels"]["hub.jupyter.org/username"] == "bob"
    assert named["labels"]["hub.jupyter.org/servername"] == "analysis"
    assert named["annotations"] == {
        "hub.jupyter.org/username": "bob",
        "hub.jupyter.org/servername": "analysis",
    }


def test_user_names_outside_lowercase_letters_and_digits_are_escaped(jupyterhub, kube):
    spawn_and_wait(jupyterhub, "test_user", "run-1")

    (name,) = pod_names(kube)
    labels = read_pod(kube, name)["metadata"]["labels"]
    assert name == "jupyter-test-5fuser--run-2d1"
    assert labels["hub.jupyter.org/username"] == "test-5fuser"
    assert labels["hub.jupyter.org/servername"] == "run-2d1"


def test_the_hub_refuses_server_names_that_are_not_safe_slugs(jupyterhub):
    jupyterhub.api("POST", "/users/bob")

    response = jupyterhub.api("POST", "/users/bob/servers/run_1", {"user_options": {}})

    assert response.status_code == 400
    assert response.json()["message"] == "Invalid server_name: 'run_1'"


def test_stopping_a_server_deletes_its_pod_before_the_hub_answers(jupyterhub, kube):
    spawn_and_wait(jupyterhub, "bob")
    spawn_and_wait(jupyterhub, "bob", "analysis")

    assert jupyterhub.api("DELETE", "/users/bob/server").status_code == 204
    assert pod_names(kube) == ["jupyter-bob--analysis"]
    removed = jupyterhub.api("DELETE", "/users/bob/servers/analysis", {"remove": True})
    assert removed.status_code == 204
    assert pod_names(kube) == []


def hub_login(hub_url: str, user: str) -> requests.Session:
    """A browser session logged in to the hub (the dummy authenticator takes any password)."""
    session = requests.Session()
    session.get(f"{hub_url}/hub/login", timeout=TIMEOUT)
    response = session.post(
        f"{hub_url}/hub/login",
        data={"username": user, "password": "any", "_xsrf": session.cookies.get("_xsrf", "")},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text[:500]
    return session


def test_the_stand_in_needs_hub_login_and_then_reports_activity(jupyterhub):
    before = spawn_and_wait(jupyterhub, "alice")["last_activity"]
    time.sleep(0.01)

    anonymous = requests.get(f"{jupyterhub.url}/user/alice/lab", timeout=TIMEOUT)
    # The stand-in sends a browser through the hub's OAuth, which asks it to log in first.
    assert anonymous.history[0].status_code == 302
    assert "/hub/api/oauth2/authorize?" in anonymous.history[0].headers["Location"]
    assert anonymous.url.startswith(f"{jupyterhub.url}/hub/login")

    session = hub_login(jupyterhub.url, "alice")
    response = session.get(f"{jupyterhub.url}/user/alice/lab", timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.json()["user"] == "alice"
    # The stand-in's own cookie, set by its OAuth callback (HubOAuth: named after its client).
    assert "jupyterhub-user-alice" in session.cookies

    def moved():
        after = jupyterhub.api("GET", "/users/alice").json()["servers"][""]["last_activity"]
        return datetime.fromisoformat(after) > datetime.fromisoformat(before)

    wait_until(moved, what="last_activity moved")


def test_the_stand_in_refuses_another_user(jupyterhub):
    spawn_and_wait(jupyterhub, "alice")

    response = hub_login(jupyterhub.url, "bob").get(
        f"{jupyterhub.url}/user/alice/lab", timeout=TIMEOUT
    )

    assert response.status_code == 403


def test_a_pod_deleted_from_outside_stops_the_server(jupyterhub, kube):
    spawn_and_wait(jupyterhub, "alice", options={"profile": "large"})

    kube.core.delete_namespaced_pod(
        "jupyter-alice", NAMESPACE, grace_period_seconds=0, _request_timeout=TIMEOUT
    )

    def stopped() -> bool:
        model = jupyterhub.api("GET", "/users/alice?include_stopped_servers=1").json()
        return model["servers"][""]["stopped"]

    wait_until(stopped, what="the hub noticing the lost pod")


def test_a_spawn_delay_keeps_a_start_pending(jupyterhub, kube):
    jupyterhub.set_controls(spawn_delay=2.0)
    jupyterhub.api("POST", "/users/alice")

    response = jupyterhub.api("POST", "/users/alice/server", {"user_options": {}})

    assert response.status_code == 202
    assert jupyterhub.api("GET", "/users/alice").json()["servers"][""]["pending"] == "spawn"
    with pytest.raises(ApiException) as missing:
        kube.core.read_namespaced_pod("jupyter-alice", NAMESPACE, _request_timeout=TIMEOUT)
    assert missing.value.status == 404


# -- the pure parts ------------------------------------------------------------------------------


def test_escaping_matches_kubespawners_escape_scheme():
    assert profiles.escape_slug("alice") == "alice"
    assert profiles.escape_slug("test_user") == "test-5fuser"
    assert profiles.escape_slug("Ünïcode") == "-c3-9cn-c3-afcode"
    assert profiles.pod_name("bob", "") == "jupyter-bob"
    assert profiles.pod_name("bob", "x.y") == "jupyter-bob--x-2ey"


def test_a_label_value_too_long_or_badly_shaped_is_shortened_with_a_hash():
    long_name = "a" * 80
    shortened = profiles.label_value(profiles.escape_slug(long_name), long_name)
    leading = profiles.label_value(profiles.escape_slug("_x"), "_x")

    assert len(shortened) <= 63 and shortened.startswith("a" * 54 + "-")
    assert leading[0].isalnum() and leading.startswith("5fx-")
    assert profiles.label_value("", "") == ""
