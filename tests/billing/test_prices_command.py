"""`manage.py prices`: importing AWS's bulk price list offer file, overrides from the command line
(the Prices page's actions, with --by checked against the directory), listing and quoting."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from billing.models import CatalogPrice, PriceOverride
from billing.prices import selectors
from clusterweb.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

EFFECTIVE = "2027-01-01T00:00:00Z"


def product(sku, instance_type, *, family="Compute Instance", **attributes):
    base = {
        "instanceType": instance_type,
        "regionCode": "eu-west-1",
        "location": "EU (Ireland)",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
        "servicecode": "AmazonEC2",
    }
    return {"sku": sku, "productFamily": family, "attributes": {**base, **attributes}}


def term(sku, usd, unit="Hrs"):
    return {
        f"{sku}.JRTCKXETXF": {
            "offerTermCode": "JRTCKXETXF",
            "sku": sku,
            "effectiveDate": EFFECTIVE,
            "priceDimensions": {
                f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                    "unit": unit,
                    "beginRange": "0",
                    "endRange": "Inf",
                    "description": f"${usd} per On Demand Linux Instance Hour",
                    "pricePerUnit": {"USD": usd},
                }
            },
        }
    }


@pytest.fixture
def offer_file(tmp_path):
    """A small offer file in the AWS Price List bulk format (AmazonEC2, eu-west-1)."""
    products = {
        "M5L": product("M5L", "m5.xlarge"),
        "G6X": product("G6X", "g6.xlarge"),
        "WIN": product("WIN", "m5.xlarge", operatingSystem="Windows"),
        "DED": product("DED", "m5.xlarge", tenancy="Dedicated"),
        "RES": product("RES", "m5.xlarge", capacitystatus="UnusedCapacityReservation"),
        "SQL": product("SQL", "m5.xlarge", preInstalledSw="SQL Std"),
        "USE": product("USE", "m5.xlarge", regionCode="us-east-1"),
        "GP3": {
            "sku": "GP3",
            "productFamily": "Storage",
            "attributes": {"location": "EU (Ireland)", "volumeApiName": "gp3"},
        },
    }
    terms = {
        "M5L": term("M5L", "0.2200000000"),
        "G6X": term("G6X", "0.8800000000"),
        "WIN": term("WIN", "0.4040000000"),
        "DED": term("DED", "0.2350000000"),
        "RES": term("RES", "0.2140000000"),
        "SQL": term("SQL", "0.9000000000"),
        "USE": term("USE", "0.1920000000"),
        "GP3": term("GP3", "0.0900000000", unit="GB-Mo"),
    }
    data = {
        "formatVersion": "v1.0",
        "offerCode": "AmazonEC2",
        "version": "20261215000000",
        "publicationDate": "2026-12-15T00:00:00Z",
        "products": products,
        "terms": {"OnDemand": terms, "Reserved": {}},
    }
    path = tmp_path / "index.json"
    path.write_text(json.dumps(data))
    return path


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("prices", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_exit(*args) -> tuple[int, str]:
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("prices", *args, stdout=StringIO(), stderr=err)
    return exit_info.value.code, err.getvalue()


def test_importing_an_offer_file_adds_linux_shared_on_demand_prices_from_its_date(
    offer_file, directory_server
):
    out, _ = run("import", str(offer_file), "--region", "eu-west-1", "--by", "alice", "--json")
    result = json.loads(out)["import"]
    assert (result["on_demand"], result["storage"], result["created"]) == (2, 1, 3)
    assert result["regions"] == ["eu-west-1"] and result["offer"]["version"] == "20261215000000"
    later = datetime(2027, 1, 2, tzinfo=UTC)
    quote = selectors.on_demand_quote("eu-west-1", "m5.xlarge", later)
    assert (
        quote.price == Decimal("0.22")
        and "index.json" in quote.source
        and "SKU M5L" in quote.source
    )
    assert selectors.on_demand_quote("eu-west-1", "m5.xlarge").price == Decimal("0.214")
    assert selectors.on_demand_quote("eu-west-1", "g6.xlarge", later).price == Decimal("0.88")
    assert selectors.storage_quote("eu-west-1", "ebs-gp3", later).price == Decimal("0.09")
    assert not CatalogPrice.objects.filter(region="us-east-1", origin="import").exists()
    assert AuditEvent.objects.filter(
        action="price.catalog_imported", actor_username="alice"
    ).exists()
    out, _ = run("import", str(offer_file), "--by", "alice", "--json")
    assert json.loads(out)["import"]["created"] == 1  # only the us-east-1 row is new


def test_import_refuses_a_file_that_is_not_an_offer_file(tmp_path, directory_server):
    path = tmp_path / "nope.json"
    path.write_text('{"hello": "world"}')
    code, err = run_exit("import", str(path), "--by", "alice")
    assert code == 2 and "products" in err
    path.write_text("{not json")
    assert run_exit("import", str(path), "--by", "alice")[0] == 2


def test_only_admins_may_import_or_override(offer_file, directory_server):
    code, err = run_exit("import", str(offer_file), "--by", "bob")
    assert code == 3 and "admins" in err.lower()
    code, _ = run_exit(
        "override", "add", "--kind", "on-demand", "--region", "eu-west-1", "--item", "m5.xlarge",
        "--price", "0.3", "--by", "bob",
    )  # fmt: skip
    assert code == 3 and not PriceOverride.objects.exists()
    assert run_exit("import", str(offer_file))[0] == 2  # --by is required


def test_overrides_from_the_command_line_are_validated_audited_and_removable(directory_server):
    args = ["override", "add", "--kind", "spot", "--region", "eu-west-1", "--item", "g4dn.xlarge"]
    code, err = run_exit(*args, "--price", "0.1234567", "--by", "alice")
    assert code == 2 and "at most 6 decimals" in err
    assert run_exit(*args, "--price", "-1", "--by", "alice")[0] == 2
    out, _ = run(*args, "--price", "0.2", "--note", "reserved capacity", "--by", "alice", "--json")
    override = json.loads(out)["override"]
    assert override["state"] == "in_force" and override["price"] == "0.20"
    assert selectors.spot_quote("eu-west-1", "g4dn.xlarge").price == Decimal("0.2")
    out, _ = run("override", "remove", str(override["id"]), "--by", "alice", "--json")
    assert json.loads(out)["override"]["state"] == "ended"
    assert selectors.spot_quote("eu-west-1", "g4dn.xlarge").price == Decimal("0.587")
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"price.override_added", "price.override_removed"} <= actions
    assert run_exit("override", "remove", str(override["id"]), "--by", "alice")[0] == 2


def test_an_override_may_start_in_the_past_but_not_in_the_future(directory_server):
    args = ["override", "add", "--kind", "on-demand", "--region", "eu-west-1", "--item",
            "m5.xlarge", "--price", "0.2", "--by", "alice"]  # fmt: skip
    code, err = run_exit(*args, "--from", "2999-01-01T00:00:00Z")
    assert code == 2 and "cannot start in the future" in err
    code, err = run_exit(*args, "--from", "yesterday")
    assert code == 2 and "--from" in err
    assert run_exit(*args, "--from", "2026-01-01T00:00:00")[0] == 2  # no time zone

    out, _ = run(*args, "--from", "2026-11-30T00:00:00Z", "--json")

    override = PriceOverride.objects.get(pk=json.loads(out)["override"]["id"])
    assert override.effective_from == datetime(2026, 11, 30, tzinfo=UTC)
    added = AuditEvent.objects.get(action="price.override_added")
    assert added.detail["effective_from"] == "2026-11-30T00:00:00+00:00"


def test_list_and_quote_print_prices_with_sources():
    out, _ = run("list", "--region", "us-east-1", "--json")
    prices = json.loads(out)["prices"]
    micro = next(p for p in prices if p["kind"] == "on-demand" and p["item"] == "t2.micro")
    assert micro["price"] == "0.0116" and "karpenter" in micro["source"]
    assert micro["effective_from"].startswith("2026-07-20")
    out, _ = run("quote", "--kind", "storage", "--region", "eu-west-1", "--item", "ebs-gp2")
    assert out.startswith("0.11/GB-month catalog:")
    assert run_exit("quote", "--kind", "storage", "--region", "eu-west-1", "--item", "tape")[0] == 2
