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

Failing containers ("Pod Lifecycle › Container states", "Images › Image pull back-off",
"Debug Running Pods"; pkg/kubelet/images, kuberuntime, container/sync_result.go): a container
matched by a fault (``KubeSimulator.fail_containers``: by image, pod name, node, namespace; the
real trigger, a missing image or a crashing process, is outside the API) does not start:

- ``ErrImagePull``: events Pulling, then Failed ``Failed to pull image "X": ...`` and Failed
  ``Error: ErrImagePull``; the container waits with reason ErrImagePull, then ImagePullBackOff
  (``Back-off pulling image "X"``, events BackOff and Failed ``Error: ImagePullBackOff``), and
  pulls again after the back-off, which doubles (10 s, 20 s, ... 5 min). The pod stays
  Pending.
- ``CrashLoopBackOff`` / ``OOMKilled``: the container starts (Pulled, Created, Started), exits
  (terminated, reason Error and the fault's exit code, or OOMKilled and 137), is restarted
  (``restartCount`` + 1, the exit kept in ``lastState.terminated``) and exits again, then waits
  as CrashLoopBackOff (``back-off 10s restarting failed container=C pod=NAME_NS(UID)``, event
  BackOff ``Back-off restarting failed container C in pod NAME_NS(UID)``) for the doubling
  back-off before the next restart. The pod is Running but not Ready. With ``restartPolicy:
  Never`` the pod fails at the first exit (phase Failed).

In both, conditions Ready and ContainersReady are False (ContainersNotReady, ``containers with
unready status: [C]``). The back-off's base is ``ControllerOptions.container_backoff`` (10 s;
tests scale it down); messages always show the real durations. Once the fault is cleared the
next attempt succeeds. Init containers do not fail.

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
from ..store import ContainerFault, Event, Key
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


# The kubelet's back-off: 10 s doubling to 5 min (pkg/kubelet/kubelet.go backOffPeriod,
# MaxContainerBackOff; images.imageBackOff uses the same).
_REAL_BACKOFF = 10
_MAX_STEPS = 5  # 10 * 2**5 = 320 > 300: capped


def _backoff(step: int) -> int:
    """The real back-off before restart/pull number ``step`` (0-based), in seconds."""
    return min(_REAL_BACKOFF * 2**step, 300)


def _go_duration(seconds: int) -> str:
    """time.Duration.String() for whole seconds: 10s, 1m20s, 5m0s."""
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


