"""The simulator's storage: etcd plus the generic registry of kube-apiserver, in one lock.

Everything that changes state goes through :class:`Store`, whether it comes from an HTTP client or
from the simulator's own code (seeding today, controllers tomorrow): the same decoding, defaulting,
validation, resourceVersion bump and watch event. A write by the simulator's own code that the real
server would refuse raises :class:`~sandbox.kube.errors.SimulatorBug` instead of an API error.

Stored objects are never mutated in place: each write stores a new dict with its JSON encoding, so
lists and watch events share them without copying and without holding the lock while encoding.
The public methods hand out copies.
"""

from __future__ import annotations

import base64
import bisect
import copy
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import errors as E
from .errors import ApiError, FieldError, SimulatorBug
from .patch import json_patch, merge_patch, strategic_merge_patch
from .resources import (
    DEPLOYMENTS,
    NAMESPACES,
    NODES,
    PODDISRUPTIONBUDGETS,
    PODS,
    TYPES,
    ResourceType,
    lookup,
    validate_object_meta,
)
from .schema import DecodeError, Schemas
from .selectors import (
    FieldSelector,
    LabelSelector,
    format_label_selector_object,
    from_label_selector_object,
    parse_field_selector,
    parse_label_selector,
)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
_UNDELETABLE_NAMESPACES = ("default", "kube-public", "kube-system")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's SimpleNameGenerator
# The finalizers a DELETE's propagationPolicy adds ("Garbage Collection › Cascading deletion").
_POLICY_FINALIZERS = ("foregroundDeletion", "orphan")
_POLICY_FINALIZERS_BY_POLICY = {
    "Foreground": "foregroundDeletion",
    "Orphan": "orphan",
    "Background": "",
}

