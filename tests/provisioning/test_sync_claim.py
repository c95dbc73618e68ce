"""The sync's claim: one conditional UPDATE decides who runs; a second run sees the claim and
returns; a claim left by a dead worker expires; only its holder releases it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from clusterweb import clock
from provisioning import inventory
from provisioning.models import SyncClaim

pytestmark = pytest.mark.sqlite
NAME = inventory.INVENTORY_CLAIM


@pytest.mark.django_db
def test_a_second_run_sees_the_claim_and_returns_at_once():
    first = inventory.sync_claim(NAME)
    assert first
    assert inventory.sync_claim(NAME) == ""

    result = inventory.inventory_sync()  # would call AWS if it ran: no AWS is configured here

    assert result.claimed is False and result.parts == {}
    inventory.sync_release(NAME, first)
    assert inventory.sync_claim(NAME)


@pytest.mark.django_db
def test_a_claim_left_by_a_dead_worker_expires():
    inventory.sync_claim(NAME, seconds=600)
    later = clock.now() + timedelta(seconds=601)

    assert inventory.sync_claim(NAME, now=later)


@pytest.mark.django_db
def test_only_the_holder_releases_a_claim():
    token = inventory.sync_claim(NAME)
    inventory.sync_release(NAME, "someone-else")
    assert SyncClaim.objects.get(name=NAME).token == token
    inventory.sync_release(NAME, token)
    claim = SyncClaim.objects.get(name=NAME)
    assert claim.claimed_until is None and claim.token == ""


@pytest.mark.django_db(transaction=True)
def test_of_runs_started_together_exactly_one_wins():
    start = threading.Barrier(4)
    tokens: list[str] = []

    def run() -> None:
        try:
            start.wait()
            tokens.append(inventory.sync_claim(NAME))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(tokens) == 4
    assert sum(bool(t) for t in tokens) == 1
