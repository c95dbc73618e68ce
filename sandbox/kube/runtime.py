"""The simulated kubelet's container runtime: stand-in processes for the images it knows.

For a container whose image ``standins.standin_for`` knows, the kubelet starts a local process
(the simulator's own interpreter running the stand-in script) bound to the pod's address; it
stops it by PID when the pod is deleted or its node goes, and :meth:`Runtime.stop_all` (the
controllers' ``stop()``, the simulator's ``stop()`` and ``reset()``) stops every one, so nothing
is left behind. Each process runs in its own session (a terminal's Ctrl-C reaches containers no
more than on a real node) with ``PR_SET_PDEATHSIG`` SIGKILL, so a simulator that dies without
cleaning up takes them along; their output goes to one log file per container in a temporary
directory that ``stop_all`` removes.

A monitor thread watches them ("Configure Liveness, Readiness and Startup Probes"):

- **exits**: a process that ends is a container that exited with its status (a SIGKILL is exit
  code 137, 128 + 9, as a container runtime reports it);
- **readiness**: a container is ready when its ``readinessProbe`` succeeds (``tcpSocket``: the
  port accepts; ``httpGet``: a status from 200 to 399; ``exec`` and ``grpc`` cannot run here
  and count as a TCP check of the first port), or, without one, once the process listens on its
  first declared port (at once when it declares none). Until ready it is checked every
  ``probe_interval``; once ready its readiness probe runs every ``probe_period`` and
  ``failureThreshold`` failures in a row (default 3) make it unready again;
- **liveness**: ``failureThreshold`` failed ``livenessProbe`` checks in a row kill it (SIGKILL),
  and the kubelet records ``Unhealthy`` and ``Killing`` events and restarts it.

Probe ``periodSeconds`` and ``initialDelaySeconds`` are replaced by the two scaled intervals.
The monitor only observes: what it sees goes to the kubelet (``on_change``), which writes the
pod's status and events on the controllers' thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .standins import resolves_services, standin_for

log = logging.getLogger(__name__)

Key = tuple[str, str]
_PR_SET_PDEATHSIG = 1
_PROBE_TIMEOUT_CAP = 1.0  # seconds: one slow probe must not hold up the others for long


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Process:
    """One run of one container's stand-in."""

    key: Key
    uid: str
    container: str
    ip: str
    node: str
    popen: subprocess.Popen[bytes]
    ports: dict[str, int]  # port name (or str(number)) -> container port
    first_port: int | None
    readiness: dict[str, Any] | None
    liveness: dict[str, Any] | None
    started_at: float = field(default_factory=time.monotonic)
    ready: bool = False
    exit_code: int | None = None
    killed_by: str = ""  # "liveness" when the kubelet killed it for failing its probe
    readiness_failures: int = 0
    liveness_failures: int = 0
    next_check: float = 0.0
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # events for the kubelet
    stop_deadline: float | None = None  # SIGKILL at this monotonic time (graceful stop)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.exit_code is None


