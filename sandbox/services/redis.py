"""A throwaway redis-server: no persistence, loopback only."""

from __future__ import annotations

import shutil
from pathlib import Path

from sandbox.services.base import ManagedProcess, free_port, wait_for_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = Path(workdir)
        self.port = port or free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "redis",
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--maxmemory",
                "64mb",
            ],
            log=self.dir / "redis.log",
        ).start()
        wait_for_port(self.port, process=self.process.process, name="redis-server")
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def running(self) -> bool:
        return bool(self.process and self.process.running())
