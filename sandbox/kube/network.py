"""The cluster network as the simulator models it: pod addresses (the CNI's IPAM), Service
resolution (cluster DNS plus kube-proxy), and where the API server's proxy connects.

**Pod addresses.** A real CNI plugin gives every pod its own IP from its node's pod range (Flannel:
the node's ``spec.podCIDR``, one /24 per node, ``.1`` for the ``cni0`` bridge; "Cluster
Networking", "The Kubernetes network model": every pod gets its own cluster-wide unique IP). Here
the ranges are carved from **127.0.0.0/8**, which Linux routes to the loopback interface with no
set-up, so a stand-in process of a pod (see ``runtime.py``) can bind the pod's own address and
anything on the machine can connect to it: each node gets a ``127.X.Y.0/24`` (anywhere from
``127.1.0.0``; ``127.0.0.0/16`` is left to the machine's own services), reserved machine-wide
so that two simulators on one machine never share one (``LOCK_DIR``), and its pods get
``.2``-``.254``. An
address is unique among live pods and is released when the pod is deleted or has finished
(phase Succeeded or Failed: the CNI's DEL runs when the pod sandbox is torn down). A pod with
``hostNetwork: true`` uses its node's address, as on a real node.

**Services** ("DNS for Services and Pods", "Virtual IPs and Service Proxies"). A pod resolves
``NAME``, ``NAME.NAMESPACE``, ``NAME.NAMESPACE.svc`` or ``NAME.NAMESPACE.svc.cluster.local``
through its DNS search path (``NAMESPACE.svc.cluster.local svc.cluster.local cluster.local``)
to the Service's ClusterIP, and kube-proxy sends a connection to that IP and port to one ready
backing pod (the Service's selector, Ready, not terminating) on the matching ``targetPort``
(a number, or a container port's name). ClusterIPs are not routable on this machine, so
:func:`service_backend` does both steps at once and returns the chosen pod's address and port.
A Service without a selector, or one whose pods are none of them ready, has no endpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import tempfile
from typing import Any

from . import errors as E
from .resources import PODS, SERVICES

CLUSTER_DOMAIN = "cluster.local"
# Node ranges start at 127.1.0.0/24: 127.0.0.0/16 holds the machine's own loopback services
# (127.0.0.1, Debian's 127.0.1.1 host name).
_FIRST_BLOCK = 256
_LAST_BLOCK = 65535  # 127.255.255.0/24
_FIRST_HOST = 2  # .1 is the node's cni0 bridge
_LAST_HOST = 254
# Loopback is one for the whole machine: several simulators (make run, test runs in other
# checkouts) must not hand out the same addresses. A node's /24 is reserved machine-wide by an
# exclusive flock on a file named after it, held while the range is in use and released with the
# descriptor (also when the process dies).
LOCK_DIR = os.path.join(tempfile.gettempdir(), "clusterweb-kube-sim-pod-ranges")


def is_loopback_pod_ip(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


class PodNetwork:
    """The IPAM of the simulated CNI: one 127.X.Y.0/24 per node, one address per live pod.

    Used only from the controllers' thread (the kubelet stand-in)."""

    def __init__(self) -> None:
        self._blocks: dict[str, int] = {}  # node -> block index
        self._locks: dict[int, int] = {}  # block index -> the descriptor holding its flock
        # Start somewhere random, so that two simulators rarely even try the same ranges.
        self._next_block = random.randrange(_FIRST_BLOCK, _LAST_BLOCK + 1)
        self._by_pod: dict[tuple[str, str], str] = {}  # (namespace, name) -> ip
        self._used: dict[str, set[int]] = {}  # node -> host numbers in use
        self._gone: set[str] = set()  # deleted nodes whose range still has addresses in use

    def clear(self) -> None:
        """Forget every address and give every range back."""
        for fd in self._locks.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.__init__()  # type: ignore[misc]

    def _reserve(self, block: int) -> bool:
        os.makedirs(LOCK_DIR, exist_ok=True)
        path = os.path.join(LOCK_DIR, f"127.{block >> 8}.{block & 255}.0-24")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._locks[block] = fd
        return True

    def _block(self, node: str) -> int:
        block = self._blocks.get(node)
        if block is None:
            size = _LAST_BLOCK - _FIRST_BLOCK + 1
            for _ in range(size):
                candidate = self._next_block
                self._next_block = _FIRST_BLOCK + (candidate + 1 - _FIRST_BLOCK) % size
                if candidate not in self._locks and self._reserve(candidate):
                    block = candidate
                    break
            else:
                raise RuntimeError("the simulated pod network has no /24 left for a node")
            self._blocks[node] = block
        return block

    def subnet(self, node: str) -> str:
        block = self._block(node)
        return f"127.{block >> 8}.{block & 255}.0/24"

    def allocate(self, node: str, key: tuple[str, str]) -> str:
        """The pod's address on ``node`` (the same one again if it has one)."""
        if key in self._by_pod:
            return self._by_pod[key]
        block = self._block(node)
        used = self._used.setdefault(node, set())
        for host in range(_FIRST_HOST, _LAST_HOST + 1):
            if host not in used:
                used.add(host)
                ip = f"127.{block >> 8}.{block & 255}.{host}"
                self._by_pod[key] = ip
                return ip
        raise RuntimeError(f"node {node} has no pod address left in {self.subnet(node)}")

    def adopt(self, node: str, key: tuple[str, str], ip: str) -> None:
        """Remember an address a stored pod already has (after a resync): its node keeps the
        range the address is from, when that range can still be had."""
        if not is_loopback_pod_ip(ip) or key in self._by_pod:
            return
        octets = [int(p) for p in ip.split(".")]
        wanted = (octets[1] << 8) + octets[2]
        if (
            node not in self._blocks
            and wanted >= _FIRST_BLOCK
            and wanted not in self._locks  # another node's already
            and self._reserve(wanted)
        ):
            self._blocks[node] = wanted
        if self._blocks.get(node) != wanted:
            return  # not from this node's range: leave it alone
        self._used.setdefault(node, set()).add(octets[3])
        self._by_pod[key] = ip

    def release(self, key: tuple[str, str]) -> None:
        ip = self._by_pod.pop(key, None)
        if ip is None:
            return
        octets = [int(p) for p in ip.split(".")]
        block = (octets[1] << 8) + octets[2]
        for node, node_block in self._blocks.items():
            if node_block == block:
                self._used.get(node, set()).discard(octets[3])
                if node in self._gone:
                    self.node_gone(node)
                break

    def node_gone(self, node: str) -> None:
        """A deleted node's range is free again once none of its addresses is in use."""
        if self._used.get(node):
            self._gone.add(node)
            return
        self._gone.discard(node)
        block = self._blocks.pop(node, None)
        self._used.pop(node, None)
        fd = self._locks.pop(block, None) if block is not None else None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def address_of(self, key: tuple[str, str]) -> str | None:
        return self._by_pod.get(key)