Key = tuple[str, str]  # (namespace, name); namespace is "" for cluster-scoped objects


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class Entry:
    """A stored object and its JSON encodings. ``obj`` is shared: never mutate it.

    ``item_raw`` leaves out ``kind`` and ``apiVersion``, as items of a real list response do;
    ``raw`` is the object as GET and watch events show it.
    """

    __slots__ = ("item_raw", "obj", "raw")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        body = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
        self.item_raw = _encode(body)
        head = _encode({"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion")})
        self.raw = head[:-1] + (b"," + self.item_raw[1:] if len(self.item_raw) > 2 else b"}")

    def copy(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def rv(self) -> int:
        return int(self.obj["metadata"]["resourceVersion"])


@dataclass(frozen=True)
class Event:
    """One write, as etcd's watch reports it: the new (or final) state and the previous one."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: ResourceType
    key: Key
    entry: Entry
    old: Entry | None
    at: float = 0.0  # time.monotonic() of the write (the watch window is counted from it)


@dataclass
class ListResult:
    items: list[Entry]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


@dataclass
class WriteResult:
    entry: Entry
    warnings: list[str] = field(default_factory=list)
    changed: bool = True


CONTAINER_FAULTS = ("ErrImagePull", "CrashLoopBackOff", "OOMKilled")


@dataclass(frozen=True)
class ContainerFault:
    """A simulator control: what a matching container does instead of starting (the real
    trigger, a missing image or a crashing process, is outside the API). Empty criteria match
    anything; every given one must match."""

    reason: str  # one of CONTAINER_FAULTS
    image: str = ""
    pod: str = ""
    node: str = ""
    namespace: str = ""
    exit_code: int = 1  # CrashLoopBackOff's; OOMKilled is always 137

    def matches(self, pod: dict[str, Any], container: dict[str, Any]) -> bool:
        meta = pod["metadata"]
        return (
            (not self.image or container.get("image") == self.image)
            and (not self.pod or meta["name"] == self.pod)
            and (not self.namespace or meta.get("namespace") == self.namespace)
            and (not self.node or (pod.get("spec") or {}).get("nodeName") == self.node)
        )


class Store:
    """In-memory API storage with one re-entrant lock and a bounded event history."""

    def __init__(
        self,
        schemas: Schemas | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        history_limit: int = 10_000,
        history_window: float = 300.0,
        grace_scale: float = 1.0,
        gc_delay: float = 0.05,
    ) -> None:
        self.schemas = schemas or Schemas()
        self.clock = clock or (lambda: datetime.now(UTC))
        # The watch window, as etcd compaction makes it: events beyond the last ``history_limit``
        # or older than ``history_window`` seconds are compacted, and a list or watch from a
        # resourceVersion before them is 410 Gone (kube-apiserver compacts every 5 minutes,
        # --etcd-compaction-interval; "API Concepts › Efficient detection of changes").
        self.history_limit = history_limit
        self.history_window = history_window
        # A scheduled pod's kubelet stand-in takes ``grace * grace_scale`` seconds to stop it
        # ("Pod Lifecycle › Termination of Pods"); tests scale every grace period down.
        self.grace_scale = grace_scale
        # The garbage collector and namespace controller act this long after a change that
        # concerns them: asynchronously, never inside the request ("Garbage Collection").
        self.gc_delay = gc_delay
        self._gc_timer: threading.Timer | None = None
        # Pods whose grace period is over while their node's kubelet is gone: node -> keys.
        self._awaiting_kubelet: dict[str, set[Key]] = {}
        # The TaintNodesByCondition admission plugin: new Nodes get the not-ready NoSchedule
        # taint. On only while the controllers run (see ``controllers``): without the node
        # lifecycle controller nothing would ever take the taint off again.
        self.taint_new_nodes = False
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.bugs: list[str] = []
        self._rv = 0
        self._epoch = 0
        self._closed = False
        self._woken = False  # a wake() not yet seen by changes()
        self._objects: dict[str, dict[Key, Entry]] = {}
        self._keys: dict[str, list[Key]] = {}
        self._history: list[Event] = []
        self._compacted = 0  # events with rv <= this are gone
        self._watch_generation = 0  # open watches end when it moves (``end_watches``)
        self._timers: list[threading.Timer] = []
        self._ip_counter = itertools.count(10)
        self._node_port_counter = itertools.count(30000)
        # The hardware behind each Node (what a device plugin finds on the host): node name ->
        # extended resource -> count. Written by the cloud bridge; read by the kubelet stand-in
        # when a device plugin's pod runs there. Not an API object.
        self.devices: dict[str, dict[str, int]] = {}
        # Container faults the kubelet stand-in applies (``KubeSimulator.fail_containers``).
        self.container_faults: list[ContainerFault] = []
        self.reset()

    # -- lifecycle -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every object, end every watch, and recreate the system namespaces.

        The resourceVersion counter keeps rising, so a version from before the reset is "too old"
        (410 Gone) rather than silently reused.
        """
        with self.lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self._objects = {t.resource: {} for t in TYPES}
            self._keys = {t.resource: [] for t in TYPES}
            self._history.clear()
            self._compacted = self._rv
            self._gc_timer = None
            self._awaiting_kubelet.clear()
            self._epoch += 1
            self.devices.clear()
            self.container_faults.clear()
            self.bugs.clear()
            for name in SYSTEM_NAMESPACES:
                self.create(
                    NAMESPACES,
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                )
            self.changed.notify_all()

    def close(self) -> None:
        """End every watch (the server is stopping)."""
        with self.lock:
            self._closed = True
            for timer in self._timers:
                timer.cancel()
            self.changed.notify_all()

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def closed(self) -> bool:
        return self._closed

    def allocate_cluster_ip(self) -> str:
        n = next(self._ip_counter)
        return f"10.96.{n // 250}.{n % 250 + 1}"

    def allocate_node_port(self) -> int:
        return next(self._node_port_counter)

    # -- reads ---------------------------------------------------------------------------------

    def get(self, resource: str | ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        """A copy of one object; ApiError 404 when absent."""
        return self.get_entry(lookup(resource), namespace or "", name).copy()

    def get_entry(self, rt: ResourceType, namespace: str, name: str) -> Entry:
        with self.lock:
            entry = self._objects[rt.resource].get(self._key(rt, namespace, name))
        if entry is None:
            raise E.not_found(rt.resource, rt.group, name)
        return entry

    def peek(self, rt: ResourceType, namespace: str, name: str) -> Entry | None:
        """The stored entry (shared: read it, never mutate it), or None. For controllers."""
        with self.lock:
            return self._objects[rt.resource].get(self._key(rt, namespace, name))

    def list(
        self,
        resource: str | ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        """Copies of the matching objects, in key order (namespace, then name)."""
        rt = lookup(resource)
        result = self.list_entries(
            rt, namespace or "", label_selector=label_selector, field_selector=field_selector
        )
        return [e.copy() for e in result.items]

    def list_entries(
        self,
        rt: ResourceType,
        namespace: str,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        resource_version_match: str = "",
    ) -> ListResult:
        """A list: API Concepts › Retrieving large results sets in chunks, › Resource versions."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.field_labels)
        start: Key | None = None
        if resource_version_match and not resource_version:
            raise E.bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
        with self.lock:
            if continue_token:
                snapshot_rv, start = self._decode_continue(continue_token)
                entries = self._snapshot(rt, snapshot_rv, continue_token=True)
            elif resource_version_match == "Exact":
                snapshot_rv = self._parse_rv(resource_version)
                entries = self._snapshot(rt, snapshot_rv, continue_token=False)
            else:
                if resource_version_match not in ("", "NotOlderThan"):
                    raise E.bad_request(
                        f'resourceVersionMatch: Unsupported value: "{resource_version_match}": '
                        'supported values: "Exact", "NotOlderThan"'
                    )
                if resource_version:
                    self._parse_rv(resource_version)
                snapshot_rv = self._rv
                entries = None
            keys = self._keys[rt.resource] if entries is None else sorted(entries)
            table = self._objects[rt.resource] if entries is None else entries
            begin = 0
            if start is not None:
                begin = bisect.bisect_right(keys, start)
            elif namespace:
                begin = bisect.bisect_left(keys, (namespace, ""))
            # Namespaces are DNS labels, so (ns + NUL) sorts after every key of ns and before
            # the next namespace's.
            end = bisect.bisect_left(keys, (namespace + "\x00", "")) if namespace else len(keys)
            unfiltered = labels.empty and fields.empty
            picked: list[Entry] = []
            more = False
            last: Key | None = None
            remaining = 0
            if unfiltered:
                stop = min(end, begin + limit) if limit else end
                picked = [table[key] for key in keys[begin:stop]]
                remaining = max(end - stop, 0)
                more = remaining > 0
                last = keys[stop - 1] if picked else None
            else:
                match_labels = labels.compile()
                for index in range(begin, end):
                    key = keys[index]
                    entry = table[key]
                    if not match_labels(entry.obj["metadata"].get("labels")):
                        continue
                    if not fields.matches(entry.obj, rt.fields):
                        continue
                    if limit and len(picked) >= limit:
                        more = True  # with selectors the server does not count what is left
                        break
                    picked.append(entry)
                    last = key
        result = ListResult(picked, snapshot_rv)
        if more and last is not None:
            result.continue_token = self._encode_continue(snapshot_rv, last)
            if unfiltered:
                result.remaining = remaining
        return result

    def _snapshot(self, rt: ResourceType, rv: int, *, continue_token: bool) -> dict[Key, Entry]:
        """The resource's objects as they were at ``rv``, rebuilt from the event history."""
        self._compact()
        if rv < self._compacted:
            if continue_token:
                raise E.gone(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use the "
                    "continue token in this response to retrieve the remainder of the results. "
                    "Continuing with the provided token results in an inconsistent list - objects "
                    "that were created, modified, or deleted between the time the first chunk was "
                    "returned and now may show up in the list."
                )
            raise E.gone(f"too old resource version: {rv} ({self._compacted + 1})")
        state = dict(self._objects[rt.resource])
        for event in reversed(self._events_after(rv)):
            if event.resource is not rt:
                continue
            if event.type == "ADDED":
                state.pop(event.key, None)
            elif event.old is not None:
                state[event.key] = event.old
        return state

    @staticmethod
    def _parse_rv(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise E.bad_request(
                f'resourceVersion: Invalid value: "{text}": invalid value'
            ) from None
        if value < 0:
            raise E.bad_request(f'resourceVersion: Invalid value: "{text}": invalid value')
        return value

    @staticmethod
    def _encode_continue(rv: int, key: Key) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{key[0]}/{key[1]}"})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, Key]:
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded))
            ns, _, name = data["start"].partition("/")
            return int(data["rv"]), (ns, name)
        except (ValueError, KeyError, TypeError):
            raise E.bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion "
                "(version meta.k8s.io/v1)"
            ) from None

    # -- writes --------------------------------------------------------------------------------

    def create(
        self,
        resource: str | ResourceType,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Create as the simulator itself (a refused object is a SimulatorBug). Returns a copy."""
        rt = lookup(resource)
        ns = namespace if namespace is not None else obj.get("metadata", {}).get("namespace", "")
        return self.create_entry(rt, ns or "", obj, client=False).entry.copy()

    def create_entry(
        self,
        rt: ResourceType,
        namespace: str,
        body: Any,
        *,
        client: bool = True,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> WriteResult:
        """POST to a collection ("API Concepts › Standard API terminology")."""
        with self.lock:
            obj, warnings = self._decode_body(rt, namespace, body, client, field_validation)
            meta = obj["metadata"]
            if meta.get("resourceVersion"):
                raise E.internal("resourceVersion should not be set on objects to be created")
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(
                    secrets.choice(_GENERATE_ALPHABET) for _ in range(5)
                )
            for key in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                meta.pop(key, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _timestamp(self.clock())
            if rt.tracks_generation:
                meta["generation"] = 1
            rt.strategy.prepare_for_create(obj, self)
            rt.strategy.default(obj, self)
            self._admit(rt, obj, None, client=client)
            if rt.namespaced:
                self._require_namespace(namespace)
            key = self._key(rt, namespace, meta["name"])
            existing = self._objects[rt.resource].get(key)
            if existing is not None:
                error = E.already_exists(rt.resource, rt.group, meta["name"])
                if existing.obj["metadata"].get("deletionTimestamp"):
                    # genericregistry.Store.Create: the name is still taken until it is gone.
                    error.message = f"object is being deleted: {error.message}"
                raise error
            if dry_run:
                return WriteResult(Entry(obj), warnings)
            entry = self._commit(rt, key, obj, "ADDED", None)
            if meta.get("ownerReferences"):
                self._schedule_gc()
            return WriteResult(entry, warnings)

    def update(
        self,
        resource: str | ResourceType,
        obj: dict[str, Any],
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Replace as the simulator itself (e.g. a controller writing ``status``)."""
        rt = lookup(resource)
        meta = obj.get("metadata") or {}
        result = self.update_entry(
            rt,
            meta.get("namespace", ""),
            meta.get("name", ""),
            obj,
            subresource=subresource,
            client=False,
        )
        return result.entry.copy()

    def update_entry(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        client: bool = True,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> WriteResult:
        """PUT: optimistic concurrency on ``metadata.resourceVersion`` ("API Concepts ›
        Resource versions"); status only through ``/status``, and never through the main resource.
        """
        with self.lock:
            key = self._key(rt, namespace, name)
            current = self._objects[rt.resource].get(key)
            obj, warnings = self._decode_body(rt, namespace, body, client, field_validation)
            if obj["metadata"].get("name", "") != name:
                raise E.bad_request(
                    f"the name of the object ({obj['metadata'].get('name', '')}) does not match "
                    f"the name on the URL ({name})"
                )
            if current is None:
                if rt.allow_create_on_update and not subresource:
                    obj["metadata"].pop("resourceVersion", None)
                    return self.create_entry(rt, namespace, obj, client=client, dry_run=dry_run)
                raise E.not_found(rt.resource, rt.group, name)
            return self._update_from(rt, key, current, obj, subresource, client, dry_run, warnings)

    def _update_from(
        self,
        rt: ResourceType,
        key: Key,
        current: Entry,
        obj: dict[str, Any],
        subresource: str,
        client: bool,
        dry_run: bool,
        warnings: list[str],
    ) -> WriteResult:
        old = current.obj
        meta = obj["metadata"]
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise E.conflict(rt.resource, rt.group, key[1])
        if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
            raise E.conflict(
                rt.resource,
                rt.group,
                key[1],
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: "
                f"{old['metadata']['uid']}",
            )
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            for name in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if name in old["metadata"]:
                    meta[name] = old["metadata"][name]
                else:
                    meta.pop(name, None)
            rt.strategy.prepare_for_update(new, old)
            rt.strategy.default(new, self)
            if rt.tracks_generation and rt.strategy.generation_changed(new, old):
                meta["generation"] = old["metadata"].get("generation", 0) + 1
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if old["metadata"].get("deletionTimestamp"):
            added = [
                f
                for f in new["metadata"].get("finalizers") or []
                if f not in (old["metadata"].get("finalizers") or [])
            ]
            if added:
                # ValidateObjectMetaAccessorUpdate.
                raise E.invalid_object(
                    rt.kind,
                    rt.group,
                    key[1],
                    [
                        E.forbidden(
                            "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {json.dumps(added)}",
                        )
                    ],
                )
        self._admit(rt, new, old, client=client)
        if new == old:
            # etcd3's GuaranteedUpdate skips a write that changes nothing: same resourceVersion,
            # no watch event.
            return WriteResult(current, warnings, changed=False)
        if dry_run:
            return WriteResult(Entry(new), warnings)
        entry = self._commit(rt, key, new, "MODIFIED", current)
        if self._deletable(new):
            # genericregistry.Store.Update: the last finalizer of an object whose grace period
            # is over went, so the object goes ("Finalizers").
            entry = self._remove(rt, key, entry)
            self._schedule_gc()
        elif new["metadata"].get("ownerReferences") != old["metadata"].get("ownerReferences"):
            self._schedule_gc()
        return WriteResult(entry, warnings)

    def patch(
        self,
        resource: str | ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        patch_type: str = MERGE_PATCH,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Patch as the simulator itself."""
        rt = lookup(resource)
        result = self.patch_entry(
            rt, namespace or "", name, patch_type, patch, subresource=subresource, client=False
        )
        return result.entry.copy()

    def patch_entry(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str = "",
        client: bool = True,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> WriteResult:
        """PATCH ("API Concepts › Patch requests"; "Update API Objects in Place Using kubectl
        patch"). A ``metadata.resourceVersion`` in the patched object is a precondition.
        """
        with self.lock:
            key = self._key(rt, namespace, name)
            current = self._objects[rt.resource].get(key)
            if current is None:
                raise E.not_found(rt.resource, rt.group, name)
            patched = self._apply_patch(rt, current.copy(), patch_type, patch)
            if not isinstance(patched.get("metadata"), dict):
                raise E.bad_request("metadata must be an object")
            if patched["metadata"].get("name") != name:
                raise E.bad_request(
                    f"the name of the object ({patched['metadata'].get('name')}) does not match "
                    f"the name on the URL ({name})"
                )
            obj, warnings = self._decode_body(rt, namespace, patched, client, field_validation)
            return self._update_from(rt, key, current, obj, subresource, client, dry_run, warnings)

    def _apply_patch(
        self, rt: ResourceType, original: dict[str, Any], patch_type: str, patch: Any
    ) -> dict[str, Any]:
        if patch_type == JSON_PATCH:
            return json_patch(original, patch)
        if patch_type == MERGE_PATCH:
            if not isinstance(patch, dict):
                raise E.bad_request("merge patch must be a JSON object")
            return merge_patch(original, patch)
        if patch_type == STRATEGIC_MERGE_PATCH:
            return strategic_merge_patch(
                original, patch, self.schemas.node(rt.api_version, rt.kind)
            )
        raise E.unsupported_media_type(patch_type)

    def delete(
        self,
        resource: str | ResourceType,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Delete as the simulator itself; returns the last state of the object."""
        rt = lookup(resource)
        entry, _ = self.delete_entry(
            rt, namespace or "", name, grace_period_seconds=grace_period_seconds, client=False
        )
        return entry.copy()

    def delete_entry(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str = "",
        preconditions: dict[str, Any] | None = None,
        client: bool = True,
        dry_run: bool = False,
    ) -> tuple[Entry, bool]:
        """DELETE. Returns the object as last stored and whether it is gone already.

        Pods are deleted gracefully ("Pod Lifecycle › Termination of Pods"): a pod that is bound to
        a node and not finished gets ``deletionTimestamp`` and ``deletionGracePeriodSeconds``
        (MODIFIED) and disappears (DELETED) when its kubelet's stand-in has stopped it (see
        :meth:`_delete_pod`); an unscheduled or finished pod, or ``gracePeriodSeconds=0``, is
        removed at once. Namespaces go Terminating; the namespace controller empties them. An
        object with finalizers only gets ``deletionTimestamp`` ("Finalizers"); the propagation
        policy adds ``foregroundDeletion`` or ``orphan``. Dependents are the garbage collector's
        business, after the request (:meth:`_collect`, "Garbage Collection").
        """
        if propagation_policy not in ("", "Orphan", "Background", "Foreground"):
            raise E.bad_request(
                f'propagationPolicy: Unsupported value: "{propagation_policy}": supported values: '
                '"Foreground", "Background", "Orphan"'
            )
        with self.lock:
            key = self._key(rt, namespace, name)
            current = self._objects[rt.resource].get(key)
            if current is None:
                raise E.not_found(rt.resource, rt.group, name)
            meta = current.obj["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise E.conflict(
                    rt.resource,
                    rt.group,
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                    f"{meta['uid']}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise E.conflict(
                    rt.resource,
                    rt.group,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                    f"{meta['resourceVersion']}",
                )
            if rt is NAMESPACES:
                return self._delete_namespace(current, client=client, dry_run=dry_run)
            if rt is PODS:
                return self._delete_pod(
                    current,
                    self._pod_grace(current.obj, grace_period_seconds),
                    dry_run=dry_run,
                    policy=propagation_policy,
                )
            if meta.get("deletionTimestamp"):
                return current, False  # being deleted already: waits for its finalizers
            new = current.copy()
            self._mark_deleted(new, 0, propagation_policy)
            if dry_run:
                return Entry(new), not new["metadata"].get("finalizers")
            if new["metadata"].get("finalizers"):
                # "Finalizers": the object stays, with deletionTimestamp, until they are removed.
                entry = self._commit(rt, key, new, "MODIFIED", current)
                self._schedule_gc()
                return entry, False
            final = self._remove(rt, key, current)
            self._schedule_gc()
            return final, True

    def _mark_deleted(self, obj: dict[str, Any], grace: int, policy: str) -> None:
        """Set deletionTimestamp and the propagation policy's finalizer
        (``genericregistry.Store.updateForGracefulDeletionAndFinalizers``)."""
        meta = obj["metadata"]
        meta.setdefault("deletionTimestamp", _timestamp(self.clock() + timedelta(seconds=grace)))
        meta["deletionGracePeriodSeconds"] = grace
        finalizers = [f for f in meta.get("finalizers") or [] if f not in _POLICY_FINALIZERS]
        wanted = _POLICY_FINALIZERS_BY_POLICY.get(policy)
        existing = meta.get("finalizers") or []
        if wanted is None:
            # No policy given: keep a policy finalizer the object already has.
            finalizers = existing
        elif wanted:
            finalizers.append(wanted)
        if finalizers:
            meta["finalizers"] = finalizers
        else:
            meta.pop("finalizers", None)

    @staticmethod
    def _deletable(obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        return (
            bool(meta.get("deletionTimestamp"))
            and not meta.get("finalizers")
            and int(meta.get("deletionGracePeriodSeconds", 0)) == 0
            and not (obj.get("kind") == "Namespace" and (obj.get("spec") or {}).get("finalizers"))
        )

    @staticmethod
    def _pod_grace(pod: dict[str, Any], requested: int | None) -> int:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0  # CheckGracefulDelete: nothing is running, nothing to wait for
        if requested is not None:
            return max(requested, 0)
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def _delete_pod(
        self, current: Entry, grace: int, *, dry_run: bool, policy: str = ""
    ) -> tuple[Entry, bool]:
        """The generic registry's graceful deletion (``rest.BeforeDelete``) for a pod.

        The pod is first written with deletionTimestamp and deletionGracePeriodSeconds
        (MODIFIED); with a grace of 0 and no finalizers it is then removed at once (DELETED),
        otherwise its kubelet's stand-in removes it after ``grace * grace_scale`` seconds (see
        :meth:`_finish_termination`). A second delete may only shorten the grace period.
        """
        meta = current.obj["metadata"]
        now = self.clock()
        new = current.copy()
        if meta.get("deletionTimestamp"):
            existing = int(meta.get("deletionGracePeriodSeconds", 0))
            if grace >= existing:
                return current, False  # already terminating at least this fast
            started = _parse_time(meta["deletionTimestamp"]) - timedelta(seconds=existing)
            new["metadata"]["deletionTimestamp"] = _timestamp(started + timedelta(seconds=grace))
            new["metadata"]["deletionGracePeriodSeconds"] = grace
        else:
            new["metadata"]["deletionTimestamp"] = _timestamp(now + timedelta(seconds=grace))
            self._mark_deleted(new, grace, policy)
        if dry_run:
            return Entry(new), self._deletable(new)
        key = (meta["namespace"], meta["name"])
        entry = self._commit(PODS, key, new, "MODIFIED", current)
        self._schedule_gc()
        if self._deletable(new):
            return self._remove(PODS, key, entry), True
        if grace > 0:
            self._start_timer(
                grace * self.grace_scale, self._finish_termination, key, meta["uid"], self._epoch
            )
        return entry, False

    def _start_timer(self, delay: float, fn: Callable[..., None], *args: Any) -> threading.Timer:
        timer = threading.Timer(delay, fn, args)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()]
        self._timers.append(timer)
        timer.start()
        return timer

    def _kubelet_gone(self, node: str) -> bool:
        """No kubelet answers for ``node``: its Node is gone, or its Ready condition is Unknown
        (the node lifecycle controller's mark for a kubelet that stopped posting status)."""
        entry = self._objects[NODES.resource].get(("", node))
        if entry is None:
            return True
        for cond in (entry.obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready":
                return cond.get("status") == "Unknown"
        return False

    def _finish_termination(self, key: Key, uid: str, epoch: int) -> None:
        """The kubelet's part: containers stopped, it deletes the pod with a grace of 0.

        Only a kubelet does this: while the pod's node has none (see :meth:`_kubelet_gone`), the
        pod stays Terminating until the node comes back or the pod GC force-deletes it
        ("Pod Lifecycle › Termination of Pods", "Garbage collection of Pods").
        """
        try:
            with self.lock:
                current = self._objects[PODS.resource].get(key)
                if self._epoch != epoch or current is None or current.obj["metadata"]["uid"] != uid:
                    return
                node = (current.obj.get("spec") or {}).get("nodeName", "")
                if node and self._kubelet_gone(node):
                    self._awaiting_kubelet.setdefault(node, set()).add(key)
                    return
                self._delete_pod(current, 0, dry_run=False)
        except Exception as exc:  # a background thread: make it fail the test, not vanish
            self.bugs.append(f"pod termination of {key}: {exc!r}")
            raise

    def _kubelet_back(self, node: str) -> None:
        """A node whose kubelet was gone is Ready again: it finishes what it was stopping."""
        for key in self._awaiting_kubelet.pop(node, set()):
            entry = self._objects[PODS.resource].get(key)
            if entry is not None:
                self._start_timer(
                    0, self._finish_termination, key, entry.obj["metadata"]["uid"], self._epoch
                )

    def _delete_namespace(
        self, current: Entry, *, client: bool, dry_run: bool
    ) -> tuple[Entry, bool]:
        name = current.obj["metadata"]["name"]
        if name in _UNDELETABLE_NAMESPACES:
            raise E.forbidden_request(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted'
            )
        if current.obj["metadata"].get("deletionTimestamp"):
            return current, False
        terminating = current.copy()
        terminating["metadata"]["deletionTimestamp"] = _timestamp(self.clock())
        terminating["metadata"]["deletionGracePeriodSeconds"] = 0
        terminating["status"] = {"phase": "Terminating"}
        if dry_run:
            return Entry(terminating), False
        entry = self._commit(NAMESPACES, ("", name), terminating, "MODIFIED", current)
        self._schedule_gc()  # the namespace controller empties it, asynchronously
        return entry, False

    def _remove(self, rt: ResourceType, key: Key, current: Entry) -> Entry:
        final = self._commit(rt, key, current.copy(), "DELETED", current)
        self._schedule_gc()  # its dependents, its namespace, a foreground owner may go now
        return final

    # -- garbage collection (kube-controller-manager's garbagecollector and namespace controller)

    def _schedule_gc(self) -> None:
        if self._gc_timer is None or not self._gc_timer.is_alive():
            self._gc_timer = self._start_timer(self.gc_delay, self._gc_pass, self._epoch)

    def _gc_pass(self, epoch: int) -> None:
        try:
            with self.lock:
                if self._epoch != epoch or self._closed:
                    return
                self._gc_timer = None
                self._collect()  # every removal schedules the next pass
        except SimulatorBug:
            pass  # recorded already
        except Exception as exc:  # a background thread: make it fail the test, not vanish
            self.bugs.append(f"garbage collection: {exc!r}")
            raise

    def _collect(self) -> None:
        """One pass of the garbage collector and the namespace controller (each removal and
        each deletion schedules the next).

        "Garbage Collection": dependents of an owner that is gone are deleted (background); an
        owner with the ``foregroundDeletion`` finalizer waits until its dependents are gone,
        then loses the finalizer (owner last); ``orphan`` removes the owner's reference from its
        dependents, then the finalizer. "Namespaces" (namespace controller): a Terminating
        namespace's content is deleted; the namespace goes when nothing is left in it.
        """
        uids: dict[str, tuple[ResourceType, Key]] = {}
        dependents: dict[str, list[tuple[ResourceType, Key]]] = {}
        for rt in TYPES:
            for key, entry in self._objects[rt.resource].items():
                meta = entry.obj["metadata"]
                uids[meta["uid"]] = (rt, key)
                for ref in meta.get("ownerReferences") or []:
                    dependents.setdefault(ref.get("uid", ""), []).append((rt, key))
        for rt in TYPES:
            for key in list(self._keys[rt.resource]):
                entry = self._objects[rt.resource].get(key)
                if entry is None:
                    continue
                meta = entry.obj["metadata"]
                if meta.get("deletionTimestamp"):
                    finalizers = meta.get("finalizers") or []
                    if "foregroundDeletion" in finalizers:
                        self._foreground(rt, key, entry, dependents)
                    elif "orphan" in finalizers:
                        self._orphan(rt, key, entry, dependents)
                    if rt is NAMESPACES:
                        self._finalize_namespace(key[1])
                    continue
                refs = meta.get("ownerReferences") or []
                if not refs:
                    continue
                alive = [r for r in refs if r.get("uid") in uids]
                if not alive:
                    # Every owner is gone: collect it (its own dependents follow in background).
                    self.delete_entry(rt, key[0], key[1], client=False)
                elif len(alive) < len(refs):
                    new = entry.copy()
                    new["metadata"]["ownerReferences"] = alive
                    self._commit(rt, key, new, "MODIFIED", entry)

    def _live(self, found: list[tuple[ResourceType, Key]]) -> list[tuple[ResourceType, Entry]]:
        out = []
        for rt, key in found:
            entry = self._objects[rt.resource].get(key)
            if entry is not None:
                out.append((rt, entry))
        return out

    def _drop_finalizer(self, rt: ResourceType, key: Key, entry: Entry, name: str) -> None:
        new = entry.copy()
        finalizers = [f for f in new["metadata"].get("finalizers") or [] if f != name]
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        else:
            new["metadata"].pop("finalizers", None)
        self._update_from(rt, key, entry, new, "", False, False, [])

    def _foreground(
        self,
        rt: ResourceType,
        key: Key,
        entry: Entry,
        dependents: dict[str, list[tuple[ResourceType, Key]]],
    ) -> None:
        uid = entry.obj["metadata"]["uid"]
        live = self._live(dependents.get(uid, []))
        if not live:
            self._drop_finalizer(rt, key, entry, "foregroundDeletion")
            return
        for dep_rt, dep in live:
            dep_meta = dep.obj["metadata"]
            if not dep_meta.get("deletionTimestamp"):
                has_own = bool(dependents.get(dep_meta["uid"]))
                self.delete_entry(
                    dep_rt,
                    dep_meta.get("namespace", ""),
                    dep_meta["name"],
                    propagation_policy="Foreground" if has_own else "Background",
                    client=False,
                )

    def _orphan(
        self,
        rt: ResourceType,
        key: Key,
        entry: Entry,
        dependents: dict[str, list[tuple[ResourceType, Key]]],
    ) -> None:
        uid = entry.obj["metadata"]["uid"]
        for dep_rt, dep in self._live(dependents.get(uid, [])):
            new = dep.copy()
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            dep_meta = dep.obj["metadata"]
            self._commit(
                dep_rt, (dep_meta.get("namespace", ""), dep_meta["name"]), new, "MODIFIED", dep
            )
        current = self._objects[rt.resource].get(key)
        if current is not None:
            self._drop_finalizer(rt, key, current, "orphan")

    def _finalize_namespace(self, name: str) -> None:
        """The namespace controller: delete what is left; the namespace goes when nothing is
        (its ``kubernetes`` finalizer, in ``spec.finalizers``, is then done)."""
        left = False
        for rt in TYPES:
            if not rt.namespaced:
                continue
            keys = [k for k in self._keys[rt.resource] if k[0] == name]
            for obj_key in keys:
                left = True
                entry = self._objects[rt.resource].get(obj_key)
                if entry is not None and not entry.obj["metadata"].get("deletionTimestamp"):
                    self.delete_entry(rt, name, obj_key[1], client=False)
        entry = self._objects[NAMESPACES.resource].get(("", name))
        if not left and entry is not None and not entry.obj["metadata"].get("finalizers"):
            self._remove(NAMESPACES, ("", name), entry)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str,
        *,
        label_selector: str = "",
        field_selector: str = "",
        grace_period_seconds: int | None = None,
        propagation_policy: str = "",
        dry_run: bool = False,
    ) -> ListResult:
        """DELETE on a collection: deletes what a list with the same selectors returns."""
        with self.lock:
            listed = self.list_entries(
                rt, namespace, label_selector=label_selector, field_selector=field_selector
            )
            deleted = []
            for entry in listed.items:
                meta = entry.obj["metadata"]
                try:
                    final, _ = self.delete_entry(
                        rt,
                        meta.get("namespace", ""),
                        meta["name"],
                        grace_period_seconds=grace_period_seconds,
                        propagation_policy=propagation_policy,
                        dry_run=dry_run,
                    )
                except ApiError as exc:
                    if exc.code != 404:
                        raise
                    continue
                deleted.append(final)
            return ListResult(deleted, self._rv)

    # -- subresources --------------------------------------------------------------------------

    def bind(self, namespace: str, name: str, binding: Any, *, dry_run: bool = False) -> None:
        """``pods/binding``: what the scheduler does. 409 if the pod already has a node."""
        if not isinstance(binding, dict):
            raise E.bad_request("Binding must be a JSON object")
        target = binding.get("target") or {}
        node = target.get("name", "")
        if target.get("kind", "Node") not in ("Node", ""):
            raise E.invalid_object(
                "Binding", "", name, [E.not_supported("target.kind", target.get("kind"), ("Node",))]
            )
        if not node:
            raise E.invalid_object("Binding", "", name, [E.required("target.name")])
        with self.lock:
            current = self.get_entry(PODS, namespace, name)
            pod = current.obj
            if pod["metadata"].get("deletionTimestamp"):
                raise E.conflict(
                    "pods/binding",
                    "",
                    name,
                    f"pod {name} is being deleted, cannot be assigned to a host",
                )
            assigned = (pod.get("spec") or {}).get("nodeName")
            if assigned:
                raise E.conflict(
                    "pods/binding", "", name, f'pod {name} is already assigned to node "{assigned}"'
                )
            new = current.copy()
            new["spec"]["nodeName"] = node
            conditions = new.setdefault("status", {}).setdefault("conditions", [])
            conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": _timestamp(self.clock()),
                }
            )
            # The binding subresource is the one way to set spec.nodeName, so only the
            # create-time checks apply (not the pod update rules).
            self._admit(PODS, new, None, client=False)
            if not dry_run:
                self._commit(PODS, (namespace, name), new, "MODIFIED", current)

    def evict(self, namespace: str, name: str, eviction: Any, *, dry_run: bool = False) -> None:
        """``pods/eviction`` ("API-initiated Eviction"; pkg/registry/core/pod/storage/
        eviction.go): a pod being deleted, finished or Pending, or one no budget selects, is
        deleted; more than one budget is a 500; otherwise the budget's status must be current
        (observedGeneration) and allow a disruption, which the eviction takes (decrement,
        ``disruptedPods``) before deleting. A pod that is not Ready is deleted without taking
        one while the budget is healthy (``unhealthyPodEvictionPolicy`` IfHealthyBudget, the
        default) or at once with AlwaysAllow."""
        if not isinstance(eviction, dict):
            raise E.bad_request("Eviction must be a JSON object")
        body_name = (eviction.get("metadata") or {}).get("name", "")
        if body_name and body_name != name:
            raise E.bad_request("name in URL does not match name in Eviction object")
        options = eviction.get("deleteOptions") or {}
        with self.lock:
            current = self.get_entry(PODS, namespace, name)
            pod = current.obj
            phase = (pod.get("status") or {}).get("phase", "Pending")
            if not pod["metadata"].get("deletionTimestamp") and phase not in (
                "Succeeded",
                "Failed",
                "Pending",
            ):
                self._take_disruption(pod, dry_run=dry_run)
            self.delete_entry(
                PODS,
                namespace,
                name,
                grace_period_seconds=options.get("gracePeriodSeconds"),
                preconditions=options.get("preconditions"),
                dry_run=dry_run,
            )

    def _take_disruption(self, pod: dict[str, Any], *, dry_run: bool) -> None:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        labels = pod["metadata"].get("labels") or {}
        budgets = []
        for entry in self.list_entries(PODDISRUPTIONBUDGETS, namespace).items:
            selector = (entry.obj.get("spec") or {}).get("selector")
            # getPodDisruptionBudgets: a nil or empty selector matches nothing here.
            if selector and from_label_selector_object(selector).matches(labels):
                budgets.append(entry)
        if not budgets:
            return
        if len(budgets) > 1:
            raise ApiError(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction "
                "subresource does not support.",
            )
        pdb = budgets[0].copy()
        spec, status = pdb.get("spec") or {}, pdb.setdefault("status", {})
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or ()
        )
        if not ready:
            if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
                return
            desired = status.get("desiredHealthy", 0)
            if status.get("currentHealthy", 0) >= desired and desired > 0:
                return
        budget = pdb["metadata"]["name"]
        if status.get("observedGeneration", 0) < pdb["metadata"].get("generation", 1):
            raise _budget_violation(
                f"The disruption budget {budget} is still being processed by the server."
            )
        if status.get("disruptionsAllowed", 0) == 0:
            raise _budget_violation(
                f"The disruption budget {budget} needs {status.get('desiredHealthy', 0)} healthy "
                f"pods and has {status.get('currentHealthy', 0)} currently"
            )
        if dry_run:
            return
        status["disruptionsAllowed"] -= 1
        if status["disruptionsAllowed"] == 0:
            for cond in status.get("conditions") or ():
                if cond.get("type") == "DisruptionAllowed" and cond.get("status") == "True":
                    cond.update(
                        status="False",
                        reason="InsufficientPods",
                        lastTransitionTime=_timestamp(self.clock()),
                    )
        status.setdefault("disruptedPods", {})[name] = _timestamp(self.clock())
        self.update(PODDISRUPTIONBUDGETS, pdb, subresource="status")

    def scale_of(self, entry: Entry) -> dict[str, Any]:
        """The ``autoscaling/v1`` Scale a Deployment's ``/scale`` subresource shows."""
        meta = entry.obj["metadata"]
        spec, status = entry.obj.get("spec") or {}, entry.obj.get("status") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                key: meta[key]
                for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            },
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {
                "replicas": status.get("replicas", 0),
                "selector": format_label_selector_object(spec.get("selector")),
            },
        }

    def update_scale(
        self,
        namespace: str,
        name: str,
        scale: Any,
        *,
        dry_run: bool = False,
        patch_type: str = "",
        rt: ResourceType = DEPLOYMENTS,
    ) -> dict[str, Any]:
        """PUT (or PATCH, with ``patch_type``) ``deployments/scale`` or ``replicasets/scale``:
        only spec.replicas moves."""
        with self.lock:
            current = self.get_entry(rt, namespace, name)
            if patch_type:
                original = self.scale_of(current)
                if patch_type == JSON_PATCH:
                    scale = json_patch(original, scale)
                elif patch_type == MERGE_PATCH:
                    scale = merge_patch(original, scale)
                elif patch_type == STRATEGIC_MERGE_PATCH:
                    scale = strategic_merge_patch(
                        original, scale, self.schemas.node("autoscaling/v1", "Scale")
                    )
                else:
                    raise E.unsupported_media_type(patch_type)
            scale = self._decode_scale(scale)
            meta = scale.get("metadata") or {}
            if meta.get("name", name) != name:
                raise E.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on "
                    f"the URL ({name})"
                )
            replicas = (scale.get("spec") or {}).get("replicas", 0)
            if replicas < 0:
                raise E.invalid_object(
                    "Scale",
                    "autoscaling",
                    name,
                    [E.invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
                )
            if (
                meta.get("resourceVersion")
                and meta["resourceVersion"] != current.obj["metadata"]["resourceVersion"]
            ):
                raise E.conflict(rt.resource, rt.group, name)
            new = current.copy()
            new["spec"]["replicas"] = replicas
            result = self._update_from(rt, (namespace, name), current, new, "", False, dry_run, [])
            return self.scale_of(result.entry)

    def _decode_scale(self, scale: Any) -> dict[str, Any]:
        """Decode an autoscaling/v1 Scale body like any other object: types, then fields."""
        if not isinstance(scale, dict):
            raise E.bad_request('Scale in version "v1" cannot be handled as a Scale: not an object')
        scale = dict(scale)
        scale.setdefault("apiVersion", "autoscaling/v1")
        scale.setdefault("kind", "Scale")
        if (scale["apiVersion"], scale["kind"]) != ("autoscaling/v1", "Scale"):
            raise E.bad_request(
                f"expected autoscaling/v1 Scale, got {scale['apiVersion']} {scale['kind']}"
            )
        try:
            scale, _ = self.schemas.decode(scale)
        except DecodeError as exc:
            raise E.bad_request(
                f'Scale in version "v1" cannot be handled as a Scale: {exc}'
            ) from None
        for error in self.schemas.errors(scale):
            if error.validator in ("type", "oneOf", "enum"):
                raise E.bad_request(
                    'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal '
                    f"{_json_type(error.instance)} into Go struct field Scale."
                    f"{_path(error.absolute_path)}: {error.message}"
                )
        return scale

    # -- seeding -------------------------------------------------------------------------------

    def seed(self, objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create objects as the simulator, keeping the ``status`` they carry.

        A real cluster resets status on create; a seed stands for objects that have lived a while,
        so their status is then written through ``/status`` as a kubelet or controller would.
        """
        created = []
        for obj in objects:
            rt = self._type_of(obj)
            copied = copy.deepcopy(obj)
            out = self.create(rt, copied)
            if rt.has_status and obj.get("status") and out.get("status") != obj["status"]:
                out["status"] = copy.deepcopy(obj["status"])
                out = self.update(rt, out, subresource="status")
            created.append(out)
        return created

    def bulk_seed(self, objects: Iterable[dict[str, Any]]) -> int:
        """Store objects WITHOUT decoding, defaulting or validation: for benchmarks only.

        Server-set metadata (uid, resourceVersion, creationTimestamp) is still filled in, and each
        object still produces an ADDED event, so lists and watches behave as usual.
        """
        count = 0
        now = _timestamp(self.clock())
        with self.lock:
            for obj in objects:
                rt = self._type_of(obj)
                obj = copy.deepcopy(obj)
                meta = obj.setdefault("metadata", {})
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now)
                key = self._key(rt, meta.get("namespace", ""), meta["name"])
                if key in self._objects[rt.resource]:
                    raise E.already_exists(rt.resource, rt.group, meta["name"])
                self._commit(rt, key, obj, "ADDED", None)
                count += 1
        return count

    # -- in-process observers (controllers) ---------------------------------------------------

    def changes(self, cursor: int, epoch: int, timeout: float) -> tuple[int, list[Event]] | None:
        """Every write after ``cursor``, as stored events with the previous state, waiting up to
        ``timeout`` seconds when there is none yet. Returns (new cursor, events), or None when the
        cursor is lost: the store was reset (``epoch`` differs), its history overflowed, or it is
        closing. The controllers' informer: a caller that gets None lists everything again.

        A :meth:`wake` since the previous call ends the wait at once (it is remembered, not
        only notified): one made after the observer's last pass and before it got here (its
        stop flag set, a stand-in's process reported) is never lost, which would leave the
        observer asleep for the whole ``timeout``.
        """
        with self.lock:
            if self._closed or self._epoch != epoch:
                return None
            if self._rv <= cursor and timeout > 0 and not self._woken:
                self.changed.wait(timeout)
                if self._closed or self._epoch != epoch:
                    return None
            self._woken = False
            if cursor < self._compacted:
                return None
            return self._rv, list(self._events_after(cursor))

    def end_watches(self) -> None:
        """End every open watch (see ``KubeSimulator.end_watches``)."""
        with self.lock:
            self._watch_generation += 1
            self.changed.notify_all()

    def wake(self) -> None:
        """Wake the observer waiting in :meth:`changes`, or make its next wait return at once
        (an observer that wants to stop, or has something to look at outside the store)."""
        with self.lock:
            self._woken = True
            self.changed.notify_all()

    # -- watch ---------------------------------------------------------------------------------

    def watch(
        self,
        rt: ResourceType,
        namespace: str,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> Watcher:
        """Start a watch ("API Concepts › Efficient detection of changes")."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.field_labels)
        with self.lock:
            watcher = Watcher(self, rt, namespace, labels, fields)
            if resource_version in ("", "0"):
                # "Get State and Start at Most Recent" / "Start at Any": the current objects as
                # synthetic ADDED events, then changes.
                result = self.list_entries(
                    rt, namespace, label_selector=label_selector, field_selector=field_selector
                )
                watcher.pending = [("ADDED", e.raw) for e in result.items]
                watcher.cursor = self._rv
            else:
                start = self._parse_rv(resource_version)
                self._compact()
                if start < self._compacted:
                    watcher.pending = [
                        (
                            "ERROR",
                            _encode(
                                E.gone(
                                    f"too old resource version: {start} ({self._compacted + 1})"
                                ).status()
                            ),
                        )
                    ]
                    watcher.finished = True
                watcher.cursor = start
            return watcher

    # -- internals -----------------------------------------------------------------------------

    def _events_after(self, rv: int) -> list[Event]:
        index = rv - self._compacted
        if index < 0:
            index = 0
        return self._history[index:]

    def _commit(
        self, rt: ResourceType, key: Key, obj: dict[str, Any], kind: str, old: Entry | None
    ) -> Entry:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        entry = Entry(obj)
        table = self._objects[rt.resource]
        if kind == "DELETED":
            del table[key]
            keys = self._keys[rt.resource]
            del keys[bisect.bisect_left(keys, key)]
        else:
            if key not in table:
                bisect.insort(self._keys[rt.resource], key)
            table[key] = entry
        self._history.append(Event(self._rv, kind, rt, key, entry, old, time.monotonic()))
        if (
            rt is NODES
            and kind != "DELETED"
            and key[1] in self._awaiting_kubelet
            and not self._kubelet_gone(key[1])
        ):
            self._kubelet_back(key[1])
        self._compact()
        self.changed.notify_all()
        return entry

    def _compact(self) -> None:
        """Drop what is beyond the window: the oldest events past ``history_limit`` (in batches,
        as the watch cache's ring), and every event older than ``history_window`` seconds, as
        kube-apiserver's periodic etcd compaction does."""
        history = self._history
        drop = 0
        if len(history) > self.history_limit + self.history_limit // 4:
            drop = len(history) - self.history_limit
        cutoff = time.monotonic() - self.history_window
        if history and history[drop:] and history[drop].at < cutoff:
            drop = bisect.bisect_left(history, cutoff, lo=drop, key=lambda e: e.at)
        if drop:
            self._compacted = history[drop - 1].rv
            del history[:drop]

    def _key(self, rt: ResourceType, namespace: str, name: str) -> Key:
        return (namespace if rt.namespaced else "", name)

    def _type_of(self, obj: dict[str, Any]) -> ResourceType:
        for rt in TYPES:
            if rt.kind == obj.get("kind") and rt.api_version == obj.get("apiVersion"):
                return rt
        raise SimulatorBug(
            f"the simulator does not serve {obj.get('apiVersion')}/{obj.get('kind')}"
        )

    def _require_namespace(self, namespace: str) -> None:
        # NamespaceLifecycle admission.
        entry = self._objects[NAMESPACES.resource].get(("", namespace))
        if entry is None:
            raise E.not_found("namespaces", "", namespace)
        if (entry.obj.get("status") or {}).get("phase") == "Terminating":
            raise E.forbidden_request(
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated"
            )

    def _decode_body(
        self, rt: ResourceType, namespace: str, body: Any, client: bool, field_validation: str
    ) -> tuple[dict[str, Any], list[str]]:
        """Type checks, unknown fields and canonical forms, as the Go decoder would do them."""
        if not isinstance(body, dict):
            raise _undecodable(rt, "the body must be a JSON object")
        obj = dict(body)
        api_version = obj.setdefault("apiVersion", rt.api_version)
        kind = obj.setdefault("kind", rt.kind)
        if api_version != rt.api_version or kind != rt.kind:
            raise E.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
                if kind == rt.kind
                else f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"expected kind {rt.kind}, got {kind}"
            )
        if field_validation not in ("", "Ignore", "Warn", "Strict"):
            raise E.bad_request(
                f'fieldValidation: Unsupported value: "{field_validation}": supported values: '
                '"Ignore", "Strict", "Warn"'
            )
        try:
            obj, unknown = self.schemas.decode(obj)
        except DecodeError as exc:
            raise E.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {exc}'
            ) from None
        # Types first: defaulting and strategies may then rely on the shape of the object.
        self._check_types(rt, self.schemas.errors(obj), client=client)
        warnings: list[str] = []
        if unknown:
            if not client or field_validation == "Strict":
                message = "strict decoding error: " + ", ".join(
                    f'unknown field "{u}"' for u in unknown
                )
                if not client:
                    self._bug(f"{rt.kind} written by the simulator: {message}")
                raise _undecodable(rt, message)
            if field_validation != "Ignore":  # Warn is the default
                warnings = [f'unknown field "{u}"' for u in unknown]
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        elif not isinstance(meta, dict):
            raise _undecodable(rt, "metadata must be an object")
        else:
            meta = obj["metadata"] = dict(meta)
        if rt.namespaced:
            body_ns = meta.get("namespace", "")
            if body_ns and body_ns != namespace:
                raise E.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj, warnings

    def _admit(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, *, client: bool
    ) -> None:
        """Validate a stored-to-be object: the pinned strict schema, then semantic checks."""
        schema_errors = self.schemas.errors(obj)
        self._check_types(rt, schema_errors, client=client)
        errors: list[FieldError] = []
        for error in schema_errors:
            where = _path(error.absolute_path)
            if error.validator == "required":
                for missing in error.validator_value:
                    if isinstance(error.instance, dict) and missing not in error.instance:
                        errors.append(E.required(f"{where}.{missing}" if where else missing))
            elif error.validator == "additionalProperties":
                if not client:
                    self._bug(f"{rt.kind} written by the simulator: {error.message} at {where}")
                errors.append(E.invalid(where, None, error.message))
            else:
                errors.append(E.invalid(where, error.instance, error.message))
        meta = obj["metadata"]
        errors.extend(
            validate_object_meta(meta, namespaced=rt.namespaced, name_errors=rt.name_errors)
        )
        errors.extend(rt.strategy.validate(obj))
        if old is not None:
            errors.extend(rt.strategy.validate_update(obj, old))
        if errors:
            error = E.invalid_object(rt.kind, rt.group, meta.get("name", ""), errors)
            if not client:
                self._bug(error.message)
            raise error

    def _check_types(self, rt: ResourceType, schema_errors: list[Any], *, client: bool) -> None:
        """A value of the wrong JSON type cannot be decoded into the Go struct: 400."""
        type_errors = [e for e in schema_errors if e.validator in ("type", "oneOf", "enum")]
        if not type_errors:
            return
        first = type_errors[0]
        message = (
            f"json: cannot unmarshal {_json_type(first.instance)} into Go struct field "
            f"{rt.kind}.{_path(first.absolute_path)}: {first.message}"
        )
        if not client:
            self._bug(f"{rt.kind} written by the simulator: {message}")
        raise _undecodable(rt, message)

    def _bug(self, message: str) -> None:
        self.bugs.append(message)
        raise SimulatorBug(message)


