"""A real JupyterHub for the sandbox and the tests: ``jupyterhub`` (PyPI) as a child process with
the pure-Python configurable-http-proxy, on free loopback ports, with its database and state in one
directory, running the configuration Clusterweb ships (``deploy/jupyterhub/``: the real
KubeSpawner) plus the sandbox overlay, against the Kubernetes cluster named by a kubeconfig.

Clusterweb reaches it as a service with an API token (``env()``); the token's role has exactly
:data:`SCOPES`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from sandbox.services.base import ManagedProcess, free_port

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("jupyterhub_config.py")  # the overlay; it loads SHIPPED first
SHIPPED = REPO / "deploy" / "jupyterhub" / "jupyterhub_config.py"
# The traits the overlay may change (Class.trait), and why each differs from a deployment;
# tests/sandbox/jupyterhub/test_overlay.py holds the overlay to it.
OVERLAY_TRAITS = {
    # ports and URLs: loopback, the ports the harness picked (the proxy on 8002 under make run)
    "JupyterHub.bind_url",
    "JupyterHub.hub_bind_url",
    "JupyterHub.hub_connect_url",
    "ConfigurableHTTPProxy.api_url",
    # the proxy: the pure-Python configurable-http-proxy from this venv (no node.js here)
    "ConfigurableHTTPProxy.command",
    "ConfigurableHTTPProxy.pid_file",
    "ConfigurableHTTPProxy.should_start",
    # paths: the hub's state in the run's directory
    "JupyterHub.db_url",
    "JupyterHub.cookie_secret_file",
    "JupyterHub.pid_file",
    "JupyterHub.log_level",
    # who logs in: the dummy authenticator (production: the cluster's LDAP)
    "JupyterHub.authenticator_class",
    "Authenticator.allow_all",
    # where pods go: in a cluster, the hub's own namespace (its ServiceAccount's)
    "KubeSpawner.namespace",
    # timings: shorter than a deployment's, never longer (tests make failures quick)
    "KubeSpawner.start_timeout",
    "KubeSpawner.http_timeout",
    "KubeSpawner.poll_interval",
    "JupyterHub.tornado_settings",
}
SERVICE_NAME = "clusterweb"
NAMESPACE = "jupyter"
# The least that lets Clusterweb do its job (the shipped file's `clusterweb` role), checked by
# tests/sandbox/jupyterhub:
# - admin:users creates a user on first start (POST /users/NAME needs it; nothing narrower does)
#   and brings read:users, list:users and users:activity (last activity) with it;
# - servers starts, stops and reads servers (start:servers, delete:servers, read:servers).
# Not needed: admin:servers (server state blobs), access:servers (opening a user's notebook).
SCOPES = ("admin:users", "servers")
REQUEST_TIMEOUT = 10.0  # seconds per REST call the harness itself makes


class JupyterHubHarness:
    """One hub. ``start()`` returns once the REST API answers through the proxy (3-5 s).

    ``url`` is the proxy's public address (the hub's API is under ``/hub/api``, servers under
    ``/user/NAME/``), ``token`` the Clusterweb service's API token, ``env()`` both as Clusterweb's
    settings read them. The hub's log goes to ``log`` (default: ``jupyterhub.log`` in the work
    directory).

    ``kubeconfig`` is the hub's own (the simulator's ``jupyterhub`` identity): KubeSpawner reads
    it through ``KUBECONFIG``. Knobs: ``slow_spawn_timeout``, seconds a start request waits
    before answering 202 instead of 201; ``start_timeout``, seconds the hub allows a spawn (its
    pod must be Running and answering by then); ``http_timeout``, seconds the hub waits for a
    Running pod's server to answer; ``poll_interval``, seconds between the hub's checks that a
    server's pod still exists.
    """

    name = "jupyterhub"

    def __init__(
        self,
        kubeconfig: str | Path,
        *,
        workdir: Path | None = None,
        namespace: str = NAMESPACE,
        port: int | None = None,
        slow_spawn_timeout: float = 2.0,
        start_timeout: int = 300,
        http_timeout: int = 30,
        poll_interval: int = 5,
        log: Path | None = None,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self._own_workdir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="clusterweb-jupyterhub-"))
        self.namespace = namespace
        self.port = port or free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.token = secrets.token_hex(32)
        self.options = {
            "slow_spawn_timeout": slow_spawn_timeout,
            "start_timeout": start_timeout,
            "http_timeout": http_timeout,
            "poll_interval": poll_interval,
        }
        self.log = Path(log) if log else self.dir / "jupyterhub.log"
        self.process: ManagedProcess | None = None
        self._session = requests.Session()

    # --- the interface of sandbox/services/* -----------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hub_url(self) -> str:
        """The hub itself, behind the proxy (what a Z2JH in-cluster client calls `hub:8081`)."""
        return f"http://127.0.0.1:{self.hub_port}"

    def env(self) -> dict[str, str]:
        """What Clusterweb's settings read to reach this hub."""
        return {"JUPYTERHUB_URL": self.url, "JUPYTERHUB_API_TOKEN": self.token}

    def start(self, timeout: float = 60.0) -> JupyterHubHarness:
        self.dir.mkdir(parents=True, exist_ok=True)
        settings = self.dir / "settings.json"
        settings.touch(mode=0o600)
        settings.write_text(
            json.dumps(
                {
                    "state_dir": str(self.dir),
                    "public_port": self.port,
                    "hub_port": self.hub_port,
                    "proxy_api_port": self.proxy_api_port,
                    "service_token": self.token,
                    "kubeconfig": str(self.kubeconfig),
                    "namespace": self.namespace,
                    **self.options,
                }
            )
        )
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = {
            **os.environ,
            "PYTHONPATH": pythonpath,
            "CLUSTERWEB_HUB_SETTINGS": str(settings),
            # As a plain `jupyterhub -f` deployment gets them: KubeSpawner's kubeconfig (never
            # in-cluster here) and the token of Clusterweb's service (the shipped file reads it).
            "KUBECONFIG": str(self.kubeconfig),
            "CLUSTERWEB_SERVICE_API_TOKEN": self.token,
            # The hub and its proxy share this secret; without it the hub makes one up and warns.
            "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
        }
        self.process = ManagedProcess(
            "jupyterhub",
            [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)],
            env=env,
            log=self.log,
            cwd=self.dir,
        ).start()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and not self.process.running():
                raise RuntimeError("jupyterhub exited:\n" + self.log_tail())
            with contextlib.suppress(requests.RequestException):
                # Through the proxy: answers only once the proxy runs and routes to the hub.
                if self.api("GET", "/users?limit=1", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"jupyterhub did not answer within {timeout} s:\n" + self.log_tail())

    def running(self) -> bool:
        return bool(self.process and self.process.running())

    def stop(self) -> None:
        """Stop the hub; it stops every server (deleting their Pods) and its proxy first."""
        if self.process:
            self.process.stop(timeout=20)
        # A hub that had to be killed leaves its proxy (its own session) running.
        pid_file = self.dir / "proxy.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        self._session.close()
        if self._own_workdir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process else ""

    # --- REST, with the service token ------------------------------------------------------------
    def api(
        self, method: str, path: str, body: Any = None, *, timeout: float = REQUEST_TIMEOUT
    ) -> requests.Response:
        """One call to ``/hub/api`` + ``path`` as the Clusterweb service."""
        return self._session.request(
            method,
            f"{self.url}/hub/api{path}",
            json=body,
            headers={"Authorization": f"token {self.token}"},
            timeout=timeout,
        )

    # --- between tests ------------------------------------------------------------------------
    def reset(self, timeout: float = 30.0) -> None:
        """Back to no users: stop every server (KubeSpawner deletes its pod), then delete every
        user."""
        deadline = time.monotonic() + timeout
        while True:
            users = self._users()
            if not users:
                return
            for user in users:
                name = quote(user["name"], safe="")
                busy = False
                for server, model in (user.get("servers") or {}).items():
                    if model.get("pending") or model.get("ready"):
                        busy = True
                        if model.get("pending") != "stop":
                            path = f"/servers/{quote(server, safe='')}" if server else "/server"
                            self.api("DELETE", f"/users/{name}{path}")
                if not busy:
                    # Deleting a user does not stop its named servers: only once all are down.
                    self.api("DELETE", f"/users/{name}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"jupyterhub users still busy after {timeout} s: {users}")
            time.sleep(0.05)

    def _users(self) -> list[dict[str, Any]]:
        response = self.api("GET", "/users?include_stopped_servers=1&limit=1000")
        response.raise_for_status()
        return response.json()
