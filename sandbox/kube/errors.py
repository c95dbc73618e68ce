"""API errors as the real kube-apiserver reports them: ``Status`` bodies with a reason and a code.

Follows "Kubernetes API Reference › Common Definitions › Status" and the message formats of
``k8s.io/apimachinery/pkg/api/errors`` (``pods "x" not found``, ``Deployment.apps "x" is invalid:
...``), so a client that reads ``reason``, ``code`` or ``details`` sees what a cluster would send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

_MISSING: Any = object()


class SimulatorBug(AssertionError):
    """The simulator's own code produced an object the real API server would refuse.

    Raised (never turned into an HTTP error) so a test run that hits it fails loudly: the point of
    the simulator is that its objects are ones a real cluster could hold.
    """


@dataclass
class FieldError:
    """One ``field.Error`` of a 422 Invalid response (a ``StatusCause``)."""

    type: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
    field: str
    detail: str = ""
    value: Any = _MISSING
    supported: tuple[str, ...] = field(default=())

    def message(self) -> str:
        """The cause message without the field path, worded like apimachinery's field errors."""
        if self.type == "FieldValueRequired":
            text = "Required value"
        elif self.type == "FieldValueForbidden":
            text = "Forbidden"
        elif self.type == "FieldValueDuplicate":
            text = f"Duplicate value: {go_value(self.value)}"
        elif self.type == "FieldValueNotSupported":
            text = f"Unsupported value: {go_value(self.value)}"
            if self.supported:
                choices = ", ".join(json.dumps(s) for s in self.supported)
                text += f": supported values: {choices}"
        elif self.type == "FieldValueTooLong":
            text = "Too long"
        else:
            text = "Invalid value"
            if self.value is not _MISSING:
                text += f": {go_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def cause(self) -> dict[str, str]:
        return {"reason": self.type, "message": self.message(), "field": self.field}


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, detail)


def invalid(path: str, value: Any, detail: str = "") -> FieldError:
    return FieldError("FieldValueInvalid", path, detail, value)


def not_supported(path: str, value: Any, supported: tuple[str, ...]) -> FieldError:
    return FieldError("FieldValueNotSupported", path, value=value, supported=supported)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, detail)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", path, value=value)


def go_value(value: Any) -> str:
    """Render a value roughly the way Go's ``%#v``/``%q`` does in apimachinery messages."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        if all(isinstance(v, str) for v in value.values()):
            inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in value.items())
            return "map[string]string{" + inner + "}"
        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), default=str)


class ApiError(Exception):
    """An error the HTTP layer turns into a ``Status`` response with the same code."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.metadata = metadata or {}
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.metadata),
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(name: str, group: str, kind: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    details.update(extra)
    return details


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        details=_details(name, group, resource),
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        details=_details(name, group, resource),
    )


def conflict(resource: str, group: str, name: str, detail: str = "") -> ApiError:
    detail = detail or (
        "the object has been modified; please apply your changes to the latest version and "
        "try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {detail}',
        details=_details(name, group, resource),
    )


def invalid_object(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid: ``Kind.group "name" is invalid: <field>: <message>`` with one cause each."""
    rendered = [f"{e.field}: {e.message()}" if e.field else e.message() for e in errors]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{_qualified(kind, group)} "{name}" is invalid: {summary}',
        details=_details(name, group, kind, causes=[e.cause() for e in errors]),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden_request(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message, details={})


def method_not_allowed() -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        details={},
    )


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", details={})


def gone(message: str, *, continue_token: str = "") -> ApiError:
    metadata = {"continue": continue_token} if continue_token else None
    return ApiError(410, "Expired", message, metadata=metadata)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json, "
        f"application/strategic-merge-patch+json (got {content_type!r})",
        details={},
    )


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", details={})
