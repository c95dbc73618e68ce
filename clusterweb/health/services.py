"""The watchdog, the late-job alert, and the checks behind the health endpoints."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q

from clusterweb import clock
from clusterweb.errors import TransientError
from clusterweb.health.jobs import heartbeat_register
from clusterweb.health.models import Heartbeat, ProcessBeat
from clusterweb.integrations import mail

logger = logging.getLogger(__name__)

# After a failed attempt to send the late-job alert the next waits this long, doubling with each
# failure up to the maximum: a dead mail server is tried a few times an hour, not at every chance.
ALERT_BACKOFF_SECONDS = 30
ALERT_BACKOFF_MAX_SECONDS = 900
NO_RECIPIENT = "no recipient"


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
    """Email admins about late jobs not yet alerted in this incident; returns the names alerted.

    Callers: the watchdog on a worker, and the web process's alert thread while the watchdog
    itself is late (``alerter``) - never a page request. Each job is claimed with a conditional
    UPDATE that sets a lease (the mail timeout plus a margin), so concurrent callers send one mail
    and a caller that dies mid-attempt holds nothing for long. A failed attempt (the mail server,
    or nobody to send to) releases the claim, records why, and sets when the next may start."""
    now = clock.now()
    lease = now + timedelta(seconds=2 * settings.EMAIL_TIMEOUT + 30)
    claimable = (
        Q(alerted_at__isnull=True)
        & (Q(alert_claimed_until__isnull=True) | Q(alert_claimed_until__lt=now))
        & (Q(alert_next_attempt_at__isnull=True) | Q(alert_next_attempt_at__lte=now))
    )
    claimed = [
        beat
        for beat in heartbeats_late()
        if Heartbeat.objects.filter(claimable, pk=beat.pk).update(alert_claimed_until=lease)
    ]
    if not claimed:
        return []
    recipients = alert_recipients()
    if not recipients:
        logger.warning("late-job alert not sent: nobody to send it to (see ALERT_EMAILS)")
        _alert_failed(claimed, NO_RECIPIENT)
        return []
    try:
        mail.jobs_late_alert_send(to=recipients, jobs=claimed, now=now)
    except TransientError as exc:
        logger.warning("late-job alert not sent (%s); will try again", exc)
        _alert_failed(claimed, str(exc))
        return []
    Heartbeat.objects.filter(pk__in=[b.pk for b in claimed]).update(
        alerted_at=clock.now(), alert_claimed_until=None, alert_next_attempt_at=None, alert_error=""
    )
    from clusterweb.audit.services import audit_record

    audit_record(
        action="health.jobs_late_alerted",
        target=",".join(b.name for b in claimed),
        detail={"recipients": len(recipients)},
        source="task",
    )
    return [beat.name for beat in claimed]


def _alert_failed(claimed: list[Heartbeat], error: str) -> None:
    now = clock.now()
    for beat in claimed:
        failures = beat.alert_failures + 1
        delay = min(ALERT_BACKOFF_SECONDS * 2 ** (failures - 1), ALERT_BACKOFF_MAX_SECONDS)
        Heartbeat.objects.filter(pk=beat.pk).update(
            alert_claimed_until=None,
            alert_failures=failures,
            alert_next_attempt_at=now + timedelta(seconds=delay),
            alert_error=error[:500],
        )


def watchdog_running() -> bool:
    """Whether the watchdog (beat and a worker) runs: then it sends the late-job alert itself."""
    beat = Heartbeat.objects.filter(pk="watchdog").first()
    return beat is not None and not beat.is_late(clock.now())


def late_jobs_alert_unless_watchdog_runs() -> list[str]:
    """The web process's share of the alert: only while the watchdog cannot send it."""
    if watchdog_running():
        return []
    return late_jobs_alert()


