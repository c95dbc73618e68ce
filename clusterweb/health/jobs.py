"""Heartbeats for periodic jobs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from clusterweb import clock
from clusterweb.health.models import Heartbeat

F = TypeVar("F", bound=Callable[..., Any])


def heartbeat_register(name: str, interval_seconds: int) -> Heartbeat:
    """Make sure a row exists for ``name``; a job that never runs becomes late from now on."""
    beat, created = Heartbeat.objects.get_or_create(
        name=name, defaults={"interval_seconds": interval_seconds, "registered_at": clock.now()}
    )
    if not created and beat.interval_seconds != interval_seconds:
        Heartbeat.objects.filter(pk=name).update(interval_seconds=interval_seconds)
        beat.interval_seconds = interval_seconds
    return beat


def periodic_job(name: str, interval: Callable[[], int]) -> Callable[[F], F]:
    """Record start, success and failure of the wrapped job in its ``Heartbeat`` row.
    ``interval`` is read at run time (it comes from settings)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            heartbeat_register(name, interval())
            Heartbeat.objects.filter(pk=name).update(last_started_at=clock.now())
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                Heartbeat.objects.filter(pk=name).update(
                    last_error=f"{type(exc).__name__}: {exc}"[:500]
                )
                raise
            Heartbeat.objects.filter(pk=name).update(
                last_ok_at=clock.now(),
                last_error="",
                # The incident is over: the next one is alerted afresh.
                alerted_at=None,
                alert_claimed_until=None,
                alert_next_attempt_at=None,
                alert_failures=0,
                alert_error="",
            )
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
