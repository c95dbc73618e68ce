"""The rule for where the web server may listen: loopback only, unless the process runs inside
the cluster behind the bastion (``CLUSTERWEB_IN_CLUSTER=1``), where the pod address is reachable
only from the bastion. Enforced where the bind happens: gunicorn's config and runserver."""

from __future__ import annotations

import ipaddress


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
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
