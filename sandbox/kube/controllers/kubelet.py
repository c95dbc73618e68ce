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

Pod IPs come from the simulated CNI (``network.PodNetwork``): one 127.X.Y.0/24 per node, one
address per live pod, released when the pod is deleted or finishes; a ``hostNetwork`` pod has
its node's address.

Stand-in containers (``runtime.py``, ``standins/``): a container whose image the runtime knows
runs as a local process bound to the pod's IP. It is ready only when it answers (its readiness
probe, else a connection to its first declared port), and the pod is Ready only when all its
containers are. When the process exits (it crashed, or a test killed it: exit code 137 for
SIGKILL), the container is terminated with that code and restarted per ``restartPolicy``
(``Always``; ``OnFailure`` for a non-zero code; ``Never`` not at all): ``restartCount`` + 1,
the exit in ``lastState.terminated``, events Pulled, Created and Started; the first restart
happens at once, the next ones after the CrashLoopBackOff back-off above (event BackOff). A
container that keeps failing its liveness probe is killed (events Unhealthy, Killing) and
restarted the same way. A pod being deleted gets SIGTERM (event Killing ``Stopping container
C``) and SIGKILL after its scaled grace period; a node that is deleted or stops posting status
(its instance stopped or went away) takes its processes with it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from typing import Any

from .. import quantity
from ..errors import ApiError
from ..network import PodNetwork
from ..resources import NODES, PODS, SECRETS
from ..runtime import Process, Runtime
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


class _Crashes:
    """The kubelet's back-off memory of one stand-in container that exits."""

    def __init__(self) -> None:
        self.step = 0  # exits counted towards the back-off
        self.seen_pid = 0  # the run whose exit was last counted
        self.restart_at = 0.0  # monotonic time the next run may start
        self.reported_step = -1  # the step whose BackOff event was recorded
        self.runs = 0  # runs started (one container id each)


