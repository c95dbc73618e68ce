"""The preflight of ``manage.py doctor``: every outside permission and service Clusterweb needs,
checked without side effects, one finding per item with how to fix a problem.

Nothing here writes anywhere: EC2 calls carry ``DryRun=True`` (AWS answers ``DryRunOperation``
when the call would have been allowed, ``UnauthorizedOperation`` when not); Kubernetes answers
SelfSubjectAccessReviews (nothing stored); SMTP gets EHLO and QUIT, no message; LDAP and the
other AWS services get reads. One call costs money: Cost Explorer's $0.01 per request.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings

from clusterweb import clock
from clusterweb.errors import IntegrationError


@dataclass(frozen=True)
class Finding:
    id: str
    ok: bool
    detail: str
    fix: str = ""

    @property
    def state(self) -> str:
        return "ok" if self.ok else "problem"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "detail": self.detail, "fix": self.fix}


def _ok(id: str, detail: str) -> Finding:
    return Finding(id, True, detail)


def _problem(id: str, detail: str, fix: str) -> Finding:
    return Finding(id, False, detail, fix)


# -- database, Redis, worker and beat -------------------------------------------------------------


def check_database() -> Iterator[Finding]:
    from clusterweb.health.services import readiness, readiness_forget

    readiness_forget()  # look again: a doctor run is the moment to
    ready, reason = readiness()
    if ready:
        yield _ok("database", f"reachable and migrated ({settings.DATABASES['default']['ENGINE']})")
    elif reason.startswith("migrations"):
        yield _problem("database", reason, "run manage.py migrate")
    else:
        yield _problem("database", reason, "check DATABASE_URL and that the server is up")


def check_redis() -> Iterator[Finding]:
    from clusterweb.health.services import redis_status

    result = redis_status()
    if result["ok"]:
        yield _ok("redis", "answers PING")
    else:
        yield _problem(
            "redis",
            f"no answer ({result['error']})",
            "start Redis, or point REDIS_URL at it (the worker and beat need it)",
        )


def check_processes() -> Iterator[Finding]:
    from clusterweb.health.services import process_status, readiness

    ready, _ = readiness()
    commands = {
        "worker": "celery -A clusterweb worker",
        "beat": "celery -A clusterweb beat",
    }
    for name, command in commands.items():
        if not ready:
            yield _problem(name, "cannot tell: the database is not ready", "fix the database first")
            continue
        status = process_status(name)
        if status["ok"]:
            yield _ok(name, f"alive (heartbeat {status['age_seconds']} s ago)")
        else:
            yield _problem(
                name,
                f"no recent heartbeat ({status['error']})",
                f"start it ({command}) with the same settings as the web site",
            )


# -- LDAP -----------------------------------------------------------------------------------------


def check_ldap() -> Iterator[Finding]:
    import ldap

    from clusterweb.integrations import ldap as directory

    who = settings.LDAP_BIND_DN or "anonymous"
    entries = (
        ("ldap.people", settings.LDAP_PEOPLE_DN, "LDAP_PEOPLE_DN"),
        ("ldap.groups", settings.LDAP_GROUPS_DN, "LDAP_GROUPS_DN"),
        ("ldap.uid_numbers", settings.SIGNUP_UID_LOCKS_DN, "SIGNUP_UID_LOCKS_DN"),
    )
    try:
        with directory.connection() as conn:
            yield _ok("ldap.bind", f"bound to {settings.LDAP_URI} as {who}")
            for id, dn, variable in entries:
                try:
                    conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])
                except ldap.NO_SUCH_OBJECT:
                    yield _problem(
                        id,
                        f"{dn} does not exist (or {who} may not read it)",
                        f"create it, or set {variable} to where it is (docs/signup.md)",
                    )
                except ldap.LDAPError as exc:
                    yield _problem(
                        id, f"cannot read {dn}: {type(exc).__name__}", "see the slapd log"
                    )
                else:
                    yield _ok(id, f"{dn} exists")
    except IntegrationError as exc:
        yield _problem(
            "ldap.bind",
            str(exc),
            "check LDAP_URI, LDAP_BIND_DN and LDAP_BIND_PASSWORD, and that slapd is up",
        )


# -- SMTP -----------------------------------------------------------------------------------------


def check_smtp() -> Iterator[Finding]:
    if not settings.EMAIL_HOST:
        yield _problem(
            "smtp",
            "EMAIL_HOST is empty: mail is written to var/mail/ and reaches nobody",
            "set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER...) to your mail server",
        )
        return
    where = f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
    try:
        with smtplib.SMTP(
            settings.EMAIL_HOST, settings.EMAIL_PORT, timeout=settings.EMAIL_TIMEOUT
        ) as smtp:
            smtp.ehlo()
            if settings.EMAIL_USE_TLS:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.EMAIL_HOST_USER:
                smtp.login(settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD)
            smtp.noop()
    except smtplib.SMTPAuthenticationError:
        yield _problem(
            "smtp", f"{where} refused the login", "check EMAIL_HOST_USER and EMAIL_HOST_PASSWORD"
        )
    except (OSError, smtplib.SMTPException) as exc:
        yield _problem(
            "smtp",
            f"{where} did not answer ({type(exc).__name__}: {exc})",
            "check EMAIL_HOST, EMAIL_PORT and EMAIL_USE_TLS, and that the server is up",
        )
    else:
        yield _ok("smtp", f"{where} answers (no mail sent)")


# -- AWS ------------------------------------------------------------------------------------------

# The EC2 calls Clusterweb makes (clusterweb/integrations/aws.py), with the smallest valid
# parameters; each is sent with DryRun=True.
EC2_CALLS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("DescribeInstances", "describe_instances", {"MaxResults": 5}),
    ("DescribeInstanceTypes", "describe_instance_types", {"InstanceTypes": ["t2.micro"]}),
    (
        "DescribeSpotPriceHistory",
        "describe_spot_price_history",
        {"InstanceTypes": ["t2.micro"], "ProductDescriptions": ["Linux/UNIX"], "MaxResults": 1},
    ),
    ("DescribeVolumes", "describe_volumes", {"MaxResults": 5}),
    ("DescribeVolumesModifications", "describe_volumes_modifications", {"MaxResults": 5}),
    ("DescribeAddresses", "describe_addresses", {}),
)
AWS_FIX = "grant {action} to Clusterweb's IAM role (docs/inventory.md lists the policy)"


def _aws_error(exc: Exception) -> tuple[str, str]:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return str(error.get("Code", "")), str(error.get("Message", ""))
    return type(exc).__name__, str(exc)


def check_aws() -> Iterator[Finding]:
    from botocore.exceptions import BotoCoreError, ClientError

    from clusterweb.integrations import aws

    try:
        identity = aws.client("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        code, message = _aws_error(exc)
        yield _problem(
            "aws.credentials",
            f"no usable AWS credentials ({code}: {message})",
            "give the pod an IAM role, or set AWS_PROFILE / AWS_ACCESS_KEY_ID for boto3",
        )
        return
    yield _ok("aws.credentials", f"{identity.get('Arn', '?')} in {settings.AWS_REGION}")
    for action, method, params in EC2_CALLS:
        id = f"aws.ec2.{action}"
        try:
            getattr(aws.client("ec2"), method)(DryRun=True, **params)
        except (BotoCoreError, ClientError) as exc:
            code, message = _aws_error(exc)
            if code == "DryRunOperation":
                yield _ok(id, "allowed (dry run)")
            elif code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
                yield _problem(id, f"not allowed ({code})", AWS_FIX.format(action=f"ec2:{action}"))
            else:
                yield _problem(id, f"failed ({code}: {message})", "see the message")
        else:
            # AWS answers a permitted dry run with DryRunOperation; a server that ran the read
            # instead (moto on some calls) shows the permission just as well.
            yield _ok(id, "allowed")
    yield from _check_aws_reads()


def _check_aws_reads() -> Iterator[Finding]:
    """The other AWS services the inventory reads (no DryRun there: small reads instead)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from clusterweb.integrations import aws

    now = clock.now()
    reads: tuple[tuple[str, str, Callable[[], Any]], ...] = (
        (
            "aws.efs.DescribeFileSystems",
            "elasticfilesystem:DescribeFileSystems",
            lambda: aws.client("efs").describe_file_systems(MaxItems=1),
        ),
        (
            "aws.cloudwatch.GetMetricStatistics",
            "cloudwatch:GetMetricStatistics",
            lambda: aws.client("cloudwatch").get_metric_statistics(
                Namespace="AWS/EFS",
                MetricName="StorageBytes",
                StartTime=now - timedelta(hours=1),
                EndTime=now,
                Period=3600,
                Statistics=["Average"],
            ),
        ),
        ("aws.s3.ListBuckets", "s3:ListAllMyBuckets", lambda: aws.client("s3").list_buckets()),
        (
            # The price lookup job and `pools load` ask the Price List Query API (us-east-1).
            "aws.pricing.GetProducts",
            "pricing:GetProducts",
            lambda: aws.client("pricing", region=aws.PRICING_REGION).get_products(
                ServiceCode="AmazonEC2", MaxResults=1
            ),
        ),
    )
    for id, action, call in reads:
        try:
            call()
        except (BotoCoreError, ClientError) as exc:
            code, message = _aws_error(exc)
            yield _problem(id, f"failed ({code}: {message})", AWS_FIX.format(action=action))
        else:
            yield _ok(id, "allowed")
    yield from _check_cost_explorer()


