"""The layer's own state (armed faults, client tokens, pending interruptions, sizes) and the
control operations on it. One :class:`Controls` object serves both the in-process methods of
:class:`~sandbox.aws.layer.AwsLayer` and the HTTP control endpoints, so the two cannot drift."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.aws import moto_state, wire

# AWS's notice before it reclaims a spot instance.
SPOT_WARNING_SECONDS = 120.0

# EC2 actions whose ClientToken the layer deduplicates (moto stores the token and ignores it).
IDEMPOTENT_ACTIONS = frozenset({"RunInstances", "RequestSpotInstances"})


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
        return tuple(sorted((k, v) for k, v in params.items() if k != "ClientToken"))

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

    def __init__(self, *, region: str, recording: Path) -> None:
        self.region = region
        self.recording = recording
        self.tokens = ClientTokens()
        self.s3_sizes = moto_state.S3SizeOverride()
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._pending: dict[str, threading.Timer] = {}  # instance id -> its termination
        # Actions the layer answered itself (faults, replayed tokens): moto's recorder never
        # saw them, but the product did call them.
        self._answered: set[tuple[str, str]] = set()

    # --- reset ------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget tokens, faults, size overrides and pending interruptions (moto's own reset
        clears the rest). The recording of called actions is kept: it spans the suite."""
        with self._lock:
            self._faults.clear()
            timers, self._pending = list(self._pending.values()), {}
        for timer in timers:
            timer.cancel()
        self.tokens.clear()
        self.s3_sizes.clear()

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
                    self._answered.add((request.iam_service, request.action))
                    return fault
        return None

    def answered(self, request: wire.AwsRequest) -> None:
        with self._lock:
            self._answered.add((request.iam_service, request.action))

    # --- spot interruption ------------------------------------------------------------------
    def spot_interrupt(
        self,
        instance_id: str,
        *,
        warning_queue_url: str | None = None,
        warning_seconds: float | None = None,
    ) -> SpotInterruption:
        account_id, region, _ = moto_state.spot_interruptible(instance_id)
        if warning_seconds is None:
            warning_seconds = SPOT_WARNING_SECONDS if warning_queue_url else 0.0
        if warning_seconds < 0:
            raise ValueError("warning_seconds cannot be negative")
        with self._lock:
            if instance_id in self._pending:
                # AWS warns once; a second click on the sandbox's button must not warn again.
                raise moto_state.Conflict(f"{instance_id} is already being interrupted")
        now = datetime.now(UTC)
        warned_at = None
        if warning_queue_url:
            event = moto_state.spot_warning_event(instance_id, account_id, region, now)
            moto_state.sqs_send(warning_queue_url, event, region)
            warned_at = now
        terminates_at = now + timedelta(seconds=warning_seconds)
        if warning_seconds == 0:
            moto_state.spot_terminate(instance_id, now)
        else:
            timer = threading.Timer(warning_seconds, self._terminate_later, args=(instance_id,))
            timer.daemon = True
            with self._lock:
                self._pending[instance_id] = timer
            timer.start()
        return SpotInterruption(instance_id, warned_at, terminates_at)

    def _terminate_later(self, instance_id: str) -> None:
        with self._lock:
            # A reset since scheduling replaced the table: this termination was cancelled.
            if self._pending.get(instance_id) is not threading.current_thread():
                return
        moto_state.spot_terminate(instance_id)
        with self._lock:
            self._pending.pop(instance_id, None)

    # --- storage sizes ----------------------------------------------------------------------
    def efs_size_set(
        self, file_system_id: str, size_bytes: int, *, at: datetime | None = None
    ) -> None:
        """``AWS/EFS StorageBytes`` (StorageClass=Total) is ``size_bytes`` at ``at`` (default:
        now, to the minute, as EFS publishes every few minutes); ``DescribeFileSystems``
        reports it too when the file system exists in moto."""
        if size_bytes < 0:
            raise ValueError("a size cannot be negative")
        home = moto_state.efs_region(file_system_id)
        account_id, region = home or (moto_state.account_for("", {}), self.region)
        at = at or datetime.now(UTC).replace(second=0, microsecond=0)
        moto_state.efs_size_store(file_system_id, size_bytes)
        moto_state.metric_set(
            account_id,
            region,
            "AWS/EFS",
            "StorageBytes",
            {"FileSystemId": file_system_id, "StorageClass": "Total"},
            size_bytes,
            at,
        )

    def s3_size_set(self, bucket: str, size_bytes: int, *, at: datetime | None = None) -> None:
        """``AWS/S3 BucketSizeBytes`` (StorageType=StandardStorage) is ``size_bytes`` on the
        day of ``at`` (default today): S3 publishes one datapoint a day, stamped 00:00 UTC.
        Moto's own estimate for the bucket is hidden from then on."""
        if size_bytes < 0:
            raise ValueError("a size cannot be negative")
        home = moto_state.s3_bucket_home(bucket)
        account_id, region = home or (moto_state.account_for("", {}), self.region)
        day = (at or datetime.now(UTC)).astimezone(UTC)
        day = day.replace(hour=0, minute=0, second=0, microsecond=0)
        self.s3_sizes.hide(bucket)
        moto_state.metric_set(
            account_id,
            region,
            "AWS/S3",
            "BucketSizeBytes",
            {"BucketName": bucket, "StorageType": "StandardStorage"},
            size_bytes,
            day,
        )

    # --- the recorder -----------------------------------------------------------------------
    def recorded_actions(self) -> list[tuple[str, str]]:
        """Every (IAM service prefix, action) called since the layer started, resets included:
        what moto's recorder saw plus what the layer answered itself."""
        with self._lock:
            actions = set(self._answered)
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
                    actions.add((request.iam_service, request.action))
        return sorted(actions)
