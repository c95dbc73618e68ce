"""The test seams: the shared clock and named failpoints. Both are inert outside tests."""

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clusterweb import clock
from clusterweb.failpoints import FailpointError, failpoint
from sandbox.services.base import free_port

REPO = Path(__file__).resolve().parent.parent


def test_now_is_timezone_aware_utc():
    assert clock.now().tzinfo is UTC


def test_the_shared_offset_moves_now(shared_clock):
    shared_clock.advance(7200)
    assert clock.now() - datetime.now(UTC) > timedelta(seconds=7190)
    shared_clock.set_offset(0)
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 5


def test_an_unarmed_failpoint_does_nothing(failpoints):
    failpoint("launch.after_run_instances")


def test_armed_failpoints_raise_sleep_and_reject_unknown_actions(failpoints):
    failpoints.arm("a.raise", "raise")
    failpoints.arm("a.sleep", "sleep:0.01")
    failpoints.arm("a.bogus", "explode")
    with pytest.raises(FailpointError, match=r"a\.raise"):
        failpoint("a.raise")
    failpoint("a.sleep")
    with pytest.raises(FailpointError, match="unknown action"):
        failpoint("a.bogus")


def test_a_crash_failpoint_ends_the_process_like_a_kill(failpoints):
    failpoints.arm("demo.crash", "crash")
    code = (
        "import django; django.setup(); from clusterweb.failpoints import failpoint; "
        "failpoint('demo.crash'); print('survived')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 70
    assert "survived" not in result.stdout


def test_a_kill_failpoint_sigkills_the_process(failpoints):
    failpoints.arm("demo.kill", "kill")
    code = (
        "import django; django.setup(); from clusterweb.failpoints import failpoint; "
        "failpoint('demo.kill'); print('survived')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -signal.SIGKILL
    assert "survived" not in result.stdout


def test_outside_test_settings_the_seams_are_inert_even_with_clusterweb_test_set(tmp_path):
    # CLUSTERWEB_TEST=1 left in a production environment switches nothing on: test behaviour
    # comes only from the test settings module.
    (tmp_path / "clock").write_text("86400")
    code = (
        "import django; django.setup()\n"
        "from datetime import UTC, datetime\n"
        "from django.conf import settings; from django.contrib.auth.hashers import make_password\n"
        "from clusterweb import clock; from clusterweb.failpoints import failpoint\n"
        "failpoint('x')\n"
        "print(settings.TESTING, make_password('pw').split('$')[0])\n"
        "print(abs((clock.now() - datetime.now(UTC)).total_seconds()) < 60)\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "clusterweb.settings",
        "CLUSTERWEB_TEST": "1",
        "CLUSTERWEB_CLOCK_FILE": str(tmp_path / "clock"),
        "CLUSTERWEB_FAILPOINTS": "x=crash",
        "CLUSTERWEB_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "pbkdf2_sha256", "True"]


REFUSAL = (
    "clusterweb: configuration error: CLUSTERWEB_TEST is set but the settings module "
    "clusterweb.settings is not the test settings (tests.settings): unset CLUSTERWEB_TEST"
)


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "gunicorn", "-c", "python:clusterweb.gunicorn_conf", "clusterweb.wsgi"],
        ["-m", "gunicorn", "--workers", "1", "-b", "127.0.0.1:{port}", "clusterweb.wsgi"],
        ["-m", "celery", "-A", "clusterweb", "worker", "-P", "solo"],
        ["-m", "celery", "-A", "clusterweb", "beat", "-s", "{tmp}/beat-schedule"],
        ["manage.py", "migrate"],
    ],
    ids=["gunicorn-with-config", "bare-gunicorn", "worker", "beat", "manage.py"],
)
def test_a_start_that_finds_clusterweb_test_set_refuses_in_one_line(argv, tmp_path):
    argv = [a.format(port=free_port(), tmp=tmp_path) for a in argv]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CLUSTERWEB_TEST")},
        "DJANGO_SETTINGS_MODULE": "clusterweb.settings",
        "CLUSTERWEB_VAR_DIR": str(tmp_path),
        "CLUSTERWEB_TEST": "1",
    }
    result = subprocess.run(
        [sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode != 0
    # gunicorn logs its own start and halt around the line; nothing else is ours.
    ours = [line for line in result.stderr.splitlines() if "clusterweb" in line]
    assert ours == [REFUSAL], result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("beat-schedule*"))


def test_the_worker_the_tests_start_loads_the_test_settings(celery_worker):
    environ = Path(f"/proc/{celery_worker.process.process.pid}/environ").read_bytes()
    variables = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
    assert variables[b"DJANGO_SETTINGS_MODULE"] == b"tests.settings"
    assert b"CLUSTERWEB_TEST" not in variables
    # And it behaves so: test_celery's clock and failpoint tests reach it only under TESTING.
