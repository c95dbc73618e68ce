"""The Jupyter profiles of CONVENTIONS.md in KubeSpawner's ``profile_list`` shape, and the Pod a
server with one of them becomes.

Kept free of JupyterHub and of the Kubernetes client, so the hub's spawner, the harness and the
tests share one definition. The overrides use KubeSpawner's trait names (``cpu_guarantee``,
``mem_limit``, ``node_selector``, ``tolerations``, ``extra_resource_limits``) so the same list can
be handed to a real KubeSpawner (``c.KubeSpawner.profile_list``) unchanged.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping
from typing import Any

from sandbox.kube.selectors import is_label_value

NAMESPACE = "jupyter"
POOL_LABEL = "clusterweb.io/pool"
REQUEST_LABEL = "clusterweb.io/request"
GPU_RESOURCE = "nvidia.com/gpu"
# The single-user image a real cluster would pull; nothing pulls it in the sandbox.
IMAGE = "quay.io/jupyterhub/singleuser:5.3"

GPU_TOLERATION = {
    "key": GPU_RESOURCE,
    "operator": "Equal",
    "value": "present",
    "effect": "NoSchedule",
}

# Sizes follow the pools' instance types: an admin node is a t2.small (1 vCPU, 2 GiB) shared
# with the control services, so `small` asks for little and may burst; a jupyter-pool node
# (t2.xlarge / m5.xlarge: 4 vCPU, 16 GiB) and a GPU node (g4dn.xlarge / g5.xlarge: 4 vCPU,
# 16 GiB) belong to one server each, so `large` and `gpu` ask for most of the node, leaving room
# for the kubelet and daemonsets.
PROFILE_LIST: list[dict[str, Any]] = [
    {
        "display_name": "Small: a shared admin node",
        "slug": "small",
        "description": "Up to 1 CPU and 1 GB, on the always-on admin nodes: no extra instance.",
        "default": True,
        "kubespawner_override": {
            "cpu_guarantee": 0.1,
            "cpu_limit": 1.0,
            "mem_guarantee": "256M",
            "mem_limit": "1G",
            "node_selector": {POOL_LABEL: "admin"},
        },
    },
    {
        "display_name": "Large: its own instance",
        "slug": "large",
        "description": "4 CPUs and 12 GB on an instance of the jupyter pool started for it.",
        "kubespawner_override": {
            "cpu_guarantee": 3.0,
            "cpu_limit": 4.0,
            "mem_guarantee": "12G",
            "mem_limit": "14G",
            "node_selector": {POOL_LABEL: "jupyter"},
        },
    },
    {
        "display_name": "GPU: its own GPU node",
        "slug": "gpu",
        "description": "One NVIDIA GPU, 4 CPUs and 12 GB on a GPU node started for it.",
        "kubespawner_override": {
            "cpu_guarantee": 3.0,
            "cpu_limit": 4.0,
            "mem_guarantee": "12G",
            "mem_limit": "14G",
            "node_selector": {POOL_LABEL: "gpu"},
            "tolerations": [GPU_TOLERATION],
            "extra_resource_limits": {GPU_RESOURCE: "1"},
        },
    },
]

# The traits a profile may override: KubeSpawner's names for what the Pod gets.
OVERRIDABLE = (
    "image",
    "cpu_guarantee",
    "cpu_limit",
    "mem_guarantee",
    "mem_limit",
    "node_selector",
    "tolerations",
    "extra_resource_limits",
)

_SAFE = set(string.ascii_lowercase + string.digits)
_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class UnknownProfile(ValueError):
    """The requested profile is not in the list (a user error: the hub answers 400)."""


def profile_slugs(profiles: list[dict[str, Any]] = PROFILE_LIST) -> list[str]:
    return [p["slug"] for p in profiles]


def profile_select(slug: str | None, profiles: list[dict[str, Any]] = PROFILE_LIST) -> dict:
    """The profile called ``slug``; the default one (or the first) when ``slug`` is empty.

    Raises :class:`UnknownProfile` naming the choices, as KubeSpawner refuses an unknown slug.
    """
    if not slug:
        return next((p for p in profiles if p.get("default")), profiles[0])
    for profile in profiles:
        if profile["slug"] == slug:
            return profile
    raise UnknownProfile(
        f"Unknown profile {slug!r}: choose one of {', '.join(profile_slugs(profiles))}"
    )


def escape_slug(name: str) -> str:
    """KubeSpawner's ``escape`` slug scheme: lowercase letters and digits stay, every other byte of
    the UTF-8 name becomes ``-XX`` (its hex), e.g. ``test_user`` → ``test-5fuser``."""
    out = []
    for char in name:
        if char in _SAFE:
            out.append(char)
        else:
            out.extend(f"-{byte:02x}" for byte in char.encode())
    return "".join(out)


def label_value(escaped: str, raw: str) -> str:
    """``escaped`` if it is a valid label value; otherwise a shortened form ending in a hash of
    ``raw`` (label values hold at most 63 characters and must start and end alphanumeric)."""
    if is_label_value(escaped):
        return escaped
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    head = escaped.strip("-")[:54].rstrip("-")
    return f"{head}-{digest}" if head else digest


def pod_name(username: str, servername: str = "") -> str:
    """``jupyter-<user>`` for the default server, ``jupyter-<user>--<server>`` for a named one."""
    name = f"jupyter-{escape_slug(username)}"
    return f"{name}--{escape_slug(servername)}" if servername else name


def bytes_quantity(value: int | float | str | None) -> str | None:
    """A memory size as a Kubernetes quantity in bytes. Strings take JupyterHub's K/M/G/T
    suffixes (powers of 1024, as its ``ByteSpecification`` reads them)."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text[-1:].upper() in _UNITS:
            return str(int(float(text[:-1]) * _UNITS[text[-1].upper()]))
        return str(int(float(text)))
    return str(int(value))


