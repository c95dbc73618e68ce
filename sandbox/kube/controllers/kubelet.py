"""A stand-in for the kubelet of every Node object ("Pod Lifecycle", "Nodes").

When a pod is bound to a node that exists and is Ready, the kubelet accepts it at once (status:
``startTime``, ``hostIP``, containers waiting in ``ContainerCreating``, ``Initialized`` true,
``Ready`` false), and ``pod_start_delay`` seconds later reports it Running and Ready: a ``podIP``,
every container running and ready, the five pod conditions true, a ``Started`` event per container.
Nothing runs: containers never exit, probes are not run (a container is ready once started), and
images are not pulled. A pod on a node that is not Ready waits; a Running pod that lost
readiness with its node (the node lifecycle controller marks it) is ready again when the node is.
Graceful deletion is finished by the store's own stand-in after the scaled grace period (see
``Store._finish_termination``), and only while the node's kubelet is there.

Device plugins ("Device Plugins"; the NVIDIA device plugin): a node registers without
``nvidia.com/gpu``. When a pod of the NVIDIA device plugin's image runs on a node whose hardware
has GPUs (``Store.devices``, from the cloud bridge), the plugin registers with the kubelet, which
then reports the GPUs in ``capacity`` and ``allocatable``; when that pod goes away, the devices
are unhealthy and ``allocatable`` drops to 0 (capacity stays), as the kubelet's device manager
does.

Pod IPs come from the node's ``spec.podCIDR`` when it has one, else from one /24 per node in
100.64.0.0/16 (the bridge's EC2 nodes have no podCIDR: on EKS the VPC CNI hands out VPC
addresses, often from a 100.64.0.0/10 secondary range; moto's VPC is elsewhere).
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from typing import Any

from ..errors import ApiError
from ..resources import NODES, PODS
from ..store import Event, Key
from .base import (
    Context,
    Controller,
    is_ready,
    is_terminal,
    node_ready_status,
    set_condition,
)

COMPONENT = "kubelet"
# The image of the NVIDIA device plugin (nvcr.io/nvidia/k8s-device-plugin:vX.Y.Z).
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin"
GPU_RESOURCE = "nvidia.com/gpu"


def is_device_plugin(pod: dict[str, Any]) -> bool:
    return any(
        (c.get("image") or "").startswith(DEVICE_PLUGIN_IMAGE + ":")
        for c in (pod.get("spec") or {}).get("containers") or ()
    )


def _bound_and_live(pod: dict[str, Any]) -> bool:
    return (
        bool((pod.get("spec") or {}).get("nodeName"))
        and not pod["metadata"].get("deletionTimestamp")
        and not is_terminal(pod)
    )


def _needs_kubelet(pod: dict[str, Any]) -> bool:
    if not _bound_and_live(pod):
        return False
    phase = (pod.get("status") or {}).get("phase", "Pending")
    return phase == "Pending" or (phase == "Running" and not is_ready(pod))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Kubelet(Controller):
    name = COMPONENT

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.dirty: set[Key] = set()
        self.due: dict[Key, float] = {}  # monotonic time a pod's containers are up
        self._subnets: dict[str, ipaddress.IPv4Network] = {}
        self._unplugged: set[str] = set()  # nodes whose device plugin pod went away
        self._next_host: dict[str, int] = {}

    def resync(self) -> None:
        self.dirty = {
            (e.obj["metadata"]["namespace"], e.obj["metadata"]["name"])
            for e in self.store.list_entries(PODS, "").items
            if _needs_kubelet(e.obj)
        }
        self.due.clear()

    def observe(self, event: Event) -> None:
        if event.resource is PODS:
            node_name = (event.entry.obj.get("spec") or {}).get("nodeName")
            if (
                node_name
                and is_device_plugin(event.entry.obj)
                and (
                    event.type == "DELETED" or event.entry.obj["metadata"].get("deletionTimestamp")
                )
            ):
                self._unplugged.add(node_name)
            if event.type == "DELETED" or not _needs_kubelet(event.entry.obj):
                self.due.pop(event.key, None)
                self.dirty.discard(event.key)
            else:
                self.dirty.add(event.key)
        elif event.resource is NODES and event.type != "DELETED":
            was = node_ready_status(event.old.obj) if event.old is not None else ""
            if node_ready_status(event.entry.obj) == "True" and was != "True":
                name = event.key[1]
                for entry in self.store.list_entries(
                    PODS, "", field_selector=f"spec.nodeName={name}"
                ).items:
                    if _needs_kubelet(entry.obj):
                        meta = entry.obj["metadata"]
                        self.dirty.add((meta["namespace"], meta["name"]))

    def sync(self) -> None:
        dirty, self.dirty = self.dirty, set()
        self.each(dirty, self._sync, self.dirty.add)
        unplugged, self._unplugged = self._unplugged, set()
        for node_name in unplugged:
            self._advertise(node_name, healthy=False)

    def _advertise(self, node_name: str, *, healthy: bool) -> None:
        """The device manager's view of the node's GPUs in its status: all of them while the
        plugin runs, none allocatable once it is gone."""
        count = self.store.devices.get(node_name, {}).get(GPU_RESOURCE, 0)
        if not count:
            return
        for _ in range(3):  # a 409 means the Node changed meanwhile: read it again
            entry = self.store.peek(NODES, "", node_name)
            if entry is None:
                return
            node = entry.copy()
            status = node.setdefault("status", {})
            capacity = status.setdefault("capacity", {})
            allocatable = status.setdefault("allocatable", {})
            wanted = str(count) if healthy else "0"
            if GPU_RESOURCE not in capacity and not healthy:
                return
            if capacity.get(GPU_RESOURCE) == str(count) and allocatable.get(GPU_RESOURCE) == wanted:
                return
            capacity[GPU_RESOURCE] = str(count)
            allocatable[GPU_RESOURCE] = wanted
            try:
                self.store.update(NODES, node, subresource="status")
                return
            except ApiError as exc:
                if exc.code != 409:
                    return

    def _sync(self, key: Key) -> None:
        entry = self.store.peek(PODS, *key)
        if entry is None or not _needs_kubelet(entry.obj):
            return
        node_name = entry.obj["spec"]["nodeName"]
        node = self.store.peek(NODES, "", node_name)
        if node is None or node_ready_status(node.obj) != "True":
            return  # no kubelet there, or not ready: the node's events bring the pod back
        pod = entry.copy()
        status = pod.setdefault("status", {})
        if not status.get("startTime"):
            pod = self._accept(pod, node.obj)
            self.due[key] = time.monotonic() + self.ctx.options.pod_start_delay
            if self.ctx.options.pod_start_delay > 0:
                self.ctx.timers.after(self.ctx.options.pod_start_delay, lambda: self.dirty.add(key))
                return
        due = self.due.setdefault(key, time.monotonic() + self.ctx.options.pod_start_delay)
        if due > time.monotonic():
            self.ctx.timers.after(due - time.monotonic(), lambda: self.dirty.add(key))
            return
        self._run(pod, node.obj)
        self.due.pop(key, None)

    # -- status --------------------------------------------------------------------------------

    def _host_ips(self, node: dict[str, Any]) -> list[str]:
        addresses = (node.get("status") or {}).get("addresses") or ()
        return [a["address"] for a in addresses if a.get("type") == "InternalIP"]

    def _pod_ip(self, node: dict[str, Any]) -> str:
        name = node["metadata"]["name"]
        subnet = self._subnets.get(name)
        if subnet is None:
            cidr = (node.get("spec") or {}).get("podCIDR")
            if cidr:
                subnet = ipaddress.ip_network(cidr, strict=False)  # type: ignore[assignment]
            else:
                subnet = ipaddress.ip_network(f"100.64.{len(self._subnets) % 256}.0/24")
            self._subnets[name] = subnet  # type: ignore[assignment]
        hosts = subnet.num_addresses - 2  # type: ignore[union-attr]
        index = self._next_host.get(name, 0) % max(hosts - 1, 1)
        self._next_host[name] = index + 1
        return str(subnet.network_address + 2 + index)  # type: ignore[union-attr]

    def _accept(self, pod: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
        """What the kubelet reports when it admits the pod: started, containers being created."""
        now = self.ctx.stamp()
        status = pod["status"]
        status["phase"] = "Pending"
        status["startTime"] = now
        host_ips = self._host_ips(node)
        if host_ips:
            status["hostIP"] = host_ips[0]
            status["hostIPs"] = [{"ip": ip} for ip in host_ips]
        spec = pod["spec"]
        names = [c["name"] for c in spec.get("containers") or ()]
        waiting = f"containers with unready status: [{' '.join(names)}]"
        set_condition(status, "PodReadyToStartContainers", "False", now)
        init = spec.get("initContainers") or ()
        if init:
            init_names = " ".join(c["name"] for c in init)
            set_condition(
                status,
                "Initialized",
                "False",
                now,
                reason="ContainersNotInitialized",
                message=f"containers with incomplete status: [{init_names}]",
            )
            status["initContainerStatuses"] = [
                self._container(c, {"waiting": {"reason": "PodInitializing"}}, ready=False)
                for c in init
            ]
        else:
            set_condition(status, "Initialized", "True", now)
        set_condition(status, "Ready", "False", now, reason="ContainersNotReady", message=waiting)
        set_condition(
            status, "ContainersReady", "False", now, reason="ContainersNotReady", message=waiting
        )
        status["containerStatuses"] = [
            self._container(c, {"waiting": {"reason": "ContainerCreating"}}, ready=False)
            for c in spec.get("containers") or ()
        ]
        return self.store.update(PODS, pod, subresource="status")

    def _run(self, pod: dict[str, Any], node: dict[str, Any]) -> None:
        """Containers started: Running, with an IP, every condition true."""
        now = self.ctx.stamp()
        status = pod["status"]
        was_running = status.get("phase") == "Running"
        status["phase"] = "Running"
        if not status.get("podIP"):
            ip = self._pod_ip(node)
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        spec = pod["spec"]
        for type_ in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"):
            set_condition(status, type_, "True", now)
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [
                self._container(
                    c,
                    {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": status.get("startTime", now),
                            "finishedAt": now,
                            "containerID": self._container_id(pod, c),
                        }
                    },
                    ready=True,
                    pod=pod,
                )
                for c in spec["initContainers"]
            ]
        if not was_running:
            status["containerStatuses"] = [
                self._container(
                    c, {"running": {"startedAt": now}}, ready=True, started=True, pod=pod
                )
                for c in spec.get("containers") or ()
            ]
        else:
            for container_status in status.get("containerStatuses") or ():
                container_status["ready"] = True
        self.store.update(PODS, pod, subresource="status")
        if is_device_plugin(pod):
            self._advertise(node["metadata"]["name"], healthy=True)
        if not was_running:
            for container in spec.get("containers") or ():
                self.ctx.events.record(
                    pod,
                    "Normal",
                    "Started",
                    f"Started container {container['name']}",
                    COMPONENT,
                    host=node["metadata"]["name"],
                )

    @staticmethod
    def _container_id(pod: dict[str, Any], container: dict[str, Any]) -> str:
        return "containerd://" + _digest(f"{pod['metadata']['uid']}/{container['name']}")

    def _container(
        self,
        container: dict[str, Any],
        state: dict[str, Any],
        *,
        ready: bool,
        started: bool | None = None,
        pod: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        image = container.get("image", "")
        out: dict[str, Any] = {
            "name": container["name"],
            "image": image,
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "state": state,
        }
        if pod is not None:
            repository = image.split("@")[0]
            if ":" in repository.rsplit("/", 1)[-1]:
                repository = repository[: repository.rfind(":")]
            out["imageID"] = f"{repository}@sha256:{_digest(image)}"
            out["containerID"] = self._container_id(pod, container)
        out["started"] = bool(started)
        return out