def _budget_violation(message: str) -> ApiError:
    """The eviction API's 429 when a PodDisruptionBudget allows no disruption now."""
    cause = {"reason": "DisruptionBudget", "message": message}
    return ApiError(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
        details={"causes": [cause]},
    )


def _undecodable(rt: ResourceType, detail: str) -> ApiError:
    """400: the body does not decode into the Go type (``runtime.Decode`` failing)."""
    return E.bad_request(
        f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {detail}'
    )


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


class Watcher:
    """One watch's cursor into the event history, with its filters.

    ``next`` returns encoded events (type, object JSON) after the cursor, waiting up to ``timeout``
    seconds for some; an object that starts or stops matching the selectors arrives as ADDED or
    DELETED, as the watch cache reports it.
    """

    def __init__(
        self,
        store: Store,
        rt: ResourceType,
        namespace: str,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> None:
        self.store = store
        self.rt = rt
        self.namespace = namespace
        self.labels = labels
        self._match_labels = labels.compile()
        self.fields = fields
        self.cursor = 0
        self.epoch = store.epoch
        self.generation = store._watch_generation
        self.pending: list[tuple[str, bytes]] = []
        self.finished = False

    @property
    def alive(self) -> bool:
        store = self.store
        return (
            not self.finished
            and not store.closed
            and store.epoch == self.epoch
            and store._watch_generation == self.generation
        )

    def _matches(self, obj: dict[str, Any]) -> bool:
        return self._match_labels(obj["metadata"].get("labels")) and (
            self.fields.empty or self.fields.matches(obj, self.rt.fields)
        )

    def next(self, timeout: float) -> list[tuple[str, bytes]]:
        if self.pending:
            out, self.pending = self.pending, []
            return out
        store = self.store
        with store.lock:
            if not self.alive:
                return []
            if store.resource_version <= self.cursor:
                store.changed.wait(timeout)
            if not self.alive:
                return []
            if self.cursor < store._compacted:
                self.finished = True
                return [
                    (
                        "ERROR",
                        _encode(
                            E.gone(
                                f"too old resource version: {self.cursor} ({store._compacted + 1})"
                            ).status()
                        ),
                    )
                ]
            events = store._events_after(self.cursor)
            if store.resource_version > self.cursor:
                self.cursor = store.resource_version
        return list(self._convert(events))

    def _convert(self, events: list[Event]) -> Iterator[tuple[str, bytes]]:
        for event in events:
            if event.resource is not self.rt:
                continue
            if self.namespace and event.key[0] != self.namespace:
                continue
            now = event.type != "DELETED" and self._matches(event.entry.obj)
            before = event.old is not None and self._matches(event.old.obj)
            if event.type == "DELETED":
                if before:
                    yield ("DELETED", event.entry.raw)
            elif now and (before or event.type == "ADDED"):
                yield (event.type, event.entry.raw)
            elif now:
                yield ("ADDED", event.entry.raw)
            elif before:
                # Stopped matching: DELETED with the previous state at this event's version.
                gone = event.old.copy()  # type: ignore[union-attr]
                gone["metadata"]["resourceVersion"] = str(event.rv)
                yield ("DELETED", _encode(gone))

    def bookmark(self) -> bytes:
        with self.store.lock:
            rv = max(self.cursor, 0)
        return _encode(
            {
                "kind": self.rt.kind,
                "apiVersion": self.rt.api_version,
                "metadata": {"resourceVersion": str(rv)},
            }
        )
