"""The one clock domain code reads.

``now()`` is timezone-aware UTC. Under the test settings (``TESTING``, tests/settings.py) it adds
an offset in seconds read from the file named by ``CLUSTERWEB_CLOCK_FILE``, so a test can move
time for every process of the run at once (the web server, a Celery worker subprocess, beat). In
every other configuration the file is never read.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings

_cache: tuple[str, int, float] | None = None  # (path, file mtime in ns, offset seconds)


def offset_seconds() -> float:
    """The test clock offset, or 0 outside tests or when no offset is set."""
    path = getattr(settings, "CLOCK_FILE", "") if getattr(settings, "TESTING", False) else ""
    return offset_in_file(path) if path else 0.0


def offset_in_file(path: str) -> float:
    """The offset in seconds written in ``path`` (0 when there is none), re-read only when the file
    changes. Needs no Django settings: the sandbox's AWS layer reads the same file through it."""
    global _cache
    try:
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0.0
    if _cache is not None and _cache[:2] == (path, mtime):
        return _cache[2]
    try:
        with open(path) as handle:
            value = float(Decimal(handle.read().strip() or "0"))
    except (OSError, InvalidOperation):
        value = 0.0
    _cache = (path, mtime, value)
    return value


def now() -> datetime:
    """The current time, timezone-aware UTC (shifted by the test offset under tests)."""
    current = datetime.now(UTC)
    offset = offset_seconds()
    return current + timedelta(seconds=offset) if offset else current


def set_offset(path: str, seconds: float) -> None:
    """Write a shared offset (tests only). Atomic, so a reader never sees a half-written file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        handle.write(repr(float(seconds)))
    os.replace(tmp, path)
