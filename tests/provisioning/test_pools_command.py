"""`manage.py pools [--json]` and `pools load [FILE] --by UID` (FILE defaults to POOLS_FILE):
production pools from a JSON or YAML file, all or nothing, by an admin, audited."""

from __future__ import annotations

import json

import pytest
import yaml
from django.core.management import call_command

from clusterweb.audit.models import AuditEvent
from provisioning.models import Pool

pytestmark = pytest.mark.django_db

POOLS = {
    "pools": [
        {"slug": "control", "kind": "base", "instance_types": ["t2.micro"],
         "lifecycle": "on-demand", "max_nodes": 1, "max_hours": None, "zones": ["eu-west-1a"]},
        {"slug": "gpu", "kind": "burst", "instance_types": ["g4dn.xlarge", "g5.xlarge"],
         "lifecycle": "spot", "on_demand_fallback": False, "max_nodes": 2, "max_hours": 24,
         "taints": ["nvidia.com/gpu=present:NoSchedule"],
         "labels": {"clusterweb.io/pool": "gpu"}},
    ]
}  # fmt: skip


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        call_command("pools", *args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_admin_loads_pools_from_a_json_file(tmp_path, capsys, directory_server):
    path = tmp_path / "pools.json"
    path.write_text(json.dumps(POOLS))

    code, out, _ = run(capsys, "load", str(path), "--by", "alice", "--json")

    assert code == 0
    loaded = json.loads(out)["pools"]
    assert [(p["id"], p["change"]) for p in loaded] == [("control", "created"), ("gpu", "created")]
    gpu = Pool.objects.get(slug="gpu")
    assert gpu.taints == ["nvidia.com/gpu=present:NoSchedule"] and gpu.max_hours == 24
    event = AuditEvent.objects.get(action="pools.loaded")
    assert event.actor_username == "alice" and event.detail["created"] == ["control", "gpu"]


def test_pools_json_round_trips_through_load(tmp_path, capsys, directory_server):
    path = tmp_path / "pools.json"
    path.write_text(json.dumps(POOLS))
    run(capsys, "load", str(path), "--by", "alice")

    code, out, _ = run(capsys, "--json")
    listed = json.loads(out)
    assert code == 0 and [p["id"] for p in listed["pools"]] == ["control", "gpu"]
    path.write_text(out)
    code, out, _ = run(capsys, "load", str(path), "--by", "alice", "--json")
    assert {p["change"] for p in json.loads(out)["pools"]} == {"unchanged"}


def test_a_yaml_file_named_by_pools_file_is_the_default(
    tmp_path, capsys, settings, directory_server
):
    path = tmp_path / "pools.yaml"
    path.write_text(yaml.safe_dump(POOLS))
    settings.POOLS_FILE = str(path)

    code, _, err = run(capsys, "load", "--by", "alice")

    assert code == 0 and "created: control, gpu" in err
    assert Pool.objects.count() == 2


def test_a_bad_file_is_refused_whole_naming_the_pool_and_field(tmp_path, capsys):
    bad = json.loads(json.dumps(POOLS))
    bad["pools"][1]["max_hours"] = None
    path = tmp_path / "pools.json"
    path.write_text(json.dumps(bad))

    code, _, err = run(capsys, "load", str(path), "--by", "alice")

    assert code == 2
    assert "max_hours: pool gpu: a burst pool needs max_hours" in err
    assert not Pool.objects.exists()  # the valid first pool was not stored either


def test_loading_needs_an_admin(tmp_path, capsys, directory_server):
    path = tmp_path / "pools.json"
    path.write_text(json.dumps(POOLS))
    code, _, err = run(capsys, "load", str(path), "--by", "bob")
    assert code == 3 and "Only admins" in err
    assert not Pool.objects.exists()


def test_without_a_file_or_pools_file_the_field_is_named(capsys, settings):
    settings.POOLS_FILE = ""
    code, _, err = run(capsys, "load", "--by", "alice")
    assert code == 2 and err.startswith("file:")
