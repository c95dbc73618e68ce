"""Watches through ``kubernetes.watch.Watch``, every one bounded by timeout_seconds and a read
timeout so a broken server cannot hang the suite.

Kubernetes API reference: "API Concepts › Efficient detection of changes", "API Concepts ›
Semantics for watch", "API Concepts › Watch bookmarks", "API Concepts › 410 Gone responses".
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from kubernetes import client, config, watch

from sandbox.kube import KubeSimulator
from tests.fixtures.kube import Kube, collect_events, deployment_manifest, pod_manifest

TIMEOUT = 10


def test_a_watch_from_a_list_version_sees_every_later_change_in_order(kube: Kube) -> None:
    """Efficient detection of changes: list, then watch from the list's resourceVersion."""
    ns = kube.namespace()
    listed = kube.apps.list_namespaced_deployment(ns, _request_timeout=TIMEOUT)
    start = listed.metadata.resource_version
    kube.apps.create_namespaced_deployment(ns, deployment_manifest("web"), _request_timeout=TIMEOUT)
    kube.apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"replicas": 2}}, _request_timeout=TIMEOUT
    )
    kube.apps.delete_namespaced_deployment("web", ns, _request_timeout=TIMEOUT)
    events = collect_events(
        kube.apps.list_namespaced_deployment,
        ns,
        resource_version=start,
        until=lambda evs: len(evs) == 3,
    )
    assert [kind for kind, _ in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1][1]["spec"]["replicas"] == 2
    versions = [obj["metadata"]["resourceVersion"] for _, obj in events]
    assert len(set(versions)) == 3


