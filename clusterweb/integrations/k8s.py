"""The Kubernetes adapter: the one place Clusterweb talks to the cluster's API server.

It owns the official client, sets a timeout on every call, and speaks Clusterweb's words (nodes,
pools, cordon, deployments, ready pods) instead of the client's models. Failures come out as
``clusterweb.errors`` exceptions: :class:`~clusterweb.errors.TransientError` when trying again may
work (unreachable, timeout, throttled, a conflicting write, 5xx), otherwise
:class:`~clusterweb.errors.PermanentError`, both keeping the server's ``Status`` reason and message.

Configuration is read lazily: :func:`client_from_settings` looks at ``settings.KUBE_CONFIG_PATH``
("" means in-cluster service-account credentials) and ``settings.KUBE_REQUEST_TIMEOUT`` (seconds)
when first called; :func:`connect` takes them explicitly. Importing this module needs neither Django
nor a cluster.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pydantic
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException
from kubernetes.utils import parse_quantity

from clusterweb.errors import IntegrationError, PermanentError, TransientError

SYSTEM = "kubernetes"
DEFAULT_REQUEST_TIMEOUT = 10.0  # seconds; one API call, not a whole wait

POOL_LABEL = "clusterweb.io/pool"
CAPACITY_TYPE_LABEL = "clusterweb.io/capacity-type"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
GPU_RESOURCE = "nvidia.com/gpu"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Bootstrap tokens ("Authenticating with Bootstrap Tokens"): Secrets of this type in kube-system.
TOKEN_TYPE = "bootstrap.kubernetes.io/token"  # noqa: S105 (a Secret type, not a secret)
TOKEN_NAMESPACE = "kube-system"  # noqa: S105 (a namespace)

# A read-modify-write of a node's taints loses a race only when something else writes the node in
# between; three fresh attempts make that vanishingly rare without hiding a real hot loop.
_CONFLICT_ATTEMPTS = 3
_PAGE_SIZE = 500

# What a call through the official client can raise: the server's answer, the transport's
# failure, or the client's own model validation of what we asked it to send.
_CLIENT_ERRORS = (
    ApiException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
    pydantic.ValidationError,
)

T = TypeVar("T")


# -- domain values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Taint:
    """A node taint (``key=value:Effect``)."""

    key: str
    effect: str
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> Taint:
        """Parse kubectl's form, e.g. ``nvidia.com/gpu=present:NoSchedule``."""
        head, sep, effect = text.rpartition(":")
        if not sep or effect not in TAINT_EFFECTS:
            raise PermanentError(f"not a taint: {text!r}", system=SYSTEM, code="invalid_taint")
        key, _, value = head.partition("=")
        return cls(key=key, effect=effect, value=value)

    def as_dict(self) -> dict[str, str]:
        body = {"key": self.key, "effect": self.effect}
        if self.value:
            body["value"] = self.value
        return body

    def __str__(self) -> str:
        return (
            f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"
        )


@dataclass(frozen=True)
class Node:
    """A cluster node as Clusterweb sees it."""

    name: str
    provider_id: str
    pool: str
    capacity_type: str
    instance_type: str
    zone: str
    ready: bool
    unschedulable: bool
    cpu: Decimal  # allocatable cores
    memory: int  # allocatable bytes
    gpu: int  # allocatable nvidia.com/gpu
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    node_name: str
    phase: str
    ready: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""  # status.podIP, "" until the pod has one


@dataclass(frozen=True)
class DeploymentApplied:
    """What :meth:`Kubernetes.deployment_apply` did: ``created``, ``updated`` or ``unchanged``."""

    name: str
    namespace: str
    action: str
    generation: int


# -- error translation ---------------------------------------------------------------------------


def _status_fields(exc: ApiException) -> tuple[str, str]:
    """The Status body's reason and message, falling back to the HTTP reason phrase."""
    reason, message = "", ""
    if exc.body:
        try:
            body = json.loads(exc.body)
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict):
            reason = str(body.get("reason") or "")
            message = str(body.get("message") or "")
    return reason or str(exc.reason or ""), message or str(exc.reason or "")


