"""The three patch formats the API server accepts for built-in types.

- JSON patch (RFC 6902, ``application/json-patch+json``): a list of operations.
- JSON merge patch (RFC 7386, ``application/merge-patch+json``): maps merge, ``null`` deletes, lists
  are replaced whole.
- Strategic merge patch (``application/strategic-merge-patch+json``): like a merge patch, except
  that lists whose schema says ``x-kubernetes-patch-strategy: merge`` merge element by element on
  ``x-kubernetes-patch-merge-key`` (containers by ``name``, conditions by ``type``) or, for lists
  of scalars, by union; the directives ``$patch`` (replace, delete, merge), ``$retainKeys``,
  ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>`` are honoured. Lists marked
  ``atomic`` (a Node's ``spec.taints``, a Pod's ``spec.tolerations``) are replaced whole, exactly as
  on a real cluster.

Follows "Update API Objects in Place Using kubectl patch" and the strategic-merge-patch design
document of sig-api-machinery.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .errors import ApiError, bad_request
from .schema import SchemaNode

_DELETE = object()


def _unprocessable(message: str) -> ApiError:
    # apiserver: errors.NewGenericServerResponse(422, ...) for a patch that cannot be applied.
    return ApiError(422, "Invalid", message, details={})


# -- JSON patch ----------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _unprocessable(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _unprocessable(f"doc is missing path: {path!r}")
    return node


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _unprocessable(f"doc is missing path: {path!r}")


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _unprocessable(f"add operation index out of bounds: {path!r}")
    else:
        raise _unprocessable(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise _unprocessable("cannot remove the whole document")
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise _unprocessable(f"Unable to remove nonexistent key: {last}: missing value")
    return doc


def json_patch(original: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply an RFC 6902 patch to a copy of ``original``."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc: Any = copy.deepcopy(original)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {json.dumps(op)}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"missing value for {kind} operation at {path!r}")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # must exist
            doc = _add(_remove(doc, path), path, copy.deepcopy(op["value"]))
        elif kind == "move":
            value = _get(doc, op.get("from", ""))
            doc = _add(_remove(doc, op.get("from", "")), path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op.get("from", ""))))
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise _unprocessable(f"testing value {path} failed: test failed")
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    if not isinstance(doc, dict):
        raise bad_request("the patched document is not an object")
    return doc


# -- JSON merge patch ----------------------------------------------------------------------------


def merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch -----------------------------------------------------------------------

_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList/"


def strategic_merge_patch(original: dict[str, Any], patch: Any, node: SchemaNode) -> dict[str, Any]:
    """Apply a strategic merge patch, steered by the schema's patch metadata."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    merged = _merge_map(copy.deepcopy(original), patch, node)
    if merged is _DELETE:
        raise bad_request("a strategic merge patch cannot delete the whole object")
    return merged


def _strip(value: Any) -> Any:
    """A patch value added where nothing was: directives removed."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value if not _is_directive(v)]
    return value


def _is_directive(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$patch"}


def _merge_map(original: dict[str, Any], patch: dict[str, Any], node: SchemaNode | None) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip(patch)
    if directive not in (None, "merge"):
        raise bad_request(f"Unrecognized $patch directive: {directive}")
    result = dict(original)
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list):
            raise bad_request("$retainKeys must be a list")
        result = {k: v for k, v in result.items() if k in retain or k in patch}
    deletions: dict[str, list[Any]] = {}
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(_DELETE_PRIMITIVE_PREFIX):
            deletions[key[len(_DELETE_PRIMITIVE_PREFIX) :]] = list(value or [])
            continue
        if key.startswith(_ORDER_PREFIX):
            orders[key[len(_ORDER_PREFIX) :]] = list(value or [])
            continue
        if key.startswith("$"):
            raise bad_request(f"unknown strategic merge patch directive {key}")
        child = node.field(key) if node is not None else None
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            merged = _merge_map(current if isinstance(current, dict) else {}, value, child)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            current = result.get(key)
            result[key] = _merge_list(current if isinstance(current, list) else [], value, child)
        else:
            result[key] = value
    for key, values in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in values]
    for key, order in orders.items():
        child = node.field(key) if node is not None else None
        if isinstance(result.get(key), list):
            result[key] = _reorder(result[key], order, child.merge_key if child else None)
    return result


def _merge_list(original: list[Any], patch: list[Any], node: SchemaNode | None) -> list[Any]:
    strategies = node.patch_strategies if node is not None else frozenset()
    if any(_is_directive(v) and v["$patch"] == "replace" for v in patch):
        return [_strip(v) for v in patch if not _is_directive(v)]
    if "merge" not in strategies:
        return [_strip(v) for v in patch]  # atomic or unannotated: replaced whole
    key = node.merge_key if node is not None else None
    if key is None:  # a set of scalars: union, original order first
        result = list(original)
        for value in patch:
            if isinstance(value, dict | list):
                raise bad_request("a merging list of scalars cannot hold objects")
            if value not in result:
                result.append(value)
        return result
    items = node.items() if node is not None else None
    result = list(original)
    for element in patch:
        if not isinstance(element, dict):
            raise bad_request(f"list elements patched by {key!r} must be objects")
        if _is_directive(element):
            continue
        if key not in element:
            raise bad_request(f"map: {element} does not contain declared merge key: {key}")
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, dict) and old.get(key) == element[key]
            ),
            None,
        )
        if element.get("$patch") == "delete":
            result = [
                old
                for old in result
                if not (isinstance(old, dict) and old.get(key) == element[key])
            ]
            continue
        if index is None:
            result.append(_strip(element))
        else:
            merged = _merge_map(result[index], element, items)
            if merged is _DELETE:
                del result[index]
            else:
                result[index] = merged
    return result


def _reorder(values: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(value: Any) -> Any:
        if key is not None and isinstance(value, dict):
            return value.get(key)
        return value

    wanted = [ident(v) for v in order]
    rank = {json.dumps(w, sort_keys=True): i for i, w in enumerate(wanted)}
    ranked = [v for v in values if json.dumps(ident(v), sort_keys=True) in rank]
    others = [v for v in values if json.dumps(ident(v), sort_keys=True) not in rank]
    ranked.sort(key=lambda v: rank[json.dumps(ident(v), sort_keys=True)])
    return ranked + others