class _Failing:
    """What the kubelet remembers of a pod whose containers fail."""

    def __init__(self) -> None:
        self.step = 0  # attempts made
        self.next = 0.0  # monotonic time of the next attempt
        self.started: dict[str, str] = {}  # container -> startedAt of its last run
        self.finished: dict[str, str] = {}


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
        self.failing: dict[Key, _Failing] = {}

    def resync(self) -> None:
        self.dirty = {
            (e.obj["metadata"]["namespace"], e.obj["metadata"]["name"])
            for e in self.store.list_entries(PODS, "").items
            if _needs_kubelet(e.obj)
        }
        self.due.clear()
        self.failing.clear()

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
                if event.type == "DELETED" or is_terminal(event.entry.obj):
                    self.failing.pop(event.key, None)
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
        faults = self._faults(pod)
        if faults:
            self._fail(key, pod, node.obj, faults)
            return
        self._run(pod, node.obj)
        self.due.pop(key, None)
        self.failing.pop(key, None)

    # -- failing containers --------------------------------------------------------------------

    def _faults(self, pod: dict[str, Any]) -> dict[str, ContainerFault]:
        out = {}
        for container in pod["spec"].get("containers") or ():
            for fault in self.store.container_faults:
                if fault.matches(pod, container):
                    out[container["name"]] = fault
                    break
        return out

    def _fail(
        self, key: Key, pod: dict[str, Any], node: dict[str, Any], faults: dict[str, ContainerFault]
    ) -> None:
        """One attempt of the failing containers (see the module docstring)."""
        state = self.failing.setdefault(key, _Failing())
        now_mono = time.monotonic()
        if state.next > now_mono:
            self.ctx.timers.after(state.next - now_mono, lambda: self.dirty.add(key))
            return
        base = self.ctx.options.container_backoff
        pulls = any(f.reason == "ErrImagePull" for f in faults.values())
        step = state.step
        state.step += 1
        if pulls:
            # Even steps pull and fail; odd steps wait in ImagePullBackOff.
            pause = base / 10 if step % 2 == 0 else base * _backoff(step // 2) / _REAL_BACKOFF
        else:
            # Step 0: the first exit, restarted at once; then CrashLoopBackOff between restarts.
            pause = base / 10 if step == 0 else base * _backoff(step - 1) / _REAL_BACKOFF
        state.next = now_mono + pause
        host = node["metadata"]["name"]
        now = self.ctx.stamp()
        status = pod["status"]
        spec = pod["spec"]
        meta = pod["metadata"]
        pod_ref = f"{meta['name']}_{meta['namespace']}({meta['uid']})"
        failed_phase = False
        events: list[tuple[str, str, str]] = []
        previous = {c["name"]: c for c in status.get("containerStatuses") or ()}
        statuses = []
        for container in spec.get("containers") or ():
            name, image = container["name"], container.get("image", "")
            fault = faults.get(name)
            old = previous.get(name) or {}
            if fault is None or (pulls and fault.reason != "ErrImagePull"):
                statuses.append(
                    old
                    or self._container(
                        container, {"waiting": {"reason": "ContainerCreating"}}, ready=False
                    )
                )
                continue
            if fault.reason == "ErrImagePull":
                if step % 2 == 0:
                    message = (
                        "rpc error: code = NotFound desc = failed to pull and unpack image "
                        f'"{image}": failed to resolve reference "{image}": {image}: not found'
                    )
                    events += [
                        ("Normal", "Pulling", f'Pulling image "{image}"'),
                        ("Warning", "Failed", f'Failed to pull image "{image}": {message}'),
                        ("Warning", "Failed", "Error: ErrImagePull"),
                    ]
                    waiting = {"reason": "ErrImagePull", "message": message}
                else:
                    waiting = {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{image}"',
                    }
                    events += [
                        ("Normal", "BackOff", f'Back-off pulling image "{image}"'),
                        ("Warning", "Failed", "Error: ImagePullBackOff"),
                    ]
                statuses.append(self._container(container, {"waiting": waiting}, ready=False))
                continue
            oom = fault.reason == "OOMKilled"
            terminated = {
                "exitCode": 137 if oom else fault.exit_code,
                "reason": "OOMKilled" if oom else "Error",
                "startedAt": now,
                "finishedAt": now,
                "containerID": "containerd://"
                + _digest(f"{meta['uid']}/{name}/{step}"),  # one container per run
            }
            restarts = step
            if step == 0:
                events += [
                    ("Normal", "Pulled", f'Container image "{image}" already present on machine'),
                    ("Normal", "Created", f"Created container {name}"),
                    ("Normal", "Started", f"Started container {name}"),
                ]
            if step == 0 or spec.get("restartPolicy") == "Never":
                out = self._container(
                    container, {"terminated": terminated}, ready=False, started=False, pod=pod
                )
                failed_phase = spec.get("restartPolicy") == "Never"
            else:
                delay = _go_duration(_backoff(step - 1))
                waiting = {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {delay} restarting failed container={name} pod={pod_ref}",
                }
                out = self._container(
                    container, {"waiting": waiting}, ready=False, started=False, pod=pod
                )
                out["lastState"] = {"terminated": terminated}
                events += [
                    ("Normal", "Pulled", f'Container image "{image}" already present on machine'),
                    ("Normal", "Created", f"Created container {name}"),
                    ("Normal", "Started", f"Started container {name}"),
                    (
                        "Warning",
                        "BackOff",
                        f"Back-off restarting failed container {name} in pod {pod_ref}",
                    ),
                ]
            out["restartCount"] = restarts
            statuses.append(out)
        unready = " ".join(c["name"] for c in statuses if not c.get("ready"))
        waiting_text = f"containers with unready status: [{unready}]"
        status["containerStatuses"] = statuses
        if pulls:
            status["phase"] = "Pending"
        elif failed_phase:
            status["phase"] = "Failed"
        else:
            status["phase"] = "Running"
            if not status.get("podIP"):
                ip = self._pod_ip(node)
                status["podIP"] = ip
                status["podIPs"] = [{"ip": ip}]
        for type_ in ("PodReadyToStartContainers", "Initialized"):
            set_condition(status, type_, "True", now)
        for type_ in ("Ready", "ContainersReady"):
            set_condition(
                status, type_, "False", now, reason="ContainersNotReady", message=waiting_text
            )
        self.store.update(PODS, pod, subresource="status")
        for type_, reason, message in events:
            self.ctx.events.record(pod, type_, reason, message, COMPONENT, host=host)
        if not failed_phase:
            self.ctx.timers.after(pause, lambda: self.dirty.add(key))

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
        previous = {c["name"]: c for c in status.get("containerStatuses") or ()}
        restarted = any("running" not in (c.get("state") or {}) for c in previous.values())
        if not was_running or restarted:
            status["containerStatuses"] = []
            for c in spec.get("containers") or ():
                out = self._container(
                    c, {"running": {"startedAt": now}}, ready=True, started=True, pod=pod
                )
                old = previous.get(c["name"]) or {}
                if "running" not in (old.get("state") or {}) and was_running:
                    # A restart after failing: one more restart, the last exit kept.
                    out["restartCount"] = int(old.get("restartCount", 0)) + 1
                    last = (old.get("state") or {}).get("terminated") or (
                        old.get("lastState") or {}
                    ).get("terminated")
                    if last:
                        out["lastState"] = {"terminated": last}
                status["containerStatuses"].append(out)
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
