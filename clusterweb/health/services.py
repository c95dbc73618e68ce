"""The watchdog, and the checks behind /healthz."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import connection

from clusterweb import clock
from clusterweb.errors import TransientError
from clusterweb.health.jobs import heartbeat_register
from clusterweb.health.models import Heartbeat
from clusterweb.integrations import mail

logger = logging.getLogger(__name__)


def heartbeats_register_scheduled() -> None:
    """Give every job of the beat schedule a row, so one that never runs shows as late."""
    from clusterweb.celery import beat_schedule

    for name, entry in beat_schedule().items():
        heartbeat_register(name, int(entry["schedule"]))


def heartbeats_late() -> list[Heartbeat]:
    now = clock.now()
    return [beat for beat in Heartbeat.objects.order_by("name") if beat.is_late(now)]


def alert_recipients() -> list[str]:
    if settings.ALERT_EMAILS:
        return list(settings.ALERT_EMAILS)
    from clusterweb.accounts.models import User

    admins = User.objects.filter(is_active=True, is_cluster_admin=True).exclude(email="")
    return sorted(set(admins.values_list("email", flat=True)))


def late_jobs_alert() -> list[str]:
    """Email admins about late jobs not yet alerted in this incident. Each job is claimed with a
    conditional UPDATE, so concurrent callers (the beat job, page requests) send one mail.
    Returns the names alerted."""
    now = clock.now()
    claimed = [
        beat
        for beat in heartbeats_late()
        if Heartbeat.objects.filter(pk=beat.pk, alerted_at__isnull=True).update(alerted_at=now)
    ]
    if not claimed:
        return []
    try:
        mail.jobs_late_alert_send(to=alert_recipients(), jobs=claimed, now=now)
    except TransientError:
        logger.exception("late-job alert not sent; will try again")
        Heartbeat.objects.filter(pk__in=[b.pk for b in claimed]).update(alerted_at=None)
        return []
    from clusterweb.audit.services import audit_record

    audit_record(
        action="health.jobs_late_alerted", target=",".join(b.name for b in claimed), source="task"
    )
    return [beat.name for beat in claimed]


def _check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def _check_redis() -> dict[str, Any]:
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
        client.close()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def _check_ldap() -> dict[str, Any]:
    from clusterweb.integrations import ldap as directory

    try:
        directory.ping()
        return {"ok": True}
    except TransientError as exc:
        return {"ok": False, "error": str(exc)}


def _check_worker(redis_ok: bool) -> dict[str, Any]:
    if not redis_ok:
        return {"ok": False, "error": "broker unreachable"}
    from clusterweb.celery import app

    try:
        replies = app.control.ping(timeout=1.0)
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": bool(replies), "workers": len(replies)}


def health_report() -> dict[str, Any]:
    """Everything /healthz says. Each check has a short timeout; nothing here raises."""
    now = clock.now()
    report: dict[str, Any] = {"time": now.isoformat()}
    report["database"] = _check_database()
    report["redis"] = _check_redis()
    report["ldap"] = _check_ldap()
    report["worker"] = _check_worker(report["redis"]["ok"])
    jobs: dict[str, Any] = {}
    if report["database"]["ok"]:
        for beat in Heartbeat.objects.order_by("name"):
            jobs[beat.name] = {
                "age_seconds": beat.age_seconds(now),
                "interval_seconds": beat.interval_seconds,
                "late": beat.is_late(now),
                "last_ok_at": beat.last_ok_at.isoformat() if beat.last_ok_at else None,
                "failing": bool(beat.last_error),
            }
    report["jobs"] = jobs
    watchdog = jobs.get("watchdog")
    report["beat"] = {
        "ok": bool(watchdog) and not watchdog["late"],
        "age_seconds": watchdog["age_seconds"] if watchdog else None,
    }
    report["ok"] = all(
        report[k]["ok"] for k in ("database", "redis", "ldap", "worker", "beat")
    ) and (not any(job["late"] for job in jobs.values()))
    return report
