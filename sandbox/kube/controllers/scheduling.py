"""The scheduler's filters and scores as pure functions ("Scheduling Framework", "Assigning Pods
to Nodes", "Taints and Tolerations", "Resource Management for Pods and Containers").

Filters run in kube-scheduler's default order and a node fails on the first one that rejects it,
with the message the real plugin gives: NodeUnschedulable, TaintToleration, NodeAffinity (node
selector and required node affinity), NodeResourcesFit (all insufficient resources at once),
PodTopologySpread (``DoNotSchedule`` constraints), InterPodAffinity (required anti-affinity of the
pod and of the pods already there). Order and messages: kubernetes/pkg/scheduler/apis/config/v1/
default_plugins.go, framework/plugins/podtopologyspread/filtering.go and
framework/plugins/interpodaffinity/filtering.go.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .. import quantity
from ..selectors import LabelSelector, Requirement, from_label_selector_object
from .base import node_ready_status

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"

UNSCHEDULABLE = "node(s) were unschedulable"
AFFINITY_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
TOO_MANY_PODS = "Too many pods"
NO_NODES = "no nodes available to schedule pods"
# podtopologyspread: ErrReasonConstraintsNotMatch, ErrReasonNodeLabelNotMatch.
SPREAD_MISMATCH = "node(s) didn't match pod topology spread constraints"
SPREAD_LABEL_MISSING = SPREAD_MISMATCH + " (missing required label)"
# interpodaffinity: ErrReasonAntiAffinityRulesNotMatch, ErrReasonExistingAntiAffinityRulesNotMatch.
ANTI_AFFINITY_MISMATCH = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_MISMATCH = "node(s) didn't satisfy existing pods anti-affinity rules"

# The scheduler's stand-in requests for containers that request nothing, used for scoring only
# (pkg/scheduler/util: DefaultMilliCPURequest, DefaultMemoryRequest).
_SCORE_CPU = Decimal("0.1")
_SCORE_MEMORY = Decimal(200 * 1024 * 1024)

Resources = dict[str, Decimal]
HOSTNAME_LABEL = "kubernetes.io/hostname"
# A nil labelSelector in a pod affinity term or a spread constraint selects no pod
# (metav1.LabelSelectorAsSelector(nil) is labels.Nothing()); an empty one selects every pod.
_NOTHING = LabelSelector((Requirement("", "in", ()),))


def _selector(obj: dict[str, Any] | None) -> LabelSelector:
    if obj is None:
        return _NOTHING
    return from_label_selector_object(obj) if obj else LabelSelector()


@dataclass(frozen=True)
class PlacedPod:
    """What the scheduler cache keeps of a bound pod for inter-pod constraints."""

    namespace: str
    labels: dict[str, str]
    terminating: bool = False
    anti_terms: tuple[dict[str, Any], ...] = ()
    nonzero: tuple[Decimal, Decimal] = (Decimal(0), Decimal(0))

    @classmethod
    def of(cls, pod: dict[str, Any]) -> PlacedPod:
        meta = pod["metadata"]
        return cls(
            namespace=meta.get("namespace", ""),
            labels=dict(meta.get("labels") or {}),
            terminating=bool(meta.get("deletionTimestamp")),
            anti_terms=required_anti_affinity(pod.get("spec") or {}),
            nonzero=nonzero_requests(pod.get("spec") or {}),
        )


def required_anti_affinity(spec: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    anti = (spec.get("affinity") or {}).get("podAntiAffinity") or {}
    return tuple(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or ())


def pod_requests(spec: dict[str, Any]) -> Resources:
    """What a pod asks for: the sum over its containers, at least the largest init container,
    plus the pod overhead ("Resource Management for Pods and Containers › Resource requests and
    limits of Pod and container"; init containers: "Init Containers › Resource sharing")."""
    total: Resources = {}
    for container in spec.get("containers") or ():
        for name, amount in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = total.get(name, Decimal(0)) + quantity.value(amount)
    for container in spec.get("initContainers") or ():
        for name, amount in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = max(total.get(name, Decimal(0)), quantity.value(amount))
    for name, amount in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, Decimal(0)) + quantity.value(amount)
    return {name: amount for name, amount in total.items() if amount}


