"""The AWS layer: moto's WSGI application on a loopback port, behind the layer's middleware.

:class:`AwsLayer` runs it in a thread of the current process (``make run``'s runner, the test
session) and offers the controls as methods. :class:`AwsControl` offers the same controls over
HTTP to any other process (the sandbox's web site, a Celery worker).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sandbox.aws import clock
from sandbox.aws.bill import BillRules
from sandbox.aws.controls import Controls, Fault, SpotInterruption
from sandbox.aws.lifecycle import StateDelays
from sandbox.aws.middleware import (
    CONTROL_PREFIX,
    SETUP_ACCESS_KEY,
    LayerMiddleware,
    replay_call,
)
from sandbox.services.base import free_port, wait_for_port


class AwsLayer:
    """A moto server with the layer's additions (see ``sandbox/aws/README.md``): the harness
    interface of ``sandbox/services`` (``start``, ``stop``, ``reset``, ``url``, ``env``) plus
    ``data`` and the controls. moto keeps its state in module globals, so a process runs one
    layer at a time.

    ``delays`` are the seconds instances spend ``pending``, ``stopping`` and ``shutting-down``
    (default :class:`~sandbox.aws.lifecycle.StateDelays`; ``make run`` and the tests pass
    shorter ones)."""

    SETUP_ACCESS_KEY = SETUP_ACCESS_KEY

    def __init__(
        self,
        port: int | None = None,
        *,
        region: str = "eu-west-1",
        workdir: Path | None = None,
        delays: StateDelays | None = None,
    ) -> None:
        self.port = port or free_port()
        self.region = region
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="clusterweb-aws-"))
        self.controls = Controls(
            region=region, recording=self.workdir / "moto-recording.jsonl", delays=delays
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # --- the harness interface --------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a process needs to reach the layer with boto3 (it reads ``AWS_ENDPOINT_URL``)."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def setup_env(self) -> dict[str, str]:
        """:meth:`env` with the set-up access key: for seeding and test arrangements, whose
        calls the recorder then files apart from the product's (``recorded_actions``)."""
        return {
            **self.env(),
            "AWS_ACCESS_KEY_ID": SETUP_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SETUP_ACCESS_KEY,
        }

    def start(self) -> AwsLayer:
        from moto.moto_api import recorder
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass  # one line per AWS call drowns the sandbox's output; errors still log

        self.workdir.mkdir(parents=True, exist_ok=True)
        # The recorder's file is fixed when moto is imported (MOTO_RECORDER_FILEPATH, default
        # ./moto_recording); point it into the work directory whenever moto was imported.
        recorder._location = str(self.controls.recording)
        recorder.reset_recording()
        recorder.start_recording()
        self.controls.s3_sizes.install()
        self.controls.spot_prices.install()
        clock.install()
        self.controls.spot_prices.clear()  # prices in force from now, on the layer's clock
        self.controls.endpoint = self.url

        app = LayerMiddleware(DomainDispatcherApplication(create_backend_app), self.controls)
        self._server = make_server(
            "127.0.0.1", self.port, app, threaded=True, request_handler=QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="aws-layer", daemon=True
        )
        self._thread.start()
        wait_for_port(self.port, name="the AWS layer")
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        from moto.moto_api import recorder

        self.controls.clear()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None
        recorder.stop_recording()
        self.controls.s3_sizes.uninstall()
        self.controls.spot_prices.uninstall()
        clock.uninstall()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def reset(self) -> None:
        """Empty moto (``POST /moto-api/reset``) and forget the layer's tokens, faults, sizes
        and pending interruptions. The recording of called actions is kept."""
        _request("POST", f"{self.url}/moto-api/reset", b"")

    def data(self) -> dict:
        """moto's ``/moto-api/data.json``: every resource it holds (SES mail under ``ses``)."""
        return _request("GET", f"{self.url}/moto-api/data.json")

    # --- controls, in process ---------------------------------------------------------------
    def fault_inject(
        self,
        action: str,
        code: str,
        *,
        times: int | None = 1,
        message: str | None = None,
        when: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> Fault:
        """Answer the next ``times`` calls of ``action`` (``"RunInstances"``, or qualified
        ``"ce:GetCostAndUsage"``) with AWS's ``code`` error, in that service's protocol.

        ``when`` narrows it to calls with those parameters (``{"InstanceType": "g5.xlarge"}``;
        see :meth:`sandbox.aws.wire.AwsRequest.matches`). ``message`` and ``status`` default to
        what AWS sends for ``code``. ``times=None`` fails every matching call until reset."""
        return self.controls.fault_inject(
            action, code, times=times, message=message, when=when, status=status
        )

    def faults_clear(self) -> None:
        self.controls.faults_clear()

    def spot_interrupt(
        self,
        instance_id: str,
        *,
        warning_queue_url: str | None = None,
        warning_seconds: float | None = None,
    ) -> SpotInterruption:
        """Reclaim a running spot instance as AWS does. With ``warning_queue_url`` an
        "EC2 Spot Instance Interruption Warning" event goes to that SQS queue now and the
        instance terminates ``warning_seconds`` later (default 120); without, it terminates
        after ``warning_seconds`` (default at once). The instance ends ``terminated`` with state
        reason ``Server.SpotInstanceTermination``.

        Raises :class:`~sandbox.aws.moto_state.NotFound` for an unknown instance or queue and
        :class:`~sandbox.aws.moto_state.Conflict` for an on-demand or stopped instance."""
        return self.controls.spot_interrupt(
            instance_id, warning_queue_url=warning_queue_url, warning_seconds=warning_seconds
        )

    def efs_size_set(
        self, file_system_id: str, size_bytes: int, *, at: datetime | None = None
    ) -> None:
        """Publish ``AWS/EFS StorageBytes`` for the file system (see ``Controls``)."""
        self.controls.efs_size_set(file_system_id, size_bytes, at=at)

    def s3_size_set(self, bucket: str, size_bytes: int, *, at: datetime | None = None) -> None:
        """Publish the bucket's daily ``AWS/S3 BucketSizeBytes`` (see ``Controls``)."""
        self.controls.s3_size_set(bucket, size_bytes, at=at)

    def recorded_actions(self, access_key: str | None = None) -> list[tuple[str, str]]:
        """Sorted (IAM service prefix, action) pairs of every AWS call made since ``start``,
        across resets, by anyone or with ``access_key`` only (the product's key: the input for
        deriving Clusterweb's IAM policy)."""
        return self.controls.recorded_actions(access_key)

    def recorded_calls(self) -> list[tuple[str, str, str]]:
        """Sorted (access key, IAM service prefix, action) triples: who called what."""
        return self.controls.recorded_calls()

    def delays(self) -> StateDelays:
        return self.controls.delays()

    def delays_set(
        self,
        *,
        pending: float | None = None,
        stopping: float | None = None,
        shutting_down: float | None = None,
    ) -> StateDelays:
        """Seconds instances spend in ``pending``, ``stopping``, ``shutting-down`` from now on."""
        return self.controls.delays_set(
            pending=pending, stopping=stopping, shutting_down=shutting_down
        )

    def spot_price_set(
        self,
        instance_type: str,
        zone: str,
        price: Decimal | str,
        *,
        at: datetime | None = None,
    ) -> None:
        """The spot price of ``instance_type`` in ``zone`` from ``at`` (default now) on."""
        self.controls.spot_price_set(instance_type, zone, price, at=at)

    def price_list_set(self, region: str, instance_type: str, price: Decimal | str | None) -> None:
        """What the Price List Query API lists for ``instance_type`` in ``region`` (None: not
        listed), beside the bundled catalog's figures (``sandbox/aws/pricing.py``)."""
        self.controls.price_list_set(region, instance_type, price)

    def bill_price_set(self, kind: str, item: str, price: Decimal | str) -> None:
        """Make the layer's bill charge ``price`` for ``item`` of ``kind`` (see
        ``Controls.bill_price_set``): a deliberate disagreement with the estimate."""
        self.controls.bill_price_set(kind, item, price)

    def bill_rules_set(self, **changes: Any) -> BillRules:
        """Change how the layer bills (``sandbox.aws.bill.BillRules``)."""
        return self.controls.bill_rules_set(**changes)

    def bill(
        self, first: date, end: date, *, cutoff: datetime | None = None
    ) -> dict[date, dict[str, Decimal]]:
        """The layer's bill, by day and Cost Explorer service, for ``[first, end)``."""
        found = self.controls.bill(first, end, cutoff=cutoff)
        return {day: dict(services) for day, services in sorted(found.days.items())}

    def replay(self, steps: list[dict[str, Any]]) -> list[Any]:
        """Apply scripted steps at explicit past timestamps (see ``Controls.replay``)."""
        return self.controls.replay(steps, replay_call(self.url, self.region))


class AwsControl:
    """The layer's controls over HTTP, for a process that does not run the layer. Errors come
    back as :class:`LayerControlError` with the endpoint's status (404 unknown instance, 409
    not interruptible, 400 bad input)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + CONTROL_PREFIX.rstrip("/")

    def reset(self) -> None:
        _request("POST", f"{self.url}/reset", b"")

    def fault_inject(
        self,
        action: str,
        code: str,
        *,
        times: int | None = 1,
        message: str | None = None,
        when: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> Fault:
        payload = {
            "action": action,
            "code": code,
            "times": times,
            "message": message,
            "when": when or {},
            "status": status,
        }
        return Fault(**_request("POST", f"{self.url}/faults", payload)["fault"])

    def faults(self) -> list[Fault]:
        return [Fault(**f) for f in _request("GET", f"{self.url}/faults")["faults"]]

    def faults_clear(self) -> None:
        _request("DELETE", f"{self.url}/faults")

    def spot_interrupt(
        self,
        instance_id: str,
        *,
        warning_queue_url: str | None = None,
        warning_seconds: float | None = None,
    ) -> SpotInterruption:
        payload = {
            "instance_id": instance_id,
            "warning_queue_url": warning_queue_url,
            "warning_seconds": warning_seconds,
        }
        answer = _request("POST", f"{self.url}/spot-interruptions", payload)
        return SpotInterruption.from_json(answer["interruption"])

    def efs_size_set(
        self, file_system_id: str, size_bytes: int, *, at: datetime | None = None
    ) -> None:
        payload = {"bytes": size_bytes, "at": at.isoformat() if at else None}
        _request("PUT", f"{self.url}/sizes/efs/{quote(file_system_id, safe='')}", payload)

    def s3_size_set(self, bucket: str, size_bytes: int, *, at: datetime | None = None) -> None:
        payload = {"bytes": size_bytes, "at": at.isoformat() if at else None}
        _request("PUT", f"{self.url}/sizes/s3/{quote(bucket, safe='')}", payload)

    def recorded_actions(self, access_key: str | None = None) -> list[tuple[str, str]]:
        query = f"?access_key={quote(access_key, safe='')}" if access_key is not None else ""
        actions = _request("GET", f"{self.url}/recorded-actions{query}")["actions"]
        return [(a["service"], a["action"]) for a in actions]

    def recorded_calls(self) -> list[tuple[str, str, str]]:
        calls = _request("GET", f"{self.url}/recorded-calls")["calls"]
        return [(c["access_key"], c["service"], c["action"]) for c in calls]

    def delays(self) -> StateDelays:
        return StateDelays(**_request("GET", f"{self.url}/delays")["delays"])

    def delays_set(
        self,
        *,
        pending: float | None = None,
        stopping: float | None = None,
        shutting_down: float | None = None,
    ) -> StateDelays:
        payload = {"pending": pending, "stopping": stopping, "shutting_down": shutting_down}
        return StateDelays(**_request("PUT", f"{self.url}/delays", payload)["delays"])

    def spot_price_set(
        self,
        instance_type: str,
        zone: str,
        price: Decimal | str,
        *,
        at: datetime | None = None,
    ) -> None:
        payload = {"price": str(price), "at": at.isoformat() if at else None}
        path = f"{quote(instance_type, safe='')}/{quote(zone, safe='')}"
        _request("PUT", f"{self.url}/spot-prices/{path}", payload)

    def price_list_set(self, region: str, instance_type: str, price: Decimal | str | None) -> None:
        payload = {"price": None if price is None else str(price)}
        path = f"{quote(region, safe='')}/{quote(instance_type, safe='')}"
        _request("PUT", f"{self.url}/price-list/{path}", payload)

    def bill_price_set(self, kind: str, item: str, price: Decimal | str) -> None:
        path = f"{quote(kind, safe='')}/{quote(item, safe='')}"
        _request("PUT", f"{self.url}/bill/prices/{path}", {"price": str(price)})

    def bill_rules_set(self, **changes: Any) -> BillRules:
        return BillRules(**_request("PUT", f"{self.url}/bill/rules", changes)["rules"])

    def bill(
        self, first: date, end: date, *, cutoff: datetime | None = None
    ) -> dict[date, dict[str, Decimal]]:
        query = f"?start={first.isoformat()}&end={end.isoformat()}"
        if cutoff is not None:
            query += f"&cutoff={quote(cutoff.isoformat(), safe='')}"
        days = _request("GET", f"{self.url}/bill{query}")["days"]
        return {
            date.fromisoformat(day): {name: Decimal(cost) for name, cost in services.items()}
            for day, services in days.items()
        }

    def replay(self, steps: list[dict[str, Any]]) -> list[Any]:
        def encode(step: dict[str, Any]) -> dict[str, Any]:
            at = step.get("at")
            return {**step, "at": at.isoformat() if isinstance(at, datetime) else at}

        payload = {"steps": [encode(step) for step in steps]}
        return _request("POST", f"{self.url}/replay", payload)["results"]


class LayerControlError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _request(method: str, url: str, payload: Any = None) -> Any:
    data = payload if isinstance(payload, bytes) or payload is None else json.dumps(payload)
    if isinstance(data, str):
        data = data.encode()
    request = urllib.request.Request(url, method=method, data=data)
    if payload is not None and not isinstance(payload, bytes):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError):  # a JSON error names the problem
            body = json.loads(body).get("error", body)
        raise LayerControlError(exc.code, body) from None
    return json.loads(raw) if raw else None
