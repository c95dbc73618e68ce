"""The AWS layer's own price table: what AWS charges for the few things the sandbox runs, written
down by hand from AWS's public price pages. The layer's bill (``bill.py``) and its Price List
Query API (``pricing.py``) read it. It is deliberately **not** Clusterweb's catalog
(``billing/data``): the layer imports nothing from ``billing/``, so the sandbox's bill and the
dashboard's estimate are two implementations of AWS's prices and rules, and a mistake in either
shows as a difference on the dashboard.

Region eu-west-1 (Ireland), the sandbox's; Linux, shared tenancy, USD.

- EC2 On-Demand, per instance-hour, billed per second with a 60-second minimum: *Amazon EC2
  On-Demand Pricing*, <https://aws.amazon.com/ec2/pricing/on-demand/> (Linux, Europe (Ireland)).
- Spot instances are not in this table: the layer charges the spot price in force in its own
  spot price history (``spot_price_set``), per second (*Amazon EC2 Spot Instances Pricing*,
  <https://aws.amazon.com/ec2/spot/pricing/>).
- EBS, per GB-month of provisioned storage, prorated by the second: *Amazon EBS pricing*,
  <https://aws.amazon.com/ebs/pricing/> (gp3 $0.088, gp2 $0.11 in Europe (Ireland)); gp3's
  3,000 IOPS and 125 MB/s are included, more is charged per IOPS-month and MB/s-month.
- EFS Standard storage, per GB-month: *Amazon EFS Pricing*, <https://aws.amazon.com/efs/pricing/>.
- S3 Standard, first 50 TB per month, per GB-month: *Amazon S3 pricing*,
  <https://aws.amazon.com/s3/pricing/>.
- Public IPv4 addresses, in use or idle, $0.005 per address-hour since 2024-02-01: *Amazon VPC
  pricing*, <https://aws.amazon.com/vpc/pricing/> ("Public IPv4 Addresses"), and the
  announcement *New – AWS Public IPv4 Address Charge*,
  <https://aws.amazon.com/blogs/aws/new-aws-public-ipv4-address-charge-public-ip-insights/>.
- Cost Explorer API, $0.01 per paginated request: *AWS Cost Explorer pricing*,
  <https://aws.amazon.com/aws-cost-management/aws-cost-explorer/pricing/>.

A GB here is 2^30 bytes, as AWS bills storage. Usage of something this table lacks is billed
$0.00 and listed by the bill as unpriced (``bill.Bill.unpriced``): the sandbox never runs it.
"""

from __future__ import annotations

import threading
from decimal import Decimal

REGION = "eu-west-1"

# USD per instance-hour, On-Demand Linux, Europe (Ireland).
ON_DEMAND: dict[str, Decimal] = {
    "t2.micro": Decimal("0.0126"),
    "t2.small": Decimal("0.025"),
    "t2.medium": Decimal("0.05"),
    "t2.xlarge": Decimal("0.2016"),
    "m5.large": Decimal("0.107"),
    "m5.xlarge": Decimal("0.214"),
    "m5.2xlarge": Decimal("0.428"),
    "m5.4xlarge": Decimal("0.856"),
    "m5.8xlarge": Decimal("1.712"),
    "m5.12xlarge": Decimal("2.568"),
    "g4dn.xlarge": Decimal("0.587"),
    "g5.xlarge": Decimal("1.123"),
}

# USD per GB-month (storage) or per unit-month (EBS performance above the free baseline).
STORAGE: dict[str, Decimal] = {
    "ebs-gp3": Decimal("0.088"),
    "ebs-gp2": Decimal("0.11"),
    "ebs-gp3-iops": Decimal("0.0055"),  # per IOPS-month above 3,000
    "ebs-gp3-throughput": Decimal("0.044"),  # per MB/s-month above 125
    "efs": Decimal("0.33"),
    "s3": Decimal("0.023"),
}
GP3_FREE_IOPS, GP3_FREE_THROUGHPUT = 3000, 125

IPV4_HOUR = Decimal("0.005")  # per public IPv4 address-hour
CE_REQUEST = Decimal("0.01")  # per Cost Explorer API request (every page is one)

# Kinds of price, as the bill_price_set control names them.
KINDS = ("on-demand", "storage", "ipv4", "ce-request")


class PriceTable:
    """The table above, plus prices a test changed (``bill_price_set``) to make the layer's bill
    disagree with the estimate on purpose. Thread-safe; a reset forgets the changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed: dict[tuple[str, str], Decimal] = {}

    def set(self, kind: str, item: str, price: Decimal) -> None:
        if kind not in KINDS:
            raise ValueError(f"no price kind {kind!r}; one of {', '.join(KINDS)}")
        if price < 0:
            raise ValueError("a price cannot be negative")
        with self._lock:
            self._changed[(kind, item)] = price

    def clear(self) -> None:
        with self._lock:
            self._changed.clear()

    def _get(self, kind: str, item: str, default: Decimal | None) -> Decimal | None:
        with self._lock:
            return self._changed.get((kind, item), default)

    def on_demand(self, instance_type: str) -> Decimal | None:
        return self._get("on-demand", instance_type, ON_DEMAND.get(instance_type))

    def storage(self, item: str) -> Decimal | None:
        return self._get("storage", item, STORAGE.get(item))

    def ipv4(self) -> Decimal:
        return self._get("ipv4", "address-hour", IPV4_HOUR) or Decimal(0)

    def ce_request(self) -> Decimal:
        return self._get("ce-request", "request", CE_REQUEST) or Decimal(0)
