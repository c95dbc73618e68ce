"""The WSGI middleware in front of moto's application.

For each request it either answers itself or hands the request to moto untouched:

- ``/_clusterweb/...``: the layer's control endpoints (JSON), for processes other than the one
  running the layer (the sandbox's web process, a Celery worker, a test).
- ``POST /moto-api/reset``: clears the layer's state too, then moto resets.
- ``RunInstances``/``RequestSpotInstances`` with a ``ClientToken`` seen before: the first
  response again, or ``IdempotentParameterMismatch`` when the parameters differ; this comes
  first, before any check or fault, as on AWS.
- a launch AWS would refuse (an instance type not offered, a spot ``MaxPrice`` under the spot
  price): AWS's error.
- an AWS call a fault is armed for: the fault's error, in the call's protocol.
- the Price List Query API (``pricing``), which moto lacks: ``sandbox/aws/pricing.py``.
- Cost Explorer's ``GetCostAndUsage``: the layer's own bill (``sandbox/aws/bill.py``).
- around every EC2 call: the instance state transitions due by the layer's clock; after every
  EC2, S3 and EFS call: the metering's look at what changed (``sandbox/aws/metering.py``).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError
from werkzeug.wrappers import Request, Response

from sandbox.aws import bill, moto_state, pricing, wire
from sandbox.aws.controls import (
    CLIENT_TOKEN_MAX,
    IDEMPOTENT_ACTIONS,
    Controls,
    IssuedResponse,
)

CONTROL_PREFIX = "/_clusterweb/"
# Services (IAM prefixes) whose calls can create, change or delete what the layer meters.
METERED_SERVICES = frozenset({"ec2", "s3", "elasticfilesystem"})

_MISMATCH_MESSAGE = (
    "Arguments on this idempotent request are inconsistent with arguments used in previous "
    "request(s)."
)
_REQUEST_ID = re.compile(rb"<requestId>[^<]*</requestId>")

StartResponse = Callable[..., Any]


class LayerMiddleware:
    def __init__(self, app: Callable[..., Iterable[bytes]], controls: Controls) -> None:
        self.app = app
        self.controls = controls

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response)
        if path.startswith("/moto-api"):
            if path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
                self.controls.clear()
            else:
                self.controls.lifecycle.observe()  # data.json shows the states of now
            return self.app(environ, start_response)
        request = self._parse(environ)
        if request is None or not request.action:
            return self.app(environ, start_response)
        ec2 = request.protocol == "ec2"
        if ec2:
            # Transitions due by now happen before moto answers (lifecycle.py).
            self.controls.lifecycle.observe()
        token = request.params.get("ClientToken")
        if ec2 and request.action in IDEMPOTENT_ACTIONS and token is not None:
            return self._idempotent(environ, start_response, request, token)
        refused = self._refusal(request)
        if refused is not None:
            return _send(start_response, refused)
        priced = pricing.answer(request, self.controls.price_list)  # moto has no Price List API
        if priced is not None:
            self.controls.answered(request)
            return _send(start_response, priced)
        if request.iam_service == "ce" and request.action == "GetCostAndUsage":
            return self._cost_and_usage(environ, start_response, request)
        if request.iam_service == "cloudwatch":
            # EFS's StorageBytes samples due by now are there before CloudWatch answers.
            self.controls.efs_samples_publish()
        if request.iam_service not in METERED_SERVICES:
            return self.app(environ, start_response)
        status, headers, body = _call(self.app, environ)
        if ec2:
            self.controls.lifecycle.observe()  # what moto just launched, stopped or terminated
        self.controls.meter.observe()  # what the call created, changed or deleted
        start_response(status, headers)
        return [body]

    def _cost_and_usage(
        self, environ: dict[str, Any], start_response: StartResponse, request: wire.AwsRequest
    ) -> Iterable[bytes]:
        """The layer's bill (bill.py); moto's answer only while a test has answers queued in
        it. Every answered request is metered ($0.01 each, as AWS charges)."""
        account = moto_state.account_for(request.access_key, request.headers)
        if moto_state.ce_injected(account, request.body):
            status, headers, body = _call(self.app, environ)
        else:
            self.controls.lifecycle.observe()
            self.controls.meter.observe()
            reply = bill.answer(
                request, bill_for=self.controls.bill_for, rules=self.controls.bill_rules
            )
            status, body = reply.status_line, reply.body
            headers = [*reply.headers, ("Content-Length", str(len(body)))]
            _record(environ, request.body)
        if status.startswith("200"):
            self.controls.meter.ce_request()
        start_response(status, headers)
        return [body]

    def _refusal(self, request: wire.AwsRequest) -> wire.Reply | None:
        """What AWS would refuse this request with before launching anything: an invalid
        launch (``launch_refusal``), a stop or start in the wrong state (``state_refusal``),
        else an armed fault. None: moto answers."""
        if request.protocol == "ec2" and request.action in wire.LAUNCH_ACTIONS:
            refused = launch_refusal(request, self.controls)
            if refused is not None:
                self.controls.answered(request)
                return refused
        if request.protocol == "ec2" and request.action in STATE_REFUSALS:
            refused = state_refusal(request)
            if refused is not None:
                self.controls.answered(request)
                return refused
        fault = self.controls.fault_take(request)
        if fault is None:
            return None
        account = moto_state.account_for(request.access_key, request.headers)
        message = fault.message or wire.default_message(fault.code, request, account)
        return wire.error_response(request, fault.code, message, fault.status)

    # --- reading a request ------------------------------------------------------------------
    def _parse(self, environ: dict[str, Any]) -> wire.AwsRequest | None:
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type:
            headers["content-type"] = content_type
        method = environ.get("REQUEST_METHOD", "GET")
        body = b""
        if wire.needs_body(method, content_type, headers):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            # moto reads the body again: give it a fresh stream with the same bytes.
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        path = raw.split("?", 1)[0]
        try:
            return wire.parse(method, path, environ.get("QUERY_STRING", ""), headers, body)
        except Exception:  # a request the layer cannot read is moto's business
            return None

    # --- ClientToken ------------------------------------------------------------------------
    def _idempotent(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        request: wire.AwsRequest,
        token: str,
    ) -> Iterable[bytes]:
        if len(token) > CLIENT_TOKEN_MAX or not token.isascii():
            self.controls.answered(request)
            error = wire.error_response(
                request,
                "InvalidParameterValue",
                f"Value ({token}) for parameter clientToken is invalid. The client token must "
                f"be at most {CLIENT_TOKEN_MAX} ASCII characters.",
            )
            return _send(start_response, error)
        account = moto_state.account_for(request.access_key, request.headers)
        key = (account, request.region, request.action, token)
        fingerprint = self.controls.tokens.fingerprint(request.params)
        with self.controls.tokens.lock_for(key):
            issued = self.controls.tokens.get(key)
            if issued is not None:
                # Checked before any fault: a retry of a launch that succeeded gets its
                # reservation back from AWS even while capacity has run out since (faults
                # apply to new launches only).
                self.controls.answered(request)
                if issued.fingerprint != fingerprint:
                    error = wire.error_response(
                        request, "IdempotentParameterMismatch", _MISMATCH_MESSAGE
                    )
                    return _send(start_response, error)
                # The same reservation again; only the request id is new, as from AWS.
                body = _REQUEST_ID.sub(
                    f"<requestId>{uuid.uuid4()}</requestId>".encode(), issued.body
                )
                return _send(start_response, wire.Reply(200, issued.headers, body))
            refused = self._refusal(request)
            if refused is not None:
                return _send(start_response, refused)  # a failed call does not use its token
            status, headers, body = _call(self.app, environ)
            self.controls.lifecycle.observe()
            self.controls.meter.observe()
            if status.startswith("200"):
                kept = [(k, v) for k, v in headers if k.lower() not in ("content-length", "date")]
                self.controls.tokens.put(key, IssuedResponse(fingerprint, kept, body))
        start_response(status, headers)
        return [body]

    # --- control endpoints ------------------------------------------------------------------
    def _control(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        http = Request(environ)
        route = http.path[len(CONTROL_PREFIX) :].strip("/").split("/")
        try:
            payload = json.loads(http.get_data() or b"{}") if http.method in ("POST", "PUT") else {}
            response = self._dispatch(http.method, route, payload, http.args)
        except moto_state.NotFound as exc:
            response = _json({"error": str(exc)}, 404)
        except moto_state.Conflict as exc:
            response = _json({"error": str(exc)}, 409)
        except (ValueError, KeyError, TypeError) as exc:
            response = _json({"error": f"bad request: {exc}"}, 400)
        except ClientError as exc:  # a replayed AWS call that AWS (moto, the layer) refused
            response = _json({"error": f"AWS refused a replayed call: {exc}"}, 422)
        return response(environ, start_response)

    def _dispatch(
        self, method: str, route: list[str], payload: dict[str, Any], args: Mapping[str, str]
    ) -> Response:
        controls = self.controls
        match method, route:
            case "POST", ["reset"]:
                # Through moto's own endpoint, so both resets happen in one place.
                controls.clear()
                from moto.moto_api._internal.models import moto_api_backend

                moto_api_backend.reset()
                return _json({"status": "ok"})
            case "GET", ["faults"]:
                return _json({"faults": [f.to_json() for f in controls.faults()]})
            case "POST", ["faults"]:
                fault = controls.fault_inject(
                    payload["action"],
                    payload["code"],
                    times=payload.get("times", 1),
                    message=payload.get("message"),
                    when=payload.get("when"),
                    status=payload.get("status"),
                )
                return _json({"fault": fault.to_json()}, 201)
            case "DELETE", ["faults"]:
                controls.faults_clear()
                return Response(status=204)
            case "POST", ["spot-interruptions"]:
                interruption = controls.spot_interrupt(
                    payload["instance_id"],
                    warning_queue_url=payload.get("warning_queue_url"),
                    warning_seconds=payload.get("warning_seconds"),
                )
                return _json({"interruption": interruption.to_json()}, 202)
            case "PUT", ["sizes", "efs", file_system_id]:
                controls.efs_size_set(
                    file_system_id, int(payload["bytes"]), at=_when(payload.get("at"))
                )
                return _json({"file_system_id": file_system_id, "bytes": int(payload["bytes"])})
            case "PUT", ["sizes", "s3", bucket]:
                controls.s3_size_set(bucket, int(payload["bytes"]), at=_when(payload.get("at")))
                return _json({"bucket": bucket, "bytes": int(payload["bytes"])})
            case "PUT", ["price-list", region, instance_type]:
                controls.price_list_set(region, instance_type, payload.get("price"))
                return _json({"region": region, "instance_type": instance_type})
            case "GET", ["recorded-actions"]:
                actions = controls.recorded_actions(args.get("access_key"))
                return _json({"actions": [{"service": s, "action": a} for s, a in actions]})
            case "GET", ["recorded-calls"]:
                calls = [
                    {"access_key": k, "service": s, "action": a}
                    for k, s, a in controls.recorded_calls()
                ]
                return _json({"calls": calls})
            case "GET", ["delays"]:
                return _json({"delays": controls.delays().to_json()})
            case "PUT", ["delays"]:
                delays = controls.delays_set(
                    pending=payload.get("pending"),
                    stopping=payload.get("stopping"),
                    shutting_down=payload.get("shutting_down"),
                )
                return _json({"delays": delays.to_json()})
            case "PUT", ["spot-prices", instance_type, zone]:
                controls.spot_price_set(
                    instance_type, zone, str(payload["price"]), at=_when(payload.get("at"))
                )
                return _json({"instance_type": instance_type, "zone": zone})
            case "PUT", ["bill", "prices", kind, item]:
                controls.bill_price_set(kind, item, str(payload["price"]))
                return _json({"kind": kind, "item": item, "price": str(payload["price"])})
            case "GET", ["bill", "rules"]:
                return _json({"rules": controls.bill_rules.to_json()})
            case "PUT", ["bill", "rules"]:
                return _json({"rules": controls.bill_rules_set(**payload).to_json()})
            case "GET", ["bill"]:
                first = date.fromisoformat(args["start"])
                end = date.fromisoformat(args["end"])
                found = controls.bill(first, end, cutoff=_when(args.get("cutoff")))
                return _json(bill_json(found))
            case "POST", ["replay"]:
                call = replay_call(controls.endpoint, controls.region)
                results = controls.replay(list(payload["steps"]), call)
                return _json({"results": results})
        return _json({"error": f"no control endpoint {method} /{'/'.join(route)}"}, 404)


def bill_json(found: bill.Bill) -> dict[str, Any]:
    """The bill as the ``GET /_clusterweb/bill`` endpoint sends it (amounts as strings)."""
    return {
        "days": {
            day.isoformat(): {name: str(cost) for name, cost in sorted(services.items())}
            for day, services in sorted(found.days.items())
        },
        "unpriced": sorted(
            ({"kind": u.kind, "item": u.item, "resource": u.resource} for u in found.unpriced),
            key=lambda u: (u["kind"], u["item"], u["resource"]),
        ),
    }


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def _send(start_response: StartResponse, response: wire.Reply) -> list[bytes]:
    headers = [*response.headers, ("Content-Length", str(len(response.body)))]
    start_response(response.status_line, headers)
    return [response.body]


def _record(environ: dict[str, Any], body: bytes) -> None:
    """File a request the layer answered itself in moto's recording, as moto files its own."""
    from moto.core.request import Request as MotoRequest
    from moto.moto_api import recorder

    recorder._record_request(MotoRequest(environ), body=body)


