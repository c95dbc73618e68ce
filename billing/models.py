"""The price catalog: list prices with effective dates and sources, spot price points, the record
of spot price syncs, admin overrides, and the prices somebody needed but the catalog lacks.

Every price is a Decimal in USD with the source it came from; nothing here is ever a float.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

PRICE_DIGITS = {"max_digits": 14, "decimal_places": 6}


class PriceKind(models.TextChoices):
    ON_DEMAND = "on-demand", "On-demand instance (USD per hour)"
    SPOT = "spot", "Spot instance, fixed (USD per hour)"
    STORAGE = "storage", "Storage (USD per GB-month)"
    IPV4 = "ipv4", "Public IPv4 (USD per address-hour)"


UNITS = {
    PriceKind.ON_DEMAND: "hour",
    PriceKind.SPOT: "hour",
    PriceKind.STORAGE: "GB-month",
    PriceKind.IPV4: "address-hour",
}

# Storage services an estimate may name, as the catalog keys them.
STORAGE_SERVICES = {
    "s3": "S3 Standard",
    "ebs-gp3": "EBS gp3",
    "ebs-gp2": "EBS gp2",
    "ebs-st1": "EBS st1",
    "ebs-sc1": "EBS sc1",
    "ebs-standard": "EBS magnetic (standard)",
    "efs": "EFS Standard",
}
IPV4_ITEM = "public-ipv4"


class Confidence(models.TextChoices):
    CONFIRMED = "confirmed", "Confirmed"
    DERIVED = "derived", "Derived"
    UNCONFIRMED = "unconfirmed", "Unconfirmed"


class CatalogOrigin(models.TextChoices):
    BUNDLED = "bundled", "Bundled table"
    IMPORT = "import", "AWS bulk price list import"
    LOOKUP = "lookup", "AWS Price List Query API lookup"


class CatalogPrice(models.Model):
    """A list price (on-demand hourly, storage per GB-month, public IPv4 per address-hour) in one
    region, valid from ``effective_from`` until the next row for the same key."""

    kind = models.CharField(max_length=16, choices=PriceKind.choices)
    region = models.CharField(max_length=32)
    item = models.CharField(max_length=64)  # instance type, storage service, or "public-ipv4"
    price = models.DecimalField(**PRICE_DIGITS)
    effective_from = models.DateTimeField()
    source = models.CharField(max_length=400)
    confidence = models.CharField(
        max_length=16, choices=Confidence.choices, default=Confidence.CONFIRMED
    )
    origin = models.CharField(max_length=16, choices=CatalogOrigin.choices)
    loaded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "region", "item", "effective_from"], name="catalog_price_key"
            )
        ]
        indexes = [models.Index(fields=["kind", "region", "item", "effective_from"])]
        ordering = ["kind", "region", "item", "-effective_from"]

    def __str__(self) -> str:
        return f"{self.kind} {self.region} {self.item} {self.price} @{self.effective_from:%Y-%m-%d}"


class LookupOutcome(models.TextChoices):
    FOUND = "found", "Found"
    NOT_FOUND = "not-found", "AWS lists no price"
    FAILED = "failed", "The lookup failed"


class PriceLookup(models.Model):
    """The last time the price lookup job asked AWS's Price List Query API for the on-demand
    price of a type the catalog lacks, and what it heard: a price found is also stored as a
    catalog row (origin "lookup"); "not-found" is what lets a pool refuse the type."""

    region = models.CharField(max_length=32)
    instance_type = models.CharField(max_length=64)
    asked_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=LookupOutcome.choices)
    price = models.DecimalField(**PRICE_DIGITS, null=True, blank=True)
    source = models.CharField(max_length=400, blank=True)
    error = models.CharField(max_length=500, blank=True)
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["region", "instance_type"], name="price_lookup_key")
        ]

    def __str__(self) -> str:
        return f"lookup {self.region} {self.instance_type}: {self.outcome} at {self.asked_at}"


class SpotPricePoint(models.Model):
    """One spot price as AWS reported it: in force from ``at`` until the next point for the same
    region, zone and type. Stored as received; the lookup decides whether to trust it."""

    region = models.CharField(max_length=32)
    zone = models.CharField(max_length=32)
    instance_type = models.CharField(max_length=64)
    price = models.DecimalField(**PRICE_DIGITS)
    at = models.DateTimeField()
    source = models.CharField(max_length=200)
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["region", "zone", "instance_type", "at"], name="spot_point_key"
            )
        ]
        # The lookup asks for the newest point at or before a time, per region and type.
        indexes = [models.Index(fields=["region", "instance_type", "at"])]

    def __str__(self) -> str:
        return f"spot {self.zone} {self.instance_type} {self.price} at {self.at:%Y-%m-%d %H:%M}"


class SpotPriceSync(models.Model):
    """A successful spot price sync for one region. Spot figures are trusted only while a sync is
    recent enough (``SPOT_PRICE_MAX_AGE_HOURS``)."""

    region = models.CharField(max_length=32)
    synced_at = models.DateTimeField()
    points_received = models.PositiveIntegerField(default=0)
    points_new = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=200)

    class Meta:
        indexes = [models.Index(fields=["region", "synced_at"])]
        ordering = ["-synced_at"]

    def __str__(self) -> str:
        return f"spot sync {self.region} at {self.synced_at:%Y-%m-%d %H:%M}"


class PriceOverride(models.Model):
    """An admin's price for one kind, region and item, in force from ``effective_from`` until it is
    removed (``ended_at``). Removing keeps the row: past estimates stay explainable."""

    kind = models.CharField(max_length=16, choices=PriceKind.choices)
    region = models.CharField(max_length=32)
    item = models.CharField(max_length=64)
    price = models.DecimalField(**PRICE_DIGITS)
    note = models.CharField(max_length=200, blank=True)
    effective_from = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_username = models.CharField(max_length=150)
    ended_by_username = models.CharField(max_length=150, blank=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "region", "item", "effective_from"])]
        ordering = ["kind", "region", "item", "-effective_from"]

    def __str__(self) -> str:
        return f"override {self.kind} {self.region} {self.item} {self.price}"

    @property
    def unit(self) -> str:
        return UNITS[PriceKind(self.kind)]


class PriceGap(models.Model):
    """A price somebody asked for that the catalog does not have: shown to admins on the Prices
    page until a catalog row or an override covers it."""

    kind = models.CharField(max_length=16, choices=PriceKind.choices)
    region = models.CharField(max_length=32)
    item = models.CharField(max_length=64)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    occurrences = models.PositiveIntegerField(default=1)
    context = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "region", "item"], name="price_gap_key")
        ]
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"missing {self.kind} price {self.region} {self.item}"


# --- Cost: what the cluster's resources cost, day by day, and what AWS billed --------------------
# See docs/costs.md for the rules. Row amounts keep 10 decimals: they are exact pieces, summed per
# resource in the database; only those per-resource sums are rounded to the cent (the "items"
# whose sum is every total shown).
COST_DIGITS = {"max_digits": 20, "decimal_places": 10}


class CostService(models.TextChoices):
    """The services the estimate models (and to which Cost Explorer's service names map)."""

    COMPUTE = "compute", "EC2 compute"
    EBS = "ebs", "EBS volumes"
    EFS = "efs", "EFS"
    S3 = "s3", "S3"
    IPV4 = "ipv4", "Public IPv4"


class ResourceKind(models.TextChoices):
    NODE = "node", "Instance"
    NODE_IPV4 = "node-ipv4", "Public IPv4 of an instance"
    VOLUME = "volume", "EBS volume"
    EFS = "efs", "EFS file system"
    S3 = "s3", "S3 bucket"
    ELASTIC_IP = "elastic-ip", "Elastic IP"


class CostRow(models.Model):
    """The cost of one resource over one piece of one UTC day at one price: a day is cut where
    the price changes (a spot price point, a catalog row, an override), so every row keeps the
    price and the source it used. Written only by ``cost_rows_refresh``, which recomputes a month
    from the inventory and the catalog and writes the difference (running it twice changes
    nothing)."""

    month = models.DateField()  # first day of the UTC month
    day = models.DateField()
    start = models.DateTimeField()
    end = models.DateTimeField()
    resource_kind = models.CharField(max_length=16, choices=ResourceKind.choices)
    resource_id = models.CharField(max_length=255)  # instance, volume, file system id, bucket...
    label = models.CharField(max_length=255, blank=True)
    service = models.CharField(max_length=16, choices=CostService.choices)
    pool = models.CharField(max_length=40, blank=True)
    pool_kind = models.CharField(max_length=8)  # base or burst (see docs/costs.md)
    owner = models.CharField(max_length=150, blank=True)
    request = models.CharField(max_length=64, blank=True)
    usage = models.DecimalField(**COST_DIGITS)  # hours, or GB-months for storage
    unit = models.CharField(max_length=16)
    price = models.DecimalField(**PRICE_DIGITS, null=True)  # None: the catalog has no price
    price_kind = models.CharField(max_length=16)
    price_source = models.CharField(max_length=400)
    price_notice = models.CharField(max_length=500, blank=True)
    cost = models.DecimalField(**COST_DIGITS)
    rule = models.CharField(max_length=200, blank=True)  # a billing rule that changed the cost
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            # One row per resource and piece start: the refresh matches stored rows on this key
            # (its index also serves the "did this node ever have a public IPv4 row" lookup).
            models.UniqueConstraint(
                fields=["resource_kind", "resource_id", "start"], name="cost_row_key"
            )
        ]
        indexes = [
            # Every read is one month: the refresh's diff, the per-resource sums of the
            # dashboard and `cost`, the daily chart and the same-days comparison with the bill.
            models.Index(fields=["month", "day"], name="cost_row_month_day"),
        ]
        ordering = ["day", "resource_kind", "resource_id", "start"]

    def __str__(self) -> str:
        return f"{self.day} {self.resource_kind} {self.resource_id} {self.cost}"


