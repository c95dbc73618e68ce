"""The HTTP face of the simulator: kube-apiserver's REST paths over the in-memory store.

Paths, verbs, status codes and bodies follow "Kubernetes API Concepts" and the API reference, so
the unmodified official client (``kubernetes.client``, ``kubernetes.watch.Watch``) works against it
through a generated kubeconfig with a bearer token.
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import json
import logging
import re
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import errors as E
from .auth import Identity, authorize, default_identities
from .controllers import ControllerOptions, Controllers
from .errors import ApiError, SimulatorBug
from .network import resolve, service_backend
from .recorder import Recorder
from .resources import BY_RESOURCE, NAMESPACES, PODS, TYPES, VERBS, ResourceType
from .schema import KUBERNETES_VERSION, Schemas
from .store import (
    CONTAINER_FAULTS,
    PATCH_TYPES,
    ContainerFault,
    Entry,
    ListResult,
    Store,
    WriteResult,
)

log = logging.getLogger(__name__)

_JSON = "application/json"
# The API server's proxy subresources: services/NAME[:PORT]/proxy[/PATH] and the same for pods.
_PROXY_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/(services|pods)/([^/]+)/proxy(/.*)?$")
_PROXY_VERBS = {
    "GET": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded, nor the caller's credentials: the
# authentication filter removes Authorization before the proxy sees the request.
_NOT_FORWARDED = {
    "authorization",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
PROXY_TIMEOUT = 30.0  # seconds for the backend to answer


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _success(code: int = 200, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
    }
    if details is not None:
        body["details"] = details
    if code != 200 or details is None:
        body["code"] = code
    return body


class _Route:
    __slots__ = ("name", "namespace", "rt", "subresource")

    def __init__(self, rt: ResourceType, namespace: str, name: str, subresource: str) -> None:
        self.rt = rt
        self.namespace = namespace
        self.name = name
        self.subresource = subresource


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    simulator: KubeSimulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    server_version = "clusterweb-kube-sim"
    sys_version = ""

    # -- plumbing ------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.simulator._connection_opened(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.simulator._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", _JSON)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_entry(self, code: int, entry: Entry, warnings: list[str] | None = None) -> None:
        self._send(code, entry.raw, _warning_headers(warnings))

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        content_type = (self.headers.get("Content-Type") or _JSON).split(";")[0].strip()
        try:
            if content_type in ("application/yaml", "application/apply-patch+yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise E.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None

    # -- dispatch ------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        sim = self.server.simulator
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        path = "/" + url.path.strip("/")
        try:
            proxy = _PROXY_PATH.match(url.path)
            if proxy is not None:
                identity = sim._authenticate(self.headers.get("Authorization", ""))
                if identity is None:
                    raise E.unauthorized()
                self.identity = identity
                self._proxy(method, proxy, url.query)
                return
            body = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
            identity = sim._authenticate(self.headers.get("Authorization", ""))
            if identity is None:
                raise E.unauthorized()
            self.identity = identity
            if path.startswith("/_simulator/"):
                self._control(method, path, body)
                return
            discovery = sim._discovery(path)
            if discovery is not None:
                if method != "GET":
                    raise E.method_not_allowed()
                sim.recorder.record_url("get", path, identity=identity.name)
                self._send(200, _dump(discovery))
                return
            if path == SSAR_PATH:
                self._self_subject_access_review(method, body)
                return
            route = sim._route(path)
            self._dispatch(method, route, body)
        except ApiError as exc:
            self._send(exc.code, _dump(exc.status()), exc.headers)
        except SimulatorBug as exc:
            log.error("simulator bug: %s", exc)
            self._send(500, _dump(E.internal(f"simulator bug: {exc}").status()))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.exception("simulator failure on %s %s", method, self.path)
            sim.store.bugs.append(f"{method} {self.path}: {exc!r}")
            self._send(500, _dump(E.internal(repr(exc)).status()))

    # -- the proxy subresources ----------------------------------------------------------------

    def _proxy(self, method: str, match: re.Match[str], query: str) -> None:
        """``services/NAME[:PORT]/proxy/PATH`` and ``pods/NAME[:PORT]/proxy/PATH``: the request
        goes to a ready pod behind the Service (its target port) or to the pod, and its answer
        comes back as it is ("Access Clusters Using the Kubernetes API › Manually constructing
        apiserver proxy URLs"; pkg/registry/core/service/storage ResourceLocation and
        pkg/registry/core/pod/strategy.go ResourceLocation)."""
        sim = self.server.simulator
        namespace, kind, raw_name, raw_path = match.groups()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        verb = _PROXY_VERBS.get(method)
        if verb is None:
            raise E.method_not_allowed()
        sim.recorder.record(verb, "", f"{kind}/proxy", namespace, identity=self.identity.name)
        # "[scheme:]name[:port]" (utilnet.SplitSchemeNamePort); only http is served here.
        parts = unquote(raw_name).split(":")
        if len(parts) == 3:
            scheme, name, port = parts
        elif len(parts) == 2:
            scheme, (name, port) = "", parts
        else:
            scheme, name, port = "", parts[0], ""
        if scheme not in ("", "http") or not name or len(parts) > 3:
            raise E.bad_request(f"invalid service request {unquote(raw_name)!r}")
        if kind == "services":
            with sim.store.lock:
                host, target = service_backend(sim.store, namespace, name, port)
        else:
            entry = sim.store.peek(PODS, namespace, name)
            if entry is None:
                raise E.not_found("pods", "", name)
            pod = entry.obj
            if not port:
                for container in pod["spec"].get("containers") or ():
                    if container.get("ports"):
                        port = str(container["ports"][0]["containerPort"])
                        break
            host = (pod.get("status") or {}).get("podIP", "")
            if not host:
                raise E.bad_request("address not allowed")
            if not port.isdigit():
                raise E.bad_request(f"invalid port {port!r}")
            target = int(port)
        path = unquote(raw_path or "") or "/"
        if query:
            path = f"{path}?{query}"
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
        connection = http.client.HTTPConnection(host, target, timeout=PROXY_TIMEOUT)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if isinstance(exc, ConnectionRefusedError):
                reason = "connect: connection refused"
            raise ApiError(
                503,
                "ServiceUnavailable",
                f"error trying to reach service: dial tcp {host}:{target}: {reason}",
                details={},
            ) from None
        finally:
            connection.close()
        self.send_response(response.status, response.reason)
        for name_, value in response.getheaders():
            if name_.lower() not in _NOT_FORWARDED:
                self.send_header(name_, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def _dispatch(self, method: str, route: _Route, body: Any) -> None:
        sim = self.server.simulator
        rt, ns, name, sub = route.rt, route.namespace, route.name, route.subresource
        resource = f"{rt.resource}/{sub}" if sub else rt.resource
        verb = self._verb(method, route)
        sim.recorder.record(verb, rt.group, resource, ns, identity=self.identity.name)
        dry_run = self._dry_run()
        field_validation = self.query.get("fieldValidation", "")
        store = sim.store
        if verb in ("list", "watch"):
            if verb == "watch":
                self._watch(route)
            else:
                self._send_list(rt, self._list(route))
        elif verb == "create" and not sub:
            result = store.create_entry(
                rt, ns, body, dry_run=dry_run, field_validation=field_validation
            )
            self._send_entry(201, result.entry, result.warnings)
        elif verb == "create" and sub == "binding":
            store.bind(ns, name, body or {}, dry_run=dry_run)
            self._send(201, _dump(_success(201)))
        elif verb == "create" and sub == "eviction":
            store.evict(ns, name, body or {}, dry_run=dry_run)
            self._send(201, _dump(_success(201)))
        elif sub == "scale":
            self._scale(method, route, body, dry_run)
        elif verb == "get":
            self._send_entry(200, store.get_entry(rt, ns, name))
        elif verb == "update":
            result = store.update_entry(
                rt,
                ns,
                name,
                body,
                subresource=sub,
                dry_run=dry_run,
                field_validation=field_validation,
            )
            self._send_write(result)
        elif verb == "patch":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type not in PATCH_TYPES:
                raise E.unsupported_media_type(content_type)
            result = store.patch_entry(
                rt,
                ns,
                name,
                content_type,
                body,
                subresource=sub,
                dry_run=dry_run,
                field_validation=field_validation,
            )
            self._send_write(result)
        elif verb == "delete":
            self._delete(route, body, dry_run)
        elif verb == "deletecollection":
            options = self._delete_options(body)
            listed = store.delete_collection(
                rt,
                ns,
                label_selector=self.query.get("labelSelector", ""),
                field_selector=self.query.get("fieldSelector", ""),
                grace_period_seconds=options.get("gracePeriodSeconds"),
                propagation_policy=options.get("propagationPolicy", ""),
                dry_run=dry_run,
            )
            self._send_list(rt, listed)
        else:  # pragma: no cover - _verb only returns the verbs above
            raise E.method_not_allowed()

    def _verb(self, method: str, route: _Route) -> str:
        """RBAC's verb for this request, or 405 for a method the path does not serve."""
        rt, sub = route.rt, route.subresource
        if sub:
            allowed = rt.subresource(sub)
            if allowed is None:
                raise E.path_not_found()
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "POST": "create"}.get(
                method, ""
            )
            if verb not in allowed.verbs:
                raise E.method_not_allowed()
            return verb
        if route.name:
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
                method, ""
            )
        elif method == "GET":
            verb = "watch" if self.query.get("watch") in ("true", "1") else "list"
        elif rt.namespaced and not route.namespace:
            verb = ""  # the all-namespaces path only lists and watches
        else:
            verb = {"POST": "create", "DELETE": "deletecollection"}.get(method, "")
            if verb == "deletecollection" and rt is NAMESPACES:
                verb = ""
        if not verb:
            raise E.method_not_allowed()
        return verb

    def _dry_run(self) -> bool:
        value = self.query.get("dryRun")
        if value is None:
            return False
        if value != "All":
            raise E.bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
        return True

    def _send_write(self, result: WriteResult) -> None:
        self._send_entry(200, result.entry, result.warnings)

    # -- lists and watches ---------------------------------------------------------------------

    def _list(self, route: _Route) -> ListResult:
        limit_text = self.query.get("limit", "0") or "0"
        try:
            limit = int(limit_text)
        except ValueError:
            raise E.bad_request(f'limit: Invalid value: "{limit_text}"') from None
        return self.server.simulator.store.list_entries(
            route.rt,
            route.namespace,
            label_selector=self.query.get("labelSelector", ""),
            field_selector=self.query.get("fieldSelector", ""),
            limit=max(limit, 0),
            continue_token=self.query.get("continue", ""),
            resource_version=self.query.get("resourceVersion", ""),
            resource_version_match=self.query.get("resourceVersionMatch", ""),
        )

    def _send_list(self, rt: ResourceType, result: ListResult) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
        if result.remaining is not None:
            meta["remainingItemCount"] = result.remaining
        head = _dump({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta})
        body = head[:-1] + b',"items":[' + b",".join(e.item_raw for e in result.items) + b"]}"
        self._send(200, body)

    def _watch(self, route: _Route) -> None:
        """Stream events as JSON lines over a chunked response until timeoutSeconds."""
        sim = self.server.simulator
        timeout_text = self.query.get("timeoutSeconds", "")
        try:
            timeout = float(timeout_text) if timeout_text else sim.default_watch_timeout
        except ValueError:
            raise E.bad_request(f'timeoutSeconds: Invalid value: "{timeout_text}"') from None
        bookmarks = self.query.get("allowWatchBookmarks") in ("true", "1")
        watcher = sim.store.watch(
            route.rt,
            route.namespace,
            resource_version=self.query.get("resourceVersion", ""),
            label_selector=self.query.get("labelSelector", ""),
            field_selector=self.query.get("fieldSelector", ""),
        )
        self.send_response(200)
        self.send_header("Content-Type", _JSON)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        started = time.monotonic()
        deadline = started + timeout
        # The watch cache sends a bookmark shortly before a watch times out, and about once a
        # minute otherwise; clients may not rely on either ("API Concepts › Watch bookmarks").
        lead = min(2.0, timeout / 2)
        next_bookmark = started + sim.bookmark_interval
        final_bookmark_sent = False
        try:
            while True:
                now = time.monotonic()
                if now >= deadline or (not watcher.alive and not watcher.pending):
                    break
                if bookmarks and (
                    now >= next_bookmark or (not final_bookmark_sent and deadline - now <= lead)
                ):
                    if deadline - now <= lead:
                        final_bookmark_sent = True
                    next_bookmark = now + sim.bookmark_interval
                    self._chunk(b'{"type":"BOOKMARK","object":' + watcher.bookmark() + b"}\n")
                wake = min(deadline, next_bookmark if bookmarks else deadline)
                if bookmarks and not final_bookmark_sent:
                    wake = min(wake, deadline - lead)
                events = watcher.next(max(0.0, min(wake - time.monotonic(), 0.5)))
                for kind, raw in events:
                    self._chunk(b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n")
                if watcher.finished and not watcher.pending:
                    break
                if self._client_gone():
                    return
            self._chunk(b"")
        except OSError:
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
        return False

    # -- deletes and scale ---------------------------------------------------------------------

    def _delete_options(self, body: Any) -> dict[str, Any]:
        options = dict(body) if isinstance(body, dict) else {}
        if "gracePeriodSeconds" in self.query:
            try:
                options["gracePeriodSeconds"] = int(self.query["gracePeriodSeconds"])
            except ValueError:
                raise E.bad_request("gracePeriodSeconds must be an integer") from None
        if "propagationPolicy" in self.query:
            options["propagationPolicy"] = self.query["propagationPolicy"]
        if self.query.get("orphanDependents") == "true" or options.get("orphanDependents"):
            options.setdefault("propagationPolicy", "Orphan")
        if options.get("dryRun") not in (None, ["All"]):
            raise E.bad_request('dryRun: Unsupported value: supported values: "All"')
        return options

    def _delete(self, route: _Route, body: Any, dry_run: bool) -> None:
        options = self._delete_options(body)
        dry_run = dry_run or options.get("dryRun") == ["All"]
        rt = route.rt
        entry, gone = self.server.simulator.store.delete_entry(
            rt,
            route.namespace,
            route.name,
            grace_period_seconds=options.get("gracePeriodSeconds"),
            propagation_policy=options.get("propagationPolicy", ""),
            preconditions=options.get("preconditions"),
            dry_run=dry_run,
        )
        if rt.return_deleted_object or not gone:
            # handlers.DeleteResource: an object that is not gone yet (finalizers, a grace
            # period) comes back as it now is; a removed one as a Status unless the type
            # returns deleted objects.
            self._send_entry(200, entry)
            return
        details = {"name": route.name}
        if rt.group:
            details["group"] = rt.group
        details.update(kind=rt.resource, uid=entry.obj["metadata"]["uid"])
        self._send(200, _dump(_success(200, details)))

    def _scale(self, method: str, route: _Route, body: Any, dry_run: bool) -> None:
        store = self.server.simulator.store
        if method == "GET":
            scale = store.scale_of(store.get_entry(route.rt, route.namespace, route.name))
        elif method == "PUT":
            scale = store.update_scale(
                route.namespace, route.name, body, dry_run=dry_run, rt=route.rt
            )
        else:
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type not in PATCH_TYPES:
                raise E.unsupported_media_type(content_type)
            scale = store.update_scale(
                route.namespace,
                route.name,
                body,
                dry_run=dry_run,
                patch_type=content_type,
                rt=route.rt,
            )
        self._send(200, _dump(scale))

    def _self_subject_access_review(self, method: str, body: Any) -> None:
        """authorization.k8s.io/v1 SelfSubjectAccessReview: create only, nothing stored; the
        answer is the caller's own RBAC decision (see ``auth.py``)."""
        if method != "POST":
            raise E.method_not_allowed()
        sim = self.server.simulator
        sim.recorder.record(
            "create",
            AUTHORIZATION_GROUP,
            "selfsubjectaccessreviews",
            "",
            identity=self.identity.name,
        )
        review = body if isinstance(body, dict) else {}
        if review.get("kind", "SelfSubjectAccessReview") != "SelfSubjectAccessReview":
            raise E.bad_request(
                f"the body of the request was in an unknown format - kind {review.get('kind')!r}"
            )
        spec = review.get("spec") or {}
        resource = spec.get("resourceAttributes")
        non_resource = spec.get("nonResourceAttributes")
        # pkg/apis/authorization/validation ValidateSelfSubjectAccessReviewSpec.
        if resource is None and non_resource is None:
            raise E.invalid_object(
                "SelfSubjectAccessReview",
                AUTHORIZATION_GROUP,
                "",
                [
                    E.required(
                        "spec.resourceAttributes",
                        "exactly one of nonResourceAttributes or resourceAttributes must be "
                        "specified",
                    )
                ],
            )
        if resource is not None and non_resource is not None:
            raise E.invalid_object(
                "SelfSubjectAccessReview",
                AUTHORIZATION_GROUP,
                "",
                [
                    E.invalid(
                        "spec.nonResourceAttributes",
                        non_resource,
                        "cannot be specified in combination with resourceAttributes",
                    )
                ],
            )
        attributes = dict(non_resource) if non_resource is not None else dict(resource)
        if non_resource is not None:
            attributes.setdefault("path", "")
        allowed, reason = authorize(self.identity, attributes)
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        answer = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": f"{AUTHORIZATION_GROUP}/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
        self._send(201, _dump(answer))

    # -- simulator-only control ----------------------------------------------------------------

    def _control(self, method: str, path: str, body: Any) -> None:
        sim = self.server.simulator
        if path == "/_simulator/reset" and method == "POST":
            sim.reset()
            self._send(200, _dump(_success(200)))
        elif path == "/_simulator/seed" and method == "POST":
            items = body.get("items", []) if isinstance(body, dict) else body or []
            created = sim.seed(*items)
            self._send(201, _dump({"items": created}))
        elif path == "/_simulator/container-faults" and method == "POST":
            body = body if isinstance(body, dict) else {}
            try:
                sim.fail_containers(
                    str(body.get("reason", "")),
                    **{
                        key: str(body.get(key, "")) for key in ("image", "pod", "node", "namespace")
                    },
                    exit_code=int(body.get("exitCode", 1)),
                )
            except ValueError as exc:
                raise E.bad_request(str(exc)) from exc
            self._send(201, _dump(_success(201)))
        elif path == "/_simulator/container-faults" and method == "DELETE":
            sim.clear_container_faults()
            self._send(200, _dump(_success(200)))
        elif path == "/_simulator/resolve" and method == "GET":
            # What cluster DNS plus kube-proxy give a pod (network.resolve): the stand-ins'
            # resolver for Service names.
            try:
                port = int(self.query.get("port", "0"))
            except ValueError:
                raise E.bad_request("port must be a number") from None
            with sim.store.lock:
                found = resolve(
                    sim.store, self.query.get("host", ""), port, self.query.get("namespace", "")
                )
            if found is None:
                raise E.ApiError(404, "NotFound", "no such host or no ready endpoint", details={})
            self._send(200, _dump({"ip": found[0], "port": found[1]}))
        elif path == "/_simulator/kill-container" and method == "POST":
            body = body if isinstance(body, dict) else {}
            killed = sim.kill_container(
                str(body.get("namespace", "")),
                str(body.get("pod", "")),
                str(body.get("container", "")),
            )
            if not killed:
                raise E.ApiError(404, "NotFound", "no such running stand-in container", details={})
            self._send(200, _dump(_success(200)))
        elif path == "/_simulator/accesses" and method == "GET":
            identity = self.query.get("identity") or None
            accesses = [a.__dict__ for a in sim.recorder.accesses(identity)]
            self._send(200, _dump({"accesses": accesses, "rules": sim.recorder.rules(identity)}))
        else:
            raise E.path_not_found()


AUTHORIZATION_GROUP = "authorization.k8s.io"
SSAR_PATH = f"/apis/{AUTHORIZATION_GROUP}/v1/selfsubjectaccessreviews"


def _warning_headers(warnings: list[str] | None) -> dict[str, str]:
    if not warnings:
        return {}
    # One header line per warning is what the server sends; http.server allows repeats via a
    # list, so join them in one header value as RFC 7234 permits.
    return {
        "Warning": ", ".join(f'299 - "{w.replace(chr(34), chr(92) + chr(34))}"' for w in warnings)
    }


class KubeSimulator:
    """A Kubernetes API server stand-in on a loopback port.

    Start it with :meth:`start` (or as a context manager), point the official client at the
    kubeconfig from :meth:`write_kubeconfig`, and drive its simulator-only controls in-process:
    :meth:`reset`, :meth:`seed`, :meth:`bulk_seed`, :attr:`recorder`.
    Controllers use :attr:`store` directly (same validation, same events).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        tokens: dict[str, str] | None = None,
        version: str = KUBERNETES_VERSION,
        clock: Callable[[], datetime] | None = None,
        history_limit: int = 10_000,
        history_window: float = 300.0,
        grace_scale: float = 1.0,
        bookmark_interval: float = 60.0,
        default_watch_timeout: float = 1800.0,
    ) -> None:
        self.host = host
        self._port = port
        # One bearer token per identity (auth.py); ``token`` is the admin's.
        self.identities: dict[str, Identity] = default_identities(
            {**(tokens or {}), **({"admin": token} if token else {})}
        )
        self.token = self.identities["admin"].token
        self.version = version
        self.schemas = Schemas(version)
        self.store = Store(
            self.schemas,
            clock=clock,
            history_limit=history_limit,
            history_window=history_window,
            grace_scale=grace_scale,
        )
        self.recorder = Recorder()
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._discovery_cache: dict[str, Any] = {}
        self.controllers: Controllers | None = None
        self._attached: list[Any] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> KubeSimulator:
        httpd = _HTTPServer((self.host, self._port), _Handler)
        httpd.simulator = self
        self._httpd = httpd
        self._port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"kube-sim:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: attached components (the cloud bridge) and the controllers stop and
        their threads are joined, watches end, open connections are closed, the port is
        released."""
        for component in reversed(self._attached):
            component.stop()
        self._attached.clear()
        self.stop_controllers()
        self.store.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._connections_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> KubeSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    # -- kubeconfig ----------------------------------------------------------------------------

    def token_for(self, identity: str) -> str:
        """The bearer token of ``identity`` ("admin", "clusterweb", "jupyterhub")."""
        return self.identities[identity].token

    def kubeconfig(self, *, namespace: str = "default", identity: str = "admin") -> dict[str, Any]:
        name = "clusterweb-sim"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": self.url}}],
            "users": [{"name": name, "user": {"token": self.token_for(identity)}}],
            "contexts": [
                {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
            ],
            "current-context": name,
        }

    def end_watches(self) -> None:
        """End every open watch now (a control: kube-apiserver ends watches at their timeout and
        when it restarts; clients watch again from the last resourceVersion they saw)."""
        self.store.end_watches()

    def write_kubeconfig(self, path: str | Path, *, identity: str = "admin") -> Path:
        """A kubeconfig with ``identity``'s token (the admin's by default)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig(identity=identity), sort_keys=False))
        path.chmod(0o600)
        return path

    # -- controllers ---------------------------------------------------------------------------

    def start_controllers(
        self, options: ControllerOptions | None = None, **timings: Any
    ) -> Controllers:
        """Run the simulated control plane (deployment and replicaset controllers, scheduler,
        kubelets, node lifecycle, taint eviction, pod GC) until :meth:`stop_controllers` or
        :meth:`stop`. ``timings`` are :class:`~sandbox.kube.controllers.ControllerOptions`
        fields (``pod_start_delay=0.05``...). Starting them twice returns the running ones."""
        if self.controllers is None or not self.controllers.running:
            controllers = Controllers(self.store, options, **timings)
            # What a pod finds in its environment about the API (the "kubernetes" Service),
            # and the stand-ins' way to resolve Service names through the simulator.
            runtime = controllers.kubelet.runtime
            runtime.environment.update(
                {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self._port)}
            )
            runtime.resolver_environment.update(
                {"CLUSTERWEB_KUBE_API": self.url, "CLUSTERWEB_KUBE_TOKEN": self.token}
            )
            self.controllers = controllers.start()
        return self.controllers

    def stop_controllers(self) -> None:
        if self.controllers is not None:
            self.controllers.stop()
            self.controllers = None

    def attach(self, component: Any) -> None:
        """Stop ``component`` (anything with ``stop()``) when the simulator stops."""
        if component not in self._attached:
            self._attached.append(component)

    def detach(self, component: Any) -> None:
        if component in self._attached:
            self._attached.remove(component)

    # -- simulator-only controls ---------------------------------------------------------------

    def reset(self) -> None:
        """Back to a fresh cluster: system namespaces only, no recorded accesses, watches ended."""
        self.store.reset()
        self.recorder.reset()

    def seed(self, *objects: dict[str, Any]) -> list[dict[str, Any]]:
        """Create validated objects (status kept), as if they had been there a while."""
        return self.store.seed(objects)

    def bulk_seed(self, objects: Iterable[dict[str, Any]]) -> int:
        """Store objects skipping validation entirely: benchmarks only."""
        return self.store.bulk_seed(objects)

    def fail_containers(
        self,
        reason: str,
        *,
        image: str = "",
        pod: str = "",
        node: str = "",
        namespace: str = "",
        exit_code: int = 1,
    ) -> None:
        """From now on, containers matching every given criterion (image, pod name, node,
        namespace) fail as ``reason`` says: ErrImagePull (then ImagePullBackOff),
        CrashLoopBackOff (exit ``exit_code``) or OOMKilled (exit 137). See the kubelet's
        docstring; :meth:`clear_container_faults` lets them start on the next attempt."""
        if reason not in CONTAINER_FAULTS:
            raise ValueError(f"reason must be one of {', '.join(CONTAINER_FAULTS)}")
        with self.store.lock:
            self.store.container_faults.append(
                ContainerFault(reason, image, pod, node, namespace, exit_code)
            )
            self.store.changed.notify_all()

    def clear_container_faults(self) -> None:
        with self.store.lock:
            self.store.container_faults.clear()
            self.store.changed.notify_all()

    def kill_container(
        self, namespace: str, pod: str, container: str, sig: int = signal.SIGKILL
    ) -> bool:
        """Kill a stand-in container's process (SIGKILL by default, as the OOM killer or a
        crash would end it): the kubelet sees it exit (137) and restarts it per the pod's
        ``restartPolicy``. False when that container has no running stand-in."""
        if self.controllers is None:
            return False
        return self.controllers.kubelet.runtime.kill((namespace, pod), container, sig)

    def container_pid(self, namespace: str, pod: str, container: str) -> int | None:
        """The PID of a stand-in container's current process, or None."""
        if self.controllers is None:
            return None
        process = self.controllers.kubelet.runtime.process((namespace, pod), container)
        return process.pid if process is not None and process.running else None

    def container_log(self, namespace: str, pod: str, container: str) -> str:
        """What a stand-in container has written so far (its runs appended), or ""."""
        if self.controllers is None:
            return ""
        path = self.controllers.kubelet.runtime.log_path((namespace, pod), container)
        if path is None or not Path(path).exists():
            return ""
        return Path(path).read_text(errors="replace")

    @property
    def bugs(self) -> list[str]:
        """Invalid objects or crashes produced by the simulator's own code since the last reset."""
        return list(self.store.bugs)

    # -- routing -------------------------------------------------------------------------------

    def _authenticate(self, header: str) -> Identity | None:
        """The identity whose bearer token the request carries, or None (401)."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        presented = value.strip().encode()
        found = None
        for identity in self.identities.values():  # compare every token: constant time
            if hmac.compare_digest(presented, identity.token.encode()):
                found = identity
        return found

    def _route(self, path: str) -> _Route:
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise E.path_not_found()
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        rt = BY_RESOURCE.get((group, rest[0]))
        if rt is None or rt.version != version or len(rest) > 3:
            raise E.path_not_found()
        if namespace and not rt.namespaced:
            raise E.path_not_found()
        name = rest[1] if len(rest) > 1 else ""
        if name and rt.namespaced and not namespace:
            raise E.path_not_found()
        return _Route(rt, namespace, name, rest[2] if len(rest) > 2 else "")

    def _discovery(self, path: str) -> dict[str, Any] | None:
        if path in self._discovery_cache:
            return self._discovery_cache[path]
        doc = self._build_discovery(path)
        if doc is not None:
            self._discovery_cache[path] = doc
        return doc

    def _build_discovery(self, path: str) -> dict[str, Any] | None:
        groups = sorted({t.group for t in TYPES if t.group} | {AUTHORIZATION_GROUP})
        if path == "/version":
            major, minor = self.version.split(".")[:2]
            return {
                "major": major,
                "minor": minor,
                "gitVersion": f"v{major}.{minor}.0",
                "gitCommit": "clusterweb-simulator",
                "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "go1.24",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self._port}"}
                ],
            }
        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group(g) for g in groups],
            }
        if path.startswith("/apis/") and path.count("/") == 2 and path[6:] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(path[6:])}
        if path == "/api/v1":
            return {
                "kind": "APIResourceList",
                "groupVersion": "v1",
                "resources": self._resources(""),
            }
        for group in groups:
            if path == f"/apis/{group}/v1":
                return {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": f"{group}/v1",
                    "resources": self._resources(group),
                }
        return None

    @staticmethod
    def _group(group: str) -> dict[str, Any]:
        version = {"groupVersion": f"{group}/v1", "version": "v1"}
        return {"name": group, "versions": [version], "preferredVersion": version}

    @staticmethod
    def _resources(group: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if group == AUTHORIZATION_GROUP:
            out.append(
                {
                    "name": "selfsubjectaccessreviews",
                    "singularName": "selfsubjectaccessreview",
                    "namespaced": False,
                    "kind": "SelfSubjectAccessReview",
                    "verbs": ["create"],
                }
            )
        for rt in TYPES:
            if rt.group != group:
                continue
            verbs = [v for v in VERBS if not (rt is NAMESPACES and v == "deletecollection")]
            out.append(
                {
                    "name": rt.resource,
                    "singularName": rt.singular,
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": verbs,
                    "shortNames": list(rt.short_names),
                }
            )
            for sub in rt.subresources:
                entry: dict[str, Any] = {
                    "name": f"{rt.resource}/{sub.name}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": sub.kind,
                    "verbs": list(sub.verbs),
                }
                if (sub.group, sub.version) != (rt.group, rt.version):
                    entry["group"], entry["version"] = sub.group, sub.version
                out.append(entry)
        return out
