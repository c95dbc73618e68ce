"""Generate billing/data/on_demand_prices.csv from a local copy of a public, machine-generated
export of AWS's Price List. Run by hand; its output is committed (docs/prices.md says when and
from what).

    .venv/bin/python scripts/prices_generate.py karpenter \\
        PATH/zz_generated.pricing_aws.go --commit 6fc13b52 --keep eu-west-1

Source formats:
- ``karpenter``: aws/karpenter-provider-aws, pkg/providers/pricing/zz_generated.pricing_aws.go,
  written by its hack/code/prices_gen from the Price List Query API (on-demand Linux, shared
  tenancy, no pre-installed software, capacity status Used): a Go map region -> type -> USD/hour
  with a "generated at <UTC time> for <region>" line. Every region of the file is taken.

``--keep REGION`` carries the rows of REGION over from the current table unchanged (a region the
source does not cover); every other row is replaced. The file is read line by line.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

TABLE = Path(__file__).resolve().parent.parent / "billing" / "data" / "on_demand_prices.csv"
COLUMNS = ["region", "instance_type", "usd_per_hour", "effective_from", "confidence", "source"]
GENERATED = re.compile(r"//\s*generated at (\d{4}-\d\d-\d\d)T([\d:]+Z) for (\S+)")
REGION = re.compile(r'^\s*"([a-z]{2}(?:-[a-z]+)+-\d)":\s*\{\s*$')
PRICE = re.compile(r'"([a-z0-9][a-z0-9-]*\.[a-z0-9-]+)":\s*([0-9]+\.[0-9]+)')
TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")


def karpenter_rows(path: Path, commit: str) -> tuple[list[dict[str, str]], str]:
    """The rows of a karpenter zz_generated pricing file and the header text naming it."""
    day = stamp = ""
    region = None
    rows: list[dict[str, str]] = []
    with path.open() as handle:
        for line in handle:
            found = GENERATED.search(line)
            if found:
                day, stamp = found.group(1), f"{found.group(1)}T{found.group(2)}"
                continue
            start = REGION.match(line)
            if start:
                region = start.group(1)
                continue
            if line.strip() == "},":
                region = None
                continue
            if region is None:
                continue
            for instance_type, price in PRICE.findall(line):
                value = Decimal(price).normalize()
                if value <= 0:
                    continue
                rows.append(
                    {
                        "region": region,
                        "instance_type": instance_type,
                        "usd_per_hour": format(value, "f"),
                        "effective_from": day,
                        "confidence": "confirmed",
                        "source": (
                            f"AWS Price List via karpenter-provider-aws@{commit[:8]} "
                            f"zz_generated.pricing_aws.go, generated {stamp}"
                        ),
                    }
                )
    if not day:
        raise SystemExit(f"{path}: no 'generated at ... for ...' line: not a karpenter price file")
    if not rows:
        raise SystemExit(f"{path}: no prices found")
    header = (
        f"aws/karpenter-provider-aws, pkg/providers/pricing/zz_generated.pricing_aws.go at commit "
        f"{commit}, header 'generated at {stamp}'"
    )
    return rows, header


def current_rows(regions: set[str]) -> tuple[list[dict[str, str]], list[str]]:
    """The current table's rows of ``regions`` and its header comment lines."""
    with TABLE.open(newline="") as handle:
        lines = handle.readlines()
    comments = [line for line in lines if line.startswith("#")]
    body = (line for line in lines if not line.startswith("#"))
    return [row for row in csv.DictReader(body) if row["region"] in regions], comments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("format", choices=["karpenter"])
    parser.add_argument("file", type=Path, help="local copy of the export")
    parser.add_argument("--commit", required=True, help="the source repository's commit")
    parser.add_argument("--keep", action="append", default=[], help="region to carry over")
    parser.add_argument("--out", type=Path, default=TABLE)
    args = parser.parse_args(argv)

    rows, source = karpenter_rows(args.file, args.commit)
    bad = [r["instance_type"] for r in rows if not TYPE.match(r["instance_type"])]
    if bad:
        raise SystemExit(f"{args.file}: not instance types: {', '.join(bad[:5])}")
    generated = {r["region"] for r in rows}
    kept, _ = current_rows(set(args.keep) - generated)
    sources = Counter(r["source"] for r in kept if r["confidence"] == "confirmed")
    keep_note = (
        f"# - {', '.join(sorted(set(args.keep) - generated))}: {len(kept)} rows carried over "
        "unchanged from the previous table (each row names its source; mostly "
        f"{sources.most_common(1)[0][0] if sources else 'hand-read'}).\n"
        if kept
        else ""
    )
    header = (
        "# On-demand hourly prices bundled with Clusterweb: USD per instance-hour, Linux/UNIX,\n"
        '# shared tenancy, no pre-installed software, capacity status "Used" (plain on-demand,\n'
        "# not reserved capacity). Loaded by migrations billing.0002/0005 and shown on the Prices\n"
        "# page with the source of every row. GENERATED by scripts/prices_generate.py: do not\n"
        "# edit by hand.\n"
        "#\n"
        "# Where the figures came from (a public, machine-generated export of AWS's Price List):\n"
        f"# - {', '.join(sorted(generated))}: {source}.\n"
        f"{keep_note}"
        "# Types AWS offers in these regions without a row here are listed, with the reason,\n"
        "# in billing/data/coverage/exclusions.csv; tests/billing/test_catalog_coverage.py\n"
        "# holds both against the AWS layer's offerings. A type missing at run time is asked\n"
        "# of AWS's Price List Query API by the price lookup job.\n"
    )
    order = {"us-east-1": 0, "eu-west-1": 1}
    every = sorted(
        rows + kept, key=lambda r: (order.get(r["region"], 9), r["region"], r["instance_type"])
    )
    with args.out.open("w", newline="") as handle:
        handle.write(header)
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in every:
            writer.writerow({name: row[name] for name in COLUMNS})
    print(f"{args.out}: {len(rows)} rows from the export, {len(kept)} kept", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