def test_a_deleted_pod_is_first_marked_then_removed(kube: Kube) -> None:
    """Termination of Pods: even with gracePeriodSeconds=0 the registry first writes
    deletionTimestamp (MODIFIED), then removes the pod (DELETED)."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    kube.core.delete_namespaced_pod("p", ns, grace_period_seconds=0, _request_timeout=TIMEOUT)
    events = collect_events(
        kube.core.list_namespaced_pod, ns, resource_version=start, until=lambda evs: len(evs) == 2
    )
    assert [kind for kind, _ in events] == ["MODIFIED", "DELETED"]
    assert events[0][1]["metadata"]["deletionTimestamp"]
    assert events[0][1]["metadata"]["deletionGracePeriodSeconds"] == 0


def test_a_watch_without_a_version_starts_with_the_current_objects(kube: Kube) -> None:
    """Semantics for watch › resourceVersion unset: synthetic ADDED events for what exists."""
    ns = kube.namespace()
    for name in ("a", "b"):
        kube.core.create_namespaced_pod(ns, pod_manifest(name), _request_timeout=TIMEOUT)
    events = collect_events(kube.core.list_namespaced_pod, ns, until=lambda evs: len(evs) == 2)
    assert sorted((kind, obj["metadata"]["name"]) for kind, obj in events) == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


def test_a_change_made_during_a_watch_is_delivered(kube: Kube) -> None:
    """A write after the watch started arrives on the open stream."""
    ns = kube.namespace()
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version

    def later() -> None:
        time.sleep(0.2)
        kube.core.create_namespaced_pod(ns, pod_manifest("late"), _request_timeout=TIMEOUT)

    writer = threading.Thread(target=later)
    writer.start()
    events = collect_events(
        kube.core.list_namespaced_pod,
        ns,
        resource_version=start,
        until=lambda evs: len(evs) >= 1,
        timeout_seconds=5,
    )
    writer.join(TIMEOUT)
    assert [(kind, obj["metadata"]["name"]) for kind, obj in events] == [("ADDED", "late")]


def test_an_object_leaving_a_label_selection_is_reported_deleted(kube: Kube) -> None:
    """A filtered watch reports an object that stops matching as DELETED."""
    ns = kube.namespace()
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    kube.core.create_namespaced_pod(
        ns, pod_manifest("p", labels={"team": "a"}), _request_timeout=TIMEOUT
    )
    kube.core.patch_namespaced_pod(
        "p", ns, {"metadata": {"labels": {"team": "b"}}}, _request_timeout=TIMEOUT
    )
    events = collect_events(
        kube.core.list_namespaced_pod,
        ns,
        resource_version=start,
        label_selector="team=a",
        until=lambda evs: len(evs) == 2,
    )
    assert [kind for kind, _ in events] == ["ADDED", "DELETED"]


def test_a_field_selected_watch_sees_only_its_objects(kube: Kube) -> None:
    """Field selectors apply to watches as to lists."""
    ns = kube.namespace()
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    for name in ("a", "b"):
        kube.core.create_namespaced_pod(ns, pod_manifest(name), _request_timeout=TIMEOUT)
    events = collect_events(
        kube.core.list_namespaced_pod,
        ns,
        resource_version=start,
        field_selector="metadata.name=b",
        timeout_seconds=1,
    )
    assert [(kind, obj["metadata"]["name"]) for kind, obj in events] == [("ADDED", "b")]


def test_a_watch_from_a_too_old_version_is_410_gone(kube: Kube) -> None:
    """410 Gone responses: an ERROR event carrying a Status with code 410 (reason Expired),
    which kubernetes.watch.Watch raises as ApiException(410) when timeout_seconds is set."""
    stream = watch.Watch()
    with pytest.raises(client.ApiException) as caught:
        for _ in stream.stream(
            kube.core.list_namespace,
            resource_version="1",
            timeout_seconds=2,
            _request_timeout=(TIMEOUT, 7),
        ):
            pass
    assert caught.value.status == 410
    assert "Expired" in caught.value.reason


def test_the_server_ends_a_watch_after_timeout_seconds(kube: Kube) -> None:
    """Common Parameters › timeoutSeconds: the server closes the stream; the read timeout
    (longer) is never reached, so no exception."""
    ns = kube.namespace()
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    events = collect_events(
        kube.core.list_namespaced_pod, ns, resource_version=start, timeout_seconds=1
    )
    assert events == []


@pytest.mark.simulator_only
def test_bookmarks_carry_the_current_resource_version(kube: Kube) -> None:
    """Watch bookmarks: sent only when allowed; this server sends one shortly before the
    watch times out (real servers may send none)."""
    ns = kube.namespace()
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    kube.core.create_namespace(
        {"metadata": {"name": kube.unique("other")}}, _request_timeout=TIMEOUT
    )
    events = collect_events(
        kube.core.list_namespaced_pod,
        ns,
        resource_version=start,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
    )
    assert [kind for kind, _ in events] == ["BOOKMARK"]
    bookmark = events[0][1]
    assert bookmark["kind"] == "Pod"
    assert int(bookmark["metadata"]["resourceVersion"]) > int(start)
    plain = collect_events(
        kube.core.list_namespaced_pod, ns, resource_version=start, timeout_seconds=1
    )
    assert plain == []


@pytest.mark.simulator_only
def test_watches_end_when_the_server_stops(tmp_path) -> None:
    """A stopping simulator closes open watches instead of leaving clients hanging."""
    sim = KubeSimulator().start()
    try:
        api = config.new_client_from_config(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
        core = client.CoreV1Api(api)
        ended = threading.Event()

        def watch_forever() -> None:
            stream = watch.Watch()
            try:
                for _ in stream.stream(
                    core.list_namespaced_pod,
                    "default",
                    resource_version="",
                    timeout_seconds=60,
                    _request_timeout=(TIMEOUT, 65),
                ):
                    pass
            except Exception:  # noqa: S110 - the end, not its shape, is under test
                pass
            ended.set()

        watcher = threading.Thread(target=watch_forever, daemon=True)
        watcher.start()
        time.sleep(0.3)
    finally:
        sim.stop()
    assert ended.wait(TIMEOUT)
    api.close()


@pytest.mark.simulator_only
def test_a_watch_or_list_from_a_version_older_than_the_window_is_410_gone(kube: Kube) -> None:
    """410 Gone responses in ordinary operation: kube-apiserver compacts etcd every 5 minutes,
    so a version older than that window is gone even after a handful of writes (the window is
    shortened here to 0.3 s)."""
    assert kube.simulator is not None
    kube.simulator.store.history_window = 0.3
    ns = kube.namespace()
    start = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    kube.core.create_namespaced_pod(ns, pod_manifest("a"), _request_timeout=TIMEOUT)
    time.sleep(0.5)
    kube.core.create_namespaced_pod(ns, pod_manifest("b"), _request_timeout=TIMEOUT)
    stream = watch.Watch()
    with pytest.raises(client.ApiException) as caught:
        for _ in stream.stream(
            kube.core.list_namespaced_pod,
            ns,
            resource_version=start,
            timeout_seconds=2,
            _request_timeout=(TIMEOUT, 7),
        ):
            pass
    assert caught.value.status == 410
    with pytest.raises(client.ApiException) as caught:
        kube.core.list_namespaced_pod(
            ns,
            resource_version=start,
            resource_version_match="Exact",
            _request_timeout=TIMEOUT,
        )
    assert caught.value.status == 410
    # The newest version is always inside the window.
    now = kube.core.list_namespaced_pod(ns, _request_timeout=TIMEOUT).metadata.resource_version
    time.sleep(0.5)
    events = collect_events(
        kube.core.list_namespaced_pod, ns, resource_version=now, timeout_seconds=1
    )
    assert events == []


@pytest.mark.parametrize("spelling", ["true", "True", "1", "t"])
def test_a_watch_flag_is_read_as_the_apiserver_reads_booleans(kube: Kube, spelling: str) -> None:
    """kube-apiserver decodes query booleans with Go's strconv.ParseBool, so ``watch=True`` (what
    kubernetes_asyncio, KubeSpawner's client, sends) is a watch like the official client's
    ``watch=true``. Before: anything but ``true``/``1`` was a plain list, and KubeSpawner's
    reflectors failed on it ("Malformed JSON response")."""
    ns = kube.namespace()
    kube.core.create_namespaced_pod(ns, pod_manifest("p"), _request_timeout=TIMEOUT)

    configuration = kube.api_client.configuration
    response = requests.get(
        f"{configuration.host}/api/v1/namespaces/{ns}/pods",
        params={"watch": spelling, "timeoutSeconds": "1"},
        headers={"Authorization": configuration.get_api_key_with_prefix("BearerToken")},
        timeout=TIMEOUT,
    )

    first = json.loads(response.text.splitlines()[0])
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "p")
