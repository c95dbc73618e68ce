"""Heartbeats the worker and beat record of themselves, read by /healthz and ``doctor``.

- ``worker``: each worker process records one when it is ready, every heartbeat interval after
  that (a thread), and before a task it runs (at most every 10 s).
- ``beat``: recorded when beat starts and whenever the watchdog is published, which only beat
  does (every interval).

A process that stops recording for two intervals is reported as not alive. Nothing asks a
process live (a broadcast ping costs its full timeout whenever no worker answers).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

WATCHDOG_TASK = "clusterweb.health.tasks.watchdog"


def _record(name: str, detail: str = "") -> None:
    from django.db import close_old_connections

    from clusterweb.health.services import process_beat_record

    try:
        process_beat_record(name, detail)
    except Exception:  # a heartbeat must never break the task or publish it rides on
        logger.warning("could not record the %s heartbeat", name, exc_info=True)
        close_old_connections()


def worker_ready(sender: Any = None, **kwargs: Any) -> None:
    from django.conf import settings
    from django.db import connections

    hostname = str(getattr(sender, "hostname", "") or "")

    def beat_forever() -> None:
        while True:
            _record("worker", hostname)
            connections.close_all()
            time.sleep(settings.HEARTBEAT_INTERVAL_SECONDS)

    threading.Thread(target=beat_forever, name="clusterweb-worker-heartbeat", daemon=True).start()


# Before a task, at most this often per process: the heartbeat needs no more, and a write per
# task would compete for the database (SQLite's one writer) with the tasks themselves.
TASK_RECORD_EVERY_SECONDS = 10.0
_task_recorded_at = -TASK_RECORD_EVERY_SECONDS


def task_prerun(sender: Any = None, **kwargs: Any) -> None:
    global _task_recorded_at
    now = time.monotonic()
    if now - _task_recorded_at < TASK_RECORD_EVERY_SECONDS:
        return
    _task_recorded_at = now
    hostname = str(getattr(getattr(sender, "request", None), "hostname", "") or "")
    _record("worker", hostname)


def _beat_record() -> None:
    import django
    from django.apps import apps

    if not apps.ready:  # the beat process: Celery loaded the settings, not the apps
        django.setup()
    _record("beat")


def beat_init(sender: Any = None, **kwargs: Any) -> None:
    # Beat sends an interval job first one interval after it starts: without this, a beat
    # just started would count as not alive for that long.
    _beat_record()


def before_task_publish(sender: Any = None, **kwargs: Any) -> None:
    if sender == WATCHDOG_TASK:
        _beat_record()
