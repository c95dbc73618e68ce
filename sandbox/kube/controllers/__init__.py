"""The simulated control plane: kube-controller-manager's controllers, kube-scheduler and every
node's kubelet, in one thread of the simulator's process (see README.md, "Controllers").

Start them with ``KubeSimulator.start_controllers(...)`` (or ``Controllers(store).start()``);
they follow the store's own change history (no polling, no HTTP), act in one pass per batch of
changes, and write through the store as the simulator, so every object they produce is defaulted
and validated like a client's, and an invalid one is recorded as a simulator bug.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from ..errors import ApiError, SimulatorBug
from ..resources import EVENTS
from ..store import Store
from .base import Context, Controller, ControllerOptions, EventRecorder, Timers, parse_stamp
from .daemonsets import DaemonSetController
from .disruption import DisruptionController
from .kubelet import Kubelet
from .nodes import NodeLifecycleController, PodGarbageCollector, TaintEvictionController
from .scheduler import SCHEDULER_NAME, Scheduler
from .workloads import DeploymentController, ReplicaSetController

__all__ = ["SCHEDULER_NAME", "ControllerOptions", "Controllers"]

log = logging.getLogger(__name__)


class Controllers:
    """The controller manager: one thread, one cursor into the store's history.

    Each pass hands every new change to every controller (``observe``), runs the timers that are
    due, then lets each controller act (``sync``) in this order: node lifecycle, taint eviction,
    pod GC, deployments, replicasets, daemonsets, disruption, scheduler, kubelet. The thread
    sleeps on the store's condition variable until the next write or the next timer; it wakes
    for nothing else.
    """

    def __init__(self, store: Store, options: ControllerOptions | None = None, **timings: Any):
        self.store = store
        self.options = options or ControllerOptions(**timings)
        self.timers = Timers()
        self.events = EventRecorder(store)
        ctx = Context(store, self.options, self.timers, self.events)
        self.node_lifecycle = NodeLifecycleController(ctx)
        self.taint_eviction = TaintEvictionController(ctx)
        self.pod_gc = PodGarbageCollector(ctx)
        self.deployments = DeploymentController(ctx)
        self.replicasets = ReplicaSetController(ctx)
        self.daemonsets = DaemonSetController(ctx)
        self.disruption = DisruptionController(ctx)
        self.scheduler = Scheduler(ctx)
        self.kubelet = Kubelet(ctx)
        self.controllers: list[Controller] = [
            self.node_lifecycle,
            self.taint_eviction,
            self.pod_gc,
            self.deployments,
            self.replicasets,
            self.daemonsets,
            self.disruption,
            self.scheduler,
            self.kubelet,
        ]
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Controllers:
        if self._thread is not None:
            return self
        self.store.taint_new_nodes = True
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="kube-controllers", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait for it (it finishes the pass it is in)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self.store.wake()
        thread.join(timeout)
        if thread.is_alive():  # pragma: no cover - a pass stuck for 10 s is a bug
            self.store.bugs.append("the controllers did not stop within 10 s")
        self._thread = None
        self.kubelet.stop()  # the stand-in processes: none is left running
        self.store.taint_new_nodes = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Controllers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        epoch: int | None = None
        cursor = 0
        while not self._stopping.is_set():
            if epoch is None:
                with self.store.lock:
                    if self.store.closed:
                        return
                    epoch, cursor = self.store.epoch, self.store.resource_version
                    self._resync()
                self._pass([])
                continue
            wait = self.timers.delay(self.options.idle_wakeup)
            got = self.store.changes(cursor, epoch, wait)
            if self._stopping.is_set():
                return
            if got is None:
                if self.store.closed:
                    return
                epoch = None  # reset or history overflow: list everything again
                continue
            cursor, events = got
            self._pass(events)

    def _resync(self) -> None:
        self.timers.clear()
        self.events.clear()
        for controller in self.controllers:
            self._guard(controller, controller.resync)
        self.timers.after(self.options.event_gc_interval, self._collect_events)

    def _pass(self, events: list[Any]) -> None:
        for event in events:
            for controller in self.controllers:
                self._guard(controller, controller.observe, event)
        self.timers.fire_due()
        for controller in self.controllers:
            self._guard(controller, controller.sync)

    def _guard(self, controller: Controller, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except SimulatorBug:
            pass  # recorded in store.bugs already: the test that caused it fails
        except Exception as exc:
            log.exception("%s failed", controller.name)
            self.store.bugs.append(f"{controller.name}: {exc!r}")

    def _collect_events(self) -> None:
        """Events expire after ``event_ttl`` (kube-apiserver's --event-ttl)."""
        now = self.store.clock()
        for entry in self.store.list_entries(EVENTS, "").items:
            event = entry.obj
            last = event.get("lastTimestamp") or event["metadata"].get("creationTimestamp")
            if last and (now - parse_stamp(last)).total_seconds() > self.options.event_ttl:
                meta = event["metadata"]
                with contextlib.suppress(ApiError):  # gone already is fine
                    self.store.delete(EVENTS, meta["namespace"], meta["name"])
        self.timers.after(self.options.event_gc_interval, self._collect_events)
