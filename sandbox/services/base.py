from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

# Ports handed out by this process or by the processes that started it: kept in the environment
# too, so a child (the sandbox a test starts, a worker) never picks a port its parent has handed
# out to a server that has not bound it yet.
_HANDED_OUT_ENV = "SANDBOX_PORTS_HANDED_OUT"
_handed_out: set[int] = {
    int(p) for p in os.environ.get(_HANDED_OUT_ENV, "").split(",") if p.strip().isdigit()
}


def _remember(*ports: int) -> None:
    _handed_out.update(ports)
    os.environ[_HANDED_OUT_ENV] = ",".join(str(p) for p in sorted(_handed_out))


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def reserve_port(*ports: int) -> None:
    """Never hand these out (ports this process was given to serve on, not yet bound)."""
    _remember(*ports)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 that neither this process nor its parents handed out before.

    Drawn at random below the kernel's ephemeral range (never a well-known port): a port the
    kernel picks for `bind(0)` can be picked again for the next caller, or for an outgoing
    connection, in the moment between closing the probe and the server binding it."""
    low_ephemeral, _ = _ephemeral_range()
    low, high = 15000, max(15000 + 1000, low_ephemeral - 1)
    for _ in range(200):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _remember(port)
        return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 between {low} and {high}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def wait_for_port(
    port: int,
    *,
    timeout: float = 15.0,
    process: subprocess.Popen | None = None,
    name: str = "service",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with status {process.returncode} before listening on port {port}"
            )
        time.sleep(0.02)
    raise TimeoutError(f"{name} did not listen on port {port} within {timeout} s")


def _die_with_parent() -> None:
    """In the child: ask Linux to send SIGTERM when the parent dies, so a killed test run or
    sandbox leaves no server listening."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ManagedProcess:
    """A child process in its own process group, stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log = log
        self.cwd = cwd
        self.user = user
        self.process: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.cwd,
            start_new_session=True,
            user=self.user,
            preexec_fn=_die_with_parent,
        )
        if self.log:
            output.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
