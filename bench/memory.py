"""Memory of the running stack: starts the `make run` sandbox on free ports, exercises the web site,
then reports the proportional set size (PSS) of each product process — gunicorn (web and signup),
the Celery worker and beat — and of the sandbox's stand-ins, against a floor: a bare Python
interpreter. The target: Clusterweb's own processes fit beside OpenLDAP on a t2.small (2 GiB).

Run: .venv/bin/python bench/memory.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.directory import BY_UID  # noqa: E402
from sandbox.services.base import free_port  # noqa: E402


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(
                    Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                children.append(int(entry.name))
    result = []
    for child in children:
        result += [child, *descendants(child)]
    return result


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def classify(command: str) -> str:
    if "gunicorn" in command:
        return "gunicorn (web + signup)"
    if "celery" in command:
        return "celery worker + beat"
    for name in ("slapd", "redis-server", "jupyterhub", "configurable-http-proxy"):
        if name in command:
            return f"sandbox: {name}"
    return "sandbox: other"


def main() -> int:
    floor_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    time.sleep(0.5)
    floor = pss_kib(floor_proc.pid)
    floor_proc.kill()

    var = Path(tempfile.mkdtemp(prefix="clusterweb-bench-"))
    web, signup = free_port(), free_port()
    ready = var / "ready"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERWEB")}
    env["CLUSTERWEB_VAR_DIR"] = str(var / "var")
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.run",
            "--web-port",
            str(web),
            "--signup-port",
            str(signup),
            "--ready-file",
            str(ready),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            if runner.poll() is not None or time.monotonic() > deadline:
                print("the sandbox did not start")
                return 1
            time.sleep(0.2)
        session = requests.Session()
        base = f"http://127.0.0.1:{web}"
        session.get(f"{base}/login/", timeout=10)
        alice = BY_UID["alice"]
        session.post(
            f"{base}/login/",
            data={
                "username": alice.uid,
                "password": alice.password,
                "csrfmiddlewaretoken": session.cookies["clusterweb_csrf"],
            },
            timeout=10,
        )
        for _ in range(50):  # warm every worker thread and template
            for path in ("/", "/audit/", "/healthz"):
                session.get(f"{base}{path}", timeout=30)
        totals: dict[str, int] = {}
        for pid in descendants(runner.pid):
            kind = classify(cmdline(pid))
            totals[kind] = totals.get(kind, 0) + pss_kib(pid)
        runner_pss = pss_kib(runner.pid)
    finally:
        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=60)

    product = sum(v for k, v in totals.items() if not k.startswith("sandbox"))
    print(f"floor (bare python): {floor / 1024:.1f} MiB")
    for kind, kib in sorted(totals.items()):
        print(f"{kind:32s} {kib / 1024:8.1f} MiB  {kib / floor:5.1f}x floor")
    print(f"{'sandbox runner (moto, smtp)':32s} {runner_pss / 1024:8.1f} MiB")
    print(
        f"{'Clusterweb product processes':32s} {product / 1024:8.1f} MiB  "
        f"{product / floor:5.1f}x floor; {product / (2048 * 1024):.0%} of a t2.small's 2 GiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
