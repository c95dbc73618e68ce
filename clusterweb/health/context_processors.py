from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest

from clusterweb.health import alerter, services

logger = logging.getLogger(__name__)


def health_banner(request: HttpRequest) -> dict[str, Any]:
    """Late periodic jobs and whether admins were told, for the banner on every page. Reads the
    database only. A late job not yet alerted pokes the web process's alert thread, which sends
    the alert if the watchdog cannot; the request itself never talks to the mail server."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    try:
        late = services.heartbeats_late()
        if any(beat.alerted_at is None for beat in late):
            alerter.poke()
    except Exception:  # a banner must never break a page
        logger.exception("could not read heartbeats")
        return {"late_jobs": []}
    if not late:
        return {"late_jobs": []}
    return {"late_jobs": late, "late_jobs_alert": services.alert_status(late)}
