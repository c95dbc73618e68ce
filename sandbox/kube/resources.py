"""The resource types the simulator serves and their registry strategies.

A strategy is what kube-apiserver's ``pkg/registry/<group>/<resource>/strategy.go`` does around the
generic store: reset status on create, fill defaults (API defaulting plus the admission plugins a
stock cluster runs: ServiceAccount, DefaultTolerationSeconds, Priority), keep status out of main
resource writes and everything but status out of ``/status`` writes, bump ``generation`` on spec
changes, and validate what the OpenAPI schema cannot express (names, selectors, enums, quantities,
immutable fields). Each check cites the behaviour it models; messages follow apimachinery's.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import quantity
from .errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from .selectors import (
    from_label_selector_object,
    label_value_errors,
    qualified_name_errors,
)

if TYPE_CHECKING:
    from .store import Store

# -- names ---------------------------------------------------------------------------------------

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def dns1123_subdomain_errors(name: str) -> list[str]:
    """Object Names and IDs › DNS Subdomain Names."""
    errors = []
    if len(name) > 253:
        errors.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(name):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return errors


def dns1123_label_errors(name: str) -> list[str]:
    """Object Names and IDs › RFC 1123 Label Names."""
    errors = []
    if len(name) > 63:
        errors.append("must be no more than 63 characters")
    if not _DNS1123_LABEL.match(name):
        errors.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    return errors


def dns1035_label_errors(name: str) -> list[str]:
    """Object Names and IDs › RFC 1035 Label Names (Services)."""
    errors = []
    if len(name) > 63:
        errors.append("must be no more than 63 characters")
    if not _DNS1035_LABEL.match(name):
        errors.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character (e.g. "
            "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        )
    return errors


# -- shared validation pieces --------------------------------------------------------------------

TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
POD_PHASES = ("Failed", "Pending", "Running", "Succeeded", "Unknown")
RESTART_POLICIES = ("Always", "Never", "OnFailure")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("SCTP", "TCP", "UDP")
CONDITION_STATUSES = ("False", "True", "Unknown")
CONTAINER_RESOURCES = ("cpu", "ephemeral-storage", "memory")
NODE_RESOURCES = ("cpu", "ephemeral-storage", "memory", "pods", "storage")


def validate_labels(labels: dict[str, Any] | None, path: str) -> list[FieldError]:
    errors = []
    for key, value in (labels or {}).items():
        for message in qualified_name_errors(key):
            errors.append(invalid(path, key, message))
        if not isinstance(value, str):
            errors.append(invalid(f"{path}[{key}]", value, "must be a string"))
            continue
        for message in label_value_errors(value):
            errors.append(invalid(path, value, message))
    return errors


def validate_object_meta(
    meta: dict[str, Any], *, namespaced: bool, name_errors: Callable[[str], list[str]]
) -> list[FieldError]:
    """apimachinery ValidateObjectMeta: name, namespace, labels, annotations, owner references."""
    errors: list[FieldError] = []
    name = meta.get("name", "")
    if not name:
        errors.append(required("metadata.name", "name or generateName is required"))
    else:
        errors.extend(invalid("metadata.name", name, m) for m in name_errors(name))
    if namespaced:
        ns = meta.get("namespace", "")
        if not ns:
            errors.append(required("metadata.namespace"))
        else:
            errors.extend(invalid("metadata.namespace", ns, m) for m in dns1123_label_errors(ns))
    errors.extend(validate_labels(meta.get("labels"), "metadata.labels"))
    annotations = meta.get("annotations") or {}
    size = 0
    for key, value in annotations.items():
        errors.extend(
            invalid("metadata.annotations", key, m) for m in qualified_name_errors(key.lower())
        )
        size += len(key) + len(str(value))
    if size > 262144:
        errors.append(
            FieldError(
                "FieldValueTooLong", "metadata.annotations", "must have at most 262144 bytes"
            )
        )
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                errors.append(required(f"metadata.ownerReferences[{i}].{key}"))
    return errors


def validate_quantities(
    resources: dict[str, Any] | None,
    path: str,
    *,
    standard: tuple[str, ...] = CONTAINER_RESOURCES,
) -> list[FieldError]:
    """Resource names (standard or fully qualified) and non-negative amounts; extended
    (qualified) resources in whole units."""
    errors: list[FieldError] = []
    for name, raw in (resources or {}).items():
        where = f"{path}[{name}]"
        if name not in standard and not name.startswith(("hugepages-", "attachable-volumes-")):
            if "/" not in name:
                errors.append(
                    invalid(where, name, "must be a standard resource type or fully qualified")
                )
            else:
                errors.extend(invalid(where, name, m) for m in qualified_name_errors(name))
        try:
            amount = quantity.value(raw)
        except quantity.QuantityError as exc:
            errors.append(invalid(where, raw, str(exc)))
            continue
        if amount < 0:
            errors.append(invalid(where, raw, "must be greater than or equal to 0"))
        if "/" in name and amount != amount.to_integral_value():
            errors.append(invalid(where, raw, "must be an integer"))
    return errors


BUILTIN_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}


def overcommit_allowed(name: str) -> bool:
    """helper.IsOvercommitAllowed: native resources (no domain, or kubernetes.io) except
    hugepages."""
    native = "/" not in name or name.split("/", 1)[0].endswith("kubernetes.io")
    return native and not name.startswith("hugepages-")


def _image_pull_policy(image: str) -> str:
    # API defaulting: ":latest" or no tag means Always, anything pinned means IfNotPresent.
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def default_pod_spec(spec: dict[str, Any], *, pod: bool) -> None:
    """SetDefaults_PodSpec / SetDefaults_Container, plus pod-only admission defaults."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if "image" in container:
                container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            resources = container.setdefault("resources", {})
            if pod and resources.get("limits"):
                # SetDefaults_Pod: a limit without a request makes the request equal to it.
                requests = resources.setdefault("requests", {})
                for name, amount in resources["limits"].items():
                    requests.setdefault(name, amount)
            for port in container.get("ports") or []:
                port.setdefault("protocol", "TCP")
    if pod:
        spec.setdefault("enableServiceLinks", True)