def _check_cost_explorer() -> Iterator[Finding]:
    from botocore.exceptions import BotoCoreError, ClientError

    from clusterweb.integrations import aws

    if not settings.COST_EXPLORER_ENABLED:
        yield _ok("aws.cost_explorer", "not used (COST_EXPLORER_ENABLED=0)")
        return
    today = clock.now().date()
    try:
        aws.client("ce").get_cost_and_usage(
            TimePeriod={
                "Start": (today - timedelta(days=1)).isoformat(),
                "End": today.isoformat(),
            },
            Granularity="DAILY",
            Metrics=["UnblendedCost"],
        )
    except (BotoCoreError, ClientError) as exc:
        code, message = _aws_error(exc)
        yield _problem(
            "aws.cost_explorer",
            f"GetCostAndUsage failed ({code}: {message})",
            "grant ce:GetCostAndUsage (and enable Cost Explorer in the account), "
            "or set COST_EXPLORER_ENABLED=0",
        )
    else:
        yield _ok("aws.cost_explorer", "GetCostAndUsage allowed (this check cost $0.01)")


# -- Kubernetes -----------------------------------------------------------------------------------


def check_kubernetes() -> Iterator[Finding]:
    from clusterweb.integrations import k8s

    where = settings.KUBE_CONFIG_PATH or "the in-cluster service account"
    try:
        cluster = k8s.connect(
            settings.KUBE_CONFIG_PATH, request_timeout=settings.KUBE_REQUEST_TIMEOUT
        )
    except IntegrationError as exc:
        yield _problem(
            "kubernetes.identity",
            str(exc),
            "set KUBECONFIG, or run inside the cluster with Clusterweb's service account",
        )
        return
    try:
        try:
            name = cluster.identity()
        except IntegrationError as exc:
            yield _problem(
                "kubernetes.identity",
                f"the API server did not answer ({exc})",
                f"check the cluster address and credentials in {where}",
            )
            return
        shown = name or "(this API server does not serve SelfSubjectReview)"
        yield _ok("kubernetes.identity", f"{shown}, from {where}")
        for access in k8s.ACCESSES:
            id = f"kubernetes.{access.verb}.{access.group or 'core'}.{access.resource}"
            if access.subresource:
                id += f".{access.subresource}"
            try:
                allowed, reason = cluster.access_review(access)
            except IntegrationError as exc:
                yield _problem(id, f"could not ask ({exc})", "see the message")
                continue
            if allowed:
                yield _ok(id, f"{access}: allowed" + (f" ({reason})" if reason else ""))
            else:
                subject = name or "its identity"
                yield _problem(
                    id,
                    f"{access}: not allowed",
                    f"add '{access}' to Clusterweb's ClusterRole and bind it to {subject}",
                )
    finally:
        cluster.close()


