"""`manage.py estimate --plan FILE [--json]`: the catalog's prices, overrides, spot, and every kind
of bad plan (exit 2, naming the item and the field)."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from billing.models import PriceGap, PriceOverride
from clusterweb import clock
from tests.billing.conftest import spot_point, spot_record

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def instance(label="workers", **extra):
    item = {
        "label": label,
        "kind": "instance",
        "instance_type": "m5.xlarge",
        "lifecycle": "on-demand",
        "count": 10,
        "hours": 4,
    }
    return {**item, **extra}


def estimate(tmp_path, plan, *, as_json=True):
    path = tmp_path / "plan.json"
    path.write_text(plan if isinstance(plan, str) else json.dumps(plan))
    out, err = StringIO(), StringIO()
    args = ["estimate", "--plan", str(path)] + (["--json"] if as_json else [])
    call_command(*args, stdout=out, stderr=err)
    return (json.loads(out.getvalue()) if as_json else out.getvalue()), err.getvalue()


def test_json_has_exactly_the_documented_shape_and_the_total_is_the_sum_of_rounded_items(tmp_path):
    plan = {
        "region": "eu-west-1",
        "items": [
            instance("control", instance_type="t2.micro", count=1, hours=730),
            {"label": "data", "kind": "storage", "service": "ebs-gp3", "gb": 100, "months": 1},
            {"label": "domain", "kind": "fixed", "monthly": "1.25", "months": 12},
            instance("tiny", instance_type="t3.nano", count=1, hours=1),
        ],
    }
    result, _ = estimate(tmp_path, plan)
    assert set(result) == {"currency", "items", "total"} and result["currency"] == "USD"
    assert [set(item) for item in result["items"]] == [
        {"label", "cost", "price", "price_source"}
    ] * 4
    costs = [item["cost"] for item in result["items"]]
    assert costs == ["9.20", "8.80", "15.00", "0.01"]  # 0.0126 x 730 = 9.198; 0.0057 x 1
    assert result["total"] == "33.01" == str(sum(Decimal(c) for c in costs))
    assert result["items"][0]["price"] == "0.0126"
    assert "skypilot-catalog" in result["items"][0]["price_source"]
    assert "2026-11-29" in result["items"][0]["price_source"]
    assert result["items"][2]["price_source"] == "given in the plan"


def test_an_admin_override_is_used_and_named(tmp_path):
    PriceOverride.objects.create(
        kind="on-demand",
        region="eu-west-1",
        item="m5.xlarge",
        price=Decimal("0.3"),
        note="negotiated",
        effective_from=clock.now() - timedelta(minutes=1),
        created_by_username="alice",
    )
    result, _ = estimate(tmp_path, {"region": "eu-west-1", "items": [instance()]})
    item = result["items"][0]
    assert (item["price"], item["cost"]) == ("0.30", "12.00")
    assert "override by alice" in item["price_source"] and "negotiated" in item["price_source"]


def test_a_price_given_in_the_plan_wins(tmp_path):
    result, _ = estimate(tmp_path, {"items": [instance(hourly="0.1")]})
    assert result["items"][0]["cost"] == "4.00"


def test_spot_uses_the_current_spot_price_when_one_can_be_trusted(tmp_path):
    spot_record(
        spot_point("m5.xlarge", "0.0712", clock.now() - timedelta(hours=1)),
        spot_point("m5.xlarge", "0.0650", clock.now() - timedelta(hours=1), "eu-west-1b"),
    )
    result, err = estimate(tmp_path, {"items": [instance(lifecycle="spot")]})
    item = result["items"][0]
    assert (item["price"], item["cost"]) == ("0.0712", "2.85")
    assert "spot price eu-west-1a" in item["price_source"] and err == ""


def test_spot_without_points_is_priced_on_demand_and_says_so(tmp_path):
    result, err = estimate(tmp_path, {"items": [instance(lifecycle="spot")]})
    item = result["items"][0]
    assert (item["price"], item["cost"]) == ("0.214", "8.56")
    assert "spot price unknown, on-demand shown" in item["price_source"]
    assert "spot price unknown, on-demand shown" in err


def test_the_text_report_lists_items_sources_and_total(tmp_path):
    text, _ = estimate(tmp_path, {"items": [instance()]}, as_json=False)
    assert "m5.xlarge on-demand, 10 x 4 h at 0.214/hour = 8.56" in text
    assert "source: catalog:" in text and "Total: 8.56 USD" in text


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        ('{"items": [', ["not valid JSON", "line 1"]),
        ("[1, 2]", ["must be a JSON object"]),
        ({"region": "mars-1", "items": [instance()]}, ["field 'region'", "unknown region"]),
        ({"items": []}, ["field 'items'", "non-empty"]),
        (
            {"items": [instance(instance_type="m5.huge")]},
            ["items[0] ('workers')", "instance_type", "price unknown"],
        ),
        (
            {"items": [instance(), instance("second", count=-3)]},
            ["items[1] ('second')", "field 'count'"],
        ),
        ({"items": [instance(count=0)]}, ["items[0] ('workers')", "field 'count'"]),
        ({"items": [instance(count="1.5")]}, ["field 'count'", "whole number"]),
        ({"items": [instance(hours=0)]}, ["field 'hours'", "greater than zero"]),
        ({"items": [instance(hours="1e30")]}, ["field 'hours'", "at most 100,000"]),
        ({"items": [instance(count=20000)]}, ["field 'count'", "1 to 10,000"]),
        ({"items": [instance(hours=True)]}, ["field 'hours'"]),
        ({"items": [instance(hourly="0.1234567")]}, ["field 'hourly'", "at most 6 decimals"]),
        ({"items": [instance(lifecycle="reserved")]}, ["field 'lifecycle'"]),
        (
            {"items": [{k: v for k, v in instance().items() if k != "hours"}]},
            ["items[0] ('workers')", "field 'hours'", "missing"],
        ),
        (
            {"items": [{"kind": "fixed", "monthly": 1, "months": 1}]},
            ["items[0]", "field 'label'", "missing"],
        ),
        ({"items": [{"label": "x", "kind": "gpu"}]}, ["items[0] ('x')", "field 'kind'"]),
        ({"items": [instance(hourlyy="0.1")]}, ["field 'hourlyy'", "unknown field"]),
        (
            {
                "items": [
                    {"label": "s", "kind": "storage", "service": "glacier", "gb": 1, "months": 1}
                ]
            },
            ["items[0] ('s')", "field 'service'"],
        ),
        (
            {"items": [{"label": "s", "kind": "storage", "service": "s3", "gb": -1, "months": 1}]},
            ["field 'gb'"],
        ),
        (
            {"items": [{"label": "f", "kind": "fixed", "monthly": "-5", "months": 1}]},
            ["items[0] ('f')", "field 'monthly'"],
        ),
        # Issue 14 finding 3: a list or an object where a text belongs, and deep nesting.
        (
            {"items": [{"label": "s", "kind": "storage", "service": ["s3"], "gb": 1, "months": 1}]},
            ["items[0] ('s')", "field 'service'"],
        ),
        (
            {
                "items": [
                    {"label": "s", "kind": "storage", "service": {"a": 1}, "gb": 1, "months": 1}
                ]
            },
            ["items[0] ('s')", "field 'service'"],
        ),
        (
            {"items": [instance(lifecycle=["spot"])]},
            ["items[0] ('workers')", "field 'lifecycle'"],
        ),
        (
            '{"items": [{"label": "deep", "kind": "fixed", "monthly": '
            + "[" * 30_000
            + "]" * 30_000
            + ', "months": 1}]}',
            ["items[0]", "field 'monthly'", "nested deeper than"],
        ),
        ("[" * 49_000 + "]" * 49_000, ["plan", "nested deeper than"]),
    ],
)
def test_a_bad_plan_exits_2_naming_the_item_and_the_field(tmp_path, plan, expected):
    path = tmp_path / "plan.json"
    path.write_text(plan if isinstance(plan, str) else json.dumps(plan))
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("estimate", "--plan", str(path), "--json", stdout=StringIO(), stderr=err)
    assert exit_info.value.code == 2
    for text in expected:
        assert text in err.getvalue(), err.getvalue()


def test_a_price_typed_as_aws_lists_it_is_kept_to_its_last_digit(tmp_path):
    """Issue 14 finding 7: AWS lists rates with up to 6 decimals (g5.12xlarge 6.33167, spot
    0.07976): a plan may give them as they are, and they come back unrounded."""
    plan = {"items": [instance(hourly="0.07976", count=1, hours=100),
                      {"label": "d", "kind": "storage", "service": "s3", "gb": 1000,
                       "months": 1, "gb_month": "0.023125"}]}  # fmt: skip
    result, _ = estimate(tmp_path, plan)
    assert [i["price"] for i in result["items"]] == ["0.07976", "0.023125"]
    assert [i["cost"] for i in result["items"]] == ["7.98", "23.13"]


def test_an_explicit_hourly_prices_a_type_the_catalog_lacks(tmp_path):
    """Issue 14 finding 3: optional fields override the catalog, so an uncatalogued type with
    its ``hourly`` in the plan is priced with it."""
    plan = {"items": [instance(instance_type="g6.xlarge", hourly="0.8048", count=1, hours=10)]}
    result, _ = estimate(tmp_path, plan)
    assert result["items"][0]["cost"] == "8.05" and result["items"][0]["price"] == "0.8048"
    assert result["items"][0]["price_source"] == "given in the plan"
    spot = {"items": [instance(instance_type="g6.xlarge", lifecycle="spot", hourly="0.3")]}
    assert estimate(tmp_path, spot)[0]["total"] == "12.00"


def test_an_unknown_instance_type_is_noted_for_the_admins(tmp_path):
    with pytest.raises(SystemExit):
        call_command(
            "estimate",
            "--plan",
            str(_write(tmp_path, {"items": [instance(instance_type="g6.xlarge")]})),
            stderr=StringIO(),
        )
    gap = PriceGap.objects.get()
    assert (gap.kind, gap.region, gap.item) == ("on-demand", "eu-west-1", "g6.xlarge")


def _write(tmp_path, plan):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def test_a_freshly_migrated_database_is_enough_and_json_mode_prints_one_object(tmp_path):
    """A real process: exit statuses, stdout holding exactly one JSON object, messages on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERWEB_TEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="clusterweb.settings",
        CLUSTERWEB_VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=f"sqlite:///{tmp_path}/fresh.sqlite3",
    )

    def run(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert run("migrate", "-v", "0").returncode == 0
    good = _write(tmp_path, {"items": [instance(lifecycle="spot")]})
    done = run("estimate", "--plan", str(good), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"] == "8.56"
    assert "spot price unknown" in done.stderr
    bad = run("estimate", "--plan", str(_write(tmp_path, {"items": [instance(count=0)]})))
    assert bad.returncode == 2 and bad.stdout == ""
    assert "items[0] ('workers'), field 'count'" in bad.stderr
