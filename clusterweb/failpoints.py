"""Named failpoints: let a test crash, fail or pause a process at an exact step.

``failpoint("launch.after_run_instances")`` does nothing unless the test settings are active
(``TESTING`` in tests/settings.py) and ``CLUSTERWEB_FAILPOINTS`` arms that name. The variable holds
``name=action;name=action`` or ``@PATH``, a file holding the same text and re-read when it changes,
so a test can arm a failpoint in a worker that is already running. Actions:

- ``raise``: raise ``FailpointError`` (a task sees an ordinary exception);
- ``crash``: end the process at once with exit status 70, as a killed worker would;
- ``kill``: the process sends itself SIGKILL (a worker killed at exactly that point);
- ``sleep:SECONDS``: pause, then carry on.
"""

from __future__ import annotations

import os
import signal
import time

from django.conf import settings


class FailpointError(RuntimeError):
    """Raised by an armed ``raise`` failpoint."""


_file_cache: tuple[str, int, dict[str, str]] | None = None


def _parse(spec: str) -> dict[str, str]:
    armed: dict[str, str] = {}
    for item in spec.replace("\n", ";").split(";"):
        name, sep, action = item.partition("=")
        if sep and name.strip():
            armed[name.strip()] = action.strip()
    return armed


def armed() -> dict[str, str]:
    """The armed failpoints of this process (empty outside tests)."""
    global _file_cache
    if not getattr(settings, "TESTING", False):
        return {}
    spec = os.environ.get("CLUSTERWEB_FAILPOINTS", "") or getattr(settings, "FAILPOINTS", "")
    if not spec.startswith("@"):
        return _parse(spec)
    path = spec[1:]
    try:
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return {}
    if _file_cache is None or _file_cache[:2] != (path, mtime):
        with open(path) as handle:
            _file_cache = (path, mtime, _parse(handle.read()))
    return _file_cache[2]


def failpoint(name: str) -> None:
    """Act on the failpoint ``name`` if a test armed it; otherwise return at once."""
    action = armed().get(name)
    if not action:
        return
    if action == "raise":
        raise FailpointError(f"failpoint {name} fired")
    if action == "crash":
        os._exit(70)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action.startswith("sleep:"):
        time.sleep(float(action.split(":", 1)[1]))
        return
    raise FailpointError(f"failpoint {name} has an unknown action {action!r}")
