"""AWS requests and error responses as they look on the wire.

boto3 speaks one of six protocols depending on the service (EC2's own query dialect, the query
protocol, JSON 1.0/1.1, RPC v2 CBOR, REST-JSON, REST-XML). The layer sees raw HTTP, so this module
recovers *who asked what* from a request (service, region, access key, action, parameters) and
renders an error in the shape AWS uses for that protocol, so botocore raises ``ClientError`` with
the same code, message and HTTP status as it would against AWS.

Only the standard library and botocore's service models are used here: no moto.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

# The credential scope of a SigV4 signature: AKID/DATE/REGION/SERVICE/aws4_request.
_SCOPE = re.compile(r"Credential=([^/\s,]+)/\d{8}/([^/\s,]+)/([^/\s,]+)/aws4_request")

# REST services are recognised by their signing name; the value is botocore's model name.
# Everything else the product calls is query, JSON or CBOR, where the action is on the wire.
_REST_MODELS = {"s3": "s3", "elasticfilesystem": "efs", "ses": "sesv2"}

# Services that moved from the query protocol to JSON/CBOR keep their old error codes in this
# header; botocore prefers it to ``__type`` (CloudWatch, SQS).
_QUERY_COMPATIBLE = {"monitoring", "sqs"}

# HTTP status AWS sends with each error code. EC2 lists capacity, internal and rate errors as
# "server errors" (5xx, which botocore's retry modes retry); the rest are client errors.
_STATUS = {
    "InsufficientInstanceCapacity": 500,
    "InsufficientCapacity": 500,
    "InsufficientHostCapacity": 500,
    "InsufficientAddressCapacity": 500,
    "InsufficientReservedInstanceCapacity": 500,
    "InternalError": 500,
    "InternalFailure": 500,
    "InternalServerError": 500,
    "RequestLimitExceeded": 503,
    "Unavailable": 503,
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
    "AuthFailure": 401,
    "UnauthorizedOperation": 403,
    "AccessDenied": 403,
}

# Messages as AWS words them; ``{type}``, ``{zone}``, ``{region}``, ``{account}``, ``{service}``
# and ``{action}`` are filled from the request.
_MESSAGES = {
    "InsufficientInstanceCapacity": (
        "We currently do not have sufficient {type} capacity in the Availability Zone you "
        "requested ({zone}). Our system will be working on provisioning additional capacity. "
        "You can currently get {type} capacity by not specifying an Availability Zone in your "
        "request or choosing {region}b, {region}c."
    ),
    "InsufficientCapacity": "There is not enough capacity to fulfill your request.",
    "MaxSpotInstanceCountExceeded": "Max spot instance count exceeded",
    "UnfulfillableCapacity": (
        "At this time there isn't enough spare capacity to fulfill your request for Spot "
        "Instances. You can wait a few minutes to see whether capacity becomes available for "
        "your request. Alternatively, create a more flexible request."
    ),
    "VcpuLimitExceeded": (
        "You have requested more vCPU capacity than your current vCPU limit of 32 allows for "
        "the instance bucket that the specified instance type belongs to. Please visit "
        "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."
    ),
    "InstanceLimitExceeded": (
        "You have requested more instances than your current instance limit allows for the "
        "specified instance type. Please visit http://aws.amazon.com/contact-us/ec2-request "
        "to request an adjustment to this limit."
    ),
    "RequestLimitExceeded": "Request limit exceeded.",
    "Throttling": "Rate exceeded",
    "ThrottlingException": "Rate exceeded",
    "LimitExceededException": "You have exceeded the rate limit for this operation.",
    "UnauthorizedOperation": "You are not authorized to perform this operation.",
    "AuthFailure": "AWS was not able to validate the provided access credentials",
    "AccessDenied": "User: arn:aws:iam::{account}:user/clusterweb is not authorized to perform: "
    "{service}:{action}",
    "AccessDeniedException": "User: arn:aws:iam::{account}:user/clusterweb is not authorized to "
    "perform: {service}:{action}",
    "ExpiredToken": "The security token included in the request is expired",
    "ExpiredTokenException": "The security token included in the request is expired",
    "InternalError": "An internal error has occurred",
    "Unavailable": "The server is overloaded and can't handle the request.",
}

# The launch actions, and the error codes EC2 documents for them (Error codes for the Amazon
# EC2 API: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html). A fault
# armed on a launch must use one of these: a code AWS never sends would test nothing.
LAUNCH_ACTIONS = frozenset({"RunInstances", "RequestSpotInstances"})
LAUNCH_ERROR_CODES = frozenset(
    {
        # capacity, per instance type and zone
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "UnfulfillableCapacity",
        # account limits
        "MaxSpotInstanceCountExceeded",
        "VcpuLimitExceeded",
        "InstanceLimitExceeded",
        # the request itself
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "SpotMaxPriceTooLow",
        "Unsupported",
        # throttling, credentials, AWS's own trouble
        "RequestLimitExceeded",
        "AuthFailure",
        "UnauthorizedOperation",
        "InternalError",
        "Unavailable",
    }
)

# IAM's action prefix where it differs from the signing name.
_IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}


@dataclass
class AwsRequest:
    """One request as AWS would see it. ``params`` are flattened the way the query protocol
    names them (``LaunchSpecification.InstanceType``, ``InstanceType.1``) whatever the protocol."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes = b""
    service: str = ""  # the signing name: ec2, monitoring, ce, elasticfilesystem, s3, sqs
    region: str = ""
    access_key: str = ""
    protocol: str = ""  # ec2, query, json, rpcv2cbor, rest-json, rest-xml
    action: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def iam_service(self) -> str:
        """The service prefix IAM policies use for this request's actions (``cloudwatch``, not
        the signing name ``monitoring``)."""
        return _IAM_PREFIX.get(self.service, self.service)

    def matches(self, when: Mapping[str, Any]) -> bool:
        """Whether every ``name: value`` of ``when`` is among the parameters. A name matches a
        parameter whose flattened name, without list indexes, is the name or ends with
        ``.name``: ``InstanceType`` matches ``InstanceType``, ``InstanceType.1`` and
        ``LaunchSpecification.InstanceType``."""
        return all(
            any(_named(key, name) and value == str(wanted) for key, value in self.params.items())
            for name, wanted in when.items()
        )

    def param(self, name: str) -> str | None:
        """The first parameter that :meth:`matches` would match by ``name``."""
        return next((value for key, value in self.params.items() if _named(key, name)), None)


