"""A stand-in for ``jupyterhub-singleuser``, the server a hub spawns for each user: up in about
a second instead of 3-5 s, and a few tens of MB instead of hundreds.

The simulated kubelet runs it for the single-user notebook images (``sandbox/kube/standins``),
in the pod, with the environment KubeSpawner puts in the container. It does what the hub and a
browser can observe of the real one (JupyterHub's "Authenticating services" and
``jupyterhub/singleuser/mixins.py``):

- listens where ``JUPYTERHUB_SERVICE_URL`` says; ``0.0.0.0`` (KubeSpawner's default ``ip``)
  means the pod's own address (``CLUSTERWEB_POD_IP``), as a bind in the pod's network
  namespace would;
- answers the hub's readiness check (``GET <prefix>api``, no authentication, as jupyter_server's
  version handler) and sends ``X-JupyterHub-Version`` on every response, which the hub checks;
- **requires hub OAuth** for everything else: without a valid token or cookie it redirects a
  browser to the hub's ``/hub/api/oauth2/authorize`` with its client id
  (``JUPYTERHUB_CLIENT_ID``), finishes the login at ``JUPYTERHUB_OAUTH_CALLBACK_URL`` and only
  lets in users whose token carries one of ``JUPYTERHUB_OAUTH_ACCESS_SCOPES``
  (``access:servers!server=bob/``...): the ``jupyterhub`` package's own ``HubOAuth``
  helpers do it, as in jupyterhub-singleuser; others get 403;
- reports activity to ``JUPYTERHUB_ACTIVITY_URL`` with its API token, at start, every
  ``JUPYTERHUB_ACTIVITY_INTERVAL`` seconds (300) and after each authenticated request, so the
  hub's ``last_activity`` moves when someone uses the server;
- exits with status 1 and the real message when ``JUPYTERHUB_API_TOKEN`` is missing
  ("Did you launch it manually?"), and with 0 on SIGTERM or SIGINT.

An authenticated request is answered with a small JSON document (user, server, path), not
JupyterLab.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from datetime import UTC, datetime
from urllib.parse import urlsplit

ACTIVITY_TIMEOUT = 5  # seconds; an activity report that cannot get through is dropped
JUPYTER_SERVER_VERSION = "2.14.2"  # what GET <prefix>api answers, as jupyter_server does


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def main() -> int:
    if not os.environ.get("JUPYTERHUB_API_TOKEN"):
        print(
            "JUPYTERHUB_API_TOKEN env is required to run jupyterhub-singleuser. "
            "Did you launch it manually?",
            file=sys.stderr,
            flush=True,
        )
        return 1
    # Imported here: the check above must not wait for them.
    from jupyterhub import __version__ as hub_version
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from jupyterhub.utils import url_path_join
    from tornado import httpclient, ioloop, web

    service_url = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL") or "http://0.0.0.0:8888/")
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or service_url.path or "/"
    callback = urlsplit(
        os.environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL") or url_path_join(prefix, "oauth_callback")
    ).path
    host = service_url.hostname or ""
    if host in ("", "0.0.0.0", "::"):
        host = os.environ.get("CLUSTERWEB_POD_IP") or "127.0.0.1"
    port = service_url.port or 8888
    user = os.environ.get("JUPYTERHUB_USER", "")
    server_name = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
    started = datetime.now(UTC)
    state = {"last_activity": started}

    async def report_activity() -> None:
        url = os.environ.get("JUPYTERHUB_ACTIVITY_URL", "")
        if not url:
            return
        moment = _iso(state["last_activity"])
        body = {"last_activity": moment, "servers": {server_name: {"last_activity": moment}}}
        request = httpclient.HTTPRequest(
            url,
            method="POST",
            body=json.dumps(body),
            headers={
                "Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}",
                "Content-Type": "application/json",
            },
            request_timeout=ACTIVITY_TIMEOUT,
        )
        try:
            await httpclient.AsyncHTTPClient().fetch(request)
        except Exception as exc:  # the hub may be restarting: the next report catches up
            print(f"activity report failed: {exc}", file=sys.stderr, flush=True)

    class Base(web.RequestHandler):
        def set_default_headers(self) -> None:
            self.set_header("X-JupyterHub-Version", hub_version)

        def log_exception(self, typ, value, tb) -> None:  # type: ignore[no-untyped-def]
            if not isinstance(value, web.HTTPError):
                super().log_exception(typ, value, tb)

    class Version(Base):
        def get(self) -> None:
            self.finish({"version": JUPYTER_SERVER_VERSION})

    class Callback(HubOAuthCallbackHandler):
        def set_default_headers(self) -> None:
            self.set_header("X-JupyterHub-Version", hub_version)

    class Page(HubOAuthenticated, Base):
        @web.authenticated
        async def get(self, path: str = "") -> None:
            state["last_activity"] = datetime.now(UTC)
            ioloop.IOLoop.current().spawn_callback(report_activity)
            model = self.get_current_user()
            self.finish(
                {
                    "user": model.get("name") if model else None,
                    "owner": user,
                    "server": server_name,
                    "path": path,
                    "started": _iso(started),
                    "standin": "jupyterhub-singleuser",
                }
            )

    api = url_path_join(prefix, "api")
    app = web.Application(
        [
            (rf"{api}/?", Version),
            (callback, Callback),
            (rf"{prefix}(.*)", Page),
        ],
        cookie_secret=secrets.token_bytes(32),
        log_function=lambda handler: None,  # the hub logs every request already
    )
    app.listen(port, host)
    print(f"stand-in jupyterhub-singleuser for {user} at http://{host}:{port}{prefix}", flush=True)

    loop = ioloop.IOLoop.current()
    interval = float(os.environ.get("JUPYTERHUB_ACTIVITY_INTERVAL") or 300)
    loop.add_callback(report_activity)
    if interval > 0:
        ioloop.PeriodicCallback(report_activity, interval * 1000).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.asyncio_loop.add_signal_handler(signum, loop.stop)  # type: ignore[attr-defined]
    loop.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
