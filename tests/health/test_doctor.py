"""`manage.py doctor`: in a working deployment (the test's real servers) every item is ok; each
dependency broken in turn shows as a problem on its own line, with how to fix it, and exit 1."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db.migrations.recorder import MigrationRecorder

from clusterweb import clock
from clusterweb.health import services
from clusterweb.health.doctor import EC2_CALLS
from clusterweb.health.models import ProcessBeat
from clusterweb.integrations import k8s
from sandbox.services.base import free_port
from tests.fixtures.services import _worker_env

pytestmark = pytest.mark.django_db

KUBE_IDS = {
    f"kubernetes.{a.verb}.{a.group or 'core'}.{a.resource}"
    + (f".{a.subresource}" if a.subresource else "")
    for a in k8s.ACCESSES
}
EVERY_ID = (
    {"database", "redis", "worker", "beat", "smtp", "jupyterhub", "kubernetes.identity"}
    | {"ldap.bind", "ldap.people", "ldap.groups", "ldap.uid_numbers"}
    | {"aws.credentials", "aws.cost_explorer", "aws.efs.DescribeFileSystems"}
    | {"aws.cloudwatch.GetMetricStatistics", "aws.s3.ListBuckets", "aws.pricing.GetProducts"}
    | {f"aws.ec2.{action}" for action, _, _ in EC2_CALLS}
    | KUBE_IDS
)


@pytest.fixture
def deployment(directory_server, redis, mailbox, aws, kube, jupyterhub, settings, tmp_path):
    """Every dependency up, as the sandbox has them, Clusterweb's own identities included."""
    settings.KUBE_CONFIG_PATH = str(kube.kubeconfig_for("clusterweb", tmp_path))
    settings.JUPYTERHUB_URL = jupyterhub.url
    settings.JUPYTERHUB_API_TOKEN = jupyterhub.token
    services.process_beat_record("worker", "worker@test")
    services.process_beat_record("beat")
    yield SimpleNamespace(
        settings=settings, redis=redis, aws=aws, kube=kube, tmp_path=tmp_path, hub=jupyterhub
    )
    services.readiness_forget()


def doctor() -> tuple[int, dict[str, dict]]:
    out = StringIO()
    try:
        call_command("doctor", "--json", stdout=out, stderr=StringIO())
        code = 0
    except CommandError as exc:
        code = exc.returncode
    checks = json.loads(out.getvalue())["checks"]
    ids = [check["id"] for check in checks]
    assert len(ids) == len(set(ids)), ids
    return code, {check["id"]: check for check in checks}


def problems(checks: dict[str, dict]) -> set[str]:
    return {id for id, check in checks.items() if check["state"] != "ok"}


def test_in_a_working_deployment_every_item_is_ok(deployment):
    code, checks = doctor()
    assert problems(checks) == set(), [c for c in checks.values() if c["state"] != "ok"]
    assert code == 0
    assert set(checks) == EVERY_ID
    assert (
        "system:serviceaccount:clusterweb:clusterweb" in checks["kubernetes.identity"]["detail"]
        or "SelfSubjectReview" in checks["kubernetes.identity"]["detail"]
    )
    assert "allowed" in checks["kubernetes.list.core.nodes"]["detail"]
    assert "admin:users, servers" in checks["jupyterhub"]["detail"]


def _break_migrations(d):
    MigrationRecorder.Migration.objects.filter(app="health").order_by("-id").first().delete()


def _old_beat(d):
    ProcessBeat.objects.filter(name="beat").update(seen_at=clock.now() - timedelta(hours=1))


def _kube_as_the_hub(d):
    d.settings.KUBE_CONFIG_PATH = str(d.kube.kubeconfig_for("jupyterhub", d.tmp_path))