def translate(exc: BaseException, what: str) -> IntegrationError:
    """Sort a client failure into permanent or transient, keeping the server's words.

    409 Conflict (a stale resourceVersion), 410 Gone, 429, 5xx, connection failures and timeouts
    are transient; 400, 401, 403, 404, 405, 409 AlreadyExists, 422 and configuration errors are
    permanent.
    """
    if isinstance(exc, ApiException):
        status = exc.status or 0
        reason, message = _status_fields(exc)
        text = f"{what}: {status} {reason}: {message}" if status else f"{what}: {message}"
        code = reason or f"http_{status}"
        transient = (
            (status == 409 and reason != "AlreadyExists") or status in (410, 429) or status >= 500
        )
        cls = TransientError if transient else PermanentError
        return cls(text, system=SYSTEM, code=code)
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return TransientError(f"{what}: {exc}", system=SYSTEM, code="unreachable")
    if isinstance(exc, ConfigException):
        return PermanentError(f"{what}: {exc}", system=SYSTEM, code="config")
    if isinstance(exc, pydantic.ValidationError):
        return PermanentError(
            f"{what}: the client refused the request: {exc}", system=SYSTEM, code="invalid_request"
        )
    return PermanentError(f"{what}: {exc!r}", system=SYSTEM, code="client")


def _is(exc: ApiException, status: int, reason: str = "") -> bool:
    return exc.status == status and (not reason or _status_fields(exc)[0] == reason)


# -- the client ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """One verb on one resource, as RBAC names it (``group`` "" is the core group)."""

    verb: str
    group: str
    resource: str
    subresource: str = ""

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        group = f"{self.group}/" if self.group else ""
        return f"{self.verb} {group}{resource}"


# Every verb this adapter uses, cluster-wide: what Clusterweb's ClusterRole must grant (the
# preflight, ``manage.py doctor``, asks the API server about each).
ACCESSES: tuple[Access, ...] = (
    Access("get", "", "nodes"),
    Access("list", "", "nodes"),
    Access("patch", "", "nodes"),
    Access("list", "", "pods"),
    Access("watch", "", "pods"),
    Access("create", "", "pods", "eviction"),
    Access("create", "apps", "deployments"),
    Access("get", "apps", "deployments"),
    Access("update", "apps", "deployments"),
    Access("delete", "apps", "deployments"),
    Access("patch", "apps", "deployments", "scale"),
    # Launches (issue 18): a bootstrap token per launch, and the Spark master's status read
    # through the API server's service proxy.
    Access("create", "", "secrets"),
    Access("delete", "", "secrets"),
    Access("get", "", "services", "proxy"),
)


