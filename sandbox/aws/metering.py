"""The layer's metering: what ran and what was kept, as AWS meters it, recorded on the layer's
clock from the layer's own view of moto (never from Clusterweb's database or estimate).

- **Instances**: each run is the time an instance spends ``running``, from the layer's own state
  transitions (``lifecycle.py``), with the type, lifecycle (spot or on-demand) and zone it ran
  with. EC2 bills ``running`` only: not ``pending``, ``stopping`` (without hibernation) nor
  ``shutting-down`` (*Amazon EC2 instance state changes*, the "Instance usage billing" column,
  <https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-lifecycle.html>). A run
  ended by a spot reclaim is marked interrupted by EC2.
- **EBS volumes**: pieces of time with one size, type, IOPS and throughput; a ``ModifyVolume``
  starts a new piece at once (AWS bills the new configuration from the start of the
  modification: *Monitor the progress of volume modifications*, "you are charged for the new
  volume configuration from the start of the modification").
- **Public IPv4 addresses**: each Elastic IP from its allocation to its release, attached or not,
  and each instance's auto-assigned public address from launch until it stops or terminates
  (*Amazon VPC pricing*, "Public IPv4 Addresses": in use and idle addresses are charged alike).
- **S3 and EFS**: each bucket and file system from its creation to its deletion, with the stored
  bytes the layer published (``s3_size_set``, ``efs_size_set``). S3: **one size a day**, the last
  one published that day, else the day before's: S3 measures a bucket once a day (its one daily
  ``BucketSizeBytes`` datapoint; the usage report's ``TimedStorage-ByteHrs`` is daily). EFS: the
  size **in force at each moment**, from the moment it was set: "The storage amount billed in a
  month is based on the average storage space used throughout the month ... in GB-Hours"
  (*Amazon EFS pricing*, <https://aws.amazon.com/efs/pricing/>); a size set at 18:00 does not
  stand for the hours before it. (Its ``StorageBytes`` is sampled every 15 minutes, so a day's
  CloudWatch Average is the same figure: ``Controls.efs_samples_publish``.)
- **Cost Explorer requests**: each ``GetCostAndUsage`` call (every page is a request).

Things that change only through an AWS call (volumes, addresses, buckets, file systems) are looked
at after every call (:meth:`Meter.observe`, run by the middleware and by each replay step):
the moment is the call's, on the layer's clock, so a replayed step is metered at its ``at``.
Instance states come from the lifecycle's transitions, each at the moment it was due.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sandbox.aws import clock

# States in which an instance holds its auto-assigned public IPv4 address.
ADDRESS_STATES = frozenset({"pending", "running"})


@dataclass
class Run:
    """An instance's time in ``running`` (``end`` None: still running)."""

    instance_id: str
    region: str
    instance_type: str
    spot: bool
    zone: str
    start: datetime
    end: datetime | None = None
    interrupted: bool = False  # ended by EC2 reclaiming the spot instance


@dataclass
class Held:
    """Something kept over time with one set of attributes: a volume piece (``attrs`` size,
    type, IOPS, throughput), an address, a bucket, a file system."""

    key: str
    start: datetime
    end: datetime | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


