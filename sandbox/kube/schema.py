"""The pinned Kubernetes OpenAPI schemas, loaded once from kubernetes-validate.

``kubernetes_validate.validate(obj, version, strict=True)`` re-reads a 1.4 MB definitions file and
builds a fresh validator on every call (~15 ms). This module builds the same
``Draft202012Validator`` over the same strict schema files once per kind and keeps it; a contract
test checks that both agree. The same definitions drive the server's decoding (unknown fields,
quantities, times) and strategic merge patch (``x-kubernetes-patch-strategy`` and
``x-kubernetes-patch-merge-key``), so list-merge semantics come from the real API's own metadata
rather than from a hand-written table.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import jsonschema
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from . import quantity

# The Kubernetes version whose API the simulator serves. EKS keeps 1.33 in standard support; the
# official client (37.x) talks to it unchanged.
KUBERNETES_VERSION = "1.33"

_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
_MICRO_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
_DEFS_PREFIX = "#/$defs/"


class DecodeError(ValueError):
    """The body cannot be decoded into the Go type (the real server answers 400 BadRequest)."""


def _schema_dir(version: str) -> str:
    # The same choice kubernetes_validate.validate makes: the newest schema not newer than asked.
    wanted = kv_utils.major_minor(version)
    candidates = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) <= wanted]
    if not candidates:
        raise kv_utils.VersionNotSupportedError(version)
    return f"kubernetes-json-schema/v{candidates[-1]}-local-strict"


def schema_file_name(api_version: str, kind: str) -> str:
    """kubernetes_validate's file naming: ``apps/v1`` + ``Deployment`` -> ``deployment-apps-v1``."""
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{api}.json"


class SchemaNode:
    """A position in the schema: the property schema (extensions) and its resolved target."""

    __slots__ = ("ext", "ref", "schema", "schemas")

    def __init__(self, schemas: Schemas, ext: dict[str, Any]) -> None:
        self.schemas = schemas
        self.ext = ext
        self.ref = ""
        schema = ext
        while "$ref" in schema:
            ref = schema["$ref"]
            self.ref = ref[ref.index(_DEFS_PREFIX) + len(_DEFS_PREFIX) :]
            schema = schemas.defs[self.ref]
        self.schema = schema

    def field(self, key: str) -> SchemaNode | None:
        props = self.schema.get("properties")
        if props is not None:
            sub = props.get(key)
            return SchemaNode(self.schemas, sub) if sub is not None else None
        extra = self.schema.get("additionalProperties")
        if isinstance(extra, dict):
            return SchemaNode(self.schemas, extra)
        return None

    def items(self) -> SchemaNode | None:
        sub = self.schema.get("items")
        return SchemaNode(self.schemas, sub) if isinstance(sub, dict) else None

    @property
    def is_struct(self) -> bool:
        return "properties" in self.schema

    @property
    def is_map(self) -> bool:
        return "properties" not in self.schema and isinstance(
            self.schema.get("additionalProperties"), dict
        )

    @property
    def patch_strategies(self) -> frozenset[str]:
        raw = self.ext.get("x-kubernetes-patch-strategy") or self.schema.get(
            "x-kubernetes-patch-strategy", ""
        )
        return frozenset(s for s in raw.split(",") if s)

    @property
    def merge_key(self) -> str | None:
        return self.ext.get("x-kubernetes-patch-merge-key") or self.schema.get(
            "x-kubernetes-patch-merge-key"
        )

    def types(self) -> set[str]:
        raw = self.schema.get("type")
        if raw is None:
            return set()
        return {raw} if isinstance(raw, str) else set(raw)


