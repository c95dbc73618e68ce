"""A throwaway PostgreSQL cluster, run as the ``postgres`` system user when started as root
(``initdb`` refuses root). ``python -m sandbox.services.postgres -- CMD...`` runs CMD with
``DATABASE_URL`` pointing at a fresh server, then stops it; with ``DATABASE_URL`` already set to a
postgres URL it runs CMD against that server instead."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox.services.base import ManagedProcess, free_port, wait_for_port


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = Path(workdir)
        self.port = port or free_port()
        self.password = "clusterweb"  # loopback-only throwaway server
        self.process: ManagedProcess | None = None
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgres://clusterweb:{self.password}@127.0.0.1:{self.port}/clusterweb"

    def _run(self, argv: list[str]) -> None:
        subprocess.run(argv, check=True, capture_output=True, user=self.user)

    def start(self) -> PostgresServer:
        bindir = _bindir()
        data = self.dir / "data"
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password)
        if self.user:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "clusterweb",
                "--pwfile",
                str(pwfile),
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        self.process = ManagedProcess(
            "postgres",
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.dir),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=50",
                "-c",
                "shared_buffers=32MB",
            ],
            log=self.dir / "postgres.log",
            user=self.user,
        ).start()
        wait_for_port(self.port, process=self.process.process, name="postgres", timeout=30)
        # The port answers before the server accepts sessions ("the database system is starting
        # up"): try until it does.
        createdb = [
            str(bindir / "createdb"),
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", "clusterweb", "clusterweb"),
        ]
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                createdb,
                capture_output=True,
                text=True,
                env={**os.environ, "PGPASSWORD": self.password},
            )
            if done.returncode == 0:
                break
            if time.monotonic() > deadline or self.process.process.poll() is not None:
                raise RuntimeError(f"createdb failed: {done.stderr.strip()}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process:
            # SIGTERM is PostgreSQL's "smart" shutdown; the base class escalates if needed.
            self.process.stop(timeout=20)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m sandbox.services.postgres -- COMMAND...", file=sys.stderr)
        return 2
    existing = os.environ.get("DATABASE_URL", "")
    if existing.startswith(("postgres://", "postgresql://")):
        return subprocess.call(argv)
    workdir = Path(tempfile.mkdtemp(prefix="clusterweb-pg-"))
    server = PostgresServer(workdir)
    try:
        server.start()
        return subprocess.call(argv, env={**os.environ, "DATABASE_URL": server.url})
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
