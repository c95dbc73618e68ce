"""The disruption controller: PodDisruptionBudget status ("Specifying a Disruption Budget for
your Application", "Disruptions"; pkg/controller/disruption/disruption.go).

For each budget, the pods its selector matches in its namespace (policy/v1: an empty selector
matches every pod, a missing one none) are counted:

- ``expectedPods``: with an integer ``minAvailable``, the number of matching pods; otherwise
  the sum of the scales of their controllers (a ReplicaSet's replicas, or its Deployment's);
  a matching pod without a controller then makes the computation fail (condition
  ``DisruptionAllowed`` False, reason ``SyncFailed``, no disruption allowed, as failSafe does);
- ``desiredHealthy``: ``minAvailable`` (a percentage of expectedPods rounded up), or
  expectedPods minus ``maxUnavailable`` (a percentage rounded up), not below 0;
- ``currentHealthy``: matching pods that are Ready and not being deleted, except those the
  eviction API has just let go (``disruptedPods``, forgotten once the pod is deleted or after
  two minutes, DeletionTimeout);
- ``disruptionsAllowed`` = currentHealthy - desiredHealthy when positive and expectedPods > 0,
  else 0; condition ``DisruptionAllowed`` True (``SufficientPods``) or False
  (``InsufficientPods``); ``observedGeneration``.

The eviction API (``Store.evict``) reads this status and decrements it.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

from ..errors import ApiError
from ..resources import DEPLOYMENTS, PODDISRUPTIONBUDGETS, PODS, REPLICASETS
from ..selectors import from_label_selector_object
from ..store import Event
from .base import Context, Controller, controller_of, is_ready, parse_stamp, set_condition

COMPONENT = "controllermanager"
DELETION_TIMEOUT = timedelta(minutes=2)


def budget_selects(pdb: dict[str, Any], labels: dict[str, str]) -> bool:
    """policy/v1: a missing selector selects nothing, an empty one every pod."""
    spec = pdb.get("spec") or {}
    if "selector" not in spec or spec["selector"] is None:
        return False
    return from_label_selector_object(spec["selector"]).matches(labels)


def _scaled(value: Any, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent with roundUp."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"([0-9]+)%", str(value))
    return math.ceil(int(match.group(1)) * total / 100) if match else 0


class DisruptionController(Controller):
    name = "disruption"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.dirty: set[str] = set()  # namespaces whose budgets to recompute
        self.told: dict[str, str] = {}  # budget uid -> the last event recorded for it

    def _tell(self, pdb: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """One event per change of what is wrong, not one per pass."""
        uid = pdb["metadata"]["uid"]
        if self.told.get(uid) != message:
            self.told[uid] = message
            self.ctx.events.record(pdb, type_, reason, message, COMPONENT)

    def resync(self) -> None:
        self.told.clear()
        self.dirty = {
            e.obj["metadata"]["namespace"]
            for e in self.store.list_entries(PODDISRUPTIONBUDGETS, "").items
        }

    def observe(self, event: Event) -> None:
        if event.resource in (PODDISRUPTIONBUDGETS, PODS, REPLICASETS, DEPLOYMENTS):
            self.dirty.add(event.key[0])

    def sync(self) -> None:
        dirty, self.dirty = self.dirty, set()
        for namespace in sorted(dirty):
            budgets = self.store.list_entries(PODDISRUPTIONBUDGETS, namespace).items
            if not budgets:
                continue
            pods = self.store.list_entries(PODS, namespace).items
            for budget in budgets:
                try:
                    self._sync_budget(budget.copy(), [p.obj for p in pods])
                except ApiError as exc:
                    if exc.code == 409:
                        self.retry(lambda namespace=namespace: self.dirty.add(namespace))

    def _expected_scale(self, pods: list[dict[str, Any]]) -> int | str:
        """The sum of the scales of the pods' controllers, or why it cannot be known."""
        seen: dict[str, int] = {}
        for pod in pods:
            ref = controller_of(pod)
            if ref is None:
                return f'found no controllers for pod "{pod["metadata"]["name"]}"'
            if ref["uid"] in seen:
                continue
            namespace = pod["metadata"]["namespace"]
            if ref.get("kind") != "ReplicaSet":
                return f'found no controllers for pod "{pod["metadata"]["name"]}"'
            rs = self.store.peek(REPLICASETS, namespace, ref["name"])
            if rs is None:
                return f'found no controllers for pod "{pod["metadata"]["name"]}"'
            owner = controller_of(rs.obj)
            if owner is not None and owner.get("kind") == "Deployment":
                deployment = self.store.peek(DEPLOYMENTS, namespace, owner["name"])
                if deployment is not None and owner["uid"] not in seen:
                    seen[owner["uid"]] = int(deployment.obj["spec"].get("replicas", 1))
                seen[ref["uid"]] = 0
                continue
            seen[ref["uid"]] = int(rs.obj["spec"].get("replicas", 1))
        return sum(seen.values())

    def _sync_budget(self, pdb: dict[str, Any], all_pods: list[dict[str, Any]]) -> None:
        spec = pdb.get("spec") or {}
        pods = [p for p in all_pods if budget_selects(pdb, p["metadata"].get("labels") or {})]
        status = pdb.setdefault("status", {})
        now = self.ctx.now()
        stamp = self.ctx.stamp()
        if not pods:
            self._tell(pdb, "Normal", "NoPods", "No matching pods found")
        failure = ""
        desired = 0
        if isinstance(spec.get("minAvailable"), int):
            expected: int | str = len(pods)
            desired = spec["minAvailable"]
        else:
            expected = self._expected_scale(pods)
            if isinstance(expected, str):
                failure = expected
            elif "maxUnavailable" in spec:
                desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
            else:
                desired = _scaled(spec.get("minAvailable"), expected)
        disrupted = dict(status.get("disruptedPods") or {})
        by_name = {p["metadata"]["name"]: p for p in pods}
        for name, when in list(disrupted.items()):
            pod = by_name.get(name)
            if (
                pod is None
                or pod["metadata"].get("deletionTimestamp")
                or parse_stamp(when) + DELETION_TIMEOUT < now
            ):
                del disrupted[name]
        healthy = sum(
            1
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and is_ready(p)
            and p["metadata"]["name"] not in disrupted
        )
        before = {**status, "conditions": [dict(c) for c in status.get("conditions") or ()]}
        if failure:
            self._tell(
                pdb,
                "Warning",
                "CalculateExpectedPodCountFailed",
                f"Failed to calculate the number of expected pods: {failure}",
            )
            status["disruptionsAllowed"] = 0
            set_condition(
                status, "DisruptionAllowed", "False", stamp, reason="SyncFailed", message=failure
            )
        else:
            assert isinstance(expected, int)
            allowed = healthy - desired if expected > 0 and healthy > desired else 0
            status.update(
                {
                    "currentHealthy": healthy,
                    "desiredHealthy": desired,
                    "expectedPods": expected,
                    "disruptionsAllowed": allowed,
                }
            )
            if allowed > 0:
                set_condition(status, "DisruptionAllowed", "True", stamp, reason="SufficientPods")
            else:
                set_condition(
                    status, "DisruptionAllowed", "False", stamp, reason="InsufficientPods"
                )
        for cond in status.get("conditions") or ():
            # metav1.Condition: message is required (may be empty), observedGeneration set.
            cond.setdefault("message", "")
            cond["observedGeneration"] = pdb["metadata"].get("generation", 1)
        if disrupted:
            status["disruptedPods"] = disrupted
        else:
            status.pop("disruptedPods", None)
        status["observedGeneration"] = pdb["metadata"].get("generation", 1)
        if status != before:
            self.store.update(PODDISRUPTIONBUDGETS, pdb, subresource="status")
        for when in disrupted.values():
            left = (parse_stamp(when) + DELETION_TIMEOUT - now).total_seconds()
            namespace = pdb["metadata"]["namespace"]
            self.ctx.timers.after(
                max(left, 0.0) + 0.01, lambda namespace=namespace: self.dirty.add(namespace)
            )


__all__ = ["DisruptionController", "budget_selects"]