class Schemas:
    """Strict schemas of one Kubernetes version, with validators cached per kind."""

    def __init__(self, version: str = KUBERNETES_VERSION) -> None:
        self.version = version
        self._dir = _schema_dir(version)
        self._lock = threading.Lock()
        self._top: dict[tuple[str, str], dict[str, Any]] = {}
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}

    @cached_property
    def _definitions(self) -> dict[str, Any]:
        return kv_utils.schema_contents(f"{self._dir}/_definitions.json", self.version)

    @property
    def defs(self) -> dict[str, Any]:
        return self._definitions["$defs"]

    def top(self, api_version: str, kind: str) -> dict[str, Any]:
        key = (api_version, kind)
        with self._lock:
            if key not in self._top:
                name = schema_file_name(api_version, kind)
                self._top[key] = kv_utils.schema_contents(f"{self._dir}/{name}", self.version)
            return self._top[key]

    def node(self, api_version: str, kind: str) -> SchemaNode:
        return SchemaNode(self, self.top(api_version, kind))

    def validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator:
        """The validator kubernetes_validate.validate(obj, version, strict=True) would build."""
        key = (api_version, kind)
        top = self.top(api_version, kind)
        with self._lock:
            if key not in self._validators:
                registry: Registry = Resource.from_contents(top) @ Registry()
                registry = Resource.from_contents(self._definitions) @ registry
                self._validators[key] = jsonschema.validators.Draft202012Validator(
                    top, registry=registry
                )
            return self._validators[key]

    def errors(self, obj: dict[str, Any]) -> list[jsonschema.ValidationError]:
        validator = self.validator(obj["apiVersion"], obj["kind"])
        return sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))

    # -- decoding ------------------------------------------------------------------------------

    def decode(self, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Decode a client body the way the Go JSON decoder would see it.

        Returns the object with unknown fields dropped (and their paths, for fieldValidation),
        ``null`` and empty optional lists/maps omitted (``omitempty``), quantities in canonical
        form and times at the precision the server keeps. Raises DecodeError for values the Go
        types cannot hold (a malformed quantity or time).
        """
        unknown: list[str] = []
        node = self.node(obj["apiVersion"], obj["kind"])
        return self._decode(obj, node, "", unknown), unknown

    def _decode(self, value: Any, node: SchemaNode | None, path: str, unknown: list[str]) -> Any:
        if node is None:
            return value
        if node.ref == _QUANTITY:
            try:
                return quantity.canonical(value)
            except quantity.QuantityError as exc:
                raise DecodeError(f"{path}: {exc}") from exc
        if node.ref in (_TIME, _MICRO_TIME) and isinstance(value, str):
            return _normalise_time(value, micro=node.ref == _MICRO_TIME, path=path)
        if isinstance(value, float) and "integer" in node.types() and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            if node.is_struct:
                required = set(node.schema.get("required", ()))
                out: dict[str, Any] = {}
                for key, sub in value.items():
                    child = node.field(key)
                    where = f"{path}.{key}" if path else key
                    if child is None:
                        if node.schema.get("additionalProperties") is False:
                            unknown.append(where)
                            continue
                        out[key] = sub
                        continue
                    if sub is None:
                        continue
                    decoded = self._decode(sub, child, where, unknown)
                    if decoded in ({}, []) and key not in required and not child.is_struct:
                        continue  # omitempty on maps and slices
                    out[key] = decoded
                return out
            if node.is_map:
                child = node.field("")
                out = {}
                for key, sub in value.items():
                    if sub is None and child is not None and "string" in child.types():
                        sub = ""  # a JSON null decodes to Go's zero value in a map[string]string
                    out[key] = self._decode(sub, child, f"{path}[{key}]", unknown)
                return out
            return value
        if isinstance(value, list):
            child = node.items()
            return [
                _zero(child) if v is None else self._decode(v, child, f"{path}[{i}]", unknown)
                for i, v in enumerate(value)
            ]
        return value


def _zero(node: SchemaNode | None) -> Any:
    """Go's zero value for a JSON null inside a list (a null element decodes to T{})."""
    if node is None:
        return None
    if node.is_struct or node.is_map:
        return {}
    types = node.types()
    for kind, zero in (("string", ""), ("integer", 0), ("number", 0), ("boolean", False)):
        if kind in types:
            return zero
    return None


def _normalise_time(text: str, *, micro: bool, path: str) -> str:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DecodeError(f'{path}: parsing time "{text}" as RFC3339 failed') from exc
    if parsed.tzinfo is None:
        raise DecodeError(f'{path}: parsing time "{text}": missing time zone')
    parsed = parsed.astimezone(UTC)
    if micro:
        return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")
