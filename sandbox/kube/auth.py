"""Who is calling: one bearer token per identity, and what each identity's RBAC role allows.

A real cluster authenticates every request as a user (a ServiceAccount's token, a client
certificate) and authorizes it with RBAC ("Using RBAC Authorization"): a Role or ClusterRole is a
list of PolicyRules (apiGroups, resources, verbs; ``*`` matches all; a subresource is written
``pods/eviction``), bound to the user. The simulator issues one token per identity:

- ``admin``: ``kubernetes-admin`` in ``system:masters`` (what ``kubeadm init``'s admin.conf
  holds): everything. Tests, the sandbox's set-up and the cloud bridge use it.
- ``clusterweb``: the product's ServiceAccount, bound to the ClusterRole :data:`PRODUCT_RULES`,
  exactly what ``clusterweb/integrations/k8s.py`` calls (``test_k8s.py`` checks the two agree).
- ``jupyterhub``: the hub's ServiceAccount, bound to a Role in the ``jupyter`` namespace with
  KubeSpawner's rules (zero-to-jupyterhub's hub Role), and to the ClusterRole ``hub-nodes``
  (nodes get, list) that the shipped configuration's hook needs to check a launch's nodes.

``SelfSubjectAccessReview`` (``authorization.k8s.io/v1``) answers for the caller from these
rules, as the RBAC authorizer does: ``allowed: true`` with the reason
``RBAC: allowed by ClusterRoleBinding "<binding>" of ClusterRole "<role>" to ServiceAccount
"<name>/<namespace>"`` (rbac.go's ``String()`` of the matching binding), and ``allowed: false``
with no reason when no rule matches (RBAC has no opinion and nothing else allows it). Every
authenticated user may create one (the ``system:basic-user`` ClusterRole).

Requests are recorded per identity (``Recorder``) but **not refused**: the simulator does not
enforce RBAC (see the README, "Deliberately not modelled").
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

# PolicyRules of the product's ClusterRole: what the Kubernetes adapter uses, nothing more.
PRODUCT_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["create", "delete", "get", "update"],
    },
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
    # Launches (issue 18): a bootstrap token Secret per launch in kube-system, and the Spark
    # master's JSON status read through the API server's service proxy.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete"]},
    {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"]},
)

# zero-to-jupyterhub's hub Role (namespaced: the hub's own namespace).
HUB_RULES: tuple[dict[str, Any], ...] = (
    {
        "apiGroups": [""],
        "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
        "verbs": ["get", "watch", "list", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
)

# What the shipped hub configuration's pre-spawn hook reads beyond KubeSpawner's Role: the nodes
# of a launch (``clusterweb.io/request=ID``), cluster-wide (a ClusterRole: nodes are not
# namespaced).
HUB_NODE_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
)

# The system:basic-user ClusterRole: every authenticated user may ask what it may do.
BASIC_USER_RULES: tuple[dict[str, Any], ...] = (
    {
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        "verbs": ["create"],
    },
)


@dataclass(frozen=True)
class Binding:
    """A (Cluster)RoleBinding of one role to the identity; ``namespace`` "" for cluster-wide."""

    kind: str  # "ClusterRoleBinding" or "RoleBinding"
    name: str
    role_kind: str  # "ClusterRole" or "Role"
    role: str
    rules: tuple[dict[str, Any], ...]
    namespace: str = ""


@dataclass(frozen=True)
class Identity:
    name: str  # the simulator's short name: "admin", "clusterweb", "jupyterhub"
    username: str
    groups: tuple[str, ...]
    bindings: tuple[Binding, ...] = ()
    superuser: bool = False  # system:masters: every request allowed without RBAC
    token: str = field(default="", compare=False)

    @property
    def subject(self) -> str:
        """How rbac.go names the subject in a reason."""
        prefix = "system:serviceaccount:"
        if self.username.startswith(prefix):
            namespace, _, name = self.username[len(prefix) :].partition(":")
            return f'ServiceAccount "{name}/{namespace}"'
        return f'User "{self.username}"'


_BASIC = Binding(
    "ClusterRoleBinding", "system:basic-user", "ClusterRole", "system:basic-user", BASIC_USER_RULES
)
_AUTHENTICATED = ("system:authenticated",)


def default_identities(tokens: dict[str, str] | None = None) -> dict[str, Identity]:
    """The three identities, with the given tokens or fresh random ones."""
    tokens = tokens or {}

    def token(name: str) -> str:
        return tokens.get(name) or secrets.token_urlsafe(24)

    return {
        "admin": Identity(
            "admin",
            "kubernetes-admin",
            ("system:masters", *_AUTHENTICATED),
            (_BASIC,),
            superuser=True,
            token=token("admin"),
        ),
        "clusterweb": Identity(
            "clusterweb",
            "system:serviceaccount:clusterweb:clusterweb",
            ("system:serviceaccounts", "system:serviceaccounts:clusterweb", *_AUTHENTICATED),
            (
                Binding(
                    "ClusterRoleBinding", "clusterweb", "ClusterRole", "clusterweb", PRODUCT_RULES
                ),
                _BASIC,
            ),
            token=token("clusterweb"),
        ),
        "jupyterhub": Identity(
            "jupyterhub",
            "system:serviceaccount:jupyter:hub",
            ("system:serviceaccounts", "system:serviceaccounts:jupyter", *_AUTHENTICATED),
            (
                Binding("RoleBinding", "hub", "Role", "hub", HUB_RULES, namespace="jupyter"),
                Binding(
                    "ClusterRoleBinding", "hub-nodes", "ClusterRole", "hub-nodes", HUB_NODE_RULES
                ),
                _BASIC,
            ),
            token=token("jupyterhub"),
        ),
    }


def _matches(values: list[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def _resource_matches(rule: dict[str, Any], resource: str, subresource: str) -> bool:
    """rbac/v1 ResourceMatches: ``*``, the resource, ``resource/sub`` or ``*/sub``."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for allowed in rule.get("resources", []):
        if allowed in ("*", combined):
            return True
        if subresource and allowed == f"*/{subresource}":
            return True
    return False