# -- Services -------------------------------------------------------------------------------------


def service_of_host(host: str, namespace: str) -> tuple[str, str] | None:
    """(namespace, name) of the Service a pod in ``namespace`` reaches as ``host``, through the
    DNS search path; None for a name that is not a Service name (an IP, an outside name)."""
    host = host.rstrip(".").lower()
    suffix = f".svc.{CLUSTER_DOMAIN}"
    if host.endswith(suffix):
        host = host[: -len(suffix)]
    elif host.endswith(".svc"):
        host = host[: -len(".svc")]
    parts = host.split(".")
    if len(parts) == 1 and parts[0]:
        return namespace, parts[0]
    if len(parts) == 2 and all(parts):
        return parts[1], parts[0]
    return None


def ready_pod(pod: dict[str, Any]) -> bool:
    """An endpoint is ready when its pod is Ready, not terminating, and has an address."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or not status.get("podIP"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


def _target_port(pod: dict[str, Any], target: Any) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == target:
                return int(port["containerPort"])
    return None  # the endpoints controller leaves such a pod out


def service_port(service: dict[str, Any], port: str) -> dict[str, Any] | None:
    """The Service port named ``port``, or numbered so. "" matches only an unnamed port, as
    the API server's proxy matches endpoint port names (a Service with named ports needs the
    name or number in ``NAME:PORT``)."""
    ports = (service.get("spec") or {}).get("ports") or []
    if not port:
        return next((entry for entry in ports if not entry.get("name")), None)
    for entry in ports:
        if entry.get("name") == port or (port.isdigit() and int(port) == entry.get("port")):
            return entry
    return None


def service_backend(store: Any, namespace: str, name: str, port: str) -> tuple[str, int]:
    """The address (pod IP, target port) that a connection to Service ``name``'s ``port`` (its
    name or number) reaches: one ready backing pod, chosen at random as kube-proxy's iptables
    mode does. Raises 404 NotFound for a missing Service and 503 ServiceUnavailable when no
    endpoint is ready (the API server's proxy answers so; a pod's connection is refused)."""
    entry = store.peek(SERVICES, namespace, name)
    if entry is None:
        raise E.not_found("services", "", name)
    service = entry.obj
    chosen = service_port(service, port)
    if chosen is None:
        if port.isdigit():
            raise E.ApiError(
                503,
                "ServiceUnavailable",
                f'no service port {port} found for service "{name}"',
                details={},
            )
        raise E.ApiError(
            503, "ServiceUnavailable", f'no endpoints available for service "{name}"', details={}
        )
    selector = (service.get("spec") or {}).get("selector") or {}
    backends: list[tuple[str, int]] = []
    if selector:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        for pod_entry in store.list_entries(PODS, namespace, label_selector=label_selector).items:
            pod = pod_entry.obj
            if not ready_pod(pod):
                continue
            target = _target_port(pod, chosen.get("targetPort", chosen.get("port")))
            if target is not None:
                backends.append((pod["status"]["podIP"], target))
    if not backends:
        raise E.ApiError(
            503,
            "ServiceUnavailable",
            f'no endpoints available for service "{name}"',
            details={},
        )
    return random.choice(backends)


def resolve(store: Any, host: str, port: int, namespace: str) -> tuple[str, int] | None:
    """What a pod in ``namespace`` connecting to ``host:port`` reaches: a Service name through
    DNS and kube-proxy (a ready backing pod), or an address as it is; None when nothing answers
    (NXDOMAIN, no such Service port, no ready endpoint)."""
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        pass
    found = service_of_host(host, namespace)
    if found is None:
        return None
    try:
        return service_backend(store, found[0], found[1], str(port))
    except E.ApiError:
        return None
