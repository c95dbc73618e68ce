"""docker-compose.yml, run rather than read: each service's own configuration code under that
service's compose environment, checked against the ports compose publishes and the ports the
services it talks to listen on.

No Docker engine runs here: the file is parsed with PyYAML and interpolated as compose does
(``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}``; compose-spec "Interpolation"), each
image's ``ENV`` is read from its Dockerfile, and the code runs in a subprocess with exactly that
environment: gunicorn's config (the address it would bind, the settings it would load), the
worker's and beat's start-up check, and the directory image's entrypoint (the slapd
configuration it would start with, then started here with the local slapd).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import ldap
import pytest
import yaml
from django.conf import settings

from clusterweb.accounts.passwords import ldap_password_hash
from clusterweb.management.commands.settings_env import COMPOSE_ONLY
from deploy.ldap import slapd_setup
from sandbox.services.base import ManagedProcess, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
CLUSTERWEB_SERVICES = ("web", "signup", "worker", "beat")
# What the third-party images listen on, from their own documentation: postgres 5432 (the
# official image), redis 6379, mailpit's SMTP 1025 (its UI 8025), moto's server 5000.
IMAGE_PORTS = {"postgres": {5432}, "redis": {6379}, "mail": {1025, 8025}, "moto": {5000}}
INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


class MissingVariable(Exception):
    pass


def interpolate(node, dotenv: dict[str, str]):
    def value(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = dotenv.get(name)
        empty = current is None or (current == "" and op and op.startswith(":"))
        if op in (":?", "?") and empty:
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and empty:
            return arg
        return current or ""

    if isinstance(node, str):
        return INTERPOLATION.sub(value, node)
    if isinstance(node, dict):
        return {k: interpolate(v, dotenv) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, dotenv) for v in node]
    return node


def dotenv() -> dict[str, str]:
    """A .env as .env.example asks for: every compose-only secret and SECRET_KEY."""
    return {name: secrets.token_urlsafe(16) for name in [*COMPOSE_ONLY, "SECRET_KEY"]}


@pytest.fixture(scope="module")
def env_file() -> dict[str, str]:
    return dotenv()


@pytest.fixture(scope="module")
def compose(env_file) -> dict:
    return interpolate(yaml.safe_load((REPO / "docker-compose.yml").read_text()), env_file)


def dockerfile_env(path: Path) -> dict[str, str]:
    """The ENV of a Dockerfile's final stage (``ENV A=1 B=2`` with line continuations)."""
    text = path.read_text().replace("\\\n", " ")
    stages = text.split("\nFROM ")
    env = {}
    for line in stages[-1].splitlines():
        if line.startswith("ENV "):
            for item in line[4:].split():
                key, _, value = item.partition("=")
                env[key] = value
    return env


def published_container_ports(service: dict) -> set[int]:
    return {int(str(p).rsplit(":", 1)[1].split("/")[0]) for p in service.get("ports", [])}


