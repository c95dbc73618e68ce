"""EBS performance prices: provisioned IOPS and throughput per month, and the GB-month of the
volume types the storage table lacks (io1, io2), from ``billing/data/ebs_performance.csv``.

Pure: a volume's type, region and provisioned figures in, priced pieces out. Each piece is the
units of one rate (a tier of io2's IOPS, gp3's IOPS above 3,000...) at AWS's listed rate, so
``units * price`` is its monthly cost; a type without a row has no piece (see docs/prices.md).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache

from billing.prices.catalog import DATA_DIR

PERFORMANCE_FILE = DATA_DIR / "ebs_performance.csv"
GB, IOPS, THROUGHPUT = "gb", "iops", "throughput"
UNITS = {GB: "GB-month", IOPS: "IOPS-month", THROUGHPUT: "MiB/s-month"}
NAMES = {IOPS: "provisioned IOPS", THROUGHPUT: "provisioned throughput"}
# The notices the storage catalog gives such rows (billing.prices.selectors._catalog_resolve).
NOTICES = {
    "derived": "derived figure, not read from AWS's list individually",
    "unconfirmed": "unconfirmed figure, not checked against AWS's current list",
}


@dataclass(frozen=True)
class Rate:
    """One row: ``price`` per unit-month for the units above ``above`` up to ``upto``."""

    region: str
    volume_type: str
    dimension: str
    above: int
    upto: int | None
    price: Decimal
    effective_from: datetime
    confidence: str
    source: str

    @property
    def unit(self) -> str:
        return UNITS[self.dimension]

    @property
    def measure(self) -> str:
        return "MiB/s" if self.dimension == THROUGHPUT else "IOPS"

    @property
    def notice(self) -> str | None:
        return NOTICES.get(self.confidence)

    @property
    def span(self) -> str:
        """Which units the rate covers, as AWS's page words it ("" for all of them)."""
        unit = self.measure
        if self.upto is None:
            return f"above {self.above:,} {unit}" if self.above else ""
        if self.above == 0:
            return f"up to {self.upto:,} {unit}"
        return f"{self.above + 1:,} to {self.upto:,} {unit}"

    @property
    def first(self) -> bool:
        """The lowest rate of its dimension (a volume's IOPS line before any higher tier)."""
        return not any(
            (r.region, r.volume_type, r.dimension)
            == (self.region, self.volume_type, self.dimension)
            and r.above < self.above
            for r in rates()
        )


@dataclass(frozen=True)
class Piece:
    """``units`` of one rate (IOPS, MiB/s) provisioned on a volume: ``monthly`` a month."""

    rate: Rate
    units: int

    @property
    def monthly(self) -> Decimal:
        return self.rate.price * self.units

    @property
    def label(self) -> str:
        span = f", {self.rate.span}" if self.rate.span else ""
        return f"{NAMES[self.rate.dimension]}{span}"

    @property
    def described(self) -> str:
        """E.g. "provisioned IOPS, above 3,000 IOPS: 3,000 IOPS" (the units charged)."""
        return f"{self.label}: {self.units:,} {self.rate.measure}"

    @property
    def key(self) -> str:
        """Names the piece among a volume's: ``iops``, ``iops>32000``, ``throughput``."""
        rate = self.rate
        return rate.dimension if rate.first else f"{rate.dimension}>{rate.above}"


@cache
def rates() -> tuple[Rate, ...]:
    """Every row of the bundled table (read once per process)."""
    with PERFORMANCE_FILE.open(newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return tuple(
            Rate(
                region=row["region"],
                volume_type=row["volume_type"],
                dimension=row["dimension"],
                above=int(row["above"]),
                upto=int(row["upto"]) if row["upto"] else None,
                price=Decimal(row["usd_per_unit_month"]),
                effective_from=datetime.combine(
                    date.fromisoformat(row["effective_from"]), datetime.min.time(), tzinfo=UTC
                ),
                confidence=row["confidence"],
                source=f"EBS performance table: {row['source']}",
            )
            for row in rows
        )


def gb_month_rate(region: str, volume_type: str) -> Rate | None:
    """The GB-month rate of a type the storage table lacks (io1, io2), or None."""
    for rate in rates():
        if (rate.region, rate.volume_type, rate.dimension) == (region, volume_type, GB):
            return rate
    return None


def performance_pieces(
    region: str, volume_type: str, iops: int | None, throughput: int | None
) -> list[Piece]:
    """The charged IOPS and throughput of one volume, one piece per rate that applies: none at
    gp3's baseline, none for a type without performance rates."""
    provisioned = {IOPS: iops or 0, THROUGHPUT: throughput or 0}
    pieces = []
    for rate in rates():
        if (rate.region, rate.volume_type) != (region, volume_type) or rate.dimension == GB:
            continue
        amount = provisioned[rate.dimension]
        top = amount if rate.upto is None else min(amount, rate.upto)
        if top > rate.above:
            pieces.append(Piece(rate, top - rate.above))
    return pieces
