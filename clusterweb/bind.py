"""The rule for where the web server may listen: loopback only, unless the process runs inside
the cluster behind the bastion (``CLUSTERWEB_IN_CLUSTER=1``), where the pod address is reachable
only from the bastion.

Enforced twice. Where the bind happens (gunicorn's config, runserver), and, because a bare
``gunicorn clusterweb.wsgi -b 0.0.0.0:8000`` skips the project's config, again on every request
(``LoopbackOnly``): outside the cluster a request that did not arrive on a loopback address of
this machine is refused.

The signal is the local address of the connection the request came in on, never the Host header
or ``SERVER_NAME``/``SERVER_PORT`` (gunicorn derives those from the Host header, so a client picks
them):

- gunicorn puts the accepted connection in ``environ["gunicorn.socket"]``; its ``getsockname()``
  is the address this machine received the request on (a path for a unix socket, which is local);
- runserver (``clusterweb.management.commands.runserver``) copies the same ``getsockname()`` into
  ``environ["clusterweb.local_address"]``, since Django's development server passes no socket.

A server that gives neither is refused too: a request whose arrival address is unknown cannot be
shown to be local.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)

LOCAL_ADDRESS_KEY = "clusterweb.local_address"


def bind_host(address: str) -> str:
    """The host part of ``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``unix:PATH``."""
    address = address.strip()
    if address.startswith("unix:"):
        return "unix"
    if address.startswith("["):
        return address[1 : address.index("]")]
    if address.count(":") == 1:
        return address.rsplit(":", 1)[0]
    return address


def is_loopback(host: str) -> bool:
    if host in ("unix", "localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    # A dual-stack socket reports an IPv4 peer as ::ffff:127.0.0.1.
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def bind_refusal(address: str, *, in_cluster: bool) -> str | None:
    """Why binding ``address`` is refused, or None when it is allowed."""
    host = bind_host(address)
    if is_loopback(host) or in_cluster:
        return None
    return (
        f"Refusing to listen on {address}: Clusterweb is reachable only through the SSH tunnel to "
        "the bastion and binds 127.0.0.1. Set CLUSTERWEB_IN_CLUSTER=1 only when it runs inside "
        "the cluster behind the bastion."
    )


def arrival_address(environ: dict) -> str | None:
    """The local address this request arrived on ("unix" for a unix socket), or None when the
    server does not say (see the module docstring for the two servers that do)."""
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        try:
            name = sock.getsockname()
        except OSError:
            return None
        return "unix" if isinstance(name, str | bytes) else str(name[0])
    address = environ.get(LOCAL_ADDRESS_KEY)
    return str(address) if address else None


REFUSAL = (
    b"Clusterweb answers only on a loopback address: open it through the SSH tunnel to the "
    b"bastion (http://127.0.0.1:8000/).\n"
)


class LoopbackOnly:
    """WSGI middleware: outside the cluster, refuse (403) a request that did not arrive on a
    loopback address. Inside the cluster (``CLUSTERWEB_IN_CLUSTER``) it passes everything."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        from django.conf import settings

        if not settings.IN_CLUSTER:
            address = arrival_address(environ)
            if address is None or not is_loopback(address):
                logger.warning(
                    "Refused a request that arrived on %s, not a loopback address",
                    address or "an unknown address",
                )
                start_response(
                    "403 Forbidden",
                    [("Content-Type", "text/plain"), ("Content-Length", str(len(REFUSAL)))],
                )
                return [REFUSAL]
        return self.app(environ, start_response)