def alert_status(late: list[Heartbeat]) -> dict[str, Any]:
    """What the banner says about the alert for these late jobs: ``emailed`` (with when),
    ``nobody`` (there is no recipient: nobody was told) or ``pending`` (not yet sent; ``error``
    is the last failure, if any)."""
    if late and all(beat.alerted_at for beat in late):
        return {"state": "emailed", "at": max(beat.alerted_at for beat in late)}
    open_ = [beat for beat in late if beat.alerted_at is None]
    if any(beat.alert_error == NO_RECIPIENT for beat in open_):
        return {"state": "nobody"}
    errors = [beat.alert_error for beat in open_ if beat.alert_error]
    return {"state": "pending", "error": errors[0] if errors else ""}


# -- health ---------------------------------------------------------------------------------------

_migrated = False  # once this process has seen every migration applied, it stops looking


def readiness() -> tuple[bool, str]:
    """Whether this process can serve pages: the database answers and every migration is
    applied. Returns ``(ready, reason)``; the reason says what to do."""
    global _migrated
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return False, f"database unreachable ({type(exc).__name__}): check DATABASE_URL"
    if _migrated:
        return True, ""
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return False, f"cannot read the migrations ({type(exc).__name__})"
    if plan:
        names = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return False, (
            f"migrations not applied: {', '.join(names[:3])}{more}; run manage.py migrate"
        )
    _migrated = True
    return True, ""


def readiness_forget() -> None:
    """Look at the migrations again at the next readiness check (tests)."""
    global _migrated
    _migrated = False


def redis_status() -> dict[str, Any]:
    """Redis answers PING within REDIS_TIMEOUT: ``{"ok": True}`` or ``{"ok": False, "error"}``."""
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=settings.REDIS_TIMEOUT,
            socket_timeout=settings.REDIS_TIMEOUT,
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


def process_beat_record(name: str, detail: str = "") -> None:
    """Record that the process ``name`` (``worker``, ``beat``) is alive now."""
    ProcessBeat.objects.update_or_create(
        name=name, defaults={"seen_at": clock.now(), "detail": detail[:255]}
    )


def process_status(name: str) -> dict[str, Any]:
    """A process's liveness from the heartbeat it records: alive when seen within two heartbeat
    intervals (it records one every interval)."""
    beat = ProcessBeat.objects.filter(pk=name).first()
    if beat is None:
        return {"ok": False, "age_seconds": None, "error": "never seen"}
    age = beat.age_seconds(clock.now())
    limit = settings.HEARTBEAT_INTERVAL_SECONDS * Heartbeat.LATE_AFTER_INTERVALS
    status: dict[str, Any] = {
        "ok": age <= limit,
        "age_seconds": age,
        "last_seen_at": beat.seen_at.isoformat(),
    }
    if age > limit:
        status["error"] = f"not seen for {age} s"
    return status


def health_report() -> dict[str, Any]:
    """Everything /healthz says. The database, Redis and LDAP are asked (each with its own short
    timeout); the worker and beat are judged from the heartbeats they record. Nothing here
    raises."""
    now = clock.now()
    report: dict[str, Any] = {"time": now.isoformat()}
    ready, reason = readiness()
    report["database"] = {"ok": True} if ready else {"ok": False, "error": reason}
    report["redis"] = redis_status()
    report["ldap"] = _check_ldap()
    jobs: dict[str, Any] = {}
    if ready:
        report["worker"] = process_status("worker")
        report["beat"] = process_status("beat")
        for beat in Heartbeat.objects.order_by("name"):
            jobs[beat.name] = {
                "age_seconds": beat.age_seconds(now),
                "interval_seconds": beat.interval_seconds,
                "late": beat.is_late(now),
                "last_ok_at": beat.last_ok_at.isoformat() if beat.last_ok_at else None,
                "failing": bool(beat.last_error),
            }
    else:
        report["worker"] = report["beat"] = {"ok": False, "error": "database not ready"}
    report["jobs"] = jobs
    report["ok"] = all(
        report[k]["ok"] for k in ("database", "redis", "ldap", "worker", "beat")
    ) and (not any(job["late"] for job in jobs.values()))
    return report
