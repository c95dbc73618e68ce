"""The layer's clock: the product's clock, so that moving the test clock moves the cloud too.

``now()`` follows ``clusterweb.clock.now()``'s contract (CONVENTIONS.md, "Time"): real UTC time,
plus, under tests (``CLUSTERWEB_TEST``), the shared offset in seconds held by the file named by
``CLUSTERWEB_CLOCK_FILE``. It reads the environment rather than Django's settings because the
layer also runs in ``make run``'s runner, which never configures Django; the test settings export
both variables, so the two clocks read the same file.

The replay control pins the clock to a past moment while it applies a scripted step
(:func:`pinned`). moto reads its time through ``moto.core.utils.utcnow``, which
:func:`install` points here (launch times, state-transition reasons, CloudWatch "now").
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

_lock = threading.RLock()
_pinned: datetime | None = None
_cache: tuple[int, float] | None = None  # (file mtime in ns, offset seconds)


def offset_seconds() -> float:
    """The shared test offset, or 0 outside tests (the file is then never read)."""
    global _cache
    if os.environ.get("CLUSTERWEB_TEST", "").lower() not in ("1", "true", "yes", "on"):
        return 0.0
    path = os.environ.get("CLUSTERWEB_CLOCK_FILE", "")
    if not path:
        return 0.0
    try:
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0.0
    if _cache is not None and _cache[0] == mtime:
        return _cache[1]
    try:
        with open(path) as handle:
            value = float(Decimal(handle.read().strip() or "0"))
    except (OSError, InvalidOperation):
        value = 0.0
    _cache = (mtime, value)
    return value


def real_now() -> datetime:
    """The product's time, ignoring a replay's pin: what "the past" is measured against."""
    current = datetime.now(UTC)
    offset = offset_seconds()
    return current + timedelta(seconds=offset) if offset else current


def now() -> datetime:
    """The layer's current time, timezone-aware UTC (a replay's pinned moment while one runs)."""
    pinned = _pinned
    return pinned if pinned is not None else real_now()


def utcnow_naive() -> datetime:
    """:func:`now` as moto keeps time: naive UTC."""
    return now().astimezone(UTC).replace(tzinfo=None)


@contextlib.contextmanager
def pinned(moment: datetime) -> Iterator[None]:
    """Hold the layer's clock at ``moment`` (timezone-aware) for the block. One at a time."""
    global _pinned
    if moment.tzinfo is None:
        raise ValueError("a replay timestamp must be timezone-aware")
    with _lock:
        _pinned = moment.astimezone(UTC)
        try:
            yield
        finally:
            _pinned = None


_original_utcnow = None


def install() -> None:
    """Make moto read :func:`utcnow_naive`: ``moto.core.utils.utcnow`` and every loaded moto
    module that imported it by name (modules imported later bind the replacement)."""
    global _original_utcnow
    from moto.core import utils

    if _original_utcnow is None:
        _original_utcnow = utils.utcnow
    _rebind(_original_utcnow, utcnow_naive)


def uninstall() -> None:
    global _original_utcnow
    if _original_utcnow is not None:
        _rebind(utcnow_naive, _original_utcnow)
        _original_utcnow = None


def _rebind(old: object, new: object) -> None:
    for name, module in list(sys.modules.items()):
        if (name == "moto" or name.startswith("moto.")) and getattr(module, "utcnow", None) is old:
            module.utcnow = new  # type: ignore[attr-defined]
