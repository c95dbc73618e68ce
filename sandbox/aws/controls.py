"""The layer's own state (armed faults, client tokens, pending interruptions, sizes) and the
control operations on it. One :class:`Controls` object serves both the in-process methods of
:class:`~sandbox.aws.layer.AwsLayer` and the HTTP control endpoints, so the two cannot drift."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandbox.aws import clock, moto_state, wire
from sandbox.aws.bill import Bill, BillRules
from sandbox.aws.lifecycle import Lifecycle, StateDelays
from sandbox.aws.metering import Meter
from sandbox.aws.price_table import PriceTable
from sandbox.aws.pricing import PriceListTable

# AWS's notice before it reclaims a spot instance.
SPOT_WARNING_SECONDS = 120.0

# EC2 actions whose ClientToken the layer deduplicates (moto stores the token and ignores it).
IDEMPOTENT_ACTIONS = frozenset({"RunInstances", "RequestSpotInstances"})

# "A client token is a unique, case-sensitive string of up to 64 ASCII characters" (Ensuring
# idempotency in Amazon EC2 API requests:
# https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html).
CLIENT_TOKEN_MAX = 64

# A tag's place in a flattened request (TagSpecification.1.Tag.2.Key): both numbers are list
# positions, and the order of tags means nothing to EC2.
_TAG = re.compile(
    r"^(?P<spec>(?:.*\.)?TagSpecification\.\d+)\.Tag\.(?P<tag>\d+)\.(?P<part>Key|Value)$"
)


@dataclass
class Fault:
    """An error the layer answers instead of moto, for requests that match. ``times`` None
    means every matching request until the faults are cleared or the layer reset."""

    action: str
    code: str
    times: int | None = 1
    message: str | None = None
    when: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    service: str | None = None  # IAM prefix (ec2, ce, cloudwatch); None: any service

    def applies_to(self, request: wire.AwsRequest) -> bool:
        if self.action != request.action:
            return False
        if self.service and self.service not in (request.iam_service, request.service):
            return False
        return request.matches(self.when)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SpotInterruption:
    """What :meth:`Controls.spot_interrupt` scheduled: the warning (if a queue was named) went
    out at ``warned_at``; the instance terminates at ``terminates_at``."""

    instance_id: str
    warned_at: datetime | None
    terminates_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "warned_at": self.warned_at.isoformat() if self.warned_at else None,
            "terminates_at": self.terminates_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SpotInterruption:
        warned = data.get("warned_at")
        return cls(
            data["instance_id"],
            datetime.fromisoformat(warned) if warned else None,
            datetime.fromisoformat(data["terminates_at"]),
        )


@dataclass
class IssuedResponse:
    """The first successful answer to a ClientToken, kept to be sent again."""

    fingerprint: tuple[tuple[str, str], ...]
    headers: list[tuple[str, str]]
    body: bytes


class ClientTokens:
    """Successful responses to idempotent EC2 calls, by (account, region, action, token).

    A failed call is not remembered: AWS lets a client retry a token whose request failed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued: dict[tuple[str, str, str, str], IssuedResponse] = {}
        self._key_locks: dict[tuple[str, str, str, str], threading.Lock] = {}

    @staticmethod
    def fingerprint(params: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        """The parameters a retry must repeat, without the token. Tags are a set: EC2 compares
        the request, not the order a client happened to list its tags in, so each tag
        specification's tags are sorted by key."""
        plain: list[tuple[str, str]] = []
        tags: dict[str, dict[str, dict[str, str]]] = {}
        for key, value in params.items():
            if key == "ClientToken":
                continue
            match = _TAG.match(key)
            if match is None:
                plain.append((key, value))
            else:
                tag = tags.setdefault(match["spec"], {}).setdefault(match["tag"], {})
                tag[match["part"]] = value
        for spec, entries in tags.items():
            pairs = sorted((t.get("Key", ""), t.get("Value", "")) for t in entries.values())
            plain += [(f"{spec}.Tag", json.dumps(pairs))]
        return tuple(sorted(plain))

    def lock_for(self, key: tuple[str, str, str, str]) -> threading.Lock:
        """Held around check-call-store, so two concurrent calls with one token launch once."""
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def get(self, key: tuple[str, str, str, str]) -> IssuedResponse | None:
        with self._lock:
            return self._issued.get(key)

    def put(self, key: tuple[str, str, str, str], issued: IssuedResponse) -> None:
        with self._lock:
            self._issued[key] = issued

    def clear(self) -> None:
        with self._lock:
            self._issued.clear()
            self._key_locks.clear()


class Controls:
    """The layer's state. Thread-safe: the server answers requests on many threads."""

    def __init__(self, *, region: str, recording: Path, delays: StateDelays | None = None) -> None:
        self.region = region
        self.recording = recording
        self.endpoint = ""  # the layer's URL, set when it starts (the replay calls it)
        self.tokens = ClientTokens()
        self.s3_sizes = moto_state.S3SizeOverride()
        self.spot_prices = moto_state.SpotPriceHistory()
        self.price_list = PriceListTable()  # the Price List Query API's table (pricing.py)
        self.lifecycle = Lifecycle(delays)
        self._initial_delays = self.lifecycle.delays  # what a reset goes back to
        self.lifecycle.reclaim = lambda instance_id, at: moto_state.spot_terminate(instance_id, at)
        # The layer's own bill (metering.py, bill.py): usage as AWS meters it, priced with the
        # layer's own table by AWS's rules.
        self.meter = Meter()
        self.lifecycle.on_state = self._instance_state
        self.bill_prices = PriceTable()
        self.bill_rules = BillRules()
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        # EFS StorageBytes as EFS emits it (every 15 minutes): per file system, where its series
        # lives (account, region) and the last sample published (efs_samples_publish).
        self._efs_lock = threading.Lock()
        self._efs_series: dict[str, tuple[str, str]] = {}
        self._efs_published: dict[str, datetime] = {}
        self._faults: list[Fault] = []
        # Actions the layer answered itself (faults, replayed tokens, refusals), by access key:
        # moto's recorder never saw them, but the caller did call them.
        self._answered: set[tuple[str, str, str]] = set()

    # --- reset ------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget tokens, faults, size overrides, spot prices, transitions in progress, pending
        interruptions and changed delays (moto's own reset clears the rest). The recording of called
        actions is kept: it spans the suite."""
        with self._lock:
            self._faults.clear()
        self.lifecycle.clear()
        self.lifecycle.delays = self._initial_delays
        self.tokens.clear()
        self.s3_sizes.clear()
        self.spot_prices.clear()
        self.price_list.clear()
        self.meter.clear()
        with self._efs_lock:
            self._efs_series.clear()
            self._efs_published.clear()
        self.bill_prices.clear()
        self.bill_rules = BillRules()

    # --- faults -----------------------------------------------------------------------------
    def fault_inject(
        self,
        action: str,
        code: str,
        *,
        times: int | None = 1,
        message: str | None = None,
        when: Mapping[str, Any] | None = None,
        status: int | None = None,
    ) -> Fault:
        service, _, name = action.rpartition(":")
        if not name or not code:
            raise ValueError("a fault needs an action and an error code")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None: until cleared)")
        if name in wire.LAUNCH_ACTIONS and code not in wire.LAUNCH_ERROR_CODES:
            # No invented codes: a launch meets only what EC2 documents for it.
            raise ValueError(
                f"{code} is not an error EC2 returns to {name}; one of: "
                + ", ".join(sorted(wire.LAUNCH_ERROR_CODES))
            )
        fault = Fault(
            name,
            code,
            times,
            message,
            {str(k): str(v) for k, v in (when or {}).items()},
            status,
            service or None,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def faults(self) -> list[Fault]:
        with self._lock:
            return [Fault(**asdict(f)) for f in self._faults]

    def faults_clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def fault_take(self, request: wire.AwsRequest) -> Fault | None:
        """The first armed fault that applies to ``request``, counted as used."""
        with self._lock:
            for fault in self._faults:
                if fault.applies_to(request):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    self._answered.add((request.access_key, request.iam_service, request.action))
                    return fault
        return None

    def answered(self, request: wire.AwsRequest) -> None:
        with self._lock:
            self._answered.add((request.access_key, request.iam_service, request.action))

    def _instance_state(self, instance: Any, state: str, at: datetime) -> None:
        """An instance entered ``state`` at ``at`` (the lifecycle's transitions)."""
        self.meter.state(instance, state, at)
        if state == "terminated":
            moto_state.addresses_disassociate(instance)

    # --- instance states --------------------------------------------------------------------
    def delays(self) -> StateDelays:
        return self.lifecycle.delays

    def delays_set(
        self,
        *,
        pending: float | None = None,
        stopping: float | None = None,
        shutting_down: float | None = None,
    ) -> StateDelays:
        """Change the seconds instances spend ``pending``, ``stopping``, ``shutting-down``
        (transitions already under way keep their end)."""
        current = self.lifecycle.delays
        self.lifecycle.delays = StateDelays(
            current.pending if pending is None else pending,
            current.stopping if stopping is None else stopping,
            current.shutting_down if shutting_down is None else shutting_down,
        )
        return self.lifecycle.delays

    # --- spot prices ------------------------------------------------------------------------
    def spot_price_set(
        self, instance_type: str, zone: str, price: Decimal | str, *, at: datetime | None = None
    ) -> None:
        """The spot price of ``instance_type`` in ``zone`` is ``price`` (USD an hour) from
        ``at`` (default now) on: ``DescribeSpotPriceHistory`` lists it, and a ``RunInstances``
        with a lower ``MaxPrice`` there is refused."""
        price = Decimal(str(price))
        if price <= 0:
            raise ValueError("a spot price must be positive")
        if zone not in moto_state.region_zones(self.region):
            raise ValueError(f"{zone} is not a zone of {self.region}")
        self.spot_prices.set(instance_type, zone, price, _aware(at) if at else clock.now())

    def price_list_set(self, region: str, instance_type: str, price: Decimal | str | None) -> None:
        """The on-demand Linux price AWS's Price List (``GetProducts``) lists for
        ``instance_type`` in ``region`` (USD an hour; None: not listed there)."""
        value = None if price is None else Decimal(str(price))
        if value is not None and value <= 0:
            raise ValueError("a price must be positive")
        self.price_list.set(region, instance_type, value)

    # --- spot interruption ------------------------------------------------------------------
    def spot_interrupt(
        self,
        instance_id: str,
        *,
        warning_queue_url: str | None = None,
        warning_seconds: float | None = None,
    ) -> SpotInterruption:
        self.lifecycle.observe()
        account_id, region, instance = moto_state.spot_interruptible(instance_id)
        if warning_seconds is None:
            warning_seconds = SPOT_WARNING_SECONDS if warning_queue_url else 0.0
        if warning_seconds < 0:
            raise ValueError("warning_seconds cannot be negative")
        if self.lifecycle.reclaim_pending(instance_id):
            # AWS warns once; a second click on the sandbox's button must not warn again.
            raise moto_state.Conflict(f"{instance_id} is already being interrupted")
        now = clock.now()
        warned_at = None
        if warning_queue_url:
            event = moto_state.spot_warning_event(instance_id, account_id, region, now)
            moto_state.sqs_send(warning_queue_url, event, region)
            warned_at = now
        terminates_at = now + timedelta(seconds=warning_seconds)
        if warning_seconds == 0:
            moto_state.spot_terminate(instance_id, now)
        else:
            # On the layer's clock, like every transition: the test clock moves it too.
            self.lifecycle.reclaim_at(instance_id, instance, terminates_at)
        self.lifecycle.observe()
        return SpotInterruption(instance_id, warned_at, terminates_at)

    # --- replay -----------------------------------------------------------------------------
    def replay(
        self, steps: list[Mapping[str, Any]], call: Callable[[Mapping[str, Any]], Any]
    ) -> list[Any]:
        """Apply scripted steps, each at its own past moment: the layer's clock (and so moto's
        launch and transition times, CloudWatch's "now", spot price changes) reads the step's
        ``at`` while the step runs, and transitions due by then happen first.

        A step is ``{"at": ISO 8601 or datetime, ...}`` plus either an AWS call,
        ``"service"`` (boto3's name, default ``ec2``), ``"action"`` (``RunInstances``) and
        ``"params"`` (boto3's keyword arguments), made by ``call`` over HTTP with the set-up
        access key; or one of the layer's own controls, ``"control"`` (``spot_interrupt``,
        ``spot_price_set``, ``efs_size_set``, ``s3_size_set``) and ``"args"``. Times must
        not go backwards nor reach into the future. Returns each step's result."""
        moments = []
        for step in steps:
            at = step.get("at")
            if at is None:
                raise ValueError("every replay step needs an 'at'")
            moments.append(_aware(at if isinstance(at, datetime) else datetime.fromisoformat(at)))
        if moments != sorted(moments):
            raise ValueError("replay steps must be in time order")
        if moments and moments[-1] > clock.real_now():
            raise ValueError("a replay step cannot be in the future")
        results = []
        with self._replay_lock:
            for at, step in zip(moments, steps, strict=True):
                with clock.pinned(at):
                    self.lifecycle.observe()
                    results.append(self._replay_step(step, call))
                    self.lifecycle.observe()
                    self.meter.observe()
        return results

    def _replay_step(self, step: Mapping[str, Any], call: Callable[[Mapping[str, Any]], Any]):
        control = step.get("control")
        if control is None:
            if not step.get("action"):
                raise ValueError("a replay step needs an 'action' or a 'control'")
            return call(step)
        args = dict(step.get("args") or {})
        if control == "spot_interrupt":
            return self.spot_interrupt(args.pop("instance_id"), **args).to_json()
        if control == "spot_price_set":
            self.spot_price_set(args.pop("instance_type"), args.pop("zone"), args.pop("price"))
            return None
        if control == "efs_size_set":
            self.efs_size_set(args.pop("file_system_id"), int(args.pop("bytes")))
            return None
        if control == "s3_size_set":
            self.s3_size_set(args.pop("bucket"), int(args.pop("bytes")))
            return None
        raise ValueError(f"no control {control!r} to replay")

    # --- storage sizes ----------------------------------------------------------------------
    def efs_size_set(
        self, file_system_id: str, size_bytes: int, *, at: datetime | None = None
    ) -> None:
        """The file system holds ``size_bytes`` from ``at`` (default: now, to the minute):
        ``AWS/EFS StorageBytes`` (StorageClass=Total) has that value at ``at``, and from then on
        at every quarter hour, as EFS emits it every 15 minutes (:meth:`efs_samples_publish`);
        ``DescribeFileSystems`` reports it too when the file system exists in moto."""
        if size_bytes < 0:
            raise ValueError("a size cannot be negative")
        home = moto_state.efs_region(file_system_id)
        account_id, region = home or (moto_state.account_for("", {}), self.region)
        at = at or clock.now().replace(second=0, microsecond=0)
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        moto_state.efs_size_store(file_system_id, size_bytes)
        # The samples before ``at`` keep the size in force then (a size set in the past
        # republishes them), those after it wait for the next publication.
        self.efs_samples_publish(until=at - timedelta(microseconds=1))
        self.meter.size_set("efs", file_system_id, size_bytes, at)
        with self._efs_lock:
            self._efs_series[file_system_id] = (account_id, region)
            published = self._efs_published.get(file_system_id)
            if published is not None and published >= at:
                self._efs_published[file_system_id] = at
        moto_state.metric_set(
            account_id,
            region,
            "AWS/EFS",
            "StorageBytes",
            {"FileSystemId": file_system_id, "StorageClass": "Total"},
            size_bytes,
            at,
        )

    def efs_samples_publish(self, until: datetime | None = None) -> None:
        """Publish each file system's ``StorageBytes`` sample at every quarter hour (UTC) since
        the last one published, up to ``until`` (default now), with the size in force then:
        Amazon EFS emits the metric to CloudWatch every 15 minutes (*Amazon CloudWatch metrics
        for Amazon EFS*, StorageBytes), so a day's Average is the size held through the day,
        as EFS bills it (GB-hours, *Amazon EFS pricing*). Run before each CloudWatch request
        (middleware) and when a size is set. Until the file system is deleted."""
        until = (until or clock.now()).astimezone(UTC)
        snapshot = self.meter.snapshot()
        # Where the file system's metering ended (deleted); an open piece: it still exists.
        ends: dict[str, datetime] = {}
        open_keys = set()
        for piece in snapshot.pieces("efs"):
            if piece.end is None:
                open_keys.add(piece.key)
            else:
                ends[piece.key] = max(piece.end, ends.get(piece.key, piece.end))
        with self._efs_lock:
            for file_system_id, (account_id, region) in self._efs_series.items():
                history = snapshot.sizes.get(("efs", file_system_id)) or []
                if not history:
                    continue
                last = self._efs_published.get(file_system_id, history[0][0])
                end = until
                if file_system_id not in open_keys and file_system_id in ends:
                    end = min(until, ends[file_system_id])
                mark = _quarter_after(last)
                points = []
                while mark <= end:
                    points.append((mark, snapshot.size_at("efs", file_system_id, mark)))
                    mark += EFS_SAMPLE
                if not points:
                    continue
                moto_state.metric_series_put(
                    account_id,
                    region,
                    "AWS/EFS",
                    "StorageBytes",
                    {"FileSystemId": file_system_id, "StorageClass": "Total"},
                    points,
                )
                self._efs_published[file_system_id] = points[-1][0]

    def s3_size_set(self, bucket: str, size_bytes: int, *, at: datetime | None = None) -> None:
        """``AWS/S3 BucketSizeBytes`` (StorageType=StandardStorage) is ``size_bytes`` on the
        day of ``at`` (default today): S3 publishes one datapoint a day, stamped 00:00 UTC.
        Moto's own estimate for the bucket is hidden from then on."""
        if size_bytes < 0:
            raise ValueError("a size cannot be negative")
        home = moto_state.s3_bucket_home(bucket)
        account_id, region = home or (moto_state.account_for("", {}), self.region)
        day = (at or clock.now()).astimezone(UTC)
        day = day.replace(hour=0, minute=0, second=0, microsecond=0)
        self.s3_sizes.hide(bucket)
        self.meter.size_set("s3", bucket, size_bytes, day)
        moto_state.metric_set(
            account_id,
            region,
            "AWS/S3",
            "BucketSizeBytes",
            {"BucketName": bucket, "StorageType": "StandardStorage"},
            size_bytes,
            day,
        )

    # --- the bill ---------------------------------------------------------------------------
    def bill_price_set(self, kind: str, item: str, price: Decimal | str) -> None:
        """What the layer's bill charges for ``item`` of ``kind`` ("on-demand" and an instance
        type, "storage" and ``ebs-gp3``/``efs``/``s3``..., "ipv4" and ``address-hour``,
        "ce-request" and ``request``), for all usage, past included: a deliberate disagreement
        with the estimate (AWS's own prices are in ``price_table.py``)."""
        self.bill_prices.set(kind, item, Decimal(str(price)))

    def bill_rules_set(self, **changes: Any) -> BillRules:
        """Change how the layer bills (``BillRules``' fields), e.g.
        ``spot_interrupted_first_hour_free=False`` to charge what AWS does not."""
        unknown = set(changes) - set(BillRules.__dataclass_fields__)
        if unknown:
            raise ValueError(f"no bill rule {', '.join(sorted(unknown))}")
        current = self.bill_rules.to_json()
        current.update({k: v for k, v in changes.items() if v is not None})
        self.bill_rules = BillRules(**current)
        return self.bill_rules

    def bill(self, first: date, end: date, *, cutoff: datetime | None = None) -> Bill:
        """The layer's bill for the days ``[first, end)``, counting usage before ``cutoff``
        (default: now, without Cost Explorer's lag)."""
        self.lifecycle.observe()
        self.meter.observe()
        return self.bill_for(first, end, cutoff or clock.now())

    def bill_for(self, first: date, end: date, cutoff: datetime) -> Bill:
        return Bill(
            self.meter.snapshot(),
            self.bill_prices,
            self.bill_rules,
            self.spot_prices.history,
            first=first,
            end=end,
            cutoff=cutoff,
        )

    # --- the recorder -----------------------------------------------------------------------
    def recorded_calls(self) -> list[tuple[str, str, str]]:
        """Every (access key, IAM service prefix, action) called since the layer started,
        resets included: what moto's recorder saw plus what the layer answered itself. The
        access key tells who called: the product's own key, or a set-up key
        (``SETUP_ACCESS_KEY``: the sandbox's seeding, a test's arrangement, the replay)."""
        with self._lock:
            calls = set(self._answered)
        if self.recording.exists():
            for line in self.recording.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:  # concurrent appends can tear a line; skip it
                    continue
                url = entry.get("url", "")
                if "/moto-api/" in url:
                    continue
                request = wire.parse_recorded(entry)
                if request.service and request.action:
                    calls.add((request.access_key, request.iam_service, request.action))
        return sorted(calls)

    def recorded_actions(self, access_key: str | None = None) -> list[tuple[str, str]]:
        """Sorted (IAM service prefix, action) pairs called, by anyone or with ``access_key``."""
        return sorted(
            {
                (service, action)
                for key, service, action in self.recorded_calls()
                if access_key is None or key == access_key
            }
        )


EFS_SAMPLE = timedelta(minutes=15)


def _quarter_after(moment: datetime) -> datetime:
    """The first quarter hour (UTC) strictly after ``moment``."""
    moment = moment.astimezone(UTC)
    floor = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    return floor + EFS_SAMPLE


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone: give UTC times")
    return moment.astimezone(UTC)
