"""A real Celery worker as a subprocess of the test run (or of `make run`)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from sandbox.services.base import ManagedProcess

REPO = Path(__file__).resolve().parents[2]


class CeleryWorker:
    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        *,
        beat: bool = False,
        concurrency: int = 1,
        queues: str = "",
    ) -> None:
        self.dir = Path(workdir)
        self.env = env
        self.beat = beat
        self.concurrency = concurrency
        self.queues = queues  # "a,b": consume these queues only (default: Celery's "celery")
        self.process: ManagedProcess | None = None

    def start(self, timeout: float = 30.0) -> CeleryWorker:
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "clusterweb",
            "worker",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"worker-{os.getpid()}-{id(self)}@localhost",
        ]
        argv += (
            ["-P", "solo"]
            if self.concurrency == 1
            else ["-P", "prefork", "-c", str(self.concurrency)]
        )
        if self.queues:
            argv += ["-Q", self.queues]
        if self.beat:
            argv += ["--beat", "--schedule", str(self.dir / "beat-schedule")]
        self.process = ManagedProcess(
            "celery", argv, env={**os.environ, **self.env}, log=self.dir / "worker.log", cwd=REPO
        ).start()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        from celery import Celery

        app = Celery(broker=self.env["REDIS_URL"], set_as_current=False)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process and not self.process.running():
                    raise RuntimeError("celery worker exited:\n" + self.process.log_tail())
                # Right after a Redis restart a pooled connection raises (redis and kombu have
                # their own types): ask again until the deadline.
                with contextlib.suppress(Exception):
                    if app.control.ping(timeout=0.2):
                        return
            raise TimeoutError(
                "celery worker not ready:\n" + (self.process.log_tail() if self.process else "")
            )
        finally:
            app.close()

    def running(self) -> bool:
        return bool(self.process and self.process.running())

    def stop(self) -> None:
        if self.process:
            self.process.stop(timeout=15)

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process else ""
