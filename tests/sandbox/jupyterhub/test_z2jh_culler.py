"""The shipped hub configuration as Zero to JupyterHub runs it (`hub.extraConfig`), with what z2jh's
own jupyterhub/files/hub/jupyterhub_config.py has set by then under its default values
(`cull.enabled: true`): since z2jh 2.0 (commit b5d28ce2, 2021) the culler is a service named
`jupyterhub-idle-culler` running `python3 -m jupyterhub_idle_culler`, with a role of the same name
(scopes list:users, read:users:activity, read:servers, delete:servers); before, a service
`cull-idle` with `admin: True`. Clusterweb decides when servers stop, so the culler must be gone,
and no role may be left naming it (the hub refuses to start with a role naming a missing
service)."""

from __future__ import annotations

from typing import Any

import pytest
from traitlets.config import Config

from sandbox.jupyterhub import SHIPPED

TOKEN_ENV = "CLUSTERWEB_SERVICE_API_TOKEN"
CULL_CMD = ["python3", "-m", "jupyterhub_idle_culler", "--url=http://localhost:8081/hub/api"]


def z2jh_culler(name: str, *, with_role: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    service = {"name": name, "command": [*CULL_CMD, "--timeout=3600", "--cull-every=600"]}
    if not with_role:  # z2jh 1.x: an admin service, no roles
        return {**service, "admin": True}, None
    role = {
        "name": name,
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": [name],
    }
    return service, role


def run_as_z2jh_extra_config(c: Config) -> None:
    """z2jh execs each `hub.extraConfig` value in its own config module (`c`, `get_config`)."""
    namespace = {"c": c, "get_config": lambda key, default=None: default}
    exec(compile(SHIPPED.read_text(), str(SHIPPED), "exec"), namespace)  # noqa: S102


@pytest.mark.parametrize(
    ("name", "with_role"),
    [("jupyterhub-idle-culler", True), ("cull-idle", False)],
    ids=["z2jh-2-and-later", "z2jh-1"],
)
def test_under_z2jh_the_idle_culler_is_removed_and_no_role_names_it(
    monkeypatch: pytest.MonkeyPatch, name: str, with_role: bool
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    service, role = z2jh_culler(name, with_role=with_role)
    c = Config()
    # z2jh: the culler first, then hub.services (Clusterweb's, from values.yaml), then
    # hub.loadRoles after the culler's role.
    c.JupyterHub.services = [service, {"name": "clusterweb", "api_token": "from-values"}]
    c.JupyterHub.load_roles = [
        *([role] if role else []),
        {"name": "monitoring", "scopes": ["read:metrics"], "services": ["clusterweb"]},
    ]

    run_as_z2jh_extra_config(c)

    services = c.JupyterHub.services
    commands = [" ".join(s.get("command") or ()) for s in services]
    assert not [cmd for cmd in commands if "idle_culler" in cmd], services
    assert [s["name"] for s in services] == ["clusterweb"]
    names = {s["name"] for s in services}
    for r in c.JupyterHub.load_roles:
        assert set(r.get("services") or ()) <= names, f"role {r['name']} names a missing service"
    assert [r["name"] for r in c.JupyterHub.load_roles] == ["monitoring", "user", "clusterweb"]
