"""Median time of a dashboard login (issue 13, finding 14), against the real slapd harness and
with Django's production password hasher (PBKDF2, not the tests' MD5).

Run: ``.venv/bin/python bench/login_timing.py [--repeats N]``. Starts a throwaway slapd with the
persona directory and a throwaway SQLite database, makes a local break-glass superuser, then
times ``login_attempt`` (the login page's service, in-process) for:

- an unknown name, a directory name (bob) and a local name (the break-glass account), each with a
  wrong password: the three must take the same time, or the time would tell which local names
  exist;
- bob and the break-glass account with their right passwords;
- for comparison, the old path: ``django.contrib.auth.authenticate()`` over both backends in the
  order of ``AUTHENTICATION_BACKENDS`` (break-glass first), which hashed a dummy password for
  every directory login.

Prints medians and ratios; asserts nothing about absolute times (machines differ).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.directory import BY_UID  # noqa: E402
from sandbox.services.slapd import SlapdServer  # noqa: E402

LOCAL_NAME, LOCAL_PASSWORD = "breakglass", "glass-bench-password-1"


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    action()  # warm: connections, imports, the user row
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    repeats = parser.parse_args().repeats

    with tempfile.TemporaryDirectory(prefix="clusterweb-login-bench-") as tmp:
        slapd = SlapdServer(Path(tmp) / "slapd").start()
        try:
            os.environ.update(slapd.env())
            os.environ.update(
                {
                    "CLUSTERWEB_TEST": "0",  # the production hasher
                    "CLUSTERWEB_VAR_DIR": tmp,
                    "LOG_LEVEL": "WARNING",  # not one audit line per attempt
                    "DJANGO_SETTINGS_MODULE": "clusterweb.settings",
                }
            )
            os.environ.pop("DATABASE_URL", None)
            run(repeats)
        finally:
            slapd.stop()


def run(repeats: int) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import authenticate
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.test import RequestFactory

    from clusterweb.accounts.login.services import login_attempt
    from clusterweb.accounts.models import LoginThrottle, User

    call_command("migrate", verbosity=0)
    User.objects.create_superuser(LOCAL_NAME, "glass@example.org", LOCAL_PASSWORD)
    bob = BY_UID["bob"]
    factory = RequestFactory()

    def attempt(username: str, password: str, expect: str | None) -> Callable[[], object]:
        def once() -> None:
            LoginThrottle.objects.all().delete()  # repeated failures must not hit the lockout
            request = factory.post("/login/")
            request.session = SessionStore()
            outcome = login_attempt(request=request, username=username, password=password)
            assert outcome.error == expect, (username, outcome)

        return once

    def old_path(username: str, password: str) -> Callable[[], object]:
        return lambda: authenticate(factory.post("/login/"), username=username, password=password)

    print(f"hasher: {settings.PASSWORD_HASHERS[0]}; median of {repeats} after one warm-up")
    rows = {
        "unknown name, wrong password": attempt("nobody-here", "wrong-password", "invalid"),
        "directory name (bob), wrong password": attempt(bob.uid, "wrong-password", "invalid"),
        "local name, wrong password": attempt(LOCAL_NAME, "wrong-password", "invalid"),
        "directory name (bob), right password": attempt(bob.uid, bob.password, None),
        "local name, right password": attempt(LOCAL_NAME, LOCAL_PASSWORD, None),
        "old path: bob's right password": old_path(bob.uid, bob.password),
        "old path: unknown name": old_path("nobody-here", "wrong-password"),
    }
    medians = {}
    for label, action in rows.items():
        medians[label] = median_seconds(action, repeats)
        print(f"  {label:40} {medians[label] * 1000:8.1f} ms")
    base = medians["unknown name, wrong password"]
    print("ratios of the failures to the unknown name's (1.00 = indistinguishable):")
    for label in ("directory name (bob), wrong password", "local name, wrong password"):
        print(f"  {label:40} {medians[label] / base:8.2f}")
    old = medians["old path: bob's right password"]
    new = medians["directory name (bob), right password"]
    print(
        f"bob's successful login, old path / new: {old / new:.1f}x ({old * 1000:.1f} ms -> "
        f"{new * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
