"""The admin-only Audit page and the audit service."""

from datetime import datetime, timedelta

import pytest
from django.urls import reverse

from clusterweb import clock
from clusterweb.audit.models import AuditEvent
from clusterweb.audit.services import audit_record

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def events_section(response) -> str:
    content = response.content.decode()
    start = content.index('<section id="events">')
    return content[start : content.index("</section>", start)]


def test_audit_record_never_stores_secret_values():
    event = audit_record(
        action="account.password_changed",
        actor_username="bob",
        detail={"password": "hunter2", "new_token": "abc", "field": "x"},
    )
    event.refresh_from_db()
    assert event.detail == {"password": "[redacted]", "new_token": "[redacted]", "field": "x"}


def test_audit_record_stamps_the_project_clock(shared_clock):
    shared_clock.advance(3600)
    event = audit_record(action="test.clock")
    assert abs((event.at - clock.now()).total_seconds()) < 5
    assert event.at - datetime.now(event.at.tzinfo) > timedelta(minutes=59)


def test_admins_see_events_newest_first(as_alice):
    audit_record(action="login.failed", actor_username="mallory")
    audit_record(action="launch.approved", actor_username="alice", target="request 7")
    page = as_alice.get(reverse("audit:list"))
    assert page.status_code == 200
    content = page.content.decode()
    assert content.index("launch.approved") < content.index("login.failed")
    assert "request 7" in content


def test_filters_by_action_prefix_user_and_dates(as_alice):
    audit_record(action="login.failed", actor_username="mallory")
    audit_record(action="launch.approved", actor_username="alice")
    old = audit_record(action="login.succeeded", actor_username="bob")
    AuditEvent.objects.filter(pk=old.pk).update(at=clock.now() - timedelta(days=10))
    content = events_section(as_alice.get(reverse("audit:list"), {"action": "login"}))
    assert "login.failed" in content and "launch.approved" not in content
    content = events_section(as_alice.get(reverse("audit:list"), {"actor": "MALLORY"}))
    assert "login.failed" in content and "launch.approved" not in content
    since = (clock.now() - timedelta(days=2)).date().isoformat()
    content = events_section(as_alice.get(reverse("audit:list"), {"since": since}))
    assert "login.failed" in content and "login.succeeded" not in content


def test_an_htmx_filter_request_gets_only_the_events_fragment(as_alice):
    audit_record(action="login.failed", actor_username="mallory")
    response = as_alice.get(reverse("audit:list"), {"action": "login"}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="events">')
    assert "<html" not in content


def test_bad_filter_values_get_a_message_not_an_error(as_alice):
    response = as_alice.get(reverse("audit:list"), {"since": "yesterday", "until": "2026-13-45"})
    assert response.status_code == 200
    assert b"Enter a valid date" in response.content
    response = as_alice.get(reverse("audit:list"), {"since": "2026-05-02", "until": "2026-05-01"})
    assert b"must not be after" in response.content


def test_collaborators_may_not_read_the_audit_log(as_bob):
    assert as_bob.get(reverse("audit:list")).status_code == 403
