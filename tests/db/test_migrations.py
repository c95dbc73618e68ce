"""Migrations apply from nothing and roll back, on SQLite and PostgreSQL."""

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def test_migrations_roll_back_to_zero_and_forward_again():
    for app in ("audit", "health", "accounts"):
        call_command("migrate", app, "zero", verbosity=0)
    assert "audit_auditevent" not in connection.introspection.table_names()
    call_command("migrate", verbosity=0)
    assert {"audit_auditevent", "health_heartbeat", "accounts_user"} <= set(
        connection.introspection.table_names()
    )


def test_sqlite_connections_use_wal_and_immediate_transactions(settings):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: PostgreSQL has neither setting")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == settings.DATABASE_TIMEOUT * 1000
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
