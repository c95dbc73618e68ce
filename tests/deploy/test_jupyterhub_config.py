"""The hub configuration Clusterweb ships (deploy/jupyterhub/jupyterhub_config.py), loaded the two
ways a deployment loads it: by a plain `jupyterhub -f` (traitlets' config loader) and as a Zero to
JupyterHub `extraConfig` snippet (exec'd inside z2jh's own config file, after z2jh has set its
services and roles). What it does in a running hub is tested against the real hub and KubeSpawner
in tests/integrations/test_jupyterhub.py and tests/sandbox/jupyterhub/."""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import kubernetes_asyncio.client
import pytest
from tornado import web
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from clusterweb.integrations import jupyterhub as adapter
from sandbox.jupyterhub import SCOPES, SHIPPED
from sandbox.services.base import free_port

TOKEN_ENV = "CLUSTERWEB_SERVICE_API_TOKEN"


def load_with_jupyterhub_f() -> Config:
    """What `jupyterhub -f deploy/jupyterhub/jupyterhub_config.py` reads."""
    return PyFileConfigLoader(SHIPPED.name, path=str(SHIPPED.parent)).load_config()


def run_as_z2jh_extra_config(c: Config) -> dict[str, Any]:
    """z2jh's jupyterhub_config.py runs each `hub.extraConfig` value with `exec(config_py)` in
    its own module, where `c` is the hub's config and `get_config` is z2jh's values lookup."""
    namespace: dict[str, Any] = {"c": c, "get_config": lambda key, default=None: default}
    exec(compile(SHIPPED.read_text(), str(SHIPPED), "exec"), namespace)  # noqa: S102
    return namespace


@functools.cache
def shipped() -> dict[str, Any]:
    """The shipped file's module namespace (its hooks and helpers), run on an empty config."""
    return run_as_z2jh_extra_config(Config())


def by_slug(c: Config) -> dict[str, dict]:
    return {p["slug"]: p for p in c.KubeSpawner.profile_list}


def test_a_plain_hub_runs_kubespawner_with_the_three_profiles_small_by_default():
    c = load_with_jupyterhub_f()
    profiles = by_slug(c)

    assert c.JupyterHub.spawner_class == "kubespawner.KubeSpawner"
    assert list(profiles) == ["small", "large", "gpu"]
    assert [slug for slug, p in profiles.items() if p.get("default")] == ["small"]


def test_small_runs_on_the_admin_nodes_with_a_memory_limit():
    small = by_slug(load_with_jupyterhub_f())["small"]["kubespawner_override"]

    assert small["node_selector"] == {"clusterweb.io/pool": "admin"}
    assert small["mem_limit"] == "1G"
    assert "tolerations" not in small and "extra_resource_limits" not in small