def admit_pod_spec(spec: dict[str, Any]) -> None:
    """What a stock cluster's admission plugins add to a new Pod."""
    # ServiceAccount admission (without the token volume) and Priority admission.
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    # Priority admission: the two built-in PriorityClasses, else the default 0.
    spec.setdefault("priority", BUILTIN_PRIORITIES.get(spec.get("priorityClassName", ""), 0))
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    # DefaultTolerationSeconds admission: tolerate not-ready/unreachable nodes for 300 s.
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(
            t.get("key") == key and t.get("effect") in ("NoExecute", None) for t in tolerations
        ):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )


def qos_class(spec: dict[str, Any]) -> str:
    """Pod Quality of Service Classes: Guaranteed, Burstable or BestEffort."""
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = {
            k: v for k, v in (resources.get("requests") or {}).items() if k in ("cpu", "memory")
        }
        limits = {
            k: v for k, v in (resources.get("limits") or {}).items() if k in ("cpu", "memory")
        }
        if requests or limits:
            any_set = True
        if set(limits) != {"cpu", "memory"}:
            guaranteed = False
        for name, amount in requests.items():
            if name not in limits or quantity.value(amount) != quantity.value(limits[name]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def validate_pod_spec(spec: dict[str, Any], path: str) -> list[FieldError]:
    """The parts of ValidatePodSpec that the schema cannot express."""
    errors: list[FieldError] = []
    containers = spec.get("containers") or []
    if not containers:
        errors.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            where = f"{path}.{key}[{i}]"
            name = c.get("name", "")
            if not name:
                errors.append(required(f"{where}.name"))
            else:
                errors.extend(invalid(f"{where}.name", name, m) for m in dns1123_label_errors(name))
                if name in seen:
                    errors.append(duplicate(f"{where}.name", name))
                seen.add(name)
            if not c.get("image", "").strip():
                errors.append(required(f"{where}.image"))
            policy = c.get("imagePullPolicy")
            if policy is not None and policy not in PULL_POLICIES:
                errors.append(not_supported(f"{where}.imagePullPolicy", policy, PULL_POLICIES))
            for j, port in enumerate(c.get("ports") or []):
                number = port.get("containerPort")
                if not isinstance(number, int) or not 1 <= number <= 65535:
                    errors.append(
                        invalid(
                            f"{where}.ports[{j}].containerPort",
                            number,
                            "must be between 1 and 65535, inclusive",
                        )
                    )
                protocol = port.get("protocol", "TCP")
                if protocol not in PROTOCOLS:
                    errors.append(
                        not_supported(f"{where}.ports[{j}].protocol", protocol, PROTOCOLS)
                    )
            for j, env in enumerate(c.get("env") or []):
                if not env.get("name"):
                    errors.append(required(f"{where}.env[{j}].name"))
            resources = c.get("resources") or {}
            limits = resources.get("limits") or {}
            requests = resources.get("requests") or {}
            errors.extend(validate_quantities(limits, f"{where}.resources.limits"))
            errors.extend(validate_quantities(requests, f"{where}.resources.requests"))
            for name, amount in requests.items():
                if name not in limits:
                    # ValidateResourceRequirements: extended resources and hugepages are not
                    # overcommitable (helper.IsOvercommitAllowed), so they need a limit.
                    if not overcommit_allowed(name):
                        errors.append(
                            required(
                                f"{where}.resources.limits",
                                "Limit must be set for non overcommitable resources",
                            )
                        )
                    continue
                try:
                    have, cap = quantity.value(amount), quantity.value(limits[name])
                except quantity.QuantityError:
                    continue
                if "/" in name and have != cap:
                    errors.append(
                        invalid(
                            f"{where}.resources.requests",
                            amount,
                            f"must be equal to {name} limit of {limits[name]}",
                        )
                    )
                elif have > cap:
                    errors.append(
                        invalid(
                            f"{where}.resources.requests",
                            amount,
                            f"must be less than or equal to {name} limit of {limits[name]}",
                        )
                    )
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        errors.append(not_supported(f"{path}.restartPolicy", policy, RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if dns is not None and dns not in DNS_POLICIES:
        errors.append(not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        errors.append(
            invalid(
                f"{path}.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"
            )
        )
    errors.extend(validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    node_name = spec.get("nodeName")
    if node_name:
        errors.extend(
            invalid(f"{path}.nodeName", node_name, m) for m in dns1123_subdomain_errors(node_name)
        )
    for i, t in enumerate(spec.get("tolerations") or []):
        where = f"{path}.tolerations[{i}]"
        operator = t.get("operator", "Equal")
        if operator not in ("Equal", "Exists"):
            errors.append(not_supported(f"{where}.operator", operator, ("Equal", "Exists")))
        key = t.get("key", "")
        if key:
            errors.extend(invalid(f"{where}.key", key, m) for m in qualified_name_errors(key))
        elif operator != "Exists":
            errors.append(
                invalid(
                    f"{where}.operator",
                    operator,
                    "operator must be Exists when `key` is empty, which means "
                    '"match all values and all keys"',
                )
            )
        if operator == "Exists" and t.get("value"):
            errors.append(
                invalid(
                    f"{where}.operator",
                    t["value"],
                    "value must be empty when `operator` is 'Exists'",
                )
            )
        effect = t.get("effect", "")
        if effect and effect not in TAINT_EFFECTS:
            errors.append(not_supported(f"{where}.effect", effect, TAINT_EFFECTS))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errors.append(
                invalid(
                    f"{where}.effect",
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
    return errors


def validate_conditions(conditions: list[dict[str, Any]] | None, path: str) -> list[FieldError]:
    errors = []
    for i, condition in enumerate(conditions or []):
        if not condition.get("type"):
            errors.append(required(f"{path}[{i}].type"))
        status = condition.get("status", "")
        if status not in CONDITION_STATUSES:
            errors.append(not_supported(f"{path}[{i}].status", status, CONDITION_STATUSES))
    return errors


def validate_label_selector(selector: dict[str, Any], path: str) -> list[FieldError]:
    errors = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    operators = ("DoesNotExist", "Exists", "In", "NotIn")
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{i}]"
        op = expr.get("operator", "")
        if op not in operators:
            errors.append(not_supported(f"{where}.operator", op, operators))
        values = expr.get("values") or []
        if op in ("In", "NotIn") and not values:
            errors.append(
                required(f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'")
            )
        if op in ("Exists", "DoesNotExist") and values:
            errors.append(
                forbidden(
                    f"{where}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
        errors.extend(
            invalid(f"{where}.key", expr.get("key"), m)
            for m in qualified_name_errors(expr.get("key", ""))
        )
    return errors


# -- strategies ----------------------------------------------------------------------------------


class Strategy:
    """Default behaviour: objects without status, no defaults, metadata checks only."""

    def prepare_for_create(self, obj: dict[str, Any], store: Store) -> None:
        """Reset what clients may not set on create and fill defaults (mutates ``obj``)."""

    def prepare_for_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Keep what a main-resource write may not change (mutates ``new``)."""
        if "status" in old or "status" in new:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)

    def default(self, obj: dict[str, Any], store: Store) -> None:
        """API defaulting, applied on create and on every update (as decoding does)."""

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        return []

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        return []

    def generation_changed(self, new: dict[str, Any], old: dict[str, Any]) -> bool:
        return new.get("spec") != old.get("spec")


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any], store: Store) -> None:
        # "Namespaces › Automatic labelling" and the kubernetes finalizer set on create.
        obj["status"] = {"phase": "Active"}
        finalizers = obj.setdefault("spec", {}).setdefault("finalizers", [])
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")

    def default(self, obj: dict[str, Any], store: Store) -> None:
        name = obj["metadata"].get("name")
        if name:
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        phase = (obj.get("status") or {}).get("phase", "Active")
        if phase not in ("Active", "Terminating"):
            return [not_supported("status.phase", phase, ("Active", "Terminating"))]
        return []


class NodeStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any], store: Store) -> None:
        # The TaintNodesByCondition admission plugin (on with the controllers): a new Node is
        # tainted not-ready/NoSchedule so nothing lands on it before the node lifecycle
        # controller has looked at its conditions ("Admission Controllers Reference ›
        # TaintNodesByCondition").
        if not store.taint_new_nodes:
            return
        taints = obj.setdefault("spec", {}).setdefault("taints", [])
        if not any(
            t.get("key") == NOT_READY_TAINT and t.get("effect") == "NoSchedule" for t in taints
        ):
            taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        errors: list[FieldError] = []
        spec = obj.get("spec") or {}
        seen: set[tuple[str, str]] = set()
        for i, taint in enumerate(spec.get("taints") or []):
            where = f"spec.taints[{i}]"
            key = taint.get("key", "")
            if not key:
                errors.append(required(f"{where}.key"))
            errors.extend(
                invalid(f"{where}.key", key, m) for m in qualified_name_errors(key) if key
            )
            errors.extend(
                invalid(f"{where}.value", taint.get("value"), m)
                for m in label_value_errors(taint.get("value", ""))
            )
            effect = taint.get("effect", "")
            if not effect:
                errors.append(required(f"{where}.effect"))
            elif effect not in TAINT_EFFECTS:
                errors.append(not_supported(f"{where}.effect", effect, TAINT_EFFECTS))
            if (key, effect) in seen:
                errors.append(
                    FieldError(
                        "FieldValueDuplicate",
                        where,
                        "taints must be unique by key and effect pair",
                        taint,
                    )
                )
            seen.add((key, effect))
        status = obj.get("status") or {}
        for key in ("capacity", "allocatable"):
            errors.extend(
                validate_quantities(status.get(key), f"status.{key}", standard=NODE_RESOURCES)
            )
        errors.extend(validate_conditions(status.get("conditions"), "status.conditions"))
        address_types = ("ExternalDNS", "ExternalIP", "Hostname", "InternalDNS", "InternalIP")
        for i, address in enumerate(status.get("addresses") or []):
            if address.get("type") not in address_types:
                errors.append(
                    not_supported(f"status.addresses[{i}].type", address.get("type"), address_types)
                )
        return errors

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        old_id = (old.get("spec") or {}).get("providerID", "")
        new_id = (new.get("spec") or {}).get("providerID", "")
        if old_id and new_id != old_id:
            return [
                forbidden(
                    "spec.providerID",
                    'node updates may not change providerID except from "" to valid',
                )
            ]
        return []


class PodStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any], store: Store) -> None:
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec, pod=True)
        admit_pod_spec(spec)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}

    def default(self, obj: dict[str, Any], store: Store) -> None:
        default_pod_spec(obj.setdefault("spec", {}), pod=True)

    def prepare_for_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        super().prepare_for_update(new, old)
        # A PUT may not set or clear the node: that is what the binding subresource is for.
        old_node = (old.get("spec") or {}).get("nodeName")
        spec = new.setdefault("spec", {})
        if old_node and "nodeName" not in spec:
            spec["nodeName"] = old_node

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        errors = validate_pod_spec(obj.get("spec") or {}, "spec")
        status = obj.get("status") or {}
        phase = status.get("phase")
        if phase is not None and phase not in POD_PHASES:
            errors.append(not_supported("status.phase", phase, POD_PHASES))
        errors.extend(validate_conditions(status.get("conditions"), "status.conditions"))
        return errors

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        # ValidatePodUpdate: only images, activeDeadlineSeconds, added tolerations and
        # terminationGracePeriodSeconds may change in a running pod's spec.
        def mutable_masked(spec: dict[str, Any]) -> dict[str, Any]:
            spec = copy.deepcopy(spec)
            for key in ("containers", "initContainers"):
                for c in spec.get(key) or []:
                    c.pop("image", None)
            for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
                spec.pop(key, None)
            return spec

        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        errors: list[FieldError] = []
        if mutable_masked(old_spec) != mutable_masked(new_spec):
            errors.append(
                forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,"
                    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                    "`spec.tolerations` (only additions to existing tolerations),"
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                    "previously negative)",
                )
            )
        old_tolerations = old_spec.get("tolerations") or []
        new_tolerations = new_spec.get("tolerations") or []
        if any(t not in new_tolerations for t in old_tolerations):
            errors.append(
                forbidden(
                    "spec.tolerations",
                    "existing toleration can not be modified except its tolerationSeconds",
                )
            )
        return errors


class ServiceStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any], store: Store) -> None:
        obj["status"] = {"loadBalancer": {}}
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
            spec["clusterIP"] = store.allocate_cluster_ip()
        if spec.get("clusterIP"):
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            for port in spec.get("ports") or []:
                port.setdefault("nodePort", store.allocate_node_port())
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)

    def prepare_for_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        super().prepare_for_update(new, old)
        # patchAllocatedValues: an update that omits allocated values keeps them.
        old_spec, spec = old.get("spec") or {}, new.setdefault("spec", {})
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key in old_spec and key not in spec:
                spec[key] = copy.deepcopy(old_spec[key])

    def default(self, obj: dict[str, Any], store: Store) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        errors: list[FieldError] = []
        spec = obj.get("spec") or {}
        types = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
        kind = spec.get("type", "ClusterIP")
        if kind not in types:
            errors.append(not_supported("spec.type", kind, types))
        affinity = spec.get("sessionAffinity", "None")
        if affinity not in ("ClientIP", "None"):
            errors.append(not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None")))
        ports = spec.get("ports") or []
        if kind == "ExternalName":
            if not spec.get("externalName"):
                errors.append(required("spec.externalName"))
        elif not ports and spec.get("clusterIP") != "None":
            errors.append(required("spec.ports"))
        names: set[str] = set()
        for i, port in enumerate(ports):
            where = f"spec.ports[{i}]"
            name = port.get("name", "")
            if len(ports) > 1 and not name:
                errors.append(required(f"{where}.name"))
            if name:
                errors.extend(invalid(f"{where}.name", name, m) for m in dns1123_label_errors(name))
                if name in names:
                    errors.append(duplicate(f"{where}.name", name))
                names.add(name)
            number = port.get("port")
            if not isinstance(number, int) or not 1 <= number <= 65535:
                errors.append(
                    invalid(f"{where}.port", number, "must be between 1 and 65535, inclusive")
                )
            protocol = port.get("protocol", "TCP")
            if protocol not in PROTOCOLS:
                errors.append(not_supported(f"{where}.protocol", protocol, PROTOCOLS))
            target = port.get("targetPort")
            if isinstance(target, int) and not 1 <= target <= 65535:
                errors.append(
                    invalid(f"{where}.targetPort", target, "must be between 1 and 65535, inclusive")
                )
        errors.extend(validate_labels(spec.get("selector"), "spec.selector"))
        cluster_ip = spec.get("clusterIP")
        if cluster_ip and cluster_ip != "None":
            try:
                ipaddress.ip_address(cluster_ip)
            except ValueError:
                errors.append(invalid("spec.clusterIP", cluster_ip, "must be a valid IP address"))
        return errors

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        old_ip = (old.get("spec") or {}).get("clusterIP")
        new_ip = (new.get("spec") or {}).get("clusterIP")
        if old_ip and new_ip != old_ip:
            return [invalid("spec.clusterIP", new_ip, "field is immutable")]
        return []


_PERCENT_MESSAGE = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
    "'93%', regex used for validation is '[0-9]+%')"
)


def validate_workload_spec(spec: dict[str, Any], kind: str) -> list[FieldError]:
    """What Deployments and ReplicaSets share: replicas, a selector that is not empty and matches
    the template's labels, a valid pod template that restarts Always."""
    errors: list[FieldError] = []
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, int) and replicas < 0:
        errors.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector is None:
        errors.append(required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        errors.append(invalid("spec.selector", selector, f"empty selector is invalid for {kind}"))
    else:
        selector_errors = validate_label_selector(selector, "spec.selector")
        errors.extend(selector_errors)
        if not selector_errors and not from_label_selector_object(selector).matches(labels):
            errors.append(
                invalid(
                    "spec.template.metadata.labels",
                    labels,
                    "`selector` does not match template `labels`",
                )
            )
    errors.extend(validate_labels(labels, "spec.template.metadata.labels"))
    pod_spec = template.get("spec") or {}
    errors.extend(validate_pod_spec(pod_spec, "spec.template.spec"))
    policy = pod_spec.get("restartPolicy", "Always")
    if policy != "Always":
        errors.append(not_supported("spec.template.spec.restartPolicy", policy, ("Always",)))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        errors.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            )
        )
    return errors


def selector_immutable(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """apps/v1 selectors are immutable ("Deployments › Label selector updates"; the same rule in
    the ReplicaSet and DaemonSet registries)."""
    old_sel = (old.get("spec") or {}).get("selector")
    new_sel = (new.get("spec") or {}).get("selector")
    if new_sel != old_sel:
        return [invalid("spec.selector", new_sel, "field is immutable")]
    return []


class DeploymentStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any], store: Store) -> None:
        obj["status"] = {}

    def default(self, obj: dict[str, Any], store: Store) -> None:
        # apps/v1 SetDefaults_Deployment.
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        template = spec.setdefault("template", {})
        default_pod_spec(template.setdefault("spec", {}), pod=False)

    def generation_changed(self, new: dict[str, Any], old: dict[str, Any]) -> bool:
        # Annotations are copied to ReplicaSets, so they bump the generation too.
        return new.get("spec") != old.get("spec") or new["metadata"].get("annotations") != old[
            "metadata"
        ].get("annotations")

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errors = validate_workload_spec(spec, "deployment")
        errors.extend(self._validate_strategy(spec.get("strategy") or {}))
        for key in ("revisionHistoryLimit", "minReadySeconds"):
            value = spec.get(key)
            if isinstance(value, int) and value < 0:
                errors.append(invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
        deadline = spec.get("progressDeadlineSeconds")
        if isinstance(deadline, int) and deadline <= spec.get("minReadySeconds", 0):
            errors.append(
                invalid(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )
        status = obj.get("status") or {}
        for key in (
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "observedGeneration",
        ):
            value = status.get(key)
            if isinstance(value, int) and value < 0:
                errors.append(invalid(f"status.{key}", value, "must be greater than or equal to 0"))
        errors.extend(validate_conditions(status.get("conditions"), "status.conditions"))
        return errors

    @staticmethod
    def _validate_strategy(strategy: dict[str, Any]) -> list[FieldError]:
        errors: list[FieldError] = []
        kind = strategy.get("type", "RollingUpdate")
        if kind not in ("Recreate", "RollingUpdate"):
            errors.append(not_supported("spec.strategy.type", kind, ("Recreate", "RollingUpdate")))
        rolling = strategy.get("rollingUpdate")
        if kind == "Recreate" and rolling is not None:
            errors.append(
                forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            )
        if kind == "RollingUpdate" and rolling:
            amounts: dict[str, Decimal] = {}
            for key in ("maxUnavailable", "maxSurge"):
                raw = rolling.get(key)
                where = f"spec.strategy.rollingUpdate.{key}"
                if isinstance(raw, int):
                    if raw < 0:
                        errors.append(invalid(where, raw, "must be greater than or equal to 0"))
                    amounts[key] = Decimal(raw)
                elif isinstance(raw, str):
                    match = re.fullmatch(r"([0-9]+)%", raw)
                    if not match:
                        errors.append(
                            invalid(
                                where,
                                raw,
                                _PERCENT_MESSAGE,
                            )
                        )
                        continue
                    amounts[key] = Decimal(match.group(1))
                    if key == "maxUnavailable" and amounts[key] > 100:
                        errors.append(invalid(where, raw, "must not be greater than 100%"))
            if amounts.get("maxUnavailable") == 0 and amounts.get("maxSurge") == 0:
                errors.append(
                    invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        rolling.get("maxUnavailable"),
                        "may not be 0 when `maxSurge` is 0",
                    )
                )
        return errors

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        return selector_immutable(new, old)


class ReplicaSetStrategy(Strategy):
    """apps/v1 ReplicaSets: what the deployment controller creates (``pkg/registry/apps/
    replicaset``): status reset on create, generation bumped by spec changes only."""

    def prepare_for_create(self, obj: dict[str, Any], store: Store) -> None:
        obj["status"] = {"replicas": 0}  # ReplicaSetStatus.replicas has no omitempty

    def default(self, obj: dict[str, Any], store: Store) -> None:
        # apps/v1 SetDefaults_ReplicaSet.
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        template = spec.setdefault("template", {})
        default_pod_spec(template.setdefault("spec", {}), pod=False)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errors = validate_workload_spec(spec, "replicaset")
        value = spec.get("minReadySeconds")
        if isinstance(value, int) and value < 0:
            errors.append(
                invalid("spec.minReadySeconds", value, "must be greater than or equal to 0")
            )
        status = obj.get("status") or {}
        for key in (
            "replicas",
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
            "observedGeneration",
        ):
            value = status.get(key)
            if isinstance(value, int) and value < 0:
                errors.append(invalid(f"status.{key}", value, "must be greater than or equal to 0"))
        for ready, total in (("readyReplicas", "replicas"), ("availableReplicas", "readyReplicas")):
            if status.get(ready, 0) > status.get(total, 0):
                errors.append(
                    invalid(
                        f"status.{ready}",
                        status.get(ready),
                        f"cannot be greater than status.{total}",
                    )
                )
        errors.extend(validate_conditions(status.get("conditions"), "status.conditions"))
        return errors

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        return selector_immutable(new, old)


DAEMONSET_STATUS_COUNTS = (
    "currentNumberScheduled",
    "numberMisscheduled",
    "desiredNumberScheduled",
    "numberReady",
)


class DaemonSetStrategy(Strategy):
    """apps/v1 DaemonSets ("DaemonSet"): defaults of SetDefaults_DaemonSet, the workload checks
    shared with ReplicaSets (no replicas), an immutable selector, the update strategy."""

    def prepare_for_create(self, obj: dict[str, Any], store: Store) -> None:
        obj["status"] = dict.fromkeys(DAEMONSET_STATUS_COUNTS, 0)

    def default(self, obj: dict[str, Any], store: Store) -> None:
        spec = obj.setdefault("spec", {})
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        template = spec.setdefault("template", {})
        default_pod_spec(template.setdefault("spec", {}), pod=False)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errors = validate_workload_spec(spec, "daemonset")
        kind = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if kind not in ("OnDelete", "RollingUpdate"):
            errors.append(
                not_supported("spec.updateStrategy.type", kind, ("OnDelete", "RollingUpdate"))
            )
        status = obj.get("status") or {}
        for key in (*DAEMONSET_STATUS_COUNTS, "numberAvailable", "numberUnavailable"):
            value = status.get(key)
            if isinstance(value, int) and value < 0:
                errors.append(invalid(f"status.{key}", value, "must be greater than or equal to 0"))
        return errors

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        return selector_immutable(new, old)


PDB_STATUS_COUNTS = ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")


def _validate_int_or_percent(where: str, raw: Any) -> list[FieldError]:
    """policy validation's ValidatePositiveIntOrPercent and IsNotMoreThan100Percent."""
    if isinstance(raw, int):
        if raw < 0:
            return [invalid(where, raw, "must be greater than or equal to 0")]
        return []
    match = re.fullmatch(r"([0-9]+)%", raw) if isinstance(raw, str) else None
    if not match:
        return [invalid(where, raw, _PERCENT_MESSAGE)]
    if int(match.group(1)) > 100:
        return [invalid(where, raw, "must not be greater than 100%")]
    return []


class PodDisruptionBudgetStrategy(Strategy):
    """policy/v1 PodDisruptionBudgets ("Specifying a Disruption Budget for your Application";
    pkg/registry/policy/poddisruptionbudget/strategy.go, pkg/apis/policy/validation): status
    reset on create, generation bumped by spec changes, at most one of minAvailable and
    maxUnavailable, each a non-negative int or a percentage up to 100%. The status is the
    disruption controller's (``controllers/disruption.py``)."""

    def prepare_for_create(self, obj: dict[str, Any], store: Store) -> None:
        obj["status"] = dict.fromkeys(PDB_STATUS_COUNTS, 0)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errors: list[FieldError] = []
        if "minAvailable" in spec and "maxUnavailable" in spec:
            errors.append(
                invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set")
            )
        for key in ("minAvailable", "maxUnavailable"):
            if key in spec:
                errors.extend(_validate_int_or_percent(f"spec.{key}", spec[key]))
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in ("AlwaysAllow", "IfHealthyBudget"):
            errors.append(
                not_supported(
                    "spec.unhealthyPodEvictionPolicy", policy, ("AlwaysAllow", "IfHealthyBudget")
                )
            )
        status = obj.get("status") or {}
        for key in (*PDB_STATUS_COUNTS, "observedGeneration"):
            value = status.get(key)
            if isinstance(value, int) and value < 0:
                errors.append(invalid(f"status.{key}", value, "must be greater than or equal to 0"))
        errors.extend(validate_conditions(status.get("conditions"), "status.conditions"))
        return errors


class EventStrategy(Strategy):
    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        # ValidateEventCreate for core/v1 (legacy) events.
        errors: list[FieldError] = []
        involved = obj.get("involvedObject") or {}
        namespace = obj["metadata"].get("namespace", "")
        involved_ns = involved.get("namespace", "")
        if involved_ns and involved_ns != namespace:
            errors.append(
                invalid("involvedObject.namespace", involved_ns, "does not match event.namespace")
            )
        if not involved_ns and namespace not in ("", "default"):
            # Events about cluster-scoped objects (Nodes) live in "default".
            cluster_kinds = ("Node", "Namespace", "PersistentVolume")
            if involved.get("kind") in cluster_kinds:
                errors.append(
                    invalid(
                        "involvedObject.namespace", involved_ns, "does not match event.namespace"
                    )
                )
        if obj.get("reportingController"):
            if not obj.get("eventTime"):
                errors.append(required("eventTime"))
            if not obj.get("action"):
                errors.append(required("action"))
        return errors


_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_SECRET_SIZE = 1024 * 1024  # core/v1 validation: MaxSecretSize


class SecretStrategy(Strategy):
    """core/v1 Secrets ("Secrets"): ``type`` defaults to Opaque and is immutable; ``stringData``
    is folded into ``data`` (base64) on write and never stored; keys are config keys; 1 MiB in
    all. A Secret has no status."""

    def default(self, obj: dict[str, Any], store: Store) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        errors: list[FieldError] = []
        total = 0
        for key, value in (obj.get("data") or {}).items():
            if not _CONFIG_KEY.match(key) or len(key) > 253 or key in (".", ".."):
                errors.append(
                    invalid(
                        "data",
                        key,
                        "a valid config key must consist of alphanumeric characters, '-', '_' "
                        "or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used "
                        "for validation is '[-._a-zA-Z0-9]+')",
                    )
                )
            try:
                total += len(base64.b64decode(value or "", validate=True))
            except ValueError:
                errors.append(invalid(f"data[{key}]", "<value omitted>", "illegal base64 data"))
        if total > MAX_SECRET_SIZE:
            errors.append(
                FieldError("FieldValueTooLong", "data", f"may not be more than {MAX_SECRET_SIZE}")
            )
        return errors

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        errors: list[FieldError] = []
        if new.get("type") != old.get("type"):
            errors.append(invalid("type", new.get("type"), "field is immutable"))
        if old.get("immutable") and (
            new.get("data") != old.get("data") or not new.get("immutable")
        ):
            errors.append(forbidden("data", "field is immutable when `immutable` is set"))
        return errors

    def generation_changed(self, new: dict[str, Any], old: dict[str, Any]) -> bool:
        return False


# -- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    group: str
    version: str
    verbs: tuple[str, ...]


def _meta_fields(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    return {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")}


def _pod_fields(obj: dict[str, Any]) -> dict[str, str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    fields = _meta_fields(obj)
    fields.update(
        {
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.restartPolicy": spec.get("restartPolicy", ""),
            "spec.schedulerName": spec.get("schedulerName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
            "status.phase": status.get("phase", ""),
            "status.podIP": status.get("podIP", ""),
            "status.nominatedNodeName": status.get("nominatedNodeName", ""),
        }
    )
    return fields


def _node_fields(obj: dict[str, Any]) -> dict[str, str]:
    fields = _meta_fields(obj)
    fields["spec.unschedulable"] = (
        "true" if (obj.get("spec") or {}).get("unschedulable") else "false"
    )
    return fields


def _namespace_fields(obj: dict[str, Any]) -> dict[str, str]:
    fields = _meta_fields(obj)
    fields["status.phase"] = (obj.get("status") or {}).get("phase", "")
    return fields


def _secret_fields(obj: dict[str, Any]) -> dict[str, str]:
    fields = _meta_fields(obj)
    fields["type"] = obj.get("type", "")
    return fields


def _event_fields(obj: dict[str, Any]) -> dict[str, str]:
    involved = obj.get("involvedObject") or {}
    fields = _meta_fields(obj)
    for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        fields[f"involvedObject.{key}"] = involved.get(key, "")
    fields["reason"] = obj.get("reason", "")
    fields["reportingComponent"] = obj.get("reportingComponent", "")
    fields["source"] = (obj.get("source") or {}).get("component", "")
    fields["type"] = obj.get("type", "")
    return fields


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    resource: str
    singular: str
    kind: str
    namespaced: bool
    strategy: Strategy
    name_errors: Callable[[str], list[str]]
    fields: Callable[[dict[str, Any]], dict[str, str]] = _meta_fields
    short_names: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    tracks_generation: bool = False
    return_deleted_object: bool = False
    allow_create_on_update: bool = False
    field_labels: frozenset[str] = field(default=frozenset())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)

    @property
    def has_status(self) -> bool:
        return self.subresource("status") is not None


VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def _labels_of(fields_fn: Callable[[dict[str, Any]], dict[str, str]]) -> frozenset[str]:
    return frozenset(fields_fn({"metadata": {}}))


def _status(kind: str, group: str = "", version: str = "v1") -> Subresource:
    return Subresource("status", kind, group, version, ("get", "patch", "update"))


NAMESPACES = ResourceType(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    False,
    NamespaceStrategy(),
    dns1123_label_errors,
    _namespace_fields,
    ("ns",),
    (_status("Namespace"),),
    return_deleted_object=True,
    field_labels=_labels_of(_namespace_fields),
)
NODES = ResourceType(
    "",
    "v1",
    "nodes",
    "node",
    "Node",
    False,
    NodeStrategy(),
    dns1123_subdomain_errors,
    _node_fields,
    ("no",),
    (_status("Node"),),
    field_labels=_labels_of(_node_fields),
)
PODS = ResourceType(
    "",
    "v1",
    "pods",
    "pod",
    "Pod",
    True,
    PodStrategy(),
    dns1123_subdomain_errors,
    _pod_fields,
    ("po",),
    (
        _status("Pod"),
        Subresource("binding", "Binding", "", "v1", ("create",)),
        Subresource("eviction", "Eviction", "policy", "v1", ("create",)),
    ),
    return_deleted_object=True,
    field_labels=_labels_of(_pod_fields),
)
SERVICES = ResourceType(
    "",
    "v1",
    "services",
    "service",
    "Service",
    True,
    ServiceStrategy(),
    dns1035_label_errors,
    _meta_fields,
    ("svc",),
    (_status("Service"),),
    return_deleted_object=True,
    field_labels=_labels_of(_meta_fields),
)
EVENTS = ResourceType(
    "",
    "v1",
    "events",
    "event",
    "Event",
    True,
    EventStrategy(),
    dns1123_subdomain_errors,
    _event_fields,
    ("ev",),
    allow_create_on_update=True,
    field_labels=_labels_of(_event_fields),
)
SECRETS = ResourceType(
    "",
    "v1",
    "secrets",
    "secret",
    "Secret",
    True,
    SecretStrategy(),
    dns1123_subdomain_errors,
    _secret_fields,
    field_labels=_labels_of(_secret_fields),
)
DEPLOYMENTS = ResourceType(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    True,
    DeploymentStrategy(),
    dns1123_subdomain_errors,
    _meta_fields,
    ("deploy",),
    (
        _status("Deployment", "apps"),
        Subresource("scale", "Scale", "autoscaling", "v1", ("get", "patch", "update")),
    ),
    tracks_generation=True,
    field_labels=_labels_of(_meta_fields),
)

REPLICASETS = ResourceType(
    "apps",
    "v1",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    True,
    ReplicaSetStrategy(),
    dns1123_subdomain_errors,
    _meta_fields,
    ("rs",),
    (
        _status("ReplicaSet", "apps"),
        Subresource("scale", "Scale", "autoscaling", "v1", ("get", "patch", "update")),
    ),
    tracks_generation=True,
    field_labels=_labels_of(_meta_fields),
)
DAEMONSETS = ResourceType(
    "apps",
    "v1",
    "daemonsets",
    "daemonset",
    "DaemonSet",
    True,
    DaemonSetStrategy(),
    dns1123_subdomain_errors,
    _meta_fields,
    ("ds",),
    (_status("DaemonSet", "apps"),),
    tracks_generation=True,
    field_labels=_labels_of(_meta_fields),
)

PODDISRUPTIONBUDGETS = ResourceType(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "poddisruptionbudget",
    "PodDisruptionBudget",
    True,
    PodDisruptionBudgetStrategy(),
    dns1123_subdomain_errors,
    _meta_fields,
    ("pdb",),
    (_status("PodDisruptionBudget", "policy"),),
    tracks_generation=True,
    field_labels=_labels_of(_meta_fields),
)

TYPES: tuple[ResourceType, ...] = (
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    EVENTS,
    SECRETS,
    DEPLOYMENTS,
    REPLICASETS,
    DAEMONSETS,
    PODDISRUPTIONBUDGETS,
)
BY_RESOURCE: dict[tuple[str, str], ResourceType] = {(t.group, t.resource): t for t in TYPES}
BY_KIND: dict[tuple[str, str], ResourceType] = {(t.api_version, t.kind): t for t in TYPES}


def lookup(resource: str | ResourceType) -> ResourceType:
    """Find a type by plural name (``"pods"``, ``"deployments"``) or pass one through."""
    if isinstance(resource, ResourceType):
        return resource
    matches = [t for t in TYPES if resource in (t.resource, f"{t.resource}.{t.group}")]
    if len(matches) != 1:
        raise KeyError(f"unknown resource {resource!r}")
    return matches[0]
