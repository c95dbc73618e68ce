"""Settings come from the environment, through typed readers that name a malformed variable."""

import contextlib
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from clusterweb import env
from clusterweb.management.commands.settings_env import COMPOSE_ONLY
from sandbox.services.base import free_port

REPO = Path(__file__).resolve().parent.parent


def run_manage(*args: str, **environ: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERWEB_TEST")}
    base["DJANGO_SETTINGS_MODULE"] = "clusterweb.settings"
    base.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **environ},
    )


def run_python(code: str, **environ: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the product's settings module and ``environ``."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, "DJANGO_SETTINGS_MODULE": "clusterweb.settings"},
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "maybe"),
        ("LDAP_TIMEOUT", "soon"),
        ("LOGIN_LOCKOUT_FAILURES", "0"),
        ("EMAIL_PORT", "70000"),
        ("DATABASE_URL", "mysql://db/clusterweb"),
        ("REDIS_URL", "redis://127.0.0.1:notaport/0"),
        ("LDAP_URI", "http://ldap.example"),
    ],
)
def test_a_malformed_value_stops_start_up_naming_the_variable(name, value):
    result = run_manage("check", **{name: value})
    assert result.returncode != 0
    assert f"Environment variable {name}=" in result.stderr
    assert "Traceback" not in result.stderr


# Values that pass a "number"/"URL" test and then break every page (or every process) later.
BREAKS_EVERY_PAGE = [
    ("DATABASE_URL", "sqlite://x.db"),  # two slashes: x.db is a host, the database is in memory
    ("DATABASE_URL", "sqlite://"),
    ("DATABASE_URL", "sqlite:///:memory:"),
    ("DATABASE_URL", "postgres://db.internal/"),
    ("DATABASE_URL", "postgres://db.internal"),
    ("LDAP_TIMEOUT", "inf"),
    ("REDIS_TIMEOUT", "nan"),
    ("AWS_READ_TIMEOUT", "1e400"),
    ("ALLOWED_HOSTS", ""),
    ("ALLOWED_HOSTS", " , "),
    ("SESSION_IDLE_SECONDS", "99999999999999"),
    ("SESSION_MAX_AGE_SECONDS", str(10**20)),
    ("AUTH_RECHECK_SECONDS", str(10**15)),
    ("PASSWORD_RESET_HOURS", str(10**12)),
    ("LOG_LEVEL", "LOUD"),  # logging.config fails with a traceback in every process
    ("CLUSTERWEB_BIND", "127.0.0.1:abc"),
    ("CLUSTERWEB_SIGNUP_BIND", "127.0.0.1"),
]


def configuration_error_line(name: str, value: str) -> str:
    result = run_manage("check", **{name: value})
    assert result.returncode == 2, result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize(("name", "value"), BREAKS_EVERY_PAGE)
def test_a_value_that_would_break_every_page_stops_start_up_in_one_line(name, value):
    line = configuration_error_line(name, value)
    assert line.startswith(f"clusterweb: configuration error: Environment variable {name}=")
    assert len(line.splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "celery", "-A", "clusterweb", "worker", "-P", "solo"],
        ["-m", "celery", "-A", "clusterweb", "beat", "-s", "{tmp}/beat-schedule"],
        ["-m", "gunicorn", "-c", "python:clusterweb.gunicorn_conf", "clusterweb.wsgi"],
        ["-m", "gunicorn", "--workers", "1", "-b", "127.0.0.1:{port}", "clusterweb.wsgi"],
    ],
    ids=["worker", "beat", "gunicorn-with-config", "bare-gunicorn"],
)
def test_the_worker_beat_and_gunicorn_print_the_same_one_line(argv, tmp_path):
    expected = configuration_error_line("LDAP_TIMEOUT", "inf")
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERWEB_TEST")}
    base.pop("DATABASE_URL", None)
    argv = [a.format(tmp=tmp_path, port=free_port()) for a in argv]
    result = subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, "DJANGO_SETTINGS_MODULE": "clusterweb.settings", "LDAP_TIMEOUT": "inf"},
    )
    assert result.returncode != 0
    # gunicorn logs its own start and halt ("App failed to load") around it; Celery nothing.
    ours = [line for line in result.stderr.splitlines() if not line.startswith("[")]
    assert ours == [expected], result.stderr
    assert result.stdout.strip() == ""


def test_every_number_setting_is_bounded_and_its_bound_fits_a_timedelta():
    numbers = [v for v in settings.ENV_REGISTRY.values() if v.kind in ("integer", "number")]
    assert len(numbers) > 30
    unbounded = [v.name for v in numbers if v.maximum is None]
    assert not unbounded, f"numbers without an upper bound: {unbounded}"
    now = datetime.now(UTC)
    for var in numbers:
        unit = "hours" if var.name.endswith("_HOURS") else "seconds"
        assert now + timedelta(**{unit: var.maximum}) > now  # would raise OverflowError


