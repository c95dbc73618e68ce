"""The web process's alert thread: sends the late-job alert when the watchdog cannot.

The alert exists for when the worker or beat is dead, so it cannot depend on them alone. While
the watchdog runs, it sends the alert from the worker. Once the watchdog itself is late, a page
view that sees late jobs not yet alerted *pokes* this thread and returns at once: the thread, not
the request, claims the rows and talks to the mail server (bounded by EMAIL_TIMEOUT), and after
a failure waits out the back-off recorded on the rows (``services.late_jobs_alert``). One thread
per process, started with each gunicorn worker (``gunicorn_conf.post_worker_init``) or by the
first poke. In a gunicorn worker it also looks every ``RECHECK_SECONDS`` on its own, so the
alert goes out, and a failed one is retried, even when nobody views a page; the back-off on the
rows keeps the attempts few.
"""

from __future__ import annotations

import logging
import threading

from django.db import connections

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None

# How often a web worker's thread looks at the late jobs without a poke: a dead worker must be
# reported even when nobody opens a page. One query a minute per web process while nothing is
# late. Only a thread started for a server process looks on its own (``periodic``); elsewhere (a
# test process, a management command) it acts on pokes alone.
RECHECK_SECONDS = 60.0
_periodic = False


def start(*, periodic: bool = False) -> None:
    """Start this process's alert thread if it is not running; ``periodic``: it also looks every
    ``RECHECK_SECONDS`` without a poke. Never blocks."""
    global _thread, _periodic
    _periodic = _periodic or periodic
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="clusterweb-alerts", daemon=True)
            _thread.start()


def poke() -> None:
    """Ask the alert thread to look at the late jobs now. Never blocks."""
    start()
    _wake.set()


def _run() -> None:
    from clusterweb.health import services

    while True:
        _wake.wait(timeout=RECHECK_SECONDS if _periodic else None)
        _wake.clear()
        try:
            services.late_jobs_alert_unless_watchdog_runs()
        except Exception:  # the thread must outlive any one failure
            logger.exception("late-job alert thread failed; the next poke tries again")
        finally:
            # This thread's own connections: never hold one open between attempts.
            connections.close_all()
