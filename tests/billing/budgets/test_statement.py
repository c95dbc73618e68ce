"""The monthly statement: on the 1st, each collaborator gets what their launches cost last month
(per launch, per kind, total; an estimate until the bill is final) with a CSV, and the admins
the whole cluster's, in which the collaborators' lines, the shared base and the unallocated line
add up to the month's total. Once per person per month."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from billing.budgets.models import Statement
from billing.budgets.selectors import SHARED_BASE, UNALLOCATED
from billing.budgets.services import budget_run
from billing.costs import costing
from billing.costs.selectors import month_estimate
from tests.billing.budgets.conftest import at, base_node, costs_at, spark_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def january(clock_at, pools, people):
    """January: the always-on node (with a public IPv4 address, which nobody owns), bob's Spark
    launch r-1 all month and his GPU launch r-2 for nine days; now is Feb 1, 00:30."""
    base_node(at(1, 1), public_ipv4="203.0.113.10")
    spark_node(at(1, 1))
    spark_node(
        at(1, 1),
        pool="gpu",
        instance_type="g5.xlarge",
        request="r-2",
        state="terminated",
        terminated_at=at(1, 10),
    )
    now = clock_at(at(2, 1, 0, 30))
    costs_at(now)
    return now


def rows_of(mail):
    (attachment,) = list(mail.message.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_filename() == "clusterweb-2027-01.csv"
    return list(csv.DictReader(io.StringIO(attachment.get_content())))


def test_on_the_1st_each_person_gets_last_months_statement_once_with_a_csv(january, mailbox):
    run = budget_run()

    assert sorted(s["what"] for s in run.sent) == ["statement alice", "statement bob"]
    mails = {m.recipients[0]: m for m in mailbox.wait_for(2)}
    assert set(mails) == {"alice@example.org", "bob@example.org"}
    total = month_estimate(costing.midnight(at(1, 1).date())).total

    bob = mails["bob@example.org"]
    assert "Your statement for January 2027" in bob.subject and "(estimate)" in bob.subject
    assert "This is an ESTIMATE" in bob.text()
    lines = rows_of(bob)
    assert [(r["owner"], r["launch"], r["kind"]) for r in lines[:-1]] == [
        ("bob", "r-1", "spark"),
        ("bob", "r-2", "gpu"),
    ]
    assert all(Decimal(r["amount_usd"]) > 0 for r in lines)
    assert lines[-1]["kind"] == "total"
    assert Decimal(lines[-1]["amount_usd"]) == sum(Decimal(r["amount_usd"]) for r in lines[:-1])
    assert "Per kind:" in bob.text() and "gpu: $" in bob.text()

    alice = mails["alice@example.org"]
    assert "Cluster statement for January 2027" in alice.subject
    cluster = rows_of(alice)
    kinds = [r["kind"] for r in cluster]
    assert kinds == ["spark", "gpu", SHARED_BASE, UNALLOCATED, "total"]
    parts = sum(Decimal(r["amount_usd"]) for r in cluster[:-1])
    assert parts == Decimal(cluster[-1]["amount_usd"]) == total
    assert Decimal(cluster[2]["amount_usd"]) > 0  # the base node
    assert Decimal(cluster[3]["amount_usd"]) > 0  # its public IPv4 address: nobody's
    assert (
        Statement.objects.get(username="alice").message_id("localhost")
        == (alice.message["Message-ID"])
    )

    again = budget_run()

    assert again.sent == [] and Statement.objects.count() == 2
    assert len(mailbox.messages) == 2


def test_no_statement_before_last_month_is_computed_to_its_end_nor_late_in_the_month(
    clock_at, pools, people, mailbox
):
    spark_node(at(1, 1))
    costs_at(clock_at(at(1, 31, 23)))  # January computed up to 23:00 only
    clock_at(at(2, 1, 0, 5))

    assert budget_run().sent == [] and not Statement.objects.exists()

    clock_at(at(3, 9))  # February's statements are due in March's first days only
    costs_at(at(3, 9))
    assert budget_run().sent == [] and not Statement.objects.exists()


def test_an_address_the_mail_library_refuses_fails_that_email_only_and_the_others_go_out(
    january, mailbox
):
    """Two addresses in one directory ``mail`` value make Django's SMTP backend raise
    ValueError ("Invalid address"), not an SMTP error. That email stays claimed with the error
    and its backoff; the run goes on and bob's statement still goes out."""
    from clusterweb.accounts.models import User

    User.objects.filter(username="alice").update(email="alice@example.org, ops@example.org")

    run = budget_run()

    assert [s["what"] for s in run.sent] == ["statement bob"]
    assert [f["what"] for f in run.failed] == ["statement alice"]
    alice = Statement.objects.get(username="alice")
    assert alice.state == "pending" and "Invalid address" in alice.last_error
    assert alice.next_attempt_at > alice.claimed_at  # backing off, not retried in a loop
    assert [m.recipients for m in mailbox.wait_for(1)] == [["bob@example.org"]]
