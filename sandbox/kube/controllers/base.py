"""What every controller of the simulator shares: the context it runs in, timers, the event
recorder, and small helpers over stored objects (conditions, owner references, pod states).

Controllers read stored entries (shared, never mutated) and write copies back through the
:class:`~sandbox.kube.store.Store` as the simulator, so every write is defaulted and validated like
a client's, and an invalid one is a :class:`~sandbox.kube.errors.SimulatorBug`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ApiError
from ..resources import EVENTS, PODS, ResourceType
from ..store import Entry, Event, Key, Store

log = logging.getLogger("sandbox.kube.controllers")

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class ControllerOptions:
    """Timings of the simulated control plane. The defaults suit the sandbox (``make run``);
    tests pass short ones."""

    # kubelet: from a pod's binding to Running and Ready (image pull and container start).
    pod_start_delay: float = 1.0
    # kubelet: the first back-off of a failing container (image pull or crash); it doubles up
    # to 30 times this (the kubelet's 10 s and 5 min). Messages show the real durations.
    container_backoff: float = 10.0
    # pod GC: how long a pod's node must have been gone before the pod is failed and deleted
    # (kube-controller-manager's quarantine is 40 s).
    pod_gc_quarantine: float = 5.0
    # Events older than this are deleted (kube-apiserver's --event-ttl, 1 h by default).
    event_ttl: float = 3600.0
    # How often expired events are looked for.
    event_gc_interval: float = 60.0
    # After a write lost a race (409 Conflict), try that object again this much later.
    retry_delay: float = 0.05
    # The longest the loop sleeps with nothing to do (a safety net; work is event-driven).
    idle_wakeup: float = 30.0
    # Stand-in containers (runtime.py): how often a container that is not ready yet is
    # checked, and how often a ready one's readiness and liveness probes run (periodSeconds
    # defaults to 10 s on a real kubelet).
    probe_interval: float = 0.2
    probe_period: float = 10.0
    # The Spark stand-ins' spark.worker.timeout (Spark's default is 60 s): a master drops a
    # worker it has not heard from for this long; workers heartbeat every quarter of it.
    spark_worker_timeout: float = 60.0


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(RFC3339)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, RFC3339).replace(tzinfo=UTC)


class Timers:
    """A heap of callbacks run on the controllers' thread when due (monotonic time)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def after(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), next(self._seq), callback))

    def delay(self, cap: float) -> float:
        """Seconds until the next timer is due (0 if one is), at most ``cap``."""
        if not self._heap:
            return cap
        return min(max(self._heap[0][0] - time.monotonic(), 0.0), cap)

    def fire_due(self) -> None:
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now:
            _, _, callback = heapq.heappop(self._heap)
            callback()

    def clear(self) -> None:
        self._heap.clear()

    def __len__(self) -> int:
        return len(self._heap)


