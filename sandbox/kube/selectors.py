"""Label and field selectors, parsed and matched as the API server does.

Label selectors follow "Labels and Selectors › Label selectors" (equality-based ``=``, ``==``,
``!=``; set-based ``in``, ``notin``, ``key``, ``!key``; and the ``>``/``<`` integer comparisons the
parser also accepts). Field selectors follow "Field Selectors" (``=``, ``==``, ``!=`` joined by
commas, only on the fields each resource supports).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import bad_request

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# apimachinery's label value (validation.IsValidLabelValue): the sandbox's one definition.
LABEL_VALUE_MAX = 63
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def qualified_name_errors(key: str) -> list[str]:
    """apimachinery's IsQualifiedName: ``[prefix/]name``, a DNS subdomain prefix."""
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        if len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix):
            return [
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character"
            ]
    else:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        return ["name part must be non-empty"]
    if len(name) > 63:
        return ["name part must be no more than 63 characters"]
    if not _NAME.match(name):
        return [
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
            "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ]
    return []


def is_label_value(value: str) -> bool:
    return not label_value_errors(value)


def label_value_errors(value: str) -> list[str]:
    """apimachinery's IsValidLabelValue: empty, or up to 63 name characters."""
    if value == "":
        return []
    if len(value) > LABEL_VALUE_MAX:
        return [f"must be no more than {LABEL_VALUE_MAX} characters"]
    if not LABEL_VALUE.match(value):
        return [
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
            "or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ]
    return []


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # in, notin, exists, !, gt, lt  (= and == are "in"; != is "notin")
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator == "in":
            return present and labels[self.key] in self.values
        if self.operator == "notin":
            return not present or labels[self.key] not in self.values
        if not present:
            return False
        try:
            have, want = int(labels[self.key]), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.operator == "gt" else have < want

    def compile(self) -> Callable[[Mapping[str, str]], bool]:
        """A closure doing what :meth:`matches` does, without re-dispatching on the operator."""
        key, values = self.key, frozenset(self.values)
        if self.operator == "in":
            return lambda labels: labels.get(key) in values
        if self.operator == "notin":
            return lambda labels: labels.get(key) not in values
        if self.operator == "exists":
            return lambda labels: key in labels
        if self.operator == "!":
            return lambda labels: key not in labels
        return self.matches


_NO_LABELS: Mapping[str, str] = {}


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def compile(self) -> Callable[[Mapping[str, str] | None], bool]:
        """A fast matcher for scanning many objects (a list of 5,000 pods)."""
        checks = [r.compile() for r in self.requirements]
        if not checks:
            return lambda labels: True
        if len(checks) == 1:
            (check,) = checks
            return lambda labels: check(labels or _NO_LABELS)
        return lambda labels: all(c(labels or _NO_LABELS) for c in checks)

    @property
    def empty(self) -> bool:
        return not self.requirements


EVERYTHING = LabelSelector()

_TOKEN = re.compile(r"\s*(?:(==|!=|=|\(|\)|,|!|<|>)|([^\s,()=!<>]+))")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise bad_request(f"unable to parse requirement: unexpected character at {pos}")
        out.append(match.group(1) or match.group(2))
        pos = match.end()
    return out


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the string form used by ``?labelSelector=``; 400 BadRequest when malformed."""
    if not text or not text.strip():
        return EVERYTHING
    tokens = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise bad_request(f"unable to parse requirement: unexpected end of selector {text!r}")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        token = take()
        if token == "!":
            reqs.append(_requirement(take(), "!", ()))
        else:
            key = token
            nxt = tokens[i] if i < len(tokens) else ","
            if nxt == ",":
                reqs.append(_requirement(key, "exists", ()))
            elif nxt in ("=", "==", "!="):
                take()
                value = tokens[i] if i < len(tokens) and tokens[i] != "," else ""
                if value:
                    take()
                reqs.append(_requirement(key, "notin" if nxt == "!=" else "in", (value,)))
            elif nxt in ("<", ">"):
                take()
                reqs.append(_requirement(key, "gt" if nxt == ">" else "lt", (take(),)))
            elif nxt in ("in", "notin"):
                take()
                if take() != "(":
                    raise bad_request(f"unable to parse requirement: expected '(' in {text!r}")
                values: list[str] = []
                while True:
                    tok = take()
                    if tok == ")":
                        break
                    if tok == ",":
                        continue
                    values.append(tok)
                if not values:
                    raise bad_request(
                        "unable to parse requirement: for 'in', 'notin' operators, values set "
                        "can't be empty"
                    )
                reqs.append(_requirement(key, nxt, tuple(values)))
            else:
                raise bad_request(f"unable to parse requirement: found '{nxt}' in {text!r}")
        if i < len(tokens):
            if tokens[i] != ",":
                raise bad_request(f"unable to parse requirement: found '{tokens[i]}', expected ','")
            i += 1
    return LabelSelector(tuple(reqs))


def _requirement(key: str, operator: str, values: tuple[str, ...]) -> Requirement:
    errors = qualified_name_errors(key)
    if errors:
        raise bad_request(f'unable to parse requirement: key: Invalid value: "{key}": {errors[0]}')
    if operator in ("gt", "lt"):
        if not re.fullmatch(r"-?[0-9]+", values[0]):
            raise bad_request(
                f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an "
                f"integer: {values[0]!r}"
            )
    else:
        for value in values:
            errors = label_value_errors(value)
            if errors:
                raise bad_request(
                    f'unable to parse requirement: values[0][{key}]: Invalid value: "{value}": '
                    f"{errors[0]}"
                )
    return Requirement(key, operator, values)


def from_label_selector_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` (matchLabels + matchExpressions) as a matcher.

    An empty or absent object selects everything, as for a Deployment; callers that need the
    opposite handle it themselves.
    """
    if not selector:
        return EVERYTHING
    reqs = [
        Requirement(k, "in", (v,)) for k, v in sorted((selector.get("matchLabels") or {}).items())
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(
            Requirement(expr["key"], operators[expr["operator"]], tuple(expr.get("values") or ()))
        )
    return LabelSelector(tuple(reqs))


def format_label_selector_object(selector: Mapping[str, Any] | None) -> str:
    """The string form the Scale subresource reports in ``status.selector``."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], ",".join(sorted(expr.get("values") or []))
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        else:
            parts.append(f"!{key}")
    return ",".join(parts)


# -- field selectors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    negate: bool

    def matches(self, fields: Mapping[str, str]) -> bool:
        have = fields.get(self.field, "")
        return (have != self.value) if self.negate else (have == self.value)


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(
        self, obj: dict[str, Any], extract: Callable[[dict[str, Any]], dict[str, str]]
    ) -> bool:
        if not self.requirements:
            return True
        fields = extract(obj)
        return all(r.matches(fields) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str | None, supported: frozenset[str]) -> FieldSelector:
    """Parse ``?fieldSelector=``; an unsupported field is 400 ``field label not supported``."""
    if not text or not text.strip():
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for term in _split_unescaped(text, ","):
        term = term.strip()
        if not term:
            continue
        match = re.match(r"^([^=!]+?)\s*(==|!=|=)\s*(.*)$", term)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = match.group(1).strip(), match.group(2), _unescape(match.group(3))
        if field not in supported:
            raise bad_request(f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, value, op == "!="))
    return FieldSelector(tuple(reqs))