def rule_allows(rule: dict[str, Any], attributes: dict[str, Any]) -> bool:
    """rbac.go's RuleAllows for resource or non-resource attributes."""
    verb = attributes.get("verb", "")
    if not _matches(rule.get("verbs", []), verb):
        return False
    if "path" in attributes:
        path = attributes["path"]
        return any(
            url in ("*", path) or (url.endswith("*") and path.startswith(url[:-1]))
            for url in rule.get("nonResourceURLs", [])
        )
    if "resources" not in rule:
        return False
    if not _matches(rule.get("apiGroups", []), attributes.get("group", "")):
        return False
    if not _resource_matches(
        rule, attributes.get("resource", ""), attributes.get("subresource", "")
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or attributes.get("name", "") in names


def authorize(identity: Identity, attributes: dict[str, Any]) -> tuple[bool, str]:
    """(allowed, reason) for one request's attributes: resource attributes (verb, group,
    resource, subresource, namespace, name) or non-resource ones (verb, path)."""
    if identity.superuser:
        return True, ""  # the privileged-group authorizer: no reason given
    namespace = attributes.get("namespace", "")
    for binding in identity.bindings:
        # A RoleBinding grants only inside its namespace; "" (all namespaces) needs a
        # ClusterRoleBinding ("Using RBAC Authorization › RoleBinding and ClusterRoleBinding").
        if binding.namespace and (namespace != binding.namespace or "path" in attributes):
            continue
        if any(rule_allows(rule, attributes) for rule in binding.rules):
            where = (
                f'RoleBinding "{binding.name}/{binding.namespace}"'
                if binding.namespace
                else (f'ClusterRoleBinding "{binding.name}"')
            )
            return True, (
                f"RBAC: allowed by {where} of {binding.role_kind} "
                f'"{binding.role}" to {identity.subject}'
            )
    return False, ""
