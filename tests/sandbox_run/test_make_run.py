"""`make run`'s sandbox, end to end: it starts every service, serves the login page, alice logs in
with the README's password, the Mail page shows the mail the sandbox sent, manage.py in the same
checkout sees the sandbox's database, and SIGINT leaves nothing listening."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from django.conf import settings

from sandbox.directory import BY_UID
from sandbox.services.base import free_port, port_open

REPO = Path(__file__).resolve().parents[2]


def clean_env(var_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in settings.ENV_REGISTRY and not k.startswith(("CLUSTERWEB", "AWS_"))
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["CLUSTERWEB_VAR_DIR"] = str(var_dir)
    return env


@pytest.fixture
def sandbox(tmp_path):
    web, signup, hub = free_port(), free_port(), free_port()
    ready = tmp_path / "ready"
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.run",
            "--web-port",
            str(web),
            "--signup-port",
            str(signup),
            "--hub-port",
            str(hub),
            "--ready-file",
            str(ready),
        ],
        cwd=REPO,
        env=clean_env(tmp_path / "var"),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail("sandbox did not start:\n" + (tmp_path / "run.log").read_text()[-3000:])
        time.sleep(0.2)
    yield {
        "process": process,
        "web": web,
        "signup": signup,
        "hub": hub,
        "var": tmp_path / "var",
        "log": tmp_path / "run.log",
    }
    stop(process)
    log.close()


def stop(process: subprocess.Popen) -> None:
    """SIGINT first, as Ctrl-C: the sandbox stops its children (a SIGKILL would leave them)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def listening_pids_of(var_dir: Path) -> list[str]:
    result = subprocess.run(["pgrep", "-f", str(var_dir)], capture_output=True, text=True)
    return result.stdout.split()


# The fixture allows the sandbox 180 s to start on a loaded machine; pytest's default 120 s would
# cut it first (and leave its services running: the fixture's teardown never comes).
@pytest.mark.timeout(300)
def test_make_run_serves_a_working_sandbox_and_stops_cleanly(sandbox):
    base = f"http://127.0.0.1:{sandbox['web']}"
    alice = BY_UID["alice"]
    session = requests.Session()
    login_page = session.get(f"{base}/login/", timeout=10)
    assert login_page.status_code == 200
    token = session.cookies["clusterweb_csrf"]
    response = session.post(
        f"{base}/login/",
        data={"username": alice.uid, "password": alice.password, "csrfmiddlewaretoken": token},
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    home = session.get(f"{base}/", timeout=10)
    assert "Mail" in home.text and "Audit" in home.text

    mail = session.get(f"{base}/sandbox/mail/", timeout=10)
    assert mail.status_code == 200
    assert "Your sandbox is running" in mail.text
    detail = re.search(r'href="(/sandbox/mail/[^"]+/)"', mail.text).group(1)
    assert "alice@example.org" in session.get(f"{base}{detail}", timeout=10).text

    assert "signup site" in requests.get(f"http://127.0.0.1:{sandbox['signup']}/", timeout=10).text
    assert (
        requests.get(f"http://127.0.0.1:{sandbox['signup']}/login/", timeout=10).status_code == 404
    )

    # manage.py in the same checkout reaches the sandbox through var/sandbox/env.
    shell = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from clusterweb.audit.models import AuditEvent as E; "
            "print(E.objects.filter(action='login.succeeded', actor_username='alice').count())",
        ],
        cwd=REPO,
        env=clean_env(sandbox["var"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.stdout.strip().splitlines()[-1] == "1", shell.stderr

    # The always-on part of the platform: three Ready nodes, synced before port 8000 answered.
    nodes = subprocess.run(
        [sys.executable, "manage.py", "nodes", "--json"],
        cwd=REPO,
        env=clean_env(sandbox["var"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    listed = json.loads(nodes.stdout)["nodes"]
    assert sorted((n["pool"], n["instance_type"], n["ready"]) for n in listed) == [
        ("admin", "t2.small", True),
        ("admin", "t2.small", True),
        ("control", "t2.micro", True),
    ]

    # The queue of spot interruption warnings exists, and the product is told where it is.
    written = dict(
        line.split("=", 1)
        for line in (sandbox["var"] / "sandbox" / "env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    sqs = boto3.client(
        "sqs",
        endpoint_url=written["AWS_ENDPOINT_URL"],
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue = written["SPOT_INTERRUPTION_QUEUE_URL"]
    assert sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]

    # The hub runs the shipped configuration behind its proxy on the hub port (8002 by default),
    # and Clusterweb is told to use exactly that address.
    hub_url = f"http://127.0.0.1:{sandbox['hub']}"
    assert written["JUPYTERHUB_URL"] == hub_url
    whoami = requests.get(
        f"{hub_url}/hub/api/user",
        headers={"Authorization": f"token {written['JUPYTERHUB_API_TOKEN']}"},
        timeout=10,
    ).json()
    assert (whoami["kind"], whoami["name"]) == ("service", "clusterweb")
    assert "KubeSpawner" in (sandbox["var"] / "sandbox" / "logs" / "jupyterhub.log").read_text()

    sandbox["process"].send_signal(signal.SIGINT)
    assert sandbox["process"].wait(timeout=60) == 0
    assert not any(port_open(sandbox[site]) for site in ("web", "signup", "hub"))
    assert listening_pids_of(sandbox["var"]) == []
    assert not (sandbox["var"] / "sandbox" / "env").exists()


def test_the_mail_page_does_not_exist_without_the_sandbox(as_alice):
    assert as_alice.get("/sandbox/mail/").status_code == 404
