"""The web process's alert thread: sends the late-job alert when the watchdog cannot.

The alert exists for when the worker or beat is dead, so it cannot depend on them alone. While
the watchdog runs, it sends the alert from the worker. Once the watchdog itself is late, a page
view that sees late jobs not yet alerted *pokes* this thread and returns at once: the thread, not
the request, claims the rows and talks to the mail server (bounded by EMAIL_TIMEOUT), and after
a failure waits out the back-off recorded on the rows (``services.late_jobs_alert``). One thread
per process, started by the first poke; it sleeps until poked. Page views keep poking while late
jobs are not yet alerted, and the back-off on the rows keeps those attempts few.
"""

from __future__ import annotations

import logging
import threading

from django.db import connections

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None


def poke() -> None:
    """Ask the alert thread to look at the late jobs now. Never blocks."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="clusterweb-alerts", daemon=True)
            _thread.start()
    _wake.set()


def _run() -> None:
    from clusterweb.health import services

    while True:
        _wake.wait()
        _wake.clear()
        try:
            services.late_jobs_alert_unless_watchdog_runs()
        except Exception:  # the thread must outlive any one failure
            logger.exception("late-job alert thread failed; the next poke tries again")
        finally:
            # This thread's own connections: never hold one open between attempts.
            connections.close_all()
