"""The Dockerfile and docker-compose.yml, checked by parsing (no Docker engine runs here)."""

from pathlib import Path

import pytest
import yaml
from django.conf import settings

REPO = Path(__file__).resolve().parents[2]
CLUSTERWEB_SERVICES = {"web", "signup", "worker", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def test_compose_has_every_service_of_the_stack(compose):
    # What each service binds and talks to: tests/deploy/test_compose.py runs it.
    assert set(compose["services"]) == CLUSTERWEB_SERVICES | {
        "redis",
        "postgres",
        "ldap",
        "mail",
        "moto",
    }


def test_every_published_port_is_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_clusterweb_services_use_the_project_image_and_known_variables(compose):
    for name in CLUSTERWEB_SERVICES:
        service = compose["services"][name]
        assert service["build"] == "." and service["image"] == "clusterweb:latest"
        unknown = set(service["environment"]) - set(settings.ENV_REGISTRY)
        assert not unknown, f"{name} sets variables settings never reads: {sorted(unknown)}"


def test_the_dockerfile_runs_as_a_non_root_user():
    rows = dockerfile_instructions()
    final_stage = rows[max(i for i, (word, _) in enumerate(rows) if word == "FROM") :]
    users = [rest for word, rest in final_stage if word == "USER"]
    assert users, "the final stage never switches user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    cmd_index = max(i for i, (word, _) in enumerate(final_stage) if word == "CMD")
    user_index = max(i for i, (word, _) in enumerate(final_stage) if word == "USER")
    assert user_index < cmd_index
    assert any("gunicorn" in rest for word, rest in final_stage if word == "CMD")


def test_the_dockerfile_pins_its_base_image_and_installs_from_constraints():
    rows = dockerfile_instructions()
    for word, rest in rows:
        if word == "FROM":
            image = rest.split()[0]
            assert ":" in image and not image.endswith(":latest"), image
        assert word != "ADD", "ADD can fetch URLs; use COPY"
    assert any("-c constraints.txt" in rest for word, rest in rows if word == "RUN")
