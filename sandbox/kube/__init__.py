"""A faithful, in-memory stand-in for the Kubernetes API server (see README.md).

Names are imported lazily so that ``python -m sandbox.kube`` can adjust imports before the
server's dependencies load (see ``__main__``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bridge import CloudBridge
    from .cluster import Cluster, bootstrap
    from .controllers import ControllerOptions, Controllers
    from .errors import ApiError, SimulatorBug
    from .recorder import Access, Recorder
    from .schema import KUBERNETES_VERSION
    from .server import KubeSimulator
    from .store import Store

_EXPORTS = {
    "KUBERNETES_VERSION": ".schema",
    "Access": ".recorder",
    "ApiError": ".errors",
    "CloudBridge": ".bridge",
    "Cluster": ".cluster",
    "ControllerOptions": ".controllers",
    "Controllers": ".controllers",
    "bootstrap": ".cluster",
    "KubeSimulator": ".server",
    "Recorder": ".recorder",
    "SimulatorBug": ".errors",
    "Store": ".store",
}

__all__ = [
    "KUBERNETES_VERSION",
    "Access",
    "ApiError",
    "CloudBridge",
    "Cluster",
    "ControllerOptions",
    "Controllers",
    "KubeSimulator",
    "Recorder",
    "SimulatorBug",
    "Store",
    "bootstrap",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(import_module(_EXPORTS[name], __name__), name)
