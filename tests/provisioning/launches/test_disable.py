"""Disabling a person cancels their launch requests that run nothing yet, in the same step as
the rest of the database side of a disable."""

from __future__ import annotations

import pytest

from clusterweb.accounts.directory import services as account_services
from clusterweb.audit.models import AuditEvent
from tests.provisioning.launches.test_requests import spark

pytestmark = pytest.mark.django_db


def test_disabling_bob_cancels_his_pending_request(
    pools, spot_prices, alice_user, bob_user, account_directory
):
    launch = spark(bob_user)

    account_services.account_disable(uid="bob", actor=alice_user, source="cli")

    launch.refresh_from_db()
    assert launch.state == "cancelled" and launch.stop_reason == "disabled"
    cancelled = AuditEvent.objects.get(action="launch.cancelled")
    assert cancelled.actor_username == "alice" and cancelled.detail["reason"] == "bob was disabled"
    assert AuditEvent.objects.get(action="account.disabled").detail["launches_cancelled"] == 1
