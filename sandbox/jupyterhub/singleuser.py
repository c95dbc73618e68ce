"""A stand-in for ``jupyterhub-singleuser``: ready in about 0.1 s instead of 3-5 s.

It does the part of a single-user server the hub and Clusterweb can observe:

- listens where ``JUPYTERHUB_SERVICE_URL`` says (the hub picks the port);
- answers the hub's readiness check (``GET <prefix>api``) with the ``X-JupyterHub-Version`` header
  a real server sends;
- on any other request under its prefix (a user opening their notebook through the proxy) it
  reports activity to ``JUPYTERHUB_ACTIVITY_URL`` with its API token, as jupyterhub-singleuser
  does, so the hub's ``last_activity`` moves;
- exits on SIGTERM or SIGINT.

The standard library only, and run as a script, so the interpreter imports nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ACTIVITY_TIMEOUT = 5  # seconds; an activity report that cannot get through is dropped


def _report_activity() -> None:
    url = os.environ.get("JUPYTERHUB_ACTIVITY_URL", "")
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not url or not token:
        return
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    server = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
    body = json.dumps({"last_activity": now, "servers": {server: {"last_activity": now}}}).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=ACTIVITY_TIMEOUT):
            pass
    except OSError as exc:
        print(f"activity report failed: {exc}", file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    prefix = "/"
    version = ""
    server_version = "clusterweb-singleuser-standin"

    def log_message(self, format: str, *args: object) -> None:
        pass  # the hub logs every spawn; one line per probe would drown it

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if not path.startswith(self.prefix):
            self._send(404, {"message": "not under this server's prefix"})
            return
        if path.rstrip("/") != (self.prefix + "api").rstrip("/"):
            # A person (through the proxy), not the hub's probe: that is activity.
            _report_activity()
        self._send(
            200,
            {
                "version": self.version,
                "user": os.environ.get("JUPYTERHUB_USER", ""),
                "server": os.environ.get("JUPYTERHUB_SERVER_NAME", ""),
                "standin": True,
            },
        )

    def _send(self, code: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.version:
            self.send_header("X-JupyterHub-Version", self.version)
        self.end_headers()
        self.wfile.write(body)


def main() -> int:
    service_url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    Handler.prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or service_url.path or "/"
    Handler.version = os.environ.get("CLUSTERWEB_STANDIN_HUB_VERSION", "")
    server = ThreadingHTTPServer((service_url.hostname or "127.0.0.1", service_url.port), Handler)
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it must not run on its thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