def _call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]):
    """Run ``app`` and collect its whole response: (status, headers, body)."""
    captured: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        captured["status"], captured["headers"] = status, headers
        return chunks.append

    result = app(environ, start_response)
    try:
        for chunk in result:
            chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured["status"], list(captured["headers"]), b"".join(chunks)


def launch_refusal(request: wire.AwsRequest, controls: Controls) -> wire.Reply | None:
    """AWS's refusal of a launch that moto would accept, or None.

    - An instance type the region does not offer: ``InvalidParameterValue``, "Invalid value
      'X' for InstanceType." (EC2's answer to RunInstances and RequestSpotInstances; moto's
      offering lists, which are AWS's, are the oracle.) One the region offers but not in the
      requested zone: ``Unsupported``, naming the zones that have it.
    - ``RunInstances`` for spot capacity with ``MaxPrice`` under the zone's current spot
      price: ``SpotMaxPriceTooLow`` ("Spot Instance pricing", EC2 User Guide: a request whose
      maximum price is below the Spot price is not fulfilled; RunInstances refuses it at once).
      Without a zone the instance lands where moto puts it, the region's "a" zone, so that
      zone's price is the one compared.
    """
    params = request.params
    account = moto_state.account_for(request.access_key, request.headers)
    region = request.region or controls.region
    template = (
        moto_state.launch_template_data(account, region, params)
        if request.action == "RunInstances"
        else {}
    )
    prefix = "LaunchSpecification." if request.action == "RequestSpotInstances" else ""
    instance_type = params.get(f"{prefix}InstanceType") or template.get("InstanceType")
    if not instance_type:
        return None  # EC2's default type (m1.small): moto decides
    zone = params.get(f"{prefix}Placement.AvailabilityZone") or (
        template.get("Placement") or {}
    ).get("AvailabilityZone")
    subnet = params.get(f"{prefix}SubnetId") or template.get("SubnetId")
    if not zone and subnet:
        zone = moto_state.subnet_zone(account, region, subnet)
    if instance_type not in moto_state.offered_types(region):
        return wire.error_response(
            request, "InvalidParameterValue", f"Invalid value '{instance_type}' for InstanceType."
        )
    if zone and instance_type not in moto_state.offered_types(region, zone):
        others = [
            z
            for z in moto_state.region_zones(region)
            if instance_type in moto_state.offered_types(region, z)
        ]
        return wire.error_response(
            request,
            "Unsupported",
            f"Your requested instance type ({instance_type}) is not supported in your requested "
            f"Availability Zone ({zone}). Please retry your request by not specifying an "
            f"Availability Zone or choosing {', '.join(others)}.",
        )
    if request.action != "RunInstances":
        return None
    market = template.get("InstanceMarketOptions") or {}
    market_type = params.get("InstanceMarketOptions.MarketType") or market.get("MarketType")
    max_price = params.get("InstanceMarketOptions.SpotOptions.MaxPrice") or (
        market.get("SpotOptions") or {}
    ).get("MaxPrice")
    if market_type != "spot" or not max_price:
        return None  # without MaxPrice, AWS caps at the on-demand price: never under the spot
    try:
        offered = Decimal(str(max_price))
    except ArithmeticError:
        return wire.error_response(
            request, "InvalidParameterValue", f"Invalid value '{max_price}' for MaxPrice."
        )
    current = controls.spot_prices.current(instance_type, zone or f"{region}a")
    if offered < current:
        return wire.error_response(
            request,
            "SpotMaxPriceTooLow",
            f"Your Spot request price of {max_price} is lower than the minimum required Spot "
            f"request fulfillment price of {current}.",
        )
    return None


