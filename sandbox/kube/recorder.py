"""What the API was asked to do, in RBAC's words, so a Role can be derived from a test suite.

Every authenticated request the server maps to a resource is recorded as
``(verb, apiGroup, resource, namespace)`` with RBAC's verbs (get, list, watch, create, update,
patch, delete, deletecollection) and subresources written ``pods/eviction``
("Using RBAC Authorization › Referring to resources"). Discovery and ``/version`` are recorded as
non-resource URLs. Each access is recorded with the identity that made it (``auth.py``: the
product, the hub, or the admin that tests, set-up and the cloud bridge use), so the product's own
calls can be told from set-up calls: ``accesses("clusterweb")``, ``rules("clusterweb")``.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Access:
    verb: str
    group: str
    resource: str  # "pods", "pods/eviction", "deployments/scale"
    namespace: str  # "" for cluster-scoped resources and all-namespace lists


class Recorder:
    """Thread-safe set of accesses; read with :meth:`accesses`, clear with :meth:`reset`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accesses: set[tuple[str, Access]] = set()  # (identity, access)
        self._counts: Counter[Access] = Counter()
        self._urls: set[tuple[str, str, str]] = set()  # (identity, verb, path)

    def record(
        self, verb: str, group: str, resource: str, namespace: str, *, identity: str = "admin"
    ) -> None:
        with self._lock:
            access = Access(verb, group, resource, namespace)
            self._accesses.add((identity, access))
            self._counts[access] += 1

    def record_url(self, verb: str, path: str, *, identity: str = "admin") -> None:
        with self._lock:
            self._urls.add((identity, verb, path))

    def reset(self) -> None:
        with self._lock:
            self._accesses.clear()
            self._counts.clear()
            self._urls.clear()

    def accesses(self, identity: str | None = None) -> list[Access]:
        """Everything served since the last reset (to ``identity`` only, if given), sorted."""
        with self._lock:
            return sorted({a for who, a in self._accesses if identity is None or who == identity})

    def count(self, verb: str, group: str, resource: str, namespace: str) -> int:
        """How many times this access was served since the last reset (any identity)."""
        with self._lock:
            return self._counts[Access(verb, group, resource, namespace)]

    def identities(self) -> list[str]:
        """The identities that made a request since the last reset."""
        with self._lock:
            return sorted({who for who, _ in self._accesses} | {who for who, *_ in self._urls})

    def non_resource_urls(self, identity: str | None = None) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(
                {(verb, path) for who, verb, path in self._urls if identity in (None, who)}
            )

    def rules(self, identity: str | None = None) -> list[dict[str, Any]]:
        """RBAC PolicyRules covering the recorded accesses, one per (group, verbs) set.

        Namespaces are dropped: whether a rule goes in a Role or a ClusterRole is the caller's
        decision (``accesses()`` says which namespaces were touched).
        """
        verbs_by_resource: dict[tuple[str, str], set[str]] = defaultdict(set)
        for access in self.accesses(identity):
            verbs_by_resource[(access.group, access.resource)].add(access.verb)
        grouped: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
        for (group, resource), verbs in sorted(verbs_by_resource.items()):
            grouped[(group, tuple(sorted(verbs)))].append(resource)
        rules: list[dict[str, Any]] = sorted(
            (
                {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
                for (group, verbs), resources in grouped.items()
            ),
            key=lambda rule: (rule["apiGroups"], rule["resources"]),
        )
        urls = self.non_resource_urls(identity)
        if urls:
            rules.append(
                {
                    "nonResourceURLs": sorted({path for _, path in urls}),
                    "verbs": sorted({verb for verb, _ in urls}),
                }
            )
        return rules
