"""Only Clusterweb's service starts and stops servers on the hub Clusterweb ships: a user who logs
in to the hub (its own page, or a token made there) can open and read their servers but cannot
start or stop one, so nobody bypasses quotes and approvals."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.jupyterhub import hub_login, jupyter_nodes, spawn_and_wait

TIMEOUT = 10


def own_token(hub, user: str) -> str:
    """A token the user makes for themselves, as on the hub's token page."""
    session = hub_login(hub.url, user)
    response = session.post(
        f"{hub.url}/hub/api/users/{user}/tokens",
        json={"note": "mine"},
        headers={"X-XSRFToken": session.cookies["_xsrf"]},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def as_user(hub, token: str, method: str, path: str, body=None) -> requests.Response:
    return requests.request(
        method,
        f"{hub.url}/hub/api{path}",
        json=body,
        headers={"Authorization": f"token {token}"},
        timeout=TIMEOUT,
    )


def test_bobs_own_token_cannot_start_his_server(jupyterhub, kube):
    token = own_token(jupyterhub, "bob")

    started = as_user(jupyterhub, token, "POST", "/users/bob/server", {"user_options": {}})
    named = as_user(jupyterhub, token, "POST", "/users/bob/servers/x", {"user_options": {}})

    assert started.status_code == 403
    assert named.status_code == 403
    # The token works: bob reads his own model, with no server in it.
    me = as_user(jupyterhub, token, "GET", "/users/bob")
    assert me.status_code == 200
    assert not me.json()["servers"]


def test_bob_cannot_stop_the_server_clusterweb_started_but_can_open_it(jupyterhub, kube):
    jupyter_nodes(kube, "admin")
    spawn_and_wait(jupyterhub, "bob")
    token = own_token(jupyterhub, "bob")

    stopped = as_user(jupyterhub, token, "DELETE", "/users/bob/server")
    model = as_user(jupyterhub, token, "GET", "/users/bob").json()

    assert stopped.status_code == 403
    assert model["servers"][""]["ready"] is True


@pytest.mark.parametrize("path", ["/hub/spawn", "/hub/spawn/bob"])
def test_the_hubs_own_spawn_page_refuses_bob(jupyterhub, path):
    session = hub_login(jupyterhub.url, "bob")

    response = session.get(f"{jupyterhub.url}{path}", timeout=TIMEOUT, allow_redirects=False)

    assert response.status_code == 403
    assert not as_user(jupyterhub, jupyterhub.token, "GET", "/users/bob").json()["servers"]