def test_large_runs_on_the_jupyter_pool_and_gpu_on_a_gpu_node_with_one_gpu():
    profiles = by_slug(load_with_jupyterhub_f())
    large, gpu = (profiles[s]["kubespawner_override"] for s in ("large", "gpu"))

    assert large["node_selector"] == {"clusterweb.io/pool": "jupyter"}
    assert gpu["node_selector"] == {"clusterweb.io/pool": "gpu"}
    assert gpu["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    assert gpu["extra_resource_limits"] == {"nvidia.com/gpu": "1"}


def test_user_pods_get_no_service_account_token_and_the_launch_hooks_are_set():
    c = load_with_jupyterhub_f()

    assert c.KubeSpawner.automount_service_account_token is False
    assert c.KubeSpawner.apply_user_options.__name__ == "clusterweb_apply_user_options"
    assert c.KubeSpawner.modify_pod_hook.__name__ == "clusterweb_pin_to_launch"


def test_a_hub_restart_leaves_the_servers_running():
    assert load_with_jupyterhub_f().JupyterHub.cleanup_servers is False


def test_the_default_user_role_cannot_start_or_stop_servers():
    roles = {r["name"]: r for r in load_with_jupyterhub_f().JupyterHub.load_roles}
    scopes = roles["user"]["scopes"]

    assert "self" not in scopes  # JupyterHub's default, which includes `servers`
    assert not [s for s in scopes if s.split("!")[0] in ("servers", "start:servers")]
    assert not [s for s in scopes if s.split("!")[0] == "delete:servers"]
    assert {"access:servers!user", "read:servers!user"} <= set(scopes)


def test_the_clusterweb_service_comes_from_the_environment_with_exactly_its_scopes(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    without = load_with_jupyterhub_f().JupyterHub
    monkeypatch.setenv(TOKEN_ENV, "t0ken")
    with_token = load_with_jupyterhub_f().JupyterHub

    # A role naming a missing service would stop the hub: no token, no service, no role.
    assert without.services == []
    assert [r["name"] for r in without.load_roles] == ["user"]
    assert with_token.services == [{"name": "clusterweb", "api_token": "t0ken"}]
    (role,) = [r for r in with_token.load_roles if r["name"] == "clusterweb"]
    assert (tuple(role["scopes"]), role["services"]) == (SCOPES, ["clusterweb"])


def test_as_z2jh_extra_config_it_removes_the_idle_culler_and_keeps_z2jhs_own_settings(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    c = Config()
    # What z2jh's own config file has set by then with its defaults (cull.enabled: true) and a
    # values.yaml declaring Clusterweb's service (hub.services.clusterweb.apiToken).
    c.JupyterHub.services = [
        {"name": "jupyterhub-idle-culler", "command": ["python3", "-m", "jupyterhub_idle_culler"]},
        {"name": "clusterweb", "api_token": "from-values"},
    ]
    c.JupyterHub.load_roles = [
        {
            "name": "jupyterhub-idle-culler",
            "scopes": ["list:users", "admin:servers"],
            "services": ["jupyterhub-idle-culler"],
        },
        {"name": "monitoring", "scopes": ["read:metrics"], "services": []},
    ]
    c.KubeSpawner.namespace = "jhub"

    run_as_z2jh_extra_config(c)

    assert c.JupyterHub.services == [{"name": "clusterweb", "api_token": "from-values"}]
    assert [r["name"] for r in c.JupyterHub.load_roles] == ["monitoring", "user", "clusterweb"]
    assert c.KubeSpawner.namespace == "jhub"
    assert c.JupyterHub.spawner_class == "kubespawner.KubeSpawner"


@pytest.mark.parametrize("name", ["UNKNOWN_PROFILE", "LAUNCH_REFUSED"])
def test_the_adapter_knows_how_the_hooks_refusals_begin(name):
    # The shipped hooks' messages are f-strings starting with these words.
    assert f'f"{getattr(adapter, name)}' in SHIPPED.read_text()


def test_a_kubernetes_api_failure_in_the_ownership_check_is_a_retryable_503():
    """The hook lists the launch's nodes with the hub's client; an API that does not answer says
    nothing about the launch, so the start is refused with 503 (the adapter's TransientError),
    not with JupyterHub's catch-all 400 "Invalid user options" (a permanent refusal)."""
    namespace = shipped()
    hook = namespace["clusterweb_apply_user_options"]

    async def start_with_the_api_down() -> web.HTTPError:
        # KubeSpawner's own client type and call, against a port where nothing listens.
        configuration = kubernetes_asyncio.client.Configuration(
            host=f"http://127.0.0.1:{free_port()}"
        )
        async with kubernetes_asyncio.client.ApiClient(configuration) as api_client:
            spawner = SimpleNamespace(  # the attributes of a KubeSpawner the hook reads
                api=kubernetes_asyncio.client.CoreV1Api(api_client),
                profile_list=namespace["c"].KubeSpawner.profile_list,
                k8s_api_request_timeout=2,
                user=SimpleNamespace(name="bob"),
                log=logging.getLogger("test"),
            )
            with pytest.raises(web.HTTPError) as refused:
                await hook(spawner, {"profile": "gpu", "request": "42"})
        return refused.value

    # In a thread of its own: in the full suite an earlier test (Playwright's sync API) may have
    # left an event loop running on this thread, where asyncio.run refuses to start.
    with ThreadPoolExecutor(1) as thread:
        refused = thread.submit(asyncio.run, start_with_the_api_down()).result()

    assert refused.status_code == 503
    assert "Could not check launch request 42" in refused.log_message
