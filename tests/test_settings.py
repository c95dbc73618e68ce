"""Settings come from the environment, through typed readers that name a malformed variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from clusterweb import env

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
    assert listed == set(settings.ENV_REGISTRY)


def test_the_sandbox_env_file_is_read_outside_tests_only(tmp_path):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "env").write_text("CLUSTER_NAME=from-sandbox-file\n# a comment\n")
    code = "from django.conf import settings as s; print(s.CLUSTER_NAME)"
    base = {k: v for k, v in os.environ.items() if k != "CLUSTER_NAME"}
    for testing, expected in (("0", "from-sandbox-file"), ("1", "sandbox")):
        result = run_python(
            code, **{**base, "CLUSTERWEB_VAR_DIR": str(tmp_path), "CLUSTERWEB_TEST": testing}
        )
        assert result.stdout.strip() == expected, result.stderr


def test_the_readme_configuration_table_is_the_generated_one():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("settings_env", format="markdown", stdout=out)
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- config-table:start -->")[1].split("<!-- config-table:end -->")[0]
    assert table.strip() == out.getvalue().strip()
