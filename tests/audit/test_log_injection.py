"""Issue 13, finding 13: control characters in a user name or any audited value never reach a log
line raw (they are escaped, so one event is one line), and secret keys are redacted at any depth
of an audit event's detail."""

import logging

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils.module_loading import import_string
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from clusterweb.audit.models import AuditEvent
from clusterweb.audit.services import audit_record

pytestmark = pytest.mark.django_db

CONTROLS = "\n\r\x00\x1b\x07\x0b\x0c\x7f\x85\u2028\u2029\u202e\u2066"


def configured_formatter() -> logging.Formatter:
    """The formatter settings.LOGGING gives the console handler (what reaches the log)."""
    handler = settings.LOGGING["handlers"]["console"]
    spec = settings.LOGGING["formatters"][handler["formatter"]]
    cls = import_string(spec.get("class", "logging.Formatter"))
    return cls(spec["format"])


def log_lines(caplog) -> list[str]:
    formatter = configured_formatter()
    return [formatter.format(record) for record in caplog.records]


def assert_clean(line: str) -> None:
    bad = [ch for ch in line if ch in CONTROLS]
    assert not bad, f"raw control characters {bad!r} in {line!r}"


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    username=st.text(alphabet=st.sampled_from("bob" + CONTROLS), min_size=1, max_size=20),
    target=st.text(max_size=30),
)
def test_an_audited_value_with_control_characters_is_one_escaped_line(caplog, username, target):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="clusterweb.audit"):
        audit_record(action="login.failed", actor_username=username, target=target)
    [line] = log_lines(caplog)
    assert_clean(line)
    assert "\n" not in line


def test_a_forged_log_line_in_a_login_name_stays_inside_its_own_line(
    client, caplog, directory_server
):
    forged = "bob\n2026-01-01 00:00:00,000 INFO clusterweb.audit audit login.succeeded actor=alice"
    with caplog.at_level(logging.INFO):
        client.post(reverse("login"), {"username": forged, "password": "wrong"})
    lines = [line for text in log_lines(caplog) for line in text.splitlines()]
    assert lines, "the failed login was logged"
    assert not any(line.startswith("2026-01-01") for line in lines), lines
    assert any("bob\\n2026-01-01" in line for line in lines), lines


def test_secret_keys_are_redacted_at_every_depth():
    event = audit_record(
        action="test.detail",
        detail={
            "password": "top",
            "outer": {"new_password": "nested", "ok": 1, "deeper": {"api_token": "t"}},
            "items": [{"secret": "in a list"}, "plain"],
        },
    )
    stored = AuditEvent.objects.get(pk=event.pk).detail
    assert stored == {
        "password": "[redacted]",
        "outer": {"new_password": "[redacted]", "ok": 1, "deeper": {"api_token": "[redacted]"}},
        "items": [{"secret": "[redacted]"}, "plain"],
    }


def test_the_celery_worker_log_escapes_too():
    from clusterweb.celery import escape_worker_log

    logger = logging.getLogger("test.worker")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    try:
        escape_worker_log(logger=logger)
        record = logger.makeRecord(
            "test.worker", logging.INFO, __file__, 1, "user %s", ("a\nb",), None
        )
        assert handler.formatter.format(record) == "user a\\nb"
    finally:
        logger.removeHandler(handler)
