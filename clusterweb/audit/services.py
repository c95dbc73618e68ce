"""The one way anything in Clusterweb writes to the audit log."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest

from clusterweb import clock
from clusterweb.audit.models import AuditEvent
from clusterweb.logs import escape_controls

logger = logging.getLogger("clusterweb.audit")

# Keys whose values never enter the log, whatever a caller passes.
_SECRET_KEYS = {"password", "token", "secret", "key", "passwd"}


def _redacted(value: Any) -> Any:
    """``value`` with the value of every secret-looking key replaced, at any depth."""
    if isinstance(value, dict):
        return {
            k: "[redacted]" if any(s in str(k).lower() for s in _SECRET_KEYS) else _redacted(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


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
    clean = _redacted(detail or {})
    if actor is not None and not getattr(actor, "pk", None):
        actor = None
    username = actor_username or (actor.username if actor is not None else "")
    event = AuditEvent.objects.create(
        at=clock.now(),
        actor=actor,
        # Stored escaped as well: the Audit page shows no invisible characters, and PostgreSQL
        # refuses NUL in text.
        actor_username=escape_controls(username)[:150],
        action=action,
        target=escape_controls(target)[:255],
        detail=clean,
        source=source or ("web" if request is not None else "task"),
        address=request.META.get("REMOTE_ADDR") if request is not None else None,
    )
    logger.info(
        "audit %s actor=%s target=%s",
        escape_controls(action),
        escape_controls(username) or "-",
        escape_controls(target) or "-",
    )
    return event