# -- JupyterHub -----------------------------------------------------------------------------------

# What the JupyterHub adapter does: create users (admin:users) and start, stop and read their
# servers (servers).
JUPYTERHUB_SCOPES = ("admin:users", "servers")


def check_jupyterhub() -> Iterator[Finding]:
    import requests

    if not settings.JUPYTERHUB_URL:
        yield _ok(
            "jupyterhub", "not configured (JUPYTERHUB_URL is empty): Jupyter launches are off"
        )
        return
    if not settings.JUPYTERHUB_API_TOKEN:
        yield _problem(
            "jupyterhub", "JUPYTERHUB_API_TOKEN is empty", "set the token of Clusterweb's service"
        )
        return
    base = settings.JUPYTERHUB_URL.rstrip("/")
    if not base.endswith("/hub/api"):
        base += "/hub/api"
    try:
        response = requests.get(
            f"{base}/user",
            headers={"Authorization": f"token {settings.JUPYTERHUB_API_TOKEN}"},
            timeout=settings.JUPYTERHUB_TIMEOUT,
        )
    except requests.RequestException as exc:
        yield _problem(
            "jupyterhub",
            f"{base} did not answer ({type(exc).__name__})",
            "check JUPYTERHUB_URL and that the hub is up",
        )
        return
    if response.status_code in (401, 403):
        yield _problem(
            "jupyterhub",
            f"the hub refused the token (HTTP {response.status_code})",
            "set JUPYTERHUB_API_TOKEN to the api_token of Clusterweb's service in the hub's config",
        )
        return
    if response.status_code != 200:
        yield _problem(
            "jupyterhub",
            f"GET {base}/user answered HTTP {response.status_code}",
            "see the hub's log",
        )
        return
    model = response.json()
    scopes = set(model.get("scopes") or [])
    missing = [scope for scope in JUPYTERHUB_SCOPES if scope not in scopes]
    who = f"{model.get('kind', 'token')} {model.get('name', '?')}"
    if missing:
        yield _problem(
            "jupyterhub",
            f"{who} lacks the scopes {', '.join(missing)}",
            "give the service's role the scopes " + ", ".join(JUPYTERHUB_SCOPES),
        )
    else:
        yield _ok("jupyterhub", f"{who} has the scopes {', '.join(JUPYTERHUB_SCOPES)}")


CHECKS: tuple[Callable[[], Iterator[Finding]], ...] = (
    check_database,
    check_redis,
    check_processes,
    check_ldap,
    check_smtp,
    check_aws,
    check_kubernetes,
    check_jupyterhub,
)


def doctor_run() -> list[Finding]:
    """Every finding, in order. A check that fails unexpectedly is itself a finding."""
    findings: list[Finding] = []
    for check in CHECKS:
        try:
            findings.extend(check())
        except Exception as exc:  # one broken check must not hide the others
            name = check.__name__.removeprefix("check_")
            findings.append(
                _problem(name, f"the check itself failed: {type(exc).__name__}: {exc}", "report it")
            )
    return findings