class CostMonth(models.Model):
    """How far a month's cost rows go: ``through`` is the moment the last refresh computed them
    up to (the month's end once it is over). The "as of" of every estimate figure.

    ``closed_through``: the rows of the days before it are closed, never rewritten by the
    periodic refresh (docs/costs.md, "History"); None: no day is closed yet. Only an admin
    price override starting before it (newer than ``override_mark``, the newest override the
    closed days were computed with) moves it back."""

    month = models.DateField(unique=True)
    through = models.DateTimeField()
    refreshed_at = models.DateTimeField()
    rows = models.PositiveIntegerField(default=0)
    unknown_prices = models.PositiveIntegerField(default=0)
    closed_through = models.DateTimeField(null=True, blank=True)
    override_mark = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"costs {self.month:%Y-%m} through {self.through:%Y-%m-%d %H:%M}"


class CostExplorerRead(models.Model):
    """One read of one month from Cost Explorer (get_cost_and_usage, daily, by service), with
    the number of requests it made: each request, every page of results included, costs $0.01.
    Reads are made only by the periodic job, never by a page or a command (``manage.py doctor``'s
    one access probe is not a read and is not counted here; the README says so)."""

    month = models.DateField()
    period_start = models.DateField()
    period_end = models.DateField()  # exclusive, as Cost Explorer's End
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)
    requests = models.PositiveIntegerField(default=0)
    ok = models.BooleanField(default=False)
    error = models.CharField(max_length=500, blank=True)
    days = models.PositiveIntegerField(default=0)
    final = models.BooleanField(default=False)  # a past month AWS no longer marks as estimated

    class Meta:
        # The requests made in a month are summed by started_at; the latest read is found by it.
        indexes = [models.Index(fields=["started_at"], name="ce_read_started")]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Cost Explorer read of {self.month:%Y-%m} at {self.started_at:%Y-%m-%d %H:%M}"


class BilledDay(models.Model):
    """A day Cost Explorer has reported, from its latest read. A later read of the same day
    replaces its amounts (AWS revises them until the month is final)."""

    day = models.DateField(unique=True)
    month = models.DateField(db_index=True)
    estimated = models.BooleanField(default=True)
    read = models.ForeignKey(CostExplorerRead, on_delete=models.PROTECT, related_name="+")
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"billed {self.day}"


class BilledCost(models.Model):
    """What Cost Explorer says one service cost on one day (UnblendedCost, USD), under AWS's own
    service name ("Amazon Elastic Compute Cloud - Compute", "EC2 - Other", ...)."""

    billed_day = models.ForeignKey(BilledDay, on_delete=models.CASCADE, related_name="costs")
    service = models.CharField(max_length=200)
    amount = models.DecimalField(**COST_DIGITS)
    unit = models.CharField(max_length=8, default="USD")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["billed_day", "service"], name="billed_cost_key")
        ]

    def __str__(self) -> str:
        return f"{self.billed_day.day} {self.service} {self.amount}"


# --- Budgets (billing/budgets/): their rows belong to this app ----------------------------------
from billing.budgets.models import Budget, BudgetAlert, Statement  # noqa: E402, F401