def cpu_quantity(value: float | int | str | None) -> str | None:
    if value in (None, ""):
        return None
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{round(number * 1000)}m"


def pod_manifest(
    *,
    username: str,
    servername: str = "",
    namespace: str = NAMESPACE,
    image: str = IMAGE,
    cpu_guarantee: float | None = None,
    cpu_limit: float | None = None,
    mem_guarantee: int | str | None = None,
    mem_limit: int | str | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: list[Mapping[str, Any]] | None = None,
    extra_resource_limits: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    port: int = 8888,
) -> dict[str, Any]:
    """The Pod KubeSpawner would create for this server, as the API's JSON.

    Guarantees become requests, limits become limits, extra resource limits (``nvidia.com/gpu``)
    become limits only (the API server copies them into requests). Labels and annotations carry
    KubeSpawner's ``hub.jupyter.org/*`` keys, so anything that finds single-user pods by them finds
    these.
    """
    requests = {
        key: value
        for key, value in (
            ("cpu", cpu_quantity(cpu_guarantee)),
            ("memory", bytes_quantity(mem_guarantee)),
        )
        if value is not None
    }
    limits = {
        key: value
        for key, value in (
            ("cpu", cpu_quantity(cpu_limit)),
            ("memory", bytes_quantity(mem_limit)),
        )
        if value is not None
    }
    limits.update({key: str(value) for key, value in (extra_resource_limits or {}).items()})
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    container: dict[str, Any] = {
        "name": "notebook",
        "image": image,
        "args": ["jupyterhub-singleuser"],
        "ports": [{"name": "notebook-port", "containerPort": port}],
        "resources": resources,
    }
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in sorted(env.items())]
    spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": "OnFailure",
        "automountServiceAccountToken": False,
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = [dict(t) for t in tolerations]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(username, servername),
            "namespace": namespace,
            "labels": {
                "app": "jupyterhub",
                "component": "singleuser-server",
                "heritage": "jupyterhub",
                "hub.jupyter.org/username": label_value(escape_slug(username), username),
                "hub.jupyter.org/servername": label_value(escape_slug(servername), servername),
            },
            "annotations": {
                "hub.jupyter.org/username": username,
                "hub.jupyter.org/servername": servername,
            },
        },
        "spec": spec,
    }