def _named(key: str, name: str) -> bool:
    bare = ".".join(part for part in key.split(".") if not part.isdigit())
    return bare == name or bare.endswith("." + name)


def needs_body(method: str, content_type: str, headers: Mapping[str, str]) -> bool:
    """Whether the action or parameters are in the body (query, JSON and CBOR protocols). REST
    bodies (S3 uploads) are never read."""
    if method != "POST":
        return False
    return (
        content_type.startswith("application/x-www-form-urlencoded")
        or "x-amz-target" in headers
        or headers.get("smithy-protocol") == "rpc-v2-cbor"
    )


def parse(
    method: str, path: str, query: str, headers: Mapping[str, str], body: bytes = b""
) -> AwsRequest:
    """Recover service, region, access key, protocol, action and parameters of a request.
    ``headers`` must have lower-case names. ``action`` stays empty when it cannot be told (an
    unsigned request, a REST call no operation matches)."""
    request = AwsRequest(method.upper(), path or "/", query, headers, body)
    query_params = dict(parse_qsl(query))
    # Signed in the Authorization header, or (a presigned URL) in the query string.
    presigned = query_params.get("X-Amz-Credential", "")
    scope = _SCOPE.search(headers.get("authorization", "")) or _SCOPE.search(
        f"Credential={presigned}"
    )
    if scope:
        request.access_key, request.region, request.service = scope.groups()
    content_type = headers.get("content-type", "")
    target = headers.get("x-amz-target")
    if target:
        request.protocol = "json"
        request.action = target.rsplit(".", 1)[-1]
        request.params = _flatten(_json_or_empty(body))
    elif headers.get("smithy-protocol") == "rpc-v2-cbor":
        request.protocol = "rpcv2cbor"
        request.action = path.rsplit("/operation/", 1)[-1] if "/operation/" in path else ""
    elif content_type.startswith("application/x-www-form-urlencoded") or (
        "Action" in query_params and request.service not in _REST_MODELS
    ):
        params = {**query_params, **dict(parse_qsl(body.decode("utf-8", "replace")))}
        request.action = params.pop("Action", "")
        params.pop("Version", None)
        request.params = params
        request.protocol = "ec2" if request.service == "ec2" else "query"
    elif request.service:
        _resolve_rest(request)
    return request