class Kubernetes:
    """Clusterweb's operations on one cluster. Thread-safe as the underlying ApiClient is."""

    def __init__(
        self, api_client: client.ApiClient, *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    ) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)

    def close(self) -> None:
        """Release the connection pool."""
        self.api_client.close()

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            return fn(*args, **kwargs)
        except _CLIENT_ERRORS as exc:
            raise translate(exc, what) from exc

    def _plain(self, model: Any) -> dict[str, Any]:
        """A client model as the API's JSON (camelCase keys)."""
        return self.api_client.sanitize_for_serialization(model)

    # -- who we are and what we may do (the preflight) -----------------------------------------

    def identity(self) -> str | None:
        """The user name the API server knows the caller by (SelfSubjectReview,
        ``authentication.k8s.io/v1``, Kubernetes 1.28+), or None where it is not served."""
        api = client.AuthenticationV1Api(self.api_client)
        body = client.V1SelfSubjectReview(
            api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"
        )
        try:
            review = api.create_self_subject_review(body, _request_timeout=self.request_timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise translate(exc, "who am I") from exc
        except _CLIENT_ERRORS as exc:
            raise translate(exc, "who am I") from exc
        info = review.status.user_info if review.status else None
        return info.username if info else None

    def access_review(self, access: Access) -> tuple[bool, str]:
        """Whether the caller may do ``access`` in every namespace (SelfSubjectAccessReview,
        ``authorization.k8s.io/v1``, which any authenticated user may create), and the API
        server's reason (empty when it gives none)."""
        api = client.AuthorizationV1Api(self.api_client)
        body = client.V1SelfSubjectAccessReview(
            api_version="authorization.k8s.io/v1",
            kind="SelfSubjectAccessReview",
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=access.verb,
                    group=access.group,
                    resource=access.resource,
                    subresource=access.subresource or None,
                )
            ),
        )
        review = self._call(f"review {access}", api.create_self_subject_access_review, body)
        status = review.status
        if status is None:
            return False, ""
        return bool(status.allowed), status.reason or ""

    # -- nodes ---------------------------------------------------------------------------------

    def nodes_list(self, label_selector: str = "") -> list[Node]:
        """Every node (optionally those matching ``label_selector``), sorted by name."""
        nodes: list[Node] = []
        token = None
        while True:
            page = self._call(
                "list nodes",
                self.core.list_node,
                label_selector=label_selector or None,
                limit=_PAGE_SIZE,
                _continue=token,
            )
            nodes.extend(_node(n) for n in page.items)
            token = page.metadata._continue if page.metadata else None
            if not token:
                return sorted(nodes, key=lambda n: n.name)

    def node_get(self, name: str) -> Node:
        """One node; PermanentError (code NotFound) if there is no such node."""
        return _node(self._call(f"read node {name}", self.core.read_node, name))

    def node_label(self, name: str, labels: Mapping[str, str | None]) -> Node:
        """Set labels on a node; a ``None`` value removes that label. Other labels stay."""
        body = {"metadata": {"labels": dict(labels)}}
        node = self._call(
            f"label node {name}",
            self.core.patch_node,
            name,
            body,
            _content_type="application/merge-patch+json",
        )
        return _node(node)

    def node_taint(self, name: str, taint: Taint) -> Node:
        """Add ``taint``, replacing any taint with the same key and effect. Idempotent.

        ``spec.taints`` is an atomic list on the server (no merge key), so this reads the node and
        writes the whole list back guarded by its resourceVersion, retrying on a conflict.
        """

        def change(taints: list[Taint]) -> list[Taint]:
            kept = [t for t in taints if (t.key, t.effect) != (taint.key, taint.effect)]
            return [*kept, taint]

        return self._rewrite_taints(name, change, f"taint node {name} with {taint}")

    def node_untaint(self, name: str, key: str, effect: str | None = None) -> Node:
        """Remove taints with ``key`` (and ``effect``, when given). Absent taints are fine."""

        def change(taints: list[Taint]) -> list[Taint]:
            return [t for t in taints if not (t.key == key and effect in (None, t.effect))]

        return self._rewrite_taints(name, change, f"untaint node {name} of {key}")

    def _rewrite_taints(
        self, name: str, change: Callable[[list[Taint]], list[Taint]], what: str
    ) -> Node:
        for _ in range(_CONFLICT_ATTEMPTS):
            live = self._call(what, self.core.read_node, name)
            current = list(_node(live).taints)
            wanted = change(current)
            if wanted == current:
                return _node(live)
            body = {
                "metadata": {"resourceVersion": live.metadata.resource_version},
                "spec": {"taints": [t.as_dict() for t in wanted] or None},
            }
            try:
                node = self.core.patch_node(
                    name,
                    body,
                    _content_type="application/merge-patch+json",
                    _request_timeout=self.request_timeout,
                )
            except ApiException as exc:
                if _is(exc, 409, "Conflict"):
                    continue
                raise translate(exc, what) from exc
            except _CLIENT_ERRORS as exc:
                raise translate(exc, what) from exc
            return _node(node)
        raise TransientError(
            f"{what}: the node kept changing underneath ({_CONFLICT_ATTEMPTS} conflicts)",
            system=SYSTEM,
            code="Conflict",
        )

    def node_cordon(self, name: str) -> Node:
        """Mark a node unschedulable (new pods stay off; running ones stay). Idempotent."""
        return self._set_unschedulable(name, True)

    def node_uncordon(self, name: str) -> Node:
        """Make a node schedulable again. Idempotent."""
        return self._set_unschedulable(name, None)

    def _set_unschedulable(self, name: str, value: bool | None) -> Node:
        node = self._call(
            f"{'cordon' if value else 'uncordon'} node {name}",
            self.core.patch_node,
            name,
            {"spec": {"unschedulable": value}},
            _content_type="application/merge-patch+json",
        )
        return _node(node)

    # -- deployments ---------------------------------------------------------------------------

    def deployment_apply(self, namespace: str, manifest: Mapping[str, Any]) -> DeploymentApplied:
        """Make the Deployment in ``manifest`` exist with that spec. Safe to run twice.

        Creates it; if the name exists and the live object already has every field the manifest
        sets (server defaults may add more), nothing is written; otherwise the live object gets the
        manifest's spec and labels/annotations, guarded by its resourceVersion.
        """
        wanted = copy.deepcopy(dict(manifest))
        if (
            wanted.get("kind", "Deployment") != "Deployment"
            or wanted.get("apiVersion", "apps/v1") != "apps/v1"
        ):
            raise PermanentError(
                "deployment_apply needs an apps/v1 Deployment",
                system=SYSTEM,
                code="invalid_manifest",
            )
        meta = wanted.setdefault("metadata", {})
        name = meta.get("name", "")
        if not name:
            raise PermanentError(
                "deployment_apply needs metadata.name", system=SYSTEM, code="invalid_manifest"
            )
        if meta.setdefault("namespace", namespace) != namespace:
            raise PermanentError(
                f"manifest namespace {meta['namespace']!r} is not {namespace!r}",
                system=SYSTEM,
                code="invalid_manifest",
            )
        wanted.update(apiVersion="apps/v1", kind="Deployment")
        what = f"apply deployment {namespace}/{name}"
        try:
            created = self.apps.create_namespaced_deployment(
                namespace, wanted, _request_timeout=self.request_timeout
            )
            return DeploymentApplied(name, namespace, "created", created.metadata.generation or 1)
        except ApiException as exc:
            if not _is(exc, 409, "AlreadyExists"):
                raise translate(exc, what) from exc
        except _CLIENT_ERRORS as exc:
            raise translate(exc, what) from exc
        for _ in range(_CONFLICT_ATTEMPTS):
            live = self._plain(
                self._call(what, self.apps.read_namespaced_deployment, name, namespace)
            )
            live_meta = live["metadata"]
            if (
                _covers(live.get("spec", {}), wanted.get("spec", {}))
                and _covers(live_meta.get("labels", {}), meta.get("labels", {}))
                and _covers(live_meta.get("annotations", {}), meta.get("annotations", {}))
            ):
                return DeploymentApplied(
                    name, namespace, "unchanged", live_meta.get("generation", 1)
                )
            live["spec"] = wanted.get("spec", {})
            for key in ("labels", "annotations"):
                if meta.get(key):
                    live_meta[key] = {**live_meta.get(key, {}), **meta[key]}
            live.pop("status", None)
            try:
                updated = self.apps.replace_namespaced_deployment(
                    name, namespace, live, _request_timeout=self.request_timeout
                )
            except ApiException as exc:
                if _is(exc, 409, "Conflict"):
                    continue
                raise translate(exc, what) from exc
            except _CLIENT_ERRORS as exc:
                raise translate(exc, what) from exc
            return DeploymentApplied(name, namespace, "updated", updated.metadata.generation or 1)
        raise TransientError(
            f"{what}: kept conflicting with other writers", system=SYSTEM, code="Conflict"
        )

    def deployment_scale(self, namespace: str, name: str, replicas: int) -> int:
        """Set the desired replica count through the ``scale`` subresource; returns it."""
        scale = self._call(
            f"scale deployment {namespace}/{name} to {replicas}",
            self.apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": replicas}},
            _content_type="application/merge-patch+json",
        )
        return scale.spec.replicas

    def deployment_delete(self, namespace: str, name: str) -> bool:
        """Delete a Deployment and (in the background) its pods. Returns False if it was gone
        already, which is success too."""
        try:
            self.apps.delete_namespaced_deployment(
                name,
                namespace,
                propagation_policy="Background",
                _request_timeout=self.request_timeout,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise translate(exc, f"delete deployment {namespace}/{name}") from exc
        except _CLIENT_ERRORS as exc:
            raise translate(exc, f"delete deployment {namespace}/{name}") from exc
        return True

    # -- pods ----------------------------------------------------------------------------------

    def pods_wait_ready(
        self, namespace: str, label_selector: str, count: int, timeout: float
    ) -> list[Pod]:
        """Wait until at least ``count`` pods matching the selector are Ready; return them.

        Lists once, then watches from the list's resourceVersion (re-listing if the server says
        that version is too old), with the watch's own server-side timeout and a read timeout, so
        it returns or raises TransientError within about ``timeout`` seconds.

        A pod that will not become Ready without someone changing something ends the wait at
        once with PermanentError, code = the kubelet's reason: a container in ImagePullBackOff
        (the pull failed and is being retried with back-off: "Images › Image pull back-off"),
        InvalidImageName or ErrImageNeverPull, one in CrashLoopBackOff (restarted with back-off
        after exiting; the message names the last exit, e.g. OOMKilled, exit code 137), or a
        pod Failed. A first ErrImagePull alone does not end it (a registry hiccup can pass; the
        kubelet reports ImagePullBackOff right after). A timeout names what the not-Ready pods
        are waiting on.
        """
        what = f"wait for {count} ready pods {label_selector!r} in {namespace}"
        deadline = time.monotonic() + timeout
        pods: dict[str, Any] = {}
        resource_version = ""
        while True:
            if not resource_version:
                listed = self._call(
                    what, self.core.list_namespaced_pod, namespace, label_selector=label_selector
                )
                pods = {p.metadata.name: p for p in listed.items}
                resource_version = listed.metadata.resource_version
            ready = [p for p in pods.values() if _pod_ready(p)]
            if len(ready) >= count:
                return sorted((_pod(p) for p in ready), key=lambda p: p.name)
            for name in sorted(pods):
                stuck = _pod_stuck(pods[name])
                if stuck is not None:
                    reason, detail = stuck
                    raise PermanentError(f"{what}: pod {name} {detail}", system=SYSTEM, code=reason)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waiting = sorted(
                    {r for p in pods.values() if not _pod_ready(p) for r in _waiting_reasons(p)}
                )
                raise TransientError(
                    f"{what}: {len(ready)} ready after {timeout:g}s"
                    + (f" (waiting: {', '.join(waiting)})" if waiting else ""),
                    system=SYSTEM,
                    code="timeout",
                )
            resource_version = self._watch_pods(
                what, namespace, label_selector, resource_version, pods, count, remaining
            )

    def _watch_pods(
        self,
        what: str,
        namespace: str,
        label_selector: str,
        resource_version: str,
        pods: dict[str, Any],
        count: int,
        remaining: float,
    ) -> str:
        """Apply watch events to ``pods`` until enough are ready or the watch ends.

        Returns the resourceVersion to continue from, or "" when a fresh list is needed.
        """
        stream = watch.Watch()
        try:
            for event in stream.stream(
                self.core.list_namespaced_pod,
                namespace,
                label_selector=label_selector,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=max(1, math.ceil(remaining)),
                _request_timeout=(self.request_timeout, remaining + self.request_timeout),
            ):
                kind = event["type"]
                if kind == "BOOKMARK":
                    resource_version = stream.resource_version or resource_version
                    continue
                pod = event["object"]
                resource_version = pod.metadata.resource_version
                if kind == "DELETED":
                    pods.pop(pod.metadata.name, None)
                else:
                    pods[pod.metadata.name] = pod
                if sum(1 for p in pods.values() if _pod_ready(p)) >= count:
                    break
                if kind != "DELETED" and _pod_stuck(pod) is not None:
                    break
        except ApiException as exc:
            if exc.status == 410:
                return ""  # our version is too old: list again
            raise translate(exc, what) from exc
        except _CLIENT_ERRORS as exc:
            raise translate(exc, what) from exc
        finally:
            stream.stop()
        return resource_version

    def pods_list(self, namespace: str, label_selector: str) -> list[Pod]:
        """The pods matching ``label_selector`` in ``namespace``, sorted by name."""
        listed = self._call(
            f"list pods {label_selector!r} in {namespace}",
            self.core.list_namespaced_pod,
            namespace,
            label_selector=label_selector,
        )
        return sorted((_pod(p) for p in listed.items), key=lambda p: p.name)

    # -- bootstrap tokens (docs/node-join.md) --------------------------------------------------

    def bootstrap_token_create(
        self, token: str, expiration: datetime, *, description: str = ""
    ) -> bool:
        """Store ``token`` ("id.secret") as its ``bootstrap.kubernetes.io/token`` Secret in
        ``kube-system``, valid for joining until ``expiration`` (as ``kubeadm token create``
        does). Returns False if the Secret existed already (success: same name, same token)."""
        token_id, _, secret = token.partition(".")
        string_data = {
            "token-id": token_id,
            "token-secret": secret,
            "expiration": expiration.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        }
        if description:
            string_data["description"] = description
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": TOKEN_NAMESPACE},
            "type": TOKEN_TYPE,
            # The API server encodes stringData into data; nothing here is logged.
            "stringData": string_data,
        }
        what = f"create bootstrap token {token_id}"
        try:
            self.core.create_namespaced_secret(
                TOKEN_NAMESPACE, body, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if _is(exc, 409, "AlreadyExists"):
                return False
            raise translate(exc, what) from exc
        except _CLIENT_ERRORS as exc:
            raise translate(exc, what) from exc
        return True

    def bootstrap_token_delete(self, token_id: str) -> bool:
        """Delete the token's Secret; False if it was gone already (success too)."""
        name = f"bootstrap-token-{token_id}"
        try:
            self.core.delete_namespaced_secret(
                name, TOKEN_NAMESPACE, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise translate(exc, f"delete bootstrap token {token_id}") from exc
        except _CLIENT_ERRORS as exc:
            raise translate(exc, f"delete bootstrap token {token_id}") from exc
        return True

    def api_server_endpoint(self) -> str:
        """``host:port`` of the API server this client talks to (what a join script names when
        no other endpoint is configured)."""
        parts = urlsplit(self.api_client.configuration.host)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.hostname}:{port}"

    # -- services ------------------------------------------------------------------------------

    def service_proxy_json(self, namespace: str, service: str, port: str, path: str) -> Any:
        """GET ``path`` of ``service``'s ``port`` (a name or number) through the API server's
        service proxy (``/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH``), parsed as JSON.
        Works from outside the cluster as from inside (RBAC: ``get services/proxy``). 503 (no
        ready endpoint) is transient; an answer that is not JSON is permanent."""
        what = f"read {service}:{port}/{path} in {namespace} through the service proxy"
        raw = self._call(
            what,
            self.core.connect_get_namespaced_service_proxy_with_path,
            f"{service}:{port}",
            namespace,
            path,
            _preload_content=False,
        )
        try:
            body = raw.data if hasattr(raw, "data") else raw
            return json.loads(body)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"{what}: not JSON", system=SYSTEM, code="not_json") from exc

    def pod_evict(self, namespace: str, name: str) -> bool:
        """Evict a pod through the eviction subresource, honouring disruption budgets.

        Returns False if the pod was already gone (success: it is not running). A budget that
        forbids the eviction now (429) is a TransientError.
        """
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
        try:
            self.core.create_namespaced_pod_eviction(
                name, namespace, body, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise translate(exc, f"evict pod {namespace}/{name}") from exc
        except _CLIENT_ERRORS as exc:
            raise translate(exc, f"evict pod {namespace}/{name}") from exc
        return True


# -- conversions ---------------------------------------------------------------------------------


def _quantity(raw: str | None) -> Decimal:
    if raw in (None, ""):
        return Decimal(0)
    try:
        return parse_quantity(raw)
    except ValueError as exc:
        raise PermanentError(
            f"unparseable quantity {raw!r}", system=SYSTEM, code="quantity"
        ) from exc


def _node(model: Any) -> Node:
    meta, spec, status = model.metadata, model.spec, model.status
    labels = dict(meta.labels or {})
    allocatable = dict((status.allocatable if status else None) or {})
    conditions = (status.conditions if status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    taints = tuple(
        Taint(key=t.key, effect=t.effect, value=t.value or "")
        for t in ((spec.taints if spec else None) or [])
    )
    return Node(
        name=meta.name,
        provider_id=(spec.provider_id if spec else None) or "",
        pool=labels.get(POOL_LABEL, ""),
        capacity_type=labels.get(CAPACITY_TYPE_LABEL, ""),
        instance_type=labels.get(INSTANCE_TYPE_LABEL, ""),
        zone=labels.get(ZONE_LABEL, ""),
        ready=ready,
        unschedulable=bool(spec.unschedulable) if spec else False,
        cpu=_quantity(allocatable.get("cpu")),
        memory=int(_quantity(allocatable.get("memory")).to_integral_value(rounding=ROUND_CEILING)),
        gpu=int(_quantity(allocatable.get(GPU_RESOURCE))),
        labels=labels,
        taints=taints,
    )


def _pod_ready(model: Any) -> bool:
    if model.metadata.deletion_timestamp is not None:
        return False
    status = model.status
    if status is None or status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


# Container waiting reasons after which a pod does not become Ready by itself (kubelet:
# pkg/kubelet/images/types.go, pkg/kubelet/container/sync_result.go).
_STUCK_WAITING = ("ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CrashLoopBackOff")


def _container_statuses(model: Any) -> list[Any]:
    status = model.status
    if status is None:
        return []
    return [*(status.init_container_statuses or ()), *(status.container_statuses or ())]


def _waiting_reasons(model: Any) -> list[str]:
    return [
        c.state.waiting.reason
        for c in _container_statuses(model)
        if c.state is not None and c.state.waiting is not None and c.state.waiting.reason
    ]


def _pod_stuck(model: Any) -> tuple[str, str] | None:
    """(reason, what to tell) if the pod will not become Ready without a change, else None."""
    if model.metadata.deletion_timestamp is not None:
        return None
    if model.status is not None and model.status.phase == "Failed":
        reason = model.status.reason or "Failed"
        for c in _container_statuses(model):
            terminated = c.state.terminated if c.state is not None else None
            if terminated is not None and terminated.exit_code:
                return (
                    terminated.reason or reason,
                    f"failed: container {c.name} exited with code {terminated.exit_code}"
                    f" ({terminated.reason or 'Error'})",
                )
        return reason, f"failed: {model.status.message or reason}"
    for c in _container_statuses(model):
        waiting = c.state.waiting if c.state is not None else None
        if waiting is None or waiting.reason not in _STUCK_WAITING:
            continue
        detail = f"container {c.name} ({c.image}) is in {waiting.reason}"
        last = c.last_state.terminated if c.last_state is not None else None
        if waiting.reason == "CrashLoopBackOff" and last is not None:
            detail += (
                f" after {c.restart_count} restarts, last exit code {last.exit_code}"
                f" ({last.reason or 'Error'})"
            )
        elif waiting.message:
            detail += f": {waiting.message}"
        return waiting.reason, detail
    return None


def _pod(model: Any) -> Pod:
    return Pod(
        name=model.metadata.name,
        namespace=model.metadata.namespace,
        node_name=(model.spec.node_name if model.spec else None) or "",
        phase=(model.status.phase if model.status else None) or "",
        ready=_pod_ready(model),
        labels=dict(model.metadata.labels or {}),
        ip=(model.status.pod_ip if model.status else None) or "",
    )


def _covers(live: Any, wanted: Any, *, quantities: bool = False) -> bool:
    """Whether ``live`` already has everything ``wanted`` sets (extra live fields are defaults)."""
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            key in live
            and _covers(live[key], value, quantities=quantities or key in ("limits", "requests"))
            for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(live) == len(wanted)
            and all(_covers(a, b) for a, b in zip(live, wanted, strict=True))
        )
    if live == wanted:
        return True
    if quantities and isinstance(live, str) and isinstance(wanted, str | int | float):
        # The server stores quantities canonically ("1000m" comes back as "1").
        try:
            return parse_quantity(live) == parse_quantity(wanted)
        except ValueError:
            return False
    return False


# -- construction --------------------------------------------------------------------------------


def connect(
    kubeconfig_path: str = "", *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT
) -> Kubernetes:
    """A client for the cluster in ``kubeconfig_path``, or in-cluster credentials when empty."""
    configuration = client.Configuration()
    try:
        if kubeconfig_path:
            config.load_kube_config(
                config_file=kubeconfig_path,
                client_configuration=configuration,
                persist_config=False,
            )
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        where = kubeconfig_path or "in-cluster service account (KUBE_CONFIG_PATH is empty)"
        raise PermanentError(
            f"cannot load Kubernetes credentials from {where}: {exc}", system=SYSTEM, code="config"
        ) from exc
    # Retry only failures to connect (the request never reached the server); anything else is
    # the caller's decision, made from our Transient/Permanent sorting.
    configuration.retries = urllib3.Retry(
        total=2, connect=2, read=0, status=0, redirect=0, backoff_factor=0.2
    )
    return Kubernetes(client.ApiClient(configuration), request_timeout=request_timeout)


_default: Kubernetes | None = None
_default_lock = threading.Lock()


def client_from_settings() -> Kubernetes:
    """The process-wide client configured by Django settings, built on first use.

    ``KUBE_CONFIG_PATH`` (str, default "": in-cluster) and ``KUBE_REQUEST_TIMEOUT`` (seconds,
    default 10).
    """
    global _default
    with _default_lock:
        if _default is None:
            from django.conf import settings

            path = str(getattr(settings, "KUBE_CONFIG_PATH", "") or "")
            timeout = float(getattr(settings, "KUBE_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT))
            _default = connect(path, request_timeout=timeout)
        return _default


def reset_client() -> None:
    """Forget the settings-built client (tests that change settings call this)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = None
