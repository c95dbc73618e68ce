"""Instance states that take time, as on EC2, which moto skips.

moto creates an instance ``running`` and stops or terminates it at once. EC2 does not: an
instance is ``pending`` until it runs, ``stopping`` before ``stopped`` and ``shutting-down``
before ``terminated`` ("Amazon EC2 instance state changes", EC2 User Guide:
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-lifecycle.html; the state codes
are those of ``InstanceState`` in the API reference: 0 pending, 16 running, 32 shutting-down,
48 terminated, 64 stopping, 80 stopped).

The layer watches moto's instances around every EC2 request. An instance it sees for the first
time ``running`` is put back to ``pending`` until ``launch time + pending`` seconds; one moto
just ``terminated`` or ``stopped`` is held ``shutting-down`` / ``stopping`` for the matching
delay. Transitions are applied lazily, when a request arrives after they are due, by the layer's
clock (:mod:`sandbox.aws.clock`): moving the test clock forward finishes them, and a replay at a
past moment sees the states of that moment. A spot reclaim scheduled for later is one more such
transition (``reclaim`` at its time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.aws import clock

STATE_CODES = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}
# What each transitional state becomes when its delay is over.
AFTER = {"pending": "running", "shutting-down": "terminated", "stopping": "stopped"}


@dataclass
class StateDelays:
    """Seconds an instance spends in each transitional state. The defaults are of the order
    EC2 takes for a small Linux instance; ``make run`` and the tests use shorter ones."""

    pending: float = 10.0
    stopping: float = 10.0
    shutting_down: float = 10.0

    def __post_init__(self) -> None:
        for name in ("pending", "stopping", "shutting_down"):
            value = float(getattr(self, name))
            if value < 0:
                raise ValueError(f"the {name} delay cannot be negative")
            setattr(self, name, value)

    def of(self, state: str) -> timedelta:
        seconds = {"pending": self.pending, "stopping": self.stopping}.get(
            state, self.shutting_down
        )
        return timedelta(seconds=seconds)

    def to_json(self) -> dict[str, float]:
        return {
            "pending": self.pending,
            "stopping": self.stopping,
            "shutting_down": self.shutting_down,
        }


@dataclass
class _Due:
    instance: Any
    action: str  # a transitional state's end ("pending", ...) or "reclaim"
    at: datetime


class Lifecycle:
    """The transitions the layer owes moto's instances. Thread-safe."""

    def __init__(self, delays: StateDelays | None = None) -> None:
        self.delays = delays or StateDelays()
        self._lock = threading.RLock()
        self._seen: dict[str, str] = {}  # instance id -> the state the layer last left it in
        self._due: dict[str, _Due] = {}
        self._reclaims: dict[str, _Due] = {}  # instance id -> a spot reclaim to come
        self.reclaim: Callable[[str, datetime], None] | None = None
        # Told of every state an instance enters, with the moment it entered it (the metering).
        self.on_state: Callable[[Any, str, datetime], None] | None = None

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()
            self._due.clear()
            self._reclaims.clear()

    def observe(self) -> None:
        """Apply what is due, then take in what moto changed since the last look."""
        from sandbox.aws import moto_state

        with self._lock:
            self._apply_due()
            now = clock.now()
            for instance in moto_state.instances_all():
                state = instance.state
                seen = self._seen.get(instance.id)
                if state == seen:
                    continue
                if state == "running" and seen in (None, "stopped"):
                    # moto created (or started) it running; EC2 boots it first.
                    since = now if seen else _aware(instance.launch_time)
                    if seen == "stopped":
                        # EC2 sets LaunchTime again when a stopped instance starts (moto keeps
                        # the first): "Stop and start Amazon EC2 instances".
                        instance.launch_time = now.replace(tzinfo=None)
                    self._hold(instance, "pending", since)
                elif state == "terminated" and seen not in (None, "shutting-down"):
                    moto_state.transition_reason_in_gmt(instance)
                    self._hold(instance, "shutting-down", now)
                elif state == "stopped" and seen in ("pending", "running"):
                    moto_state.transition_reason_in_gmt(instance)
                    self._hold(instance, "stopping", now)
                else:
                    self._seen[instance.id] = state
                    self._due.pop(instance.id, None)
                    self._told(instance, state, now)
            self._apply_due()

    def _hold(self, instance: Any, state: str, since: datetime) -> None:
        from sandbox.aws import moto_state

        moto_state.instance_state_set(instance, state)
        self._seen[instance.id] = state
        self._due[instance.id] = _Due(instance, state, since + self.delays.of(state))
        self._told(instance, state, since)
        if state != "pending":
            self._reclaims.pop(instance.id, None)  # stopped or terminated first

    def reclaim_at(self, instance_id: str, instance: Any, at: datetime) -> bool:
        """Schedule a spot reclaim; False if one is already scheduled."""
        with self._lock:
            if instance_id in self._reclaims:
                return False
            self._reclaims[instance_id] = _Due(instance, "reclaim", at)
            return True

    def reclaim_pending(self, instance_id: str) -> bool:
        with self._lock:
            return instance_id in self._reclaims

    def _apply_due(self) -> None:
        from sandbox.aws import moto_state

        now = clock.now()
        # In time order, so a reclaim due before the end of a boot happens in the right order.
        due = [d for d in (*self._due.values(), *self._reclaims.values()) if d.at <= now]
        for item in sorted(due, key=lambda d: d.at):
            if item.action == "reclaim":
                self._reclaims.pop(item.instance.id, None)
                if self.reclaim is not None:
                    self.reclaim(item.instance.id, item.at)
                    # The reclaim terminated it: shutting down from the reclaim's moment.
                    if item.instance.state == "terminated":
                        self._hold(item.instance, "shutting-down", item.at)
                continue
            if self._due.get(item.instance.id) is not item:
                continue
            if item.instance.state != item.action:
                # moto changed it meanwhile (a terminate of a pending instance): observe() decides.
                self._due.pop(item.instance.id, None)
                continue
            final = AFTER[item.action]
            moto_state.instance_state_set(item.instance, final)
            self._seen[item.instance.id] = final
            del self._due[item.instance.id]
            self._told(item.instance, final, item.at)

    def _told(self, instance: Any, state: str, at: datetime) -> None:
        if self.on_state is not None:
            self.on_state(instance, state, at)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
