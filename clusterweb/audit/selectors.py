from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.db.models import QuerySet

from clusterweb.audit.models import AuditEvent


def audit_event_list(
    *, action: str = "", actor: str = "", since: date | None = None, until: date | None = None
) -> QuerySet[AuditEvent]:
    """Events newest first, filtered. ``action`` matches a prefix (``login`` finds every login
    event); ``until`` includes the whole day."""
    events = AuditEvent.objects.all()
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_username__iexact=actor)
    if since:
        events = events.filter(at__gte=datetime.combine(since, time.min, tzinfo=UTC))
    if until:
        events = events.filter(
            at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
        )
    return events


def audit_action_choices() -> list[str]:
    return list(AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct())