ENV_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


@given(
    st.one_of(
        ENV_TEXT,
        st.floats().map(repr),
        st.integers().map(str),
        st.sampled_from(["inf", "-inf", "nan", "1e400", "Infinity", " 5 ", "1_000"]),
    )
)
def test_a_number_reader_returns_a_bounded_finite_number_or_names_the_variable(value):
    registry = dict(env.REGISTRY)
    try:
        with mock_environ(HYPO_NUMBER=value):
            for reader, kwargs in (
                (env.env_int, {"minimum": 1, "maximum": 3600}),
                (env.env_float, {"minimum": 0.1, "maximum": 600.0}),
            ):
                try:
                    number = reader("HYPO_NUMBER", 5, "test", **kwargs)
                except ImproperlyConfigured as exc:
                    assert str(exc).startswith("Environment variable HYPO_NUMBER=")
                else:
                    assert math.isfinite(number)
                    assert kwargs["minimum"] <= number <= kwargs["maximum"]
    finally:
        env.REGISTRY.clear()
        env.REGISTRY.update(registry)


@contextlib.contextmanager
def mock_environ(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def test_a_secret_is_never_echoed_in_the_error(tmp_path):
    result = run_manage("check", REDIS_URL="redis://:hunter2@127.0.0.1:x/0")
    assert "REDIS_URL" in result.stderr
    assert "hunter2" not in result.stderr


def test_secrets_can_come_from_files(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "REGISTRY", dict(env.REGISTRY))  # keep the real registry clean
    secret = tmp_path / "ldap-password"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("LDAP_BIND_PASSWORD_FILE", str(secret))
    assert env.env_secret("LDAP_BIND_PASSWORD", "", "test") == "from-a-file"
    monkeypatch.setenv("LDAP_BIND_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="LDAP_BIND_PASSWORD_FILE"):
        env.env_secret("LDAP_BIND_PASSWORD", "", "test")


def test_database_url_takes_postgres_and_sqlite_urls(tmp_path):
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(d['ENGINE'], d['NAME'], d.get('HOST', ''), d['OPTIONS'].get('transaction_mode', ''))"
    )
    pg = run_python(
        code,
        **{
            **os.environ,
            "DATABASE_URL": "postgres://u:p@db.internal:5433/clusterweb",
            "CLUSTERWEB_TEST": "0",
        },
    )
    assert pg.stdout.split() == ["django.db.backends.postgresql", "clusterweb", "db.internal"]
    lite = run_python(
        code,
        **{**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3", "CLUSTERWEB_TEST": "0"},
    )
    assert lite.stdout.split() == [
        "django.db.backends.sqlite3",
        f"{tmp_path}/x.sqlite3",
        "IMMEDIATE",
    ]


def test_the_default_configuration_is_a_laptop_one(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.BIND, s.DATABASES['default']['ENGINE'], s.LDAP_URI, s.REDIS_URL)"
    )
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in settings.ENV_REGISTRY and not k.startswith("CLUSTERWEB")
    }
    result = run_python(code, **{**base, "CLUSTERWEB_VAR_DIR": str(tmp_path)})
    assert result.stdout.split() == [
        "False",
        "127.0.0.1:8000",
        "django.db.backends.sqlite3",
        "ldap://127.0.0.1:389",
        "redis://127.0.0.1:6379/0",
    ]


def test_importing_settings_connects_to_nothing(tmp_path):
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise SystemExit('settings opened a connection')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import django; django.setup()\n"
        "from django.conf import settings; settings.DATABASES; settings.CELERY_BROKER_URL\n"
        "import clusterweb.celery\n"
        "print('ok')\n"
    )
    result = run_python(
        code, **{**os.environ, "CLUSTERWEB_VAR_DIR": str(tmp_path), "CLUSTERWEB_TEST": "0"}
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_env_example_lists_exactly_the_variables_settings_reads():
    listed = {
        line[1:].split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line.startswith("#") and "=" in line and line[1:2].isupper()
    }
    assert listed == set(settings.ENV_REGISTRY) | set(COMPOSE_ONLY)


def test_the_product_settings_read_the_sandbox_env_file(tmp_path):
    # Tests never see one: the test settings give every run its own CLUSTERWEB_VAR_DIR.
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "env").write_text("CLUSTER_NAME=from-sandbox-file\n# a comment\n")
    code = "from django.conf import settings as s; print(s.CLUSTER_NAME)"
    base = {k: v for k, v in os.environ.items() if k != "CLUSTER_NAME"}
    result = run_python(code, **{**base, "CLUSTERWEB_VAR_DIR": str(tmp_path)})
    assert result.stdout.strip() == "from-sandbox-file", result.stderr


def test_the_readme_configuration_table_is_the_generated_one():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("settings_env", format="markdown", stdout=out)
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- config-table:start -->")[1].split("<!-- config-table:end -->")[0]
    assert table.strip() == out.getvalue().strip()
