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