class EventRecorder:
    """client-go's legacy event recorder, writing core/v1 Events through the store.

    A repeat of the same event (same object, type, reason, message and source) within the
    recorder's memory increments ``count`` and ``lastTimestamp`` instead of creating another
    object, as the recorder's correlator does. Names are ``<object name>.<unix nanoseconds hex>``.
    """

    def __init__(self, store: Store, memory: int = 4096) -> None:
        self.store = store
        self.memory = memory
        self._seen: OrderedDict[tuple[str, ...], tuple[str, str]] = OrderedDict()

    def clear(self) -> None:
        self._seen.clear()

    def record(
        self,
        involved: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        component: str,
        *,
        host: str = "",
    ) -> None:
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        key = (
            namespace,
            involved["kind"],
            meta["name"],
            meta.get("uid", ""),
            type_,
            reason,
            message,
            component,
            host,
        )
        now = stamp(self.store.clock())
        known = self._seen.get(key)
        if known is not None:
            entry = self.store.peek(EVENTS, *known)
            if entry is not None:
                event = entry.copy()
                event["count"] = int(event.get("count", 1)) + 1
                event["lastTimestamp"] = now
                self._seen.move_to_end(key)
                try:
                    self.store.update(EVENTS, event)
                    return
                except ApiError:
                    pass  # deleted or changed meanwhile: record a new one
        reference = {
            "kind": involved["kind"],
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "apiVersion": involved["apiVersion"],
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if meta.get("namespace"):
            reference["namespace"] = meta["namespace"]
        source = {"component": component}
        if host:
            source["host"] = host
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": reference,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": type_,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        try:
            self.store.create(EVENTS, event)
        except ApiError as exc:  # the namespace went away: events are best effort
            log.debug("event %s on %s not recorded: %s", reason, meta["name"], exc)
            return
        self._seen[key] = (namespace, event["metadata"]["name"])
        if len(self._seen) > self.memory:
            self._seen.popitem(last=False)


@dataclass
class Context:
    """What the controller manager gives each controller."""

    store: Store
    options: ControllerOptions
    timers: Timers
    events: EventRecorder

    def now(self) -> datetime:
        return self.store.clock()

    def stamp(self) -> str:
        return stamp(self.store.clock())


class Controller:
    """One control loop. The manager calls :meth:`resync` after (re)starting, :meth:`observe`
    for every stored change, and :meth:`sync` to act on what it marked."""

    name = "controller"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def resync(self) -> None:
        """Forget everything and look at every object again (start, or the store was reset)."""

    def observe(self, event: Event) -> None:
        """Note what ``event`` makes worth another look. Cheap: no writes here."""

    def sync(self) -> None:
        """Act on what was noted."""

    def retry(self, mark: Callable[[], None]) -> None:
        """Call ``mark`` (which notes something again) after the retry delay."""
        self.ctx.timers.after(self.ctx.options.retry_delay, mark)

    def each(
        self, keys: Iterable[Any], fn: Callable[[Any], None], mark: Callable[[Any], None]
    ) -> None:
        """Run ``fn(key)`` for every key, as a workqueue worker would: a write that lost a race
        (409 Conflict) is retried after the retry delay (``mark(key)``); an object or
        namespace that went away meanwhile (404, 403, 410) is simply done with."""
        for key in sorted(keys):
            try:
                fn(key)
            except ApiError as exc:
                if exc.code == 409:
                    self.retry(lambda key=key: mark(key))
                else:
                    log.debug("%s: %s: %s", self.name, key, exc.message)


# -- object helpers ------------------------------------------------------------------------------


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The owner reference with ``controller: true`` ("Owners and Dependents")."""
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def set_condition(
    status: dict[str, Any],
    type_: str,
    value: str,
    now: str,
    *,
    reason: str = "",
    message: str = "",
    update_time: bool = False,
) -> bool:
    """Set one condition in ``status["conditions"]``; ``lastTransitionTime`` moves only when the
    status does (``lastUpdateTime`` too, with ``update_time``, on any change). Returns whether
    anything changed."""
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") != type_:
            continue
        if (cond.get("status"), cond.get("reason", ""), cond.get("message", "")) == (
            value,
            reason,
            message,
        ):
            return False
        if cond.get("status") != value:
            cond["lastTransitionTime"] = now
        cond["status"] = value
        _set_text(cond, "reason", reason)
        _set_text(cond, "message", message)
        if update_time:
            cond["lastUpdateTime"] = now
        return True
    cond = {"type": type_, "status": value}
    if update_time:
        cond["lastUpdateTime"] = now
    cond["lastTransitionTime"] = now
    _set_text(cond, "reason", reason)
    _set_text(cond, "message", message)
    conditions.append(cond)
    return True


def _set_text(cond: dict[str, Any], key: str, value: str) -> None:
    if value:
        cond[key] = value
    else:
        cond.pop(key, None)


def is_terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: dict[str, Any]) -> bool:
    """``controller.IsPodActive``: not finished and not being deleted."""
    return not is_terminal(pod) and not pod["metadata"].get("deletionTimestamp")


def is_ready(obj: dict[str, Any]) -> bool:
    cond = condition(obj, "Ready")
    return cond is not None and cond.get("status") == "True"


def node_ready_status(node: dict[str, Any]) -> str:
    """The node's Ready condition status: True, False, Unknown, or "" when it has none."""
    cond = condition(node, "Ready")
    return cond.get("status", "") if cond else ""


def entry_obj(event: Event) -> dict[str, Any]:
    return event.entry.obj


def old_obj(event: Event) -> dict[str, Any] | None:
    return event.old.obj if event.old is not None else None


def peek_obj(store: Store, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
    entry: Entry | None = store.peek(rt, namespace, name)
    return entry.obj if entry is not None else None


class OwnerController(Controller):
    """A controller of one kind of owner (``resource``) whose children (``child``) name it in
    their controller reference: a change to either marks the owner dirty."""

    resource: Any
    child: Any
    owner_kind = ""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.dirty: set[Key] = set()

    def resync(self) -> None:
        self.dirty = {
            (e.obj["metadata"]["namespace"], e.obj["metadata"]["name"])
            for e in self.store.list_entries(self.resource, "").items
        }

    def observe(self, event: Event) -> None:
        if event.resource is self.resource:
            if event.type != "DELETED":
                self.dirty.add(event.key)
        elif event.resource is self.child:
            ref = controller_of(event.entry.obj)
            if ref is not None and ref.get("kind") == self.owner_kind:
                self.dirty.add((event.key[0], ref["name"]))

    def sync(self) -> None:
        dirty, self.dirty = self.dirty, set()
        self.each(dirty, self._sync, self.dirty.add)

    def _sync(self, key: Key) -> None:
        raise NotImplementedError

    def _delete(self, owner: dict[str, Any], pod: Entry) -> None:
        """Delete one of ``owner``'s pods (gone already: nothing to do) and record the event."""
        meta = pod.obj["metadata"]
        try:
            self.store.delete(PODS, meta["namespace"], meta["name"])
        except ApiError:
            return
        self.ctx.events.record(
            owner, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}", self.name
        )