def run_in_service(compose, name: str, code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter with exactly the environment compose gives ``name``: the
    image's ENV, then the service's environment. The state directory is moved to tmp_path."""
    environ = {
        **dockerfile_env(REPO / "Dockerfile"),
        **{k: str(v) for k, v in compose["services"][name]["environment"].items()},
        "CLUSTERWEB_VAR_DIR": str(tmp_path),
        "PATH": os.environ["PATH"],
    }
    environ.pop("PYTHONDONTWRITEBYTECODE", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )


GUNICORN = """
import json, clusterweb.gunicorn_conf as conf
from django.conf import settings as s
from clusterweb.bind import bind_refusal
print(json.dumps({"bind": conf.bind, "refusal": bind_refusal(conf.bind[0], in_cluster=s.IN_CLUSTER),
    "site": s.SITE, "urls": s.ROOT_URLCONF}))
"""


@pytest.mark.parametrize(("name", "site"), [("web", "web"), ("signup", "signup")])
def test_each_site_binds_the_port_compose_publishes(compose, name, site, tmp_path):
    service = compose["services"][name]
    assert "python:clusterweb.gunicorn_conf" in " ".join(service["command"])
    result = run_in_service(compose, name, GUNICORN, tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["site"] == site and seen["refusal"] is None
    [bind] = seen["bind"]
    host, port = bind.rsplit(":", 1)
    # The container's own address, or the published port reaches nothing.
    assert host == "0.0.0.0", bind  # noqa: S104
    assert published_container_ports(service) == {int(port)}


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_the_worker_and_beat_start_with_their_compose_environment(compose, name, tmp_path):
    code = (
        "from clusterweb.startup import configuration_error; print(configuration_error())\n"
        "from clusterweb.celery import app; print(app.conf.broker_url)"
    )
    result = run_in_service(compose, name, code, tmp_path)
    assert result.returncode == 0, result.stderr
    error, broker = result.stdout.split()
    assert error == "None"
    assert (
        urlsplit(broker).hostname == "redis"
        and (urlsplit(broker).port or 6379) in (IMAGE_PORTS["redis"])
    )


def ldap_argv(compose, tmp_path: Path) -> list[str]:
    """The directory image's entrypoint under the ldap service's compose environment."""
    environ = {
        **dockerfile_env(REPO / "deploy" / "ldap" / "Dockerfile"),
        **compose["services"]["ldap"]["environment"],
        "LDAP_DATA_DIR": str(tmp_path / "ldap"),
    }
    return slapd_setup.prepare(environ)


def test_every_address_the_clusterweb_services_use_is_a_service_listening_there(compose, tmp_path):
    code = (
        "import json; from django.conf import settings as s; d = s.DATABASES['default']\n"
        "print(json.dumps({'database': [d['HOST'], int(d['PORT'])], 'redis': s.REDIS_URL,\n"
        "  'ldap': s.LDAP_URI, 'mail': [s.EMAIL_HOST, s.EMAIL_PORT], 'aws': s.AWS_ENDPOINT_URL}))"
    )
    ldap_listen = urlsplit(ldap_argv(compose, tmp_path)[4])
    listening = {**IMAGE_PORTS, "ldap": {ldap_listen.port}}
    for name in CLUSTERWEB_SERVICES:
        result = run_in_service(compose, name, code, tmp_path / name)
        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout)
        redis, ldap_uri, aws = (urlsplit(seen[k]) for k in ("redis", "ldap", "aws"))
        used = {
            tuple(seen["database"]),
            (redis.hostname, redis.port),
            (ldap_uri.hostname, ldap_uri.port),
            tuple(seen["mail"]),
            (aws.hostname, aws.port),
        }
        for host, port in used:
            assert host in compose["services"], f"{name} talks to {host}, not a compose service"
            assert port in listening[host], (
                f"{name} uses {host}:{port}; it listens on {listening[host]}"
            )
    # What compose publishes is what each service listens on.
    for host, ports in listening.items():
        assert published_container_ports(compose["services"][host]) <= ports, host


def test_compose_refuses_to_start_without_each_secret(env_file):
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name in [*COMPOSE_ONLY, "SECRET_KEY"]:
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw, {k: v for k, v in env_file.items() if k != name})
    named = {m["name"] for m in INTERPOLATION.finditer(json.dumps(raw))}  # values, not comments

    assert named - set(settings.ENV_REGISTRY) == set(COMPOSE_ONLY)


def test_the_directory_image_starts_with_the_layout_clusterweb_needs(compose, tmp_path):
    argv = ldap_argv(compose, tmp_path)
    assert argv[:4] == [slapd_setup.SLAPD, "-d", "0", "-h"]
    listen = urlsplit(argv[4])
    assert listen.hostname == "0.0.0.0"  # noqa: S104
    assert published_container_ports(compose["services"]["ldap"]) == {listen.port}
    # Started here as the image would, but on a free loopback port.
    port = free_port()
    argv[4] = f"ldap://127.0.0.1:{port}/"
    slapd = ManagedProcess("slapd", argv, log=tmp_path / "slapd.log").start()
    try:
        wait_for_port(port, process=slapd.process, name="slapd")
        web = compose["services"]["web"]["environment"]
        conn = ldap.initialize(f"ldap://127.0.0.1:{port}")
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        conn.simple_bind_s(web["LDAP_BIND_DN"], web["LDAP_BIND_PASSWORD"])
        groups = {
            attrs["cn"][0].decode()
            for _, attrs in conn.search_s(
                slapd_setup.GROUPS_DN, ldap.SCOPE_ONELEVEL, "(objectClass=posixGroup)", ["cn"]
            )
        }
        assert {"admins", "users"} <= groups
        # The service account writes a person with an SSH key (openssh-lpk) and an ARGON2
        # password (argon2 module) as an approved signup does...
        dn = f"uid=dora,{slapd_setup.PEOPLE_DN}"
        conn.add_s(
            dn,
            [
                (k, [v.encode() for v in vs])
                for k, vs in {
                    "objectClass": ["inetOrgPerson", "posixAccount", "ldapPublicKey"],
                    "uid": ["dora"],
                    "cn": ["Dora"],
                    "sn": ["Dora"],
                    "uidNumber": ["10001"],
                    "gidNumber": ["10001"],
                    "homeDirectory": ["/home/dora"],
                    "sshPublicKey": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG dora"],
                    "userPassword": [ldap_password_hash("dora-compose-pw", "ARGON2")],
                }.items()
            ],
        )
        conn.modify_s(f"cn=users,{slapd_setup.GROUPS_DN}", [(ldap.MOD_ADD, "memberUid", [b"dora"])])
        person = ldap.initialize(f"ldap://127.0.0.1:{port}")
        person.simple_bind_s(dn, "dora-compose-pw")
        person.unbind_s()
        # ...and the Users page's lock (ppolicy's pwdAccountLockedTime) stops her login.
        conn.modify_s(dn, [(ldap.MOD_ADD, "pwdAccountLockedTime", [b"000001010000Z"])])
        locked = ldap.initialize(f"ldap://127.0.0.1:{port}")
        with pytest.raises(ldap.INVALID_CREDENTIALS):
            locked.simple_bind_s(dn, "dora-compose-pw")
        conn.unbind_s()
    finally:
        slapd.stop()


def test_the_directory_image_runs_the_code_tested_here(compose):
    service = compose["services"]["ldap"]
    assert service["build"] == {"context": ".", "dockerfile": "deploy/ldap/Dockerfile"}
    text = (REPO / "deploy" / "ldap" / "Dockerfile").read_text().replace("\\\n", " ")
    entrypoint = next(line for line in text.splitlines() if line.startswith("ENTRYPOINT"))
    assert json.loads(entrypoint.split(None, 1)[1]) == ["python3", "-m", "deploy.ldap.slapd_setup"]
    copied = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ")]
    sources = {source for line in copied for source in line}
    assert {"deploy/ldap/slapd_setup.py", "deploy/ldap/openssh-lpk.schema"} <= sources
    assert all((REPO / source).is_file() for source in sources)
