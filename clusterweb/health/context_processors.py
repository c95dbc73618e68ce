from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest

from clusterweb.health import services

logger = logging.getLogger(__name__)


def health_banner(request: HttpRequest) -> dict[str, Any]:
    """Late periodic jobs, for the banner on every page. Reads the database only. If the beat
    itself has stopped, nothing else would notice: so a page view that sees a late job not yet
    alerted sends the alert (claimed once per incident)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    try:
        late = services.heartbeats_late()
        if late and any(beat.alerted_at is None for beat in late):
            services.late_jobs_alert()
    except Exception:  # a banner must never break a page
        logger.exception("could not read heartbeats")
        return {"late_jobs": []}
    return {"late_jobs": late}