# The access key of everything that is not the product: the sandbox's seeding, a test's set-up,
# a replay. The recorder files calls by access key, so the product's own calls stand apart.
SETUP_ACCESS_KEY = "clusterweb-setup"


def replay_call(endpoint: str, region: str) -> Callable[[Mapping[str, Any]], Any]:
    """How a replay step's AWS call is made: boto3 over HTTP to the layer itself, with the
    set-up access key and no retries. The answer comes back as JSON (dates as ISO strings)."""

    def call(step: Mapping[str, Any]) -> Any:
        import boto3
        from botocore import xform_name
        from botocore.config import Config

        client = boto3.client(
            step.get("service") or "ec2",
            endpoint_url=endpoint,
            region_name=step.get("region") or region,
            aws_access_key_id=SETUP_ACCESS_KEY,
            aws_secret_access_key=SETUP_ACCESS_KEY,
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )
        answer = getattr(client, xform_name(step["action"]))(**(step.get("params") or {}))
        answer.pop("ResponseMetadata", None)
        return json.loads(json.dumps(answer, default=_iso))

    return call


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


# StopInstances and StartInstances act only from some states; from the others EC2 answers
# IncorrectInstanceState and changes nothing ("Stop and start Amazon EC2 instances": a pending
# instance cannot be stopped yet, a stopping one cannot be started until it is stopped; neither
# a shutting-down nor a terminated one; asking for the state it is in or heading to is a no-op).
# Error code: EC2 API reference, "Error codes" (IncorrectInstanceState).
STATE_REFUSALS: dict[str, tuple[frozenset[str], str]] = {
    "StopInstances": (
        frozenset({"pending", "shutting-down", "terminated"}),
        "This instance '{id}' is not in a state from which it can be stopped.",
    ),
    "StartInstances": (
        frozenset({"stopping", "shutting-down", "terminated"}),
        "The instance '{id}' is not in a state from which it can be started.",
    ),
}


def state_refusal(request: wire.AwsRequest) -> wire.Reply | None:
    """IncorrectInstanceState for a stop or start of an instance in a state that forbids it."""
    refused_states, message = STATE_REFUSALS[request.action]
    ids = [value for key, value in sorted(request.params.items()) if key.startswith("InstanceId.")]
    for instance_id in ids:
        try:
            _, _, instance = moto_state.instance_find(instance_id)
        except moto_state.NotFound:
            continue  # moto answers InvalidInstanceID.NotFound itself
        if instance.state in refused_states:
            return wire.error_response(
                request, "IncorrectInstanceState", message.format(id=instance_id)
            )
    return None
