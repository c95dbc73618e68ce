"""The test seams: the shared clock and named failpoints. Both are inert outside tests."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clusterweb import clock
from clusterweb.failpoints import FailpointError, failpoint

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


def test_outside_test_settings_the_seams_are_inert(tmp_path):
    (tmp_path / "clock").write_text("86400")
    code = (
        "import django; django.setup()\n"
        "from datetime import UTC, datetime\n"
        "from clusterweb import clock; from clusterweb.failpoints import failpoint\n"
        "failpoint('x')\n"
        "print(abs((clock.now() - datetime.now(UTC)).total_seconds()) < 60)\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "clusterweb.settings",
        "CLUSTERWEB_TEST": "0",
        "CLUSTERWEB_CLOCK_FILE": str(tmp_path / "clock"),
        "CLUSTERWEB_FAILPOINTS": "x=crash",
        "CLUSTERWEB_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