def _a_users_token(d):
    """A person's own token (the hub's dummy authenticator lets the test log in as dora): its
    scopes are dora's, filtered to dora (``servers!user=dora``), not the service's."""
    import requests

    assert d.hub.api("POST", "/users/dora").status_code == 201
    response = requests.post(
        f"{d.hub.url}/hub/api/users/dora/tokens",
        json={"auth": {"username": "dora", "password": "any"}, "note": "doctor test"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    d.settings.JUPYTERHUB_API_TOKEN = response.json()["token"]


# (what breaks, the items that must then be problems, words of the broken item's line)
BREAKS = {
    "migrations": (_break_migrations, {"database", "worker", "beat"}, "manage.py migrate"),
    "redis": (lambda d: d.redis.stop(), {"redis"}, "REDIS_URL"),
    "worker": (
        lambda d: ProcessBeat.objects.filter(name="worker").delete(),
        {"worker"},
        "celery -A clusterweb worker",
    ),
    "beat": (_old_beat, {"beat"}, "celery -A clusterweb beat"),
    "ldap-password": (
        lambda d: setattr(d.settings, "LDAP_BIND_PASSWORD", "wrong"),
        {"ldap.bind"},
        "LDAP_BIND_PASSWORD",
    ),
    "ldap-people": (
        lambda d: setattr(d.settings, "LDAP_PEOPLE_DN", "ou=nobody,dc=cluster,dc=local"),
        {"ldap.people"},
        "LDAP_PEOPLE_DN",
    ),
    "ldap-groups": (
        lambda d: setattr(d.settings, "LDAP_GROUPS_DN", "ou=nogroups,dc=cluster,dc=local"),
        {"ldap.groups"},
        "LDAP_GROUPS_DN",
    ),
    "ldap-uid-numbers": (
        lambda d: setattr(d.settings, "SIGNUP_UID_LOCKS_DN", "ou=gone,dc=cluster,dc=local"),
        {"ldap.uid_numbers"},
        "SIGNUP_UID_LOCKS_DN",
    ),
    "smtp": (lambda d: setattr(d.settings, "EMAIL_PORT", free_port()), {"smtp"}, "EMAIL_PORT"),
    "aws-credentials": (
        lambda d: d.aws.fault_inject("GetCallerIdentity", "InvalidClientTokenId", times=None),
        {"aws.credentials"},
        "IAM role",
    ),
    "ec2-describe-instances": (
        lambda d: d.aws.fault_inject("DescribeInstances", "UnauthorizedOperation", times=None),
        {"aws.ec2.DescribeInstances"},
        "ec2:DescribeInstances",
    ),
    "ec2-spot-prices": (
        lambda d: d.aws.fault_inject(
            "DescribeSpotPriceHistory", "UnauthorizedOperation", times=None
        ),
        {"aws.ec2.DescribeSpotPriceHistory"},
        "ec2:DescribeSpotPriceHistory",
    ),
    "cost-explorer": (
        lambda d: d.aws.fault_inject("GetCostAndUsage", "AccessDeniedException", times=None),
        {"aws.cost_explorer"},
        "ce:GetCostAndUsage",
    ),
    "price-list": (
        lambda d: d.aws.fault_inject("GetProducts", "AccessDeniedException", times=None),
        {"aws.pricing.GetProducts"},
        "pricing:GetProducts",
    ),
    "kube-credentials": (
        lambda d: setattr(d.settings, "KUBE_CONFIG_PATH", str(d.tmp_path / "no-kubeconfig")),
        {"kubernetes.identity"},
        "KUBECONFIG",
    ),
    # The hub's identity may read nodes (the shipped hub configuration checks a launch's owner on
    # them: deploy/jupyterhub/README.md) and nothing else the product needs.
    "kube-role": (
        _kube_as_the_hub,
        KUBE_IDS - {"kubernetes.get.core.nodes", "kubernetes.list.core.nodes"},
        "ClusterRole",
    ),
    "jupyterhub-scopes": (_a_users_token, {"jupyterhub"}, "lacks the scopes admin:users, servers"),
    "jupyterhub-token": (
        lambda d: setattr(d.settings, "JUPYTERHUB_API_TOKEN", "not-the-token"),
        {"jupyterhub"},
        "JUPYTERHUB_API_TOKEN",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_broken_dependency_is_its_own_line_with_the_fix(deployment, name):
    breaker, broken, words = BREAKS[name]
    breaker(deployment)
    code, checks = doctor()
    assert code == 1
    assert problems(checks) == broken
    lines = " ".join(checks[id]["detail"] + " " + checks[id]["fix"] for id in broken)
    assert words in lines


def test_the_plain_output_is_one_line_per_item(deployment):
    out = StringIO()
    call_command("doctor", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(EVERY_ID)
    assert all(line.startswith("ok ") for line in lines), lines
    deployment.redis.stop()
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("doctor", stdout=out)
    assert failed.value.returncode == 1
    redis_line = next(line for line in out.getvalue().splitlines() if " redis " in line)
    assert redis_line.startswith("problem ")
    assert "fix: start Redis" in redis_line


@pytest.mark.django_db(transaction=True)  # the command's own process reads committed rows
def test_as_its_own_process_json_is_one_object_on_stdout(deployment):
    """A process of its own, with the product's settings, reaching the same servers."""
    s = deployment.settings
    env = {key: value for key, value in os.environ.items() if key != "CLUSTERWEB_TEST"}
    env.update(
        _worker_env(),
        DJANGO_SETTINGS_MODULE="clusterweb.settings",
        KUBECONFIG=s.KUBE_CONFIG_PATH,
        JUPYTERHUB_URL=s.JUPYTERHUB_URL,
        JUPYTERHUB_API_TOKEN=s.JUPYTERHUB_API_TOKEN,
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "manage.py", "doctor", *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    deployment.redis.stop()
    as_json = run("--json")
    assert as_json.returncode == 1
    payload = json.loads(as_json.stdout)  # exactly one object: nothing else on stdout
    assert payload["ok"] is False
    assert [c["id"] for c in payload["checks"] if c["state"] == "problem"] == ["redis"]
    assert "1 problem(s): redis" in as_json.stderr


def test_the_verbs_asked_about_are_exactly_the_product_role():
    """The simulator's product ClusterRole is checked against what the adapter really calls
    (tests/integrations/test_k8s.py); the doctor asks about exactly those verbs."""
    from sandbox.kube.auth import PRODUCT_RULES

    granted = {
        (group, resource, verb)
        for rule in PRODUCT_RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    asked = {
        (a.group, f"{a.resource}/{a.subresource}" if a.subresource else a.resource, a.verb)
        for a in k8s.ACCESSES
    }
    assert asked == granted
