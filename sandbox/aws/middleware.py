"""The WSGI middleware in front of moto's application.

For each request it either answers itself or hands the request to moto untouched:

- ``/_clusterweb/...``: the layer's control endpoints (JSON), for processes other than the one
  running the layer (the sandbox's web process, a Celery worker, a test).
- ``POST /moto-api/reset``: clears the layer's state too, then moto resets.
- an AWS call a fault is armed for: the fault's error, in the call's protocol.
- ``RunInstances``/``RequestSpotInstances`` with a ``ClientToken`` seen before: the first
  response again, or ``IdempotentParameterMismatch`` when the parameters differ.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.aws import moto_state, wire
from sandbox.aws.controls import IDEMPOTENT_ACTIONS, Controls, IssuedResponse

CONTROL_PREFIX = "/_clusterweb/"

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
            return self.app(environ, start_response)
        request = self._parse(environ)
        if request is None or not request.action:
            return self.app(environ, start_response)
        fault = self.controls.fault_take(request)
        if fault is not None:
            account = moto_state.account_for(request.access_key, request.headers)
            message = fault.message or wire.default_message(fault.code, request, account)
            return _send(
                start_response, wire.error_response(request, fault.code, message, fault.status)
            )
        token = request.params.get("ClientToken")
        if request.protocol == "ec2" and request.action in IDEMPOTENT_ACTIONS and token:
            return self._idempotent(environ, start_response, request, token)
        return self.app(environ, start_response)

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
        account = moto_state.account_for(request.access_key, request.headers)
        key = (account, request.region, request.action, token)
        fingerprint = self.controls.tokens.fingerprint(request.params)
        with self.controls.tokens.lock_for(key):
            issued = self.controls.tokens.get(key)
            if issued is not None:
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
            status, headers, body = _call(self.app, environ)
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
            response = self._dispatch(http.method, route, payload)
        except moto_state.NotFound as exc:
            response = _json({"error": str(exc)}, 404)
        except moto_state.Conflict as exc:
            response = _json({"error": str(exc)}, 409)
        except (ValueError, KeyError, TypeError) as exc:
            response = _json({"error": f"bad request: {exc}"}, 400)
        return response(environ, start_response)

    def _dispatch(self, method: str, route: list[str], payload: dict[str, Any]) -> Response:
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
            case "GET", ["recorded-actions"]:
                actions = controls.recorded_actions()
                return _json({"actions": [{"service": s, "action": a} for s, a in actions]})
        return _json({"error": f"no control endpoint {method} /{'/'.join(route)}"}, 404)


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def _send(start_response: StartResponse, response: wire.Reply) -> list[bytes]:
    headers = [*response.headers, ("Content-Length", str(len(response.body)))]
    start_response(response.status_line, headers)
    return [response.body]


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
