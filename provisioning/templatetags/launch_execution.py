"""Template filters of the launch execution's part of the request page."""

from __future__ import annotations

from typing import Any

from django import template

from clusterweb import clock

register = template.Library()


@register.filter
def step_elapsed(step: Any) -> str:
    """How long a step of the log took (or has taken so far): "4 s", "2 min 5 s", "1 h 3 min"."""
    end = step.finished_at or clock.now()
    seconds = max(int((end - step.started_at).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