def nonzero_requests(spec: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """cpu and memory as the scoring plugins count them (NonZeroRequested): each container
    without a request counts the scheduler's defaults, 100m and 200Mi."""
    cpu = memory = Decimal(0)
    for container in spec.get("containers") or ():
        requests = (container.get("resources") or {}).get("requests") or {}
        cpu += quantity.value(requests["cpu"]) if "cpu" in requests else _SCORE_CPU
        memory += quantity.value(requests["memory"]) if "memory" in requests else _SCORE_MEMORY
    return cpu, memory


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """ "Taints and Tolerations › Concepts": an empty effect matches every effect; an empty key
    with ``Exists`` matches every taint; ``Equal`` (the default) compares values."""
    effect = toleration.get("effect", "")
    if effect and effect != taint.get("effect"):
        return False
    operator = toleration.get("operator", "Equal")
    key = toleration.get("key", "")
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return toleration.get("value", "") == taint.get("value", "")


def tolerated(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def expression_matches(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    """A node selector requirement ("Assigning Pods to Nodes › Operators")."""
    key = expression.get("key", "")
    operator = expression.get("operator", "")
    values = expression.get("values") or ()
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def field_matches(expression: dict[str, Any], node_name: str) -> bool:
    """``matchFields``: only ``metadata.name`` exists, with In or NotIn."""
    if expression.get("key") != "metadata.name":
        return False
    values = expression.get("values") or ()
    if expression.get("operator") == "In":
        return node_name in values
    if expression.get("operator") == "NotIn":
        return node_name not in values
    return False


def term_matches(term: dict[str, Any], labels: dict[str, str], node_name: str) -> bool:
    """A node selector term: its expressions ANDed; an empty term matches no node."""
    expressions = term.get("matchExpressions") or ()
    fields = term.get("matchFields") or ()
    if not expressions and not fields:
        return False
    return all(expression_matches(e, labels) for e in expressions) and all(
        field_matches(f, node_name) for f in fields
    )


def node_affinity_matches(spec: dict[str, Any], labels: dict[str, str], node_name: str) -> bool:
    """nodeSelector (every label equal) and requiredDuringSchedulingIgnoredDuringExecution (any
    term) must both hold ("Assigning Pods to Nodes › Node affinity")."""
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if required and terms is not None:
        return any(term_matches(t, labels, node_name) for t in terms)
    return True


def preferred_affinity_score(spec: dict[str, Any], labels: dict[str, str], node_name: str) -> int:
    preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    ) or ()
    return sum(
        int(p.get("weight", 0))
        for p in preferred
        if term_matches(p.get("preference") or {}, labels, node_name)
    )


@dataclass
class NodeInfo:
    """The scheduler cache's view of one node: what it offers and what bound pods use."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)
    unschedulable: bool = False
    allocatable: Resources = field(default_factory=dict)
    requested: Resources = field(default_factory=dict)
    pod_count: int = 0
    pods: dict[tuple[str, str], PlacedPod] = field(default_factory=dict)
    nonzero_cpu: Decimal = Decimal(0)
    nonzero_memory: Decimal = Decimal(0)
    version: str = ""  # the node's resourceVersion this was built from

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> NodeInfo:
        spec, status = node.get("spec") or {}, node.get("status") or {}
        taints = list(spec.get("taints") or ())
        ready = node_ready_status(node)
        # TaintNodesByCondition: the scheduler looks only at taints. A node whose lifecycle
        # controller has not caught up yet is treated as it soon will be.
        if ready != "True":
            key = UNREACHABLE_TAINT if ready == "Unknown" else NOT_READY_TAINT
            if not any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in taints):
                taints.append({"key": key, "effect": "NoSchedule"})
        allocatable = {
            name: quantity.value(amount)
            for name, amount in (status.get("allocatable") or status.get("capacity") or {}).items()
        }
        return cls(
            name=node["metadata"]["name"],
            version=node["metadata"].get("resourceVersion", ""),
            labels=dict(node["metadata"].get("labels") or {}),
            taints=taints,
            unschedulable=bool(spec.get("unschedulable")),
            allocatable=allocatable,
        )

    def add(
        self, requests: Resources, key: tuple[str, str], placed: PlacedPod, sign: int = 1
    ) -> None:
        for name, amount in requests.items():
            self.requested[name] = self.requested.get(name, Decimal(0)) + sign * amount
        self.pod_count += sign
        self.nonzero_cpu += sign * placed.nonzero[0]
        self.nonzero_memory += sign * placed.nonzero[1]
        if sign > 0:
            self.pods[key] = placed
        else:
            self.pods.pop(key, None)


def filter_node(
    node: NodeInfo, spec: dict[str, Any], requests: Resources
) -> tuple[list[str], bool]:
    """Why ``node`` cannot take the pod ([] if it can), and whether preemption could help (only
    for resource shortages, the one failure evicting lower-priority pods can cure)."""
    tolerations = spec.get("tolerations") or []
    if node.unschedulable and not tolerated(
        tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
    ):
        return [UNSCHEDULABLE], False
    for taint in node.taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not tolerated(tolerations, taint):
            return [
                f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
            ], False
    if not node_affinity_matches(spec, node.labels, node.name):
        return [AFFINITY_MISMATCH], False
    reasons = []
    pods_allowed = node.allocatable.get("pods")
    if pods_allowed is not None and node.pod_count + 1 > pods_allowed:
        reasons.append(TOO_MANY_PODS)
    for name, amount in sorted(requests.items()):
        free = node.allocatable.get(name, Decimal(0)) - node.requested.get(name, Decimal(0))
        if amount > free:
            reasons.append(f"Insufficient {name}")
    return reasons, True


def score_nodes(nodes: list[NodeInfo], spec: dict[str, Any], requests: Resources) -> NodeInfo:
    """Pick the best feasible node, as the default score plugins weigh them: TaintToleration
    (fewest untolerated PreferNoSchedule taints, weight 3), NodeAffinity preferred terms (2) and
    NodeResourcesFit LeastAllocated (1) over the non-zero requests of the placed pods and the
    pod (pkg/scheduler/framework/plugins/noderesources/least_allocated.go, NonZeroRequested), so
    equal nodes do fill evenly. Ties go to the first name, where the real scheduler
    picks at random. Nothing here spreads a workload's pods on purpose: the soft scores that may
    (PodTopologySpread's system default constraints, InterPodAffinity's preferred terms,
    ImageLocality, BalancedAllocation) are not modelled, so a test that needs pods on different
    nodes says so with a required constraint, as it must on a real scheduler."""
    if len(nodes) == 1:
        return nodes[0]
    tolerations = spec.get("tolerations") or []
    cpu, memory = nonzero_requests(spec)
    raw = []
    for node in nodes:
        prefer_no = sum(
            1
            for t in node.taints
            if t.get("effect") == "PreferNoSchedule" and not tolerated(tolerations, t)
        )
        preferred = preferred_affinity_score(spec, node.labels, node.name)
        free = []
        for name, amount, placed in (
            ("cpu", cpu, node.nonzero_cpu),
            ("memory", memory, node.nonzero_memory),
        ):
            capacity = node.allocatable.get(name, Decimal(0))
            used = placed + amount
            free.append(float((capacity - used) / capacity) if capacity > 0 else 0.0)
        raw.append((node, prefer_no, preferred, sum(free) / len(free)))
    max_prefer_no = max(r[1] for r in raw) or 1
    max_preferred = max(r[2] for r in raw) or 1
    best: NodeInfo | None = None
    best_score = -1.0
    for node, prefer_no, preferred, least in sorted(raw, key=lambda r: r[0].name):
        score = (
            3 * 100 * (1 - prefer_no / max_prefer_no)
            + 2 * 100 * preferred / max_preferred
            + 100 * max(least, 0.0)
        )
        if score > best_score:
            best, best_score = node, score
    assert best is not None
    return best


def _term_namespaces_match(
    term: dict[str, Any], owner_namespace: str, namespace: str, namespace_labels: NamespaceLabels
) -> bool:
    """A pod affinity term's namespaces: ``namespaces`` united with ``namespaceSelector``; with
    neither, the namespace of the pod the term belongs to ("Assigning Pods to Nodes ›
    Namespace selector")."""
    names = term.get("namespaces") or ()
    selector = term.get("namespaceSelector")
    if not names and selector is None:
        return namespace == owner_namespace
    if namespace in names:
        return True
    return selector is not None and _selector(selector).matches(namespace_labels(namespace))


def _term_matches(
    term: dict[str, Any],
    owner_namespace: str,
    pod: PlacedPod,
    namespace_labels: NamespaceLabels,
) -> bool:
    return _term_namespaces_match(
        term, owner_namespace, pod.namespace, namespace_labels
    ) and _selector(term.get("labelSelector")).matches(pod.labels)


NamespaceLabels = Callable[[str], dict[str, str]]


class InterPod:
    """The PodTopologySpread and InterPodAffinity filters for one pod, with what they need of
    every node computed once per scheduling attempt, as their PreFilter steps do.

    Topology spread ("Pod Topology Spread Constraints"): for each ``DoNotSchedule`` constraint,
    matching pods (same namespace, not terminating) are counted per domain over the nodes that
    have every constraint's key and, by the default ``nodeAffinityPolicy: Honor``, match the
    pod's node selector and required node affinity (``nodeTaintsPolicy`` defaults to Ignore).
    A node fails when its domain's count, plus one if the pod matches its own selector, minus
    the smallest count over the domains (0 when fewer domains than ``minDomains``) exceeds
    ``maxSkew``. A node without the key fails as "(missing required label)".

    Anti-affinity ("Assigning Pods to Nodes › Inter-pod affinity and anti-affinity"): a node
    fails when a pod matching one of the pod's required anti-affinity terms runs in the node's
    domain of that term's ``topologyKey``, or when the pod matches a required anti-affinity term
    of a pod running in that domain (the rule is symmetric). A node without the key is not in
    any domain of it.
    """

    def __init__(
        self,
        pod: dict[str, Any],
        nodes: list[NodeInfo],
        namespace_labels: NamespaceLabels,
        any_anti_affinity: bool = True,
    ) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        self.me = PlacedPod.of(pod)
        self.constraints = [
            c
            for c in spec.get("topologySpreadConstraints") or ()
            if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
        ]
        self.blocked: set[tuple[str, str]] = set()
        self.blocked_by_existing: set[tuple[str, str]] = set()
        self.counts: list[dict[str, int]] = []
        self.minimum: list[int] = []
        self.selectors: list[LabelSelector] = []
        self.active = bool(self.constraints) or bool(self.me.anti_terms) or any_anti_affinity
        if not self.active:
            return
        self._spread(spec, nodes, meta)
        if self.me.anti_terms or any_anti_affinity:
            self._anti_affinity(nodes, namespace_labels)

    def _spread(self, spec: dict[str, Any], nodes: list[NodeInfo], meta: dict[str, Any]) -> None:
        keys = [c.get("topologyKey", "") for c in self.constraints]
        labels = meta.get("labels") or {}
        for constraint in self.constraints:
            selector = _selector(constraint.get("labelSelector"))
            extra = [
                Requirement(k, "in", (labels[k],))
                for k in constraint.get("matchLabelKeys") or ()
                if k in labels
            ]
            if extra:
                selector = LabelSelector(selector.requirements + tuple(extra))
            self.selectors.append(selector)
            key = constraint.get("topologyKey", "")
            honor_affinity = constraint.get("nodeAffinityPolicy", "Honor") == "Honor"
            honor_taints = constraint.get("nodeTaintsPolicy", "Ignore") == "Honor"
            counts: dict[str, int] = {}
            for node in nodes:
                if not all(k in node.labels for k in keys):
                    continue
                if honor_affinity and not node_affinity_matches(spec, node.labels, node.name):
                    continue
                if honor_taints and any(
                    t.get("effect") in ("NoSchedule", "NoExecute")
                    and not tolerated(spec.get("tolerations") or [], t)
                    for t in node.taints
                ):
                    continue
                value = node.labels[key]
                counts[value] = counts.get(value, 0) + sum(
                    1
                    for p in node.pods.values()
                    if p.namespace == self.me.namespace
                    and not p.terminating
                    and selector.matches(p.labels)
                )
            minimum = min(counts.values()) if counts else 0
            if len(counts) < int(constraint.get("minDomains") or 1):
                minimum = 0
            self.counts.append(counts)
            self.minimum.append(minimum)

    def _anti_affinity(self, nodes: list[NodeInfo], namespace_labels: NamespaceLabels) -> None:
        for node in nodes:
            for placed in node.pods.values():
                for term in self.me.anti_terms:
                    key = term.get("topologyKey", "")
                    if key in node.labels and _term_matches(
                        term, self.me.namespace, placed, namespace_labels
                    ):
                        self.blocked.add((key, node.labels[key]))
                for term in placed.anti_terms:
                    key = term.get("topologyKey", "")
                    if key in node.labels and _term_matches(
                        term, placed.namespace, self.me, namespace_labels
                    ):
                        self.blocked_by_existing.add((key, node.labels[key]))

    def check(self, node: NodeInfo) -> tuple[list[str], bool]:
        """Why ``node`` fails these filters ([] if it passes), and whether preemption could
        help (Unschedulable) or not (UnschedulableAndUnresolvable)."""
        if not self.active:
            return [], True
        for constraint, selector, counts, minimum in zip(
            self.constraints, self.selectors, self.counts, self.minimum, strict=True
        ):
            key = constraint.get("topologyKey", "")
            if key not in node.labels:
                return [SPREAD_LABEL_MISSING], False
            own = 1 if selector.matches(self.me.labels) else 0
            skew = counts.get(node.labels[key], 0) + own - minimum
            if skew > int(constraint.get("maxSkew") or 1):
                return [SPREAD_MISMATCH], True
        domains = {(k, v) for k, v in node.labels.items()}
        if self.blocked & domains:
            return [ANTI_AFFINITY_MISMATCH], True
        if self.blocked_by_existing & domains:
            return [EXISTING_ANTI_AFFINITY_MISMATCH], True
        return [], True


def fit_error(total: int, failures: dict[str, tuple[list[str], bool]]) -> str:
    """The FailedScheduling message: reasons counted over nodes, sorted as strings, then what
    preemption found (nothing here: every pod has priority 0, so there are no victims)."""
    if total == 0:
        return NO_NODES
    reasons: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    for node_reasons, helpable in failures.values():
        for reason in node_reasons:
            reasons[reason] += 1
        if helpable:
            preemption["No preemption victims found for incoming pod"] += 1
        else:
            preemption["Preemption is not helpful for scheduling"] += 1
    first = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
    second = ", ".join(sorted(f"{count} {reason}" for reason, count in preemption.items()))
    return (
        f"0/{total} nodes are available: {first}. preemption: 0/{total} nodes are available: "
        f"{second}.."
    )
