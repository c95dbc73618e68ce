"""Benchmark of the Kubernetes API simulator, measured at the HTTP boundary.

Run: ``.venv/bin/python bench/kube_sim.py``. Prints figures and ratios; asserts nothing about
absolute times (machines differ).

- Start-up: ``KubeSimulator().start()`` in-process, and ``python -m sandbox.kube`` until it prints
  its port.
- Lists: 1,000 nodes and 5,000 pods, bulk-seeded (validation skipped on purpose), listed with a
  label selector matching 1% of them, against two floors: the unfiltered list of the same
  collection and a list of an empty namespace (the fixed cost of a request).
- Watch delivery: from sending a write to its event arriving on an open watch, against the write's
  own round trip.

Requests go through ``http.client`` on a keep-alive connection, so the figures are the server's
(plus loopback), not the official client's model deserialization.
"""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.kube import KubeSimulator  # noqa: E402

NODES = 1_000
PODS = 5_000
REPEATS = 15
WRITES = 200


def _median_ms(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    fn()  # warm up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


class Http:
    """A keep-alive connection to the simulator with its bearer token."""

    def __init__(self, sim: KubeSimulator) -> None:
        self.conn = http.client.HTTPConnection(sim.host, sim.port, timeout=30)
        self.headers = {"Authorization": f"Bearer {sim.token}", "Accept": "application/json"}

    def get(self, path: str) -> bytes:
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return body

    def send(self, method: str, path: str, body: object, content_type: str) -> dict:
        headers = dict(self.headers, **{"Content-Type": content_type})
        self.conn.request(method, path, body=json.dumps(body), headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return json.loads(data)


def startup() -> None:
    started = time.perf_counter()
    sim = KubeSimulator().start()
    in_process = (time.perf_counter() - started) * 1000
    sim.stop()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox.kube",
                "--port",
                "0",
                "--kubeconfig",
                f"{tmp}/kubeconfig",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        process.stdout.readline()
        standalone = (time.perf_counter() - started) * 1000
        process.terminate()
        process.wait(10)
    print("start-up")
    print(f"  in-process start()                 {in_process:8.1f} ms")
    print(f"  python -m sandbox.kube to its port {standalone:8.1f} ms (interpreter included)")


def seed(sim: KubeSimulator) -> None:
    nodes = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"node-{i:04d}",
                "labels": {"clusterweb.io/pool": "gpu" if i % 100 == 0 else "spark"},
            },
            "spec": {"providerID": f"aws:///eu-west-1a/i-{i:017x}"},
            "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}},
        }
        for i in range(NODES)
    ]
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"pod-{i:05d}",
                "namespace": "default",
                "labels": {"app": "target" if i % 100 == 0 else "filler", "n": str(i)},
            },
            "spec": {
                "nodeName": f"node-{i % NODES:04d}",
                "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
            },
            "status": {"phase": "Running"},
        }
        for i in range(PODS)
    ]
    started = time.perf_counter()
    sim.bulk_seed(nodes)
    sim.bulk_seed(pods)
    print(f"bulk seed of {NODES} nodes + {PODS} pods: {(time.perf_counter() - started):.2f} s")
    sim.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "empty"}})


def lists(sim: KubeSimulator) -> None:
    api = Http(sim)
    empty = _median_ms(lambda: api.get("/api/v1/namespaces/empty/pods"))
    cases = [
        ("nodes", "/api/v1/nodes", "labelSelector=clusterweb.io%2Fpool%3Dgpu", NODES // 100),
        ("pods", "/api/v1/namespaces/default/pods", "labelSelector=app%3Dtarget", PODS // 100),
    ]
    print(f"lists (median of {REPEATS}; empty-namespace list = {empty:.2f} ms)")
    print(f"  {'what':<28}{'ms':>9}{'x unfiltered':>14}{'x empty':>10}")
    for name, path, query, expected in cases:
        found = len(json.loads(api.get(f"{path}?{query}"))["items"])
        assert found == expected, (name, found)
        full = _median_ms(lambda path=path: api.get(path))
        selected = _median_ms(lambda path=path, query=query: api.get(f"{path}?{query}"))
        paged = _median_ms(lambda path=path: api.get(f"{path}?limit=500"))
        total = NODES if name == "nodes" else PODS
        print(f"  {name + f' all {total}':<28}{full:9.2f}{1:14.2f}{full / empty:10.1f}")
        print(
            f"  {name + ' selector (1%)':<28}{selected:9.2f}{selected / full:14.2f}"
            f"{selected / empty:10.1f}"
        )
        print(
            f"  {name + ' first page of 500':<28}{paged:9.2f}{paged / full:14.2f}"
            f"{paged / empty:10.1f}"
        )


def watch_latency(sim: KubeSimulator) -> None:
    sim.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "watched"}})
    writer = Http(sim)
    start = json.loads(writer.get("/api/v1/namespaces/watched/pods"))["metadata"]["resourceVersion"]
    arrived: dict[str, float] = {}
    seen = threading.Condition()

    def read_events() -> None:
        conn = http.client.HTTPConnection(sim.host, sim.port, timeout=60)
        conn.request(
            "GET",
            f"/api/v1/namespaces/watched/pods?watch=true&resourceVersion={start}&timeoutSeconds=60",
            headers=writer.headers,
        )
        response = conn.getresponse()
        while len(arrived) < WRITES:
            line = response.readline()
            if not line:
                break
            event = json.loads(line)
            with seen:
                arrived[event["object"]["metadata"]["name"]] = time.perf_counter()
                seen.notify_all()
        conn.close()

    reader = threading.Thread(target=read_events, daemon=True)
    reader.start()
    latencies, round_trips = [], []
    for i in range(WRITES):
        name = f"w-{i:04d}"
        body = {
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
        }
        sent = time.perf_counter()
        writer.send("POST", "/api/v1/namespaces/watched/pods", body, "application/json")
        round_trips.append(time.perf_counter() - sent)
        with seen:
            seen.wait_for(lambda name=name: name in arrived, timeout=10)
        latencies.append(arrived[name] - sent)
    reader.join(10)

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[int(q * (len(values) - 1))] * 1000

    rtt = statistics.median(round_trips) * 1000
    p50, p95 = pct(latencies, 0.5), pct(latencies, 0.95)
    print(f"watch delivery ({WRITES} pod creates, validated writes)")
    print(f"  write round trip     p50 {rtt:7.2f} ms")
    print(
        f"  write -> watch event p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
        f"(x write round trip: {p50 / rtt:.2f})"
    )


def main() -> None:
    startup()
    sim = KubeSimulator().start()
    try:
        seed(sim)
        lists(sim)
        watch_latency(sim)
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
