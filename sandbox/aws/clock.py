"""The layer's clock: the product's clock, so that moving the test clock moves the cloud too.

``now()`` follows ``clusterweb.clock.now()``'s contract (CONVENTIONS.md, "Time"): real UTC time,
plus, under tests, the shared offset in seconds held by the file named by
``CLUSTERWEB_CLOCK_FILE``. It reads the environment rather than Django's settings because the
layer also runs in ``make run``'s runner, which never configures Django; only the test settings
export that variable (test behaviour is never switched on by ``CLUSTERWEB_TEST``), so the two
clocks read the same file.

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

from clusterweb.clock import offset_in_file

_lock = threading.RLock()
_pinned: datetime | None = None


def offset_seconds() -> float:
    """The shared test offset, or 0 outside tests (no clock file is named then)."""
    path = os.environ.get("CLUSTERWEB_CLOCK_FILE", "")
    return offset_in_file(path) if path else 0.0


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