_VAR_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of earlier variables (``$$`` escapes a ``$``)."""
    out = _VAR_REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), value)
    return out.replace("$$", "$")


class Kubelet(Controller):
    name = COMPONENT

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.dirty: set[Key] = set()
        self.due: dict[Key, float] = {}  # monotonic time a pod's containers are up
        self._unplugged: set[str] = set()  # nodes whose device plugin pod went away
        self.failing: dict[Key, _Failing] = {}
        self.network = PodNetwork()
        self.runtime = Runtime(
            self._runtime_report,
            probe_interval=ctx.options.probe_interval,
            probe_period=ctx.options.probe_period,
        )
        self.runtime.environment["CLUSTERWEB_SPARK_WORKER_TIMEOUT"] = str(
            ctx.options.spark_worker_timeout
        )
        self.crashes: dict[tuple[str, str, str], _Crashes] = {}
        self.runtime_dirty: set[Key] = set()  # pods whose stand-ins changed
        self._inbox: set[Key] = set()  # filled by the runtime's monitor thread
        self._inbox_lock = threading.Lock()
        self._stopping: set[Key] = set()  # pods being deleted: Killing events to record

    def _runtime_report(self, key: Key) -> None:
        """Called on the runtime's monitor thread: something about the pod's processes
        changed. The controllers' loop is woken to look at it."""
        with self._inbox_lock:
            self._inbox.add(key)
        self.store.wake()

    def stop(self) -> None:
        self.runtime.stop_all()
        self.network.clear()  # the node ranges go back to the machine

    def resync(self) -> None:
        entries = self.store.list_entries(PODS, "").items
        self.dirty = {
            (e.obj["metadata"]["namespace"], e.obj["metadata"]["name"])
            for e in entries
            if _needs_kubelet(e.obj)
        }
        self.due.clear()
        self.failing.clear()
        self.crashes.clear()
        self.runtime.forget_all()
        self.network.clear()
        self.runtime_dirty = set()
        for entry in entries:
            pod = entry.obj
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            status = pod.get("status") or {}
            if _bound_and_live(pod) and status.get("podIP"):
                self.network.adopt(pod["spec"]["nodeName"], key, status["podIP"])
            if (
                _bound_and_live(pod)
                and status.get("phase") == "Running"
                and any(self.runtime.knows(c) for c in pod["spec"].get("containers") or ())
            ):
                self.runtime_dirty.add(key)  # its processes are not running here: restart

    def observe(self, event: Event) -> None:
        if event.resource is PODS:
            pod = event.entry.obj
            if event.type == "DELETED" or is_terminal(pod):
                self.network.release(event.key)
                self.runtime.forget(event.key)
                for crash_key in [k for k in self.crashes if k[:2] == event.key]:
                    del self.crashes[crash_key]
            elif pod["metadata"].get("deletionTimestamp") and (
                event.old is None or not event.old.obj["metadata"].get("deletionTimestamp")
            ):
                grace = float(pod["metadata"].get("deletionGracePeriodSeconds", 0))
                if self.runtime.processes(event.key):
                    self._stopping.add(event.key)
                self.runtime.stop_pod(event.key, grace * self.store.grace_scale)
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
        elif event.resource is NODES and event.type == "DELETED":
            # The machine is gone, and its containers with it.
            self.runtime.kill_node(event.key[1])
            self.network.node_gone(event.key[1])
        elif event.resource is NODES:
            was = node_ready_status(event.old.obj) if event.old is not None else ""
            if node_ready_status(event.entry.obj) == "Unknown" and was != "Unknown":
                # The kubelet stopped posting status: here, its instance stopped or went away.
                self.runtime.kill_node(event.key[1])
            if node_ready_status(event.entry.obj) == "True" and was != "True":
                name = event.key[1]
                for entry in self.store.list_entries(
                    PODS, "", field_selector=f"spec.nodeName={name}"
                ).items:
                    if _needs_kubelet(entry.obj):
                        meta = entry.obj["metadata"]
                        self.dirty.add((meta["namespace"], meta["name"]))

    def sync(self) -> None:
        with self._inbox_lock:
            self.runtime_dirty |= self._inbox
            self._inbox.clear()
        dirty, self.dirty = self.dirty, set()
        self.each(dirty, self._sync, self.dirty.add)
        runtime_dirty, self.runtime_dirty = self.runtime_dirty, set()
        self.each(runtime_dirty, self._sync_runtime, self.runtime_dirty.add)
        stopping, self._stopping = self._stopping, set()
        for key in stopping:
            self._record_stopping(key)
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
        if status.get("phase") != "Running":
            due = self.due.setdefault(key, time.monotonic() + self.ctx.options.pod_start_delay)
            if due > time.monotonic():
                self.ctx.timers.after(due - time.monotonic(), lambda: self.dirty.add(key))
                return
        faults = self._faults(pod)
        if faults:
            self._fail(key, pod, node.obj, faults)
            return
        if status.get("phase") == "Running":
            self._refresh(key, pod, node.obj)
        else:
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
            self._assign_ip(pod, node)
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

    def _assign_ip(self, pod: dict[str, Any], node: dict[str, Any]) -> str:
        """The pod's address (kept if it has one): its node's for a hostNetwork pod, else one
        from the node's range of the simulated CNI."""
        status = pod["status"]
        if status.get("podIP"):
            return str(status["podIP"])
        meta = pod["metadata"]
        host_ips = self._host_ips(node)
        if pod["spec"].get("hostNetwork") and host_ips:
            ip = host_ips[0]
        else:
            ip = self.network.allocate(node["metadata"]["name"], (meta["namespace"], meta["name"]))
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
        return ip

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
        """Containers started: Running, with an IP. Inert containers are ready at once; a
        stand-in's process starts now and is ready when it answers (see :meth:`_refresh`)."""
        now = self.ctx.stamp()
        status = pod["status"]
        status["phase"] = "Running"
        self._assign_ip(pod, node)
        spec = pod["spec"]
        self._init_statuses(pod, now)
        status["containerStatuses"] = []
        for c in spec.get("containers") or ():
            ready = True
            if self.runtime.knows(c):
                process = self._start(pod, node, c)
                ready = process is not None and process.ready
            status["containerStatuses"].append(
                self._container(
                    c, {"running": {"startedAt": now}}, ready=ready, started=True, pod=pod
                )
            )
        self._set_ready(status, now)
        self.store.update(PODS, pod, subresource="status")
        if is_device_plugin(pod):
            self._advertise(node["metadata"]["name"], healthy=True)
        for container in spec.get("containers") or ():
            self.ctx.events.record(
                pod,
                "Normal",
                "Started",
                f"Started container {container['name']}",
                COMPONENT,
                host=node["metadata"]["name"],
            )

    def _init_statuses(self, pod: dict[str, Any], now: str) -> None:
        spec, status = pod["spec"], pod["status"]
        done = [
            c
            for c in status.get("initContainerStatuses") or ()
            if "terminated" in (c.get("state") or {})
        ]
        if spec.get("initContainers") and len(done) < len(spec["initContainers"]):
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

    @staticmethod
    def _set_ready(status: dict[str, Any], now: str) -> None:
        """Pod conditions from the containers: Ready and ContainersReady only when all are."""
        for type_ in ("PodReadyToStartContainers", "Initialized"):
            set_condition(status, type_, "True", now)
        unready = [c["name"] for c in status.get("containerStatuses") or () if not c.get("ready")]
        for type_ in ("Ready", "ContainersReady"):
            if unready:
                set_condition(
                    status,
                    type_,
                    "False",
                    now,
                    reason="ContainersNotReady",
                    message=f"containers with unready status: [{' '.join(unready)}]",
                )
            else:
                set_condition(status, type_, "True", now)

    def _sync_runtime(self, key: Key) -> None:
        """A stand-in of the pod changed (ready, unready, exited), or its back-off is over."""
        entry = self.store.peek(PODS, *key)
        if entry is None or not _bound_and_live(entry.obj):
            return
        if (entry.obj.get("status") or {}).get("phase") != "Running":
            return  # not started yet: the pod's own start brings the processes up
        node = self.store.peek(NODES, "", entry.obj["spec"]["nodeName"])
        if node is None or node_ready_status(node.obj) != "True":
            return  # no kubelet there: the node's return brings the pod back
        if self._faults(entry.obj):
            self.dirty.add(key)
            return
        self._refresh(key, entry.copy(), node.obj)

    def _refresh(self, key: Key, pod: dict[str, Any], node: dict[str, Any]) -> None:
        """Bring a Running pod's container statuses up to date: inert containers are running
        and ready; a stand-in is as its process is, and one that exited is restarted per the
        pod's ``restartPolicy`` and the back-off."""
        now = self.ctx.stamp()
        status = pod["status"]
        spec = pod["spec"]
        host = node["metadata"]["name"]
        uid = pod["metadata"].get("uid", "")
        self._init_statuses(pod, now)
        previous = {c["name"]: c for c in status.get("containerStatuses") or ()}
        events: list[tuple[str, str, str]] = []
        statuses = []
        finished: list[int] = []  # exit codes of containers that stay terminated
        for c in spec.get("containers") or ():
            name = c["name"]
            old = previous.get(name) or {}
            state = old.get("state") or {}
            if not self.runtime.knows(c):
                if "running" in state:
                    out = dict(old, ready=True, started=True)
                else:  # first status, or a restart after failing (a fault was cleared)
                    out = self._container(
                        c, {"running": {"startedAt": now}}, ready=True, started=True, pod=pod
                    )
                    if old:
                        out["restartCount"] = int(old.get("restartCount", 0)) + 1
                        last = state.get("terminated") or (old.get("lastState") or {}).get(
                            "terminated"
                        )
                        if last:
                            out["lastState"] = {"terminated": last}
                statuses.append(out)
                continue
            process = self.runtime.process(key, name)
            if process is not None and process.uid != uid:
                process = None
            if process is not None:
                events += process.notes
                process.notes = []
            if process is not None and process.running:
                if "running" in state:
                    out = dict(old)
                else:
                    out = self._container(
                        c, {"running": {"startedAt": now}}, ready=False, started=True, pod=pod
                    )
                out["ready"] = process.ready
                out["started"] = True
                statuses.append(out)
                continue
            # Exited, or not running here at all (the controllers restarted; its node was
            # lost and came back).
            exit_code = process.exit_code if process is not None else 255
            terminated = {
                "exitCode": exit_code,
                "reason": (
                    "Unknown" if process is None else ("Completed" if exit_code == 0 else "Error")
                ),
                "startedAt": (state.get("running") or {}).get("startedAt", now),
                "finishedAt": now,
                "containerID": old.get("containerID", self._container_id(pod, c)),
            }
            if "terminated" in state or "waiting" in state:
                # Already recorded: keep the first record of this exit.
                terminated = state.get("terminated") or (old.get("lastState") or {}).get(
                    "terminated", terminated
                )
            policy = spec.get("restartPolicy", "Always")
            if not (policy == "Always" or (policy == "OnFailure" and exit_code != 0)):
                out = self._container(
                    c, {"terminated": terminated}, ready=False, started=False, pod=pod
                )
                out["restartCount"] = int(old.get("restartCount", 0))
                if old.get("lastState"):
                    out["lastState"] = old["lastState"]
                finished.append(exit_code)
                statuses.append(out)
                continue
            crash = self.crashes.setdefault((*key, name), _Crashes())
            pid = process.pid if process is not None else -1
            if crash.seen_pid != pid:
                crash.seen_pid = pid
                ran = time.monotonic() - process.started_at if process is not None else 0.0
                base = self.ctx.options.container_backoff
                if ran > base * 60:  # ran 10 min (scaled) without trouble: back-off forgotten
                    crash.step = 0
                delay = 0.0 if crash.step == 0 else base * _backoff(crash.step - 1) / _REAL_BACKOFF
                crash.restart_at = time.monotonic() + delay
                crash.step += 1
            wait = crash.restart_at - time.monotonic()
            if wait > 0:
                meta = pod["metadata"]
                pod_ref = f"{meta['name']}_{meta['namespace']}({uid})"
                real = _go_duration(_backoff(crash.step - 2))
                out = self._container(
                    c,
                    {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {real} restarting failed container={name} "
                            f"pod={pod_ref}",
                        }
                    },
                    ready=False,
                    started=False,
                    pod=pod,
                )
                out["restartCount"] = int(old.get("restartCount", 0))
                out["lastState"] = {"terminated": terminated}
                if crash.reported_step != crash.step:
                    crash.reported_step = crash.step
                    events.append(
                        (
                            "Warning",
                            "BackOff",
                            f"Back-off restarting failed container {name} in pod {pod_ref}",
                        )
                    )
                self.ctx.timers.after(wait, lambda key=key: self.runtime_dirty.add(key))
                statuses.append(out)
                continue
            started = self._start(pod, node, c)
            out = self._container(
                c,
                {"running": {"startedAt": now}},
                ready=started is not None and started.ready,
                started=True,
                pod=pod,
            )
            out["restartCount"] = int(old.get("restartCount", 0)) + 1
            out["lastState"] = {"terminated": terminated}
            out["containerID"] = "containerd://" + _digest(f"{uid}/{name}/{crash.runs}")
            image = c.get("image", "")
            events += [
                ("Normal", "Pulled", f'Container image "{image}" already present on machine'),
                ("Normal", "Created", f"Created container {name}"),
                ("Normal", "Started", f"Started container {name}"),
            ]
            statuses.append(out)
        status["containerStatuses"] = statuses
        if finished and len(finished) == len(statuses):
            status["phase"] = "Succeeded" if not any(finished) else "Failed"
        self._set_ready(status, now)
        self.store.update(PODS, pod, subresource="status")
        for type_, reason, message in events:
            self.ctx.events.record(pod, type_, reason, message, COMPONENT, host=host)

    def _record_stopping(self, key: Key) -> None:
        """The kubelet's Killing event for each stand-in it is stopping (a pod being deleted)."""
        entry = self.store.peek(PODS, *key)
        if entry is None:
            return
        node = (entry.obj.get("spec") or {}).get("nodeName", "")
        for process in self.runtime.processes(key):
            self.ctx.events.record(
                entry.obj,
                "Normal",
                "Killing",
                f"Stopping container {process.container}",
                COMPONENT,
                host=node,
            )

    # -- stand-in processes ----------------------------------------------------------------------

    def _start(
        self, pod: dict[str, Any], node: dict[str, Any], container: dict[str, Any]
    ) -> Process | None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        crash = self.crashes.setdefault((*key, container["name"]), _Crashes())
        crash.runs += 1
        ip = pod["status"].get("podIP", "")
        return self.runtime.start(
            pod,
            container,
            ip=ip,
            node=node["metadata"]["name"],
            env=self._environment(pod, node, container, ip),
        )

    def _environment(
        self, pod: dict[str, Any], node: dict[str, Any], container: dict[str, Any], ip: str
    ) -> dict[str, str]:
        """The container's environment as a kubelet builds it: HOSTNAME, the ``env`` list
        (values with ``$(VAR)`` expansion, ``fieldRef``, ``secretKeyRef``, ``configMapKeyRef``
        is not served), plus what the stand-in needs to know about where it runs."""
        meta = pod["metadata"]
        status = pod.get("status") or {}
        env: dict[str, str] = {"HOSTNAME": meta["name"]}
        fields = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta.get("uid", ""),
            "spec.nodeName": node["metadata"]["name"],
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
            "status.podIP": ip,
            "status.hostIP": status.get("hostIP", ""),
        }
        for var in container.get("env") or ():
            name = var["name"]
            source = var.get("valueFrom") or {}
            if "value" in var or not source:
                env[name] = _expand(str(var.get("value", "")), env)
            elif "fieldRef" in source:
                path = source["fieldRef"].get("fieldPath", "")
                label = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
                if label:
                    env[name] = (meta.get(label.group(1)) or {}).get(label.group(2), "")
                else:
                    env[name] = fields.get(path, "")
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = self.store.peek(SECRETS, meta["namespace"], ref.get("name", ""))
                data = (secret.obj.get("data") or {}) if secret is not None else {}
                if ref.get("key") in data:
                    env[name] = base64.b64decode(data[ref["key"]]).decode(errors="replace")
        limits = (container.get("resources") or {}).get("limits") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        cpu = limits.get("cpu") or allocatable.get("cpu") or "1"
        memory = limits.get("memory") or allocatable.get("memory") or "1Gi"
        return {
            **env,
            "CLUSTERWEB_POD_IP": ip,
            "CLUSTERWEB_POD_NAME": meta["name"],
            "CLUSTERWEB_POD_NAMESPACE": meta["namespace"],
            "CLUSTERWEB_NODE_NAME": node["metadata"]["name"],
            "CLUSTERWEB_CPU_LIMIT": str(quantity.value(cpu)),
            "CLUSTERWEB_MEMORY_LIMIT": str(int(quantity.value(memory))),
        }

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