class Meter:
    """The layer's usage records. Thread-safe: the server answers requests on many threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.runs: list[Run] = []
            self._open_runs: dict[str, Run] = {}
            # category -> pieces, and the open piece per key ("volume", "address", "s3", "efs").
            self.held: dict[str, list[Held]] = {}
            self._open: dict[tuple[str, str], Held] = {}
            # (service, resource) -> sorted [(moment, bytes)]; S3's moments are days' midnights.
            self.sizes: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
            self.ce_requests: list[datetime] = []

    # --- instances: the lifecycle's transitions ---------------------------------------------
    def state(self, instance: Any, state: str, at: datetime) -> None:
        """``instance`` (a moto Instance) entered ``state`` at ``at``."""
        at = _aware(at)
        with self._lock:
            run = self._open_runs.get(instance.id)
            if state == "running":
                if run is None:
                    run = Run(
                        instance.id,
                        instance.ec2_backend.region_name,
                        instance.instance_type,
                        instance.lifecycle == "spot",
                        instance.placement.zone,
                        at,
                    )
                    self._open_runs[instance.id] = run
                    self.runs.append(run)
            elif run is not None:
                from sandbox.aws.moto_state import SPOT_TERMINATION_CODE

                run.end = max(at, run.start)
                reason = getattr(instance.state_reason, "code", "") or ""
                run.interrupted = state in ("shutting-down", "terminated") and (
                    reason == SPOT_TERMINATION_CODE
                )
                del self._open_runs[instance.id]
            key = f"{instance.id}:auto"
            if state in ADDRESS_STATES:
                address = _auto_address(instance)
                if address and (("address", key) not in self._open):
                    self._hold("address", key, {"ip": address, "instance": instance.id}, at)
            else:
                self._release("address", key, at)

    # --- everything that changes through calls ----------------------------------------------
    def observe(self) -> None:
        """Look at moto's volumes, addresses, buckets and file systems now (the layer's clock)
        and record what appeared, changed or went since the last look."""
        from sandbox.aws import moto_state

        now = clock.now()
        with self._lock:
            self._sync("volume", moto_state.volumes_metered(), now)
            current = moto_state.elastic_addresses_metered()
            eip_ips = {attrs["ip"] for attrs in current.values()}
            for instance in moto_state.instances_all():
                address = _auto_address(instance)
                if instance.state in ADDRESS_STATES and address and address not in eip_ips:
                    current[f"{instance.id}:auto"] = {"ip": address, "instance": instance.id}
            self._sync("address", current, now)
            self._sync("s3", moto_state.buckets_metered(), now)
            self._sync("efs", moto_state.file_systems_metered(), now)

    def _sync(self, category: str, current: dict[str, dict[str, Any]], now: datetime) -> None:
        for key, attrs in current.items():
            piece = self._open.get((category, key))
            if piece is not None and piece.attrs == attrs:
                continue
            if piece is not None:
                self._release(category, key, now)
            self._hold(category, key, attrs, now)
        for open_category, key in list(self._open):
            if open_category == category and key not in current:
                self._release(category, key, now)

    def _hold(self, category: str, key: str, attrs: dict[str, Any], at: datetime) -> None:
        piece = Held(key, at, None, dict(attrs))
        self._open[(category, key)] = piece
        self.held.setdefault(category, []).append(piece)

    def _release(self, category: str, key: str, at: datetime) -> None:
        piece = self._open.pop((category, key), None)
        if piece is not None:
            piece.end = max(at, piece.start)

    # --- sizes and requests -----------------------------------------------------------------
    def size_set(self, service: str, resource: str, size_bytes: int, at: datetime) -> None:
        """``resource`` of ``service`` ("s3", "efs") holds ``size_bytes`` from ``at`` (for S3,
        the day's midnight: one size a day)."""
        at = _aware(at)
        with self._lock:
            history = self.sizes.setdefault((service, resource), [])
            history[:] = sorted([(m, b) for m, b in history if m != at] + [(at, size_bytes)])

    def ce_request(self, at: datetime | None = None) -> None:
        with self._lock:
            self.ce_requests.append(_aware(at or clock.now()))

    # --- reading ----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """A consistent copy of the records, for the bill."""
        with self._lock:
            return Snapshot(
                runs=[Run(**vars(r)) for r in self.runs],
                held={c: [Held(h.key, h.start, h.end, dict(h.attrs)) for h in pieces]
                      for c, pieces in self.held.items()},
                sizes={k: list(v) for k, v in self.sizes.items()},
                ce_requests=list(self.ce_requests),
            )  # fmt: skip


@dataclass
class Snapshot:
    runs: list[Run]
    held: dict[str, list[Held]]
    sizes: dict[tuple[str, str], list[tuple[datetime, int]]]
    ce_requests: list[datetime]

    def pieces(self, category: str) -> Iterator[Held]:
        yield from self.held.get(category, [])

    def size_at(self, service: str, resource: str, at: datetime) -> int:
        """The bytes in force at ``at`` (0 before any was set)."""
        found = 0
        for moment, size in self.sizes.get((service, resource), []):
            if moment > at:
                break
            found = size
        return found


def _auto_address(instance: Any) -> str | None:
    """The public IPv4 address of the instance's primary interface, if it has one."""
    return instance.public_ip or None


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