class Runtime:
    """Stand-in processes by (namespace, pod, container); see the module docstring."""

    def __init__(
        self,
        on_change: Callable[[Key], None],
        *,
        probe_interval: float = 0.2,
        probe_period: float = 10.0,
    ) -> None:
        self.on_change = on_change
        self.probe_interval = probe_interval
        self.probe_period = probe_period
        # Extra environment for every stand-in (the API's address, timing controls), and for
        # those that resolve Service names only (the simulator's resolver and its token).
        self.environment: dict[str, str] = {}
        self.resolver_environment: dict[str, str] = {}
        self._lock = threading.Lock()
        self._processes: dict[tuple[str, str, str], Process] = {}
        self._dir: str | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False

    # -- what runs -----------------------------------------------------------------------------

    @staticmethod
    def knows(container: dict[str, Any]) -> bool:
        return standin_for(container) is not None

    def process(self, key: Key, container: str) -> Process | None:
        with self._lock:
            return self._processes.get((*key, container))

    def processes(self, key: Key | None = None) -> list[Process]:
        with self._lock:
            return [p for k, p in self._processes.items() if key is None or k[:2] == key]

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._processes.values() if p.running]

    # -- start and stop ------------------------------------------------------------------------

    def start(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        *,
        ip: str,
        node: str,
        env: dict[str, str],
    ) -> Process | None:
        """Start the container's stand-in (replacing a previous run); None if the image is not
        one the runtime knows or the runtime is stopping."""
        argv = standin_for(container)
        if argv is None:
            return None
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        name = container["name"]
        with self._lock:
            if self._closed:
                return None
            old = self._processes.pop((*key, name), None)
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="kube-sim-containers-")
            directory = self._dir
        if old is not None:
            self._signal(old, signal.SIGKILL)
            self._reap(old)
        ports: dict[str, int] = {}
        first_port = None
        for port in container.get("ports") or ():
            number = int(port["containerPort"])
            first_port = number if first_port is None else first_port
            ports[str(number)] = number
            if port.get("name"):
                ports[port["name"]] = number
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": directory,
            "LANG": "C.UTF-8",
            **self.environment,
            **(self.resolver_environment if resolves_services(argv) else {}),
            **env,
        }
        log_path = os.path.join(directory, f"{key[0]}_{key[1]}_{name}.log")
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, *argv],
                env=full_env,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # prctl only: safe after fork
                close_fds=True,
            )
        process = Process(
            key=key,
            uid=meta.get("uid", ""),
            container=name,
            ip=ip,
            node=node,
            popen=popen,
            ports=ports,
            first_port=first_port,
            readiness=container.get("readinessProbe"),
            liveness=container.get("livenessProbe"),
        )
        with self._lock:
            self._processes[(*key, name)] = process
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._monitor, name="kube-sim-runtime", daemon=True
                )
                self._thread.start()
        self._wake.set()
        return process

    def log_path(self, key: Key, container: str) -> str | None:
        with self._lock:
            if self._dir is None:
                return None
            return os.path.join(self._dir, f"{key[0]}_{key[1]}_{container}.log")

    def kill(self, key: Key, container: str, sig: int = signal.SIGKILL) -> bool:
        """Signal one container's process (a test control); False if it has none running."""
        process = self.process(key, container)
        if process is None or not process.running:
            return False
        self._signal(process, sig)
        self._wake.set()
        return True

    def stop_pod(self, key: Key, grace: float) -> None:
        """A graceful stop: SIGTERM now, SIGKILL after ``grace`` seconds if still running."""
        deadline = time.monotonic() + max(grace, 0.0)
        for process in self.processes(key):
            if process.running and process.stop_deadline is None:
                process.stop_deadline = deadline
                self._signal(process, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        self._wake.set()

    def kill_node(self, node: str) -> None:
        """The node's machine is gone or stopped: its processes die at once (SIGKILL)."""
        for process in self.processes():
            if process.node == node and process.running:
                process.stop_deadline = time.monotonic()
                self._signal(process, signal.SIGKILL)
        self._wake.set()

    def forget(self, key: Key) -> None:
        """The pod is gone: its processes are killed and forgotten."""
        with self._lock:
            gone = [p for k, p in self._processes.items() if k[:2] == key]
            for process in gone:
                del self._processes[(*key, process.container)]
        for process in gone:
            self._signal(process, signal.SIGKILL)
            self._reap(process)

    def forget_all(self) -> None:
        """Every process killed and forgotten (the store was reset); the runtime stays open."""
        with self._lock:
            gone = list(self._processes.values())
            self._processes.clear()
        for process in gone:
            self._signal(process, signal.SIGKILL)
        for process in gone:
            self._reap(process)

    def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every process (SIGTERM, then SIGKILL after ``timeout``), wait for them, end
        the monitor and remove the log directory. Nothing is started afterwards."""
        with self._lock:
            self._closed = True
            gone = list(self._processes.values())
            self._processes.clear()
            thread, self._thread = self._thread, None
            directory, self._dir = self._dir, None
        for process in gone:
            self._signal(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in gone:
            try:
                process.popen.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                self._reap(process)
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    @staticmethod
    def _signal(process: Process, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if process.popen.poll() is None:
                os.kill(process.pid, sig)

    @staticmethod
    def _reap(process: Process) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(5)

    # -- the monitor ---------------------------------------------------------------------------

    def _monitor(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                processes = list(self._processes.values())
            changed: set[Key] = set()
            now = time.monotonic()
            for process in processes:
                if self._check(process, now):
                    changed.add(process.key)
            for key in changed:
                try:
                    self.on_change(key)
                except Exception:  # pragma: no cover - the kubelet's inbox does not raise
                    log.exception("runtime report for %s failed", key)
            self._wake.wait(self.probe_interval)
            self._wake.clear()

    def _check(self, process: Process, now: float) -> bool:
        """Look at one process; True when the kubelet should hear about it."""
        if not process.running:
            return False
        code = process.popen.poll()
        if code is not None:
            process.exit_code = 128 - code if code < 0 else code  # -9 -> 137
            process.ready = False
            return True
        if process.stop_deadline is not None:
            if now >= process.stop_deadline:
                self._signal(process, signal.SIGKILL)
            return False  # terminating: no probes
        if not process.ready:
            if self._probe(process, process.readiness):
                process.ready = True
                process.readiness_failures = 0
                process.next_check = now + self.probe_period
                return True
            return False
        if now < process.next_check:
            return False
        process.next_check = now + self.probe_period
        reported = False
        if process.liveness is not None:
            if self._probe(process, process.liveness):
                process.liveness_failures = 0
            else:
                process.liveness_failures += 1
                if process.liveness_failures >= int(process.liveness.get("failureThreshold", 3)):
                    process.notes.append(
                        (
                            "Warning",
                            "Unhealthy",
                            f"Liveness probe failed: {self._describe(process, process.liveness)}",
                        )
                    )
                    process.notes.append(
                        (
                            "Normal",
                            "Killing",
                            f"Container {process.container} failed liveness probe, will be "
                            "restarted",
                        )
                    )
                    process.killed_by = "liveness"
                    self._signal(process, signal.SIGKILL)
                    return True
        if process.readiness is not None:
            if self._probe(process, process.readiness):
                process.readiness_failures = 0
            else:
                process.readiness_failures += 1
                if process.readiness_failures >= int(process.readiness.get("failureThreshold", 3)):
                    process.ready = False
                    process.notes.append(
                        (
                            "Warning",
                            "Unhealthy",
                            f"Readiness probe failed: {self._describe(process, process.readiness)}",
                        )
                    )
                    reported = True
        return reported

    def _port(self, process: Process, value: Any) -> int | None:
        if value is None:
            return process.first_port
        return process.ports.get(str(value)) or (int(value) if str(value).isdigit() else None)

    def _describe(self, process: Process, probe: dict[str, Any]) -> str:
        http = probe.get("httpGet")
        if http:
            port = self._port(process, http.get("port"))
            return f'Get "http://{process.ip}:{port}{http.get("path", "/")}": failed'
        port = self._port(process, (probe.get("tcpSocket") or {}).get("port"))
        return f"dial tcp {process.ip}:{port}: connect: connection refused"

    def _probe(self, process: Process, probe: dict[str, Any] | None) -> bool:
        if probe is None:
            # No probe: ready once the process listens on its first declared port.
            if process.first_port is None:
                return True
            return self._tcp(process.ip, process.first_port, 0.2)
        timeout = min(float(probe.get("timeoutSeconds", 1)), _PROBE_TIMEOUT_CAP)
        http = probe.get("httpGet")
        if http:
            port = self._port(process, http.get("port"))
            if port is None:
                return False
            return self._http(http.get("host") or process.ip, port, http, timeout)
        tcp = probe.get("tcpSocket")
        port = self._port(process, (tcp or {}).get("port") if tcp else None)
        if port is None:
            return True  # an exec probe on a container without ports: nothing to check
        return self._tcp((tcp or {}).get("host") or process.ip, port, timeout)

    @staticmethod
    def _tcp(host: str, port: int, timeout: float) -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    @staticmethod
    def _http(host: str, port: int, probe: dict[str, Any], timeout: float) -> bool:
        headers = {h["name"]: h.get("value", "") for h in probe.get("httpHeaders") or ()}
        headers.setdefault("User-Agent", "kube-probe/1.33")
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request("GET", probe.get("path") or "/", headers=headers)
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()
        return 200 <= status < 400
