"""Deletion that takes the time it takes: finalizers, propagation order, orphaned dependents and
Terminating namespaces. These hold on a real cluster too (no simulator control is used).

Kubernetes documentation: "Finalizers" (https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/),
"Garbage Collection" (https://kubernetes.io/docs/concepts/architecture/garbage-collection/),
"Namespaces" and "API Concepts › Deletion".
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kubernetes import client

from tests.fixtures.kube import Kube, pod_manifest, status_body

TIMEOUT = 10
WITHIN = 60  # seconds a real cluster's garbage collector may take
HOLD = "clusterweb.io/test-hold"


def _eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def _secret(name: str, *, finalizers: list[str] | None = None, owner=None) -> dict:
    meta: dict = {"name": name}
    if finalizers:
        meta["finalizers"] = finalizers
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "name": owner.metadata.name,
                "uid": owner.metadata.uid,
            }
        ]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"k": "v"}}


def _read(kube: Kube, ns: str, name: str) -> client.V1Secret | None:
    try:
        return kube.core.read_namespaced_secret(name, ns, _request_timeout=TIMEOUT)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _release(kube: Kube, ns: str, name: str) -> None:
    kube.core.patch_namespaced_secret(
        name, ns, {"metadata": {"finalizers": None}}, _request_timeout=TIMEOUT
    )


def test_a_finalizer_keeps_a_deleted_object_until_it_is_removed(kube: Kube) -> None:
    """Finalizers: DELETE only sets deletionTimestamp; the object stays (readable, listed) until
    its finalizers are gone, then it is removed."""
    ns = kube.namespace()
    kube.core.create_namespaced_secret(
        ns, _secret("held", finalizers=[HOLD]), _request_timeout=TIMEOUT
    )
    kube.core.delete_namespaced_secret("held", ns, _request_timeout=TIMEOUT)
    time.sleep(0.3)
    held = _read(kube, ns, "held")
    assert held is not None
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == [HOLD]
    listed = kube.core.list_namespaced_secret(ns, _request_timeout=TIMEOUT)
    assert "held" in [s.metadata.name for s in listed.items]
    _release(kube, ns, "held")
    assert _eventually(lambda: _read(kube, ns, "held") is None)


def test_no_finalizer_can_be_added_to_an_object_being_deleted(kube: Kube) -> None:
    """ValidateObjectMetaAccessorUpdate: removing finalizers is allowed, adding one is not."""
    ns = kube.namespace()
    kube.core.create_namespaced_secret(
        ns, _secret("held", finalizers=[HOLD]), _request_timeout=TIMEOUT
    )
    kube.core.delete_namespaced_secret("held", ns, _request_timeout=TIMEOUT)
    with pytest.raises(client.ApiException) as caught:
        kube.core.patch_namespaced_secret(
            "held",
            ns,
            {"metadata": {"finalizers": [HOLD, "clusterweb.io/another"]}},
            _request_timeout=TIMEOUT,
        )
    assert caught.value.status == 422
    assert (
        "no new finalizers can be added if the object is being deleted"
        in (status_body(caught.value)["message"])
    )
    _release(kube, ns, "held")
    assert _eventually(lambda: _read(kube, ns, "held") is None)


def test_foreground_deletion_removes_the_owner_last(kube: Kube) -> None:
    """Garbage Collection › Foreground cascading deletion: the owner gets deletionTimestamp and
    the foregroundDeletion finalizer, its dependents are deleted, and only then the owner goes."""
    ns = kube.namespace()
    owner = kube.core.create_namespaced_secret(ns, _secret("owner"), _request_timeout=TIMEOUT)
    kube.core.create_namespaced_secret(
        ns, _secret("child", finalizers=[HOLD], owner=owner), _request_timeout=TIMEOUT
    )
    kube.core.delete_namespaced_secret(
        "owner", ns, propagation_policy="Foreground", _request_timeout=TIMEOUT
    )
    assert _eventually(
        lambda: (
            (child := _read(kube, ns, "child")) is not None
            and child.metadata.deletion_timestamp is not None
        )
    )
    waiting = _read(kube, ns, "owner")
    assert waiting is not None, "the owner went before its dependent"
    assert waiting.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in waiting.metadata.finalizers
    _release(kube, ns, "child")
    assert _eventually(lambda: _read(kube, ns, "child") is None)
    assert _eventually(lambda: _read(kube, ns, "owner") is None)


def test_background_deletion_removes_the_owner_first(kube: Kube) -> None:
    """Garbage Collection › Background cascading deletion: the owner goes at once, the garbage
    collector then deletes its dependents."""
    ns = kube.namespace()
    owner = kube.core.create_namespaced_secret(ns, _secret("owner"), _request_timeout=TIMEOUT)
    kube.core.create_namespaced_secret(
        ns, _secret("child", finalizers=[HOLD], owner=owner), _request_timeout=TIMEOUT
    )
    kube.core.delete_namespaced_secret(
        "owner", ns, propagation_policy="Background", _request_timeout=TIMEOUT
    )
    assert _read(kube, ns, "owner") is None
    assert _eventually(
        lambda: (
            (child := _read(kube, ns, "child")) is not None
            and child.metadata.deletion_timestamp is not None
        )
    )
    _release(kube, ns, "child")
    assert _eventually(lambda: _read(kube, ns, "child") is None)


def test_a_dependent_whose_owner_does_not_exist_is_collected(kube: Kube) -> None:
    """Garbage Collection: an object whose every owner is gone is deleted, even when it was
    created after its owner went."""
    ns = kube.namespace()
    owner = kube.core.create_namespaced_secret(ns, _secret("owner"), _request_timeout=TIMEOUT)
    kube.core.delete_namespaced_secret("owner", ns, _request_timeout=TIMEOUT)
    assert _eventually(lambda: _read(kube, ns, "owner") is None)
    kube.core.create_namespaced_secret(ns, _secret("late", owner=owner), _request_timeout=TIMEOUT)
    assert _eventually(lambda: _read(kube, ns, "late") is None)


def test_a_terminating_namespace_refuses_content_and_its_name_until_it_is_empty(kube: Kube) -> None:
    """Namespaces: a deleted namespace stays Terminating until its content is gone; creating in
    it is 403 Forbidden (NamespaceLifecycle), creating it again is 409 AlreadyExists."""
    ns = kube.namespace()
    kube.core.create_namespaced_secret(
        ns, _secret("held", finalizers=[HOLD]), _request_timeout=TIMEOUT
    )
    kube.core.delete_namespace(ns, _request_timeout=TIMEOUT)
    assert _eventually(
        lambda: (
            (held := _read(kube, ns, "held")) is not None
            and held.metadata.deletion_timestamp is not None
        )
    )
    terminating = kube.core.read_namespace(ns, _request_timeout=TIMEOUT)
    assert terminating.status.phase == "Terminating"
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    assert caught.value.status == 403
    assert (
        f"unable to create new content in namespace {ns} because it is being terminated"
        in status_body(caught.value)["message"]
    )
    with pytest.raises(client.ApiException) as caught:
        kube.core.create_namespace({"metadata": {"name": ns}}, _request_timeout=TIMEOUT)
    assert caught.value.status == 409
    assert status_body(caught.value)["reason"] == "AlreadyExists"
    _release(kube, ns, "held")

    def gone() -> bool:
        try:
            kube.core.read_namespace(ns, _request_timeout=TIMEOUT)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    assert _eventually(gone)