def parse_recorded(entry: Mapping[str, Any]) -> AwsRequest:
    """:func:`parse` for one line of moto's request recorder."""
    url = entry.get("url", "")
    after_host = url.split("://", 1)[-1]
    rest = after_host[after_host.find("/") :] if "/" in after_host else "/"
    path, _, query = rest.partition("?")
    body = entry.get("body") or ""
    raw = base64.b64decode(body) if entry.get("body_encoded") else body.encode()
    headers = {k.lower(): str(v) for k, v in (entry.get("headers") or {}).items()}
    return parse(entry.get("method", "GET"), path, query, headers, raw)


def _json_or_empty(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except ValueError:
        return {}


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """JSON parameters named the query protocol's way: nested members joined by dots, list
    items numbered from 1."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value, start=1):
            out.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    elif prefix:
        out[prefix] = json.dumps(value) if isinstance(value, bool) else str(value)
    return out


# --- REST protocols: the action is the operation whose method and URI template match ----------
@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    query: tuple[tuple[str, str | None], ...]  # required keys, with a value when it must equal
    headers: tuple[str, ...]  # required headers (lower case)
    literal: int  # characters of literal path
    operation: str

    @property
    def specificity(self) -> tuple[int, int]:
        # Several operations share a URI (PutObject, CopyObject, UploadPart); the one whose
        # required query keys and headers are all present, and most of them, wins.
        return len(self.query) + len(self.headers), self.literal


@functools.cache
def _routes(model_name: str) -> tuple[str, tuple[_Route, ...]]:
    import botocore.session

    model = botocore.session.get_session().get_service_model(model_name)
    routes = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        uri_path, _, uri_query = operation.http["requestUri"].partition("?")
        regex = ""
        literal = 0
        for piece in re.split(r"(\{[^}]+\})", uri_path.rstrip("/") or "/"):
            if piece.startswith("{"):
                regex += ".+" if piece.endswith("+}") else "[^/]+"
            else:
                regex += re.escape(piece)
                literal += len(piece)
        query: list[tuple[str, str | None]] = []
        for part in filter(None, uri_query.split("&")):
            key, sep, value = part.partition("=")
            query.append((key, value if sep and "{" not in value else None))
        headers: list[str] = []
        shape = operation.input_shape
        for member in shape.required_members if shape is not None else ():
            location = shape.members[member].serialization.get("location")
            wire_name = shape.members[member].serialization.get("name", member)
            if location == "querystring":
                query.append((wire_name, None))
            elif location == "header":
                headers.append(wire_name.lower())
        routes.append(
            _Route(
                operation.http["method"],
                re.compile(regex + "/?"),
                tuple(query),
                tuple(headers),
                literal,
                name,
            )
        )
    return model.metadata["protocol"], tuple(routes)


def _resolve_rest(request: AwsRequest) -> None:
    model_name = _REST_MODELS.get(request.service, request.service)
    if request.service == "ses" and not request.path.startswith("/v2/"):
        return
    try:
        protocol, routes = _routes(model_name)
    except Exception:  # no botocore model by that name: leave the action unknown
        return
    query = dict(parse_qsl(request.query, keep_blank_values=True))
    best: _Route | None = None
    for route in routes:
        if route.method != request.method or not route.pattern.fullmatch(request.path):
            continue
        if any(
            key not in query or (value is not None and query[key] != value)
            for key, value in route.query
        ):
            continue
        if any(header not in request.headers for header in route.headers):
            continue
        if best is None or route.specificity > best.specificity:
            best = route
    request.protocol = protocol
    if best is not None:
        request.action = best.operation
        request.params = {k: v for k, v in query.items() if not k.startswith("X-Amz-")}


# --- Errors --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    """A complete HTTP response the layer sends instead of moto's."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def status_line(self) -> str:
        from http import HTTPStatus

        try:
            return f"{self.status} {HTTPStatus(self.status).phrase}"
        except ValueError:
            return f"{self.status} Error"


def default_status(code: str) -> int:
    """The HTTP status AWS sends with ``code`` (400 for client errors it does not list)."""
    return _STATUS.get(code, 400)


def default_message(code: str, request: AwsRequest, account: str = "123456789012") -> str:
    """AWS's message for ``code``, filled in from the request where it names the instance type,
    zone or action."""
    template = _MESSAGES.get(code)
    if template is None:
        return code
    instance_type = request.param("InstanceType") or "m5.large"
    region = request.region or "us-east-1"
    zone = request.param("AvailabilityZone") or f"{region}a"
    return template.format(
        type=instance_type,
        zone=zone,
        region=region,
        account=account,
        service=request.iam_service,
        action=request.action,
    )


def error_response(
    request: AwsRequest, code: str, message: str, status: int | None = None
) -> Reply:
    """The error AWS sends for ``request``'s protocol: EC2's ``<Response><Errors>`` document
    with ``RequestID``, the query protocol's ``<ErrorResponse>``, JSON's ``__type``, REST-JSON's
    ``x-amzn-ErrorType`` header, REST-XML's ``<Error>``, or a CBOR map for RPC v2."""
    status = status or default_status(code)
    request_id = str(uuid.uuid4())
    fault = "Receiver" if status >= 500 else "Sender"
    xml_head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    code_x, message_x = escape(code), escape(message)
    protocol = request.protocol
    if protocol == "ec2":
        body = (
            f"{xml_head}<Response><Errors><Error><Code>{code_x}</Code>"
            f"<Message>{message_x}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return Reply(status, [("Content-Type", "text/xml;charset=UTF-8")], body.encode())
    if protocol == "query":
        body = (
            f"{xml_head}<ErrorResponse><Error><Type>{fault}</Type><Code>{code_x}</Code>"
            f"<Message>{message_x}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        )
        return Reply(
            status,
            [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)],
            body.encode(),
        )
    if protocol == "rest-xml":
        body = (
            f"{xml_head}<Error><Code>{code_x}</Code><Message>{message_x}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        return Reply(
            status,
            [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)],
            body.encode(),
        )
    headers = [("x-amzn-RequestId", request_id)]
    if request.service in _QUERY_COMPATIBLE:
        headers.append(("x-amzn-query-error", f"{code};{fault}"))
    if protocol == "rpcv2cbor":
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        return Reply(status, headers, _cbor_map({"__type": code, "message": message}))
    if protocol == "rest-json":
        headers += [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
        return Reply(status, headers, json.dumps({"ErrorCode": code, "Message": message}).encode())
    # JSON 1.0/1.1, and the fallback for a request whose protocol could not be told.
    content_type = request.headers.get("content-type") or "application/x-amz-json-1.1"
    headers.append(("Content-Type", content_type))
    return Reply(status, headers, json.dumps({"__type": code, "message": message}).encode())


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    for marker, fmt in ((24, ">B"), (25, ">H"), (26, ">I")):
        if length < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | marker]) + struct.pack(fmt, length)
    raise ValueError("too long for this encoder")


def _cbor_map(items: Mapping[str, str]) -> bytes:
    """A CBOR map of text strings: all an RPC v2 error body needs."""
    out = _cbor_head(5, len(items))
    for key, value in items.items():
        for text in (key, value):
            raw = text.encode()
            out += _cbor_head(3, len(raw)) + raw
    return out
