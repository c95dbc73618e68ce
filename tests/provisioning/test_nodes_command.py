"""`manage.py nodes [--all] [--user UID] [--json]`: the nodes page's table on the command line,
one JSON object `{"nodes": [...]}` whose rows each have `id` and `state`; freshness on stderr."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command

from clusterweb import clock
from tests.provisioning.conftest import node_make, sync_ok

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

ROW_KEYS = [
    "id", "state", "name", "node_name", "pool", "instance_type", "capacity_type", "zone",
    "ready", "owner", "request", "launched_at", "terminated_at", "uptime_seconds",
    "state_reason", "spot_interrupted_at", "public_ipv4", "cpu", "memory_bytes", "gpus",
    "hourly", "price", "ipv4_price",
]  # fmt: skip


def nodes_json(capsys, *args: str) -> tuple[dict, str]:
    call_command("nodes", "--json", *args)
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_nodes_json_prints_exactly_one_object_with_a_row_per_live_node(capsys):
    sync_ok(at=clock.now() - timedelta(seconds=30))
    launched = clock.now() - timedelta(hours=2)
    node_make(instance_id="i-0aaaaaaaaaaaaaaaa", node_name="ip-10-0-0-1", owner="bob",
              launched_at=launched, public_ipv4="54.1.2.3", request="42")  # fmt: skip
    node_make(state="terminated", terminated_at=clock.now())

    body, err = nodes_json(capsys)

    assert list(body) == ["nodes"]
    [row] = body["nodes"]
    assert list(row) == ROW_KEYS
    assert row["id"] == "i-0aaaaaaaaaaaaaaaa" and row["state"] == "running"
    assert row["name"] == "ip-10-0-0-1" and row["pool"] == "spark" and row["owner"] == "bob"
    assert row["capacity_type"] == "on-demand" and row["ready"] is True and row["request"] == "42"
    assert row["launched_at"] == launched.isoformat() and row["terminated_at"] is None
    assert 7190 < row["uptime_seconds"] < 7300
    assert row["cpu"] == "3.92" and row["memory_bytes"] == 16 * 1024**3 and row["gpus"] == 0
    assert row["hourly"] == "0.219"  # 0.214 on-demand + 0.005 public IPv4
    assert row["price"]["hourly"] == "0.214" and row["price"]["kind"] == "on-demand"
    assert row["price"]["source"].startswith("catalog: ")
    assert row["ipv4_price"]["hourly"] == "0.005"
    assert "inventory as of" in err and "(30 s ago)" in err


def test_all_includes_terminated_nodes_and_user_filters_by_owner(capsys):
    sync_ok()
    node_make(owner="bob")
    gone = node_make(owner="bob", state="terminated", terminated_at=clock.now())
    node_make(owner="carol")

    everything, _ = nodes_json(capsys, "--all")
    assert len(everything["nodes"]) == 3
    ended = next(r for r in everything["nodes"] if r["id"] == gone.instance_id)
    assert ended["state"] == "terminated" and ended["hourly"] is None and ended["price"] is None

    bobs, _ = nodes_json(capsys, "--all", "--user", "bob")
    assert {r["owner"] for r in bobs["nodes"]} == {"bob"} and len(bobs["nodes"]) == 2


def test_an_unknown_price_is_null_with_its_notice(capsys):
    sync_ok()
    node_make(instance_type="x9z.mega")
    body, _ = nodes_json(capsys)
    [row] = body["nodes"]
    assert row["hourly"] is None and row["price"]["hourly"] is None
    assert row["price"]["notice"].startswith("price unknown")


def test_a_stale_inventory_is_reported_on_stderr(capsys):
    sync_ok(at=clock.now() - timedelta(minutes=10), ec2="aws RequestLimitExceeded: slow down")
    body, err = nodes_json(capsys)
    assert body == {"nodes": []}
    assert "warning: EC2 instances, volumes and addresses: last read 600 s ago" in err
    assert "aws RequestLimitExceeded: slow down" in err


def test_the_table_form_lists_nodes_with_price_and_source(capsys):
    sync_ok()
    node_make(node_name="spark-1", capacity_type="spot", zone="eu-west-1b")
    call_command("nodes")
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("ID")
    assert "spark-1" in out and "spot price unknown, on-demand shown" in out
