"""The one way anything in Clusterweb writes to the audit log."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest

from clusterweb import clock
from clusterweb.audit.models import AuditEvent

logger = logging.getLogger("clusterweb.audit")

# Keys whose values never enter the log, whatever a caller passes.
_SECRET_KEYS = {"password", "token", "secret", "key", "passwd"}


def audit_record(
    *,
    action: str,
    actor: Any = None,
    actor_username: str = "",
    target: str = "",
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    source: str = "",
) -> AuditEvent:
    """Record one event. ``action`` is a dotted slug (``login.failed``, ``launch.approved``)."""
    clean = {
        k: ("[redacted]" if any(s in k.lower() for s in _SECRET_KEYS) else v)
        for k, v in (detail or {}).items()
    }
    if actor is not None and not getattr(actor, "pk", None):
        actor = None
    username = actor_username or (actor.username if actor is not None else "")
    event = AuditEvent.objects.create(
        at=clock.now(),
        actor=actor,
        actor_username=username[:150],
        action=action,
        target=target[:255],
        detail=clean,
        source=source or ("web" if request is not None else "task"),
        address=request.META.get("REMOTE_ADDR") if request is not None else None,
    )
    logger.info("audit %s actor=%s target=%s", action, username or "-", target or "-")
    return event
