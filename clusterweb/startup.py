"""The start-up check every Clusterweb process runs before it serves or works: manage.py,
gunicorn (with or without the project's config), the Celery worker and beat.

A configuration that cannot work stops the process with one line naming the variable (exit
status 2), never a traceback that buries it, and never a process that starts and then fails on
every request.
"""

from __future__ import annotations

import os
import sys

from django.core.exceptions import ImproperlyConfigured

EXIT_CONFIGURATION = 2


def configuration_error() -> str | None:
    """Load the settings; the one line that says why this process must not start, or None."""
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - reads the environment now
    except ImproperlyConfigured as exc:
        return f"clusterweb: configuration error: {exc}"
    if "CLUSTERWEB_TEST" in os.environ and not getattr(settings, "TESTING", False):
        # Test behaviour (the movable clock, failpoints, MD5 hashing) comes only from the test
        # settings module; a variable left over from a test environment must not look like it
        # switched anything on.
        return (
            "clusterweb: configuration error: CLUSTERWEB_TEST is set but the settings module "
            f"{os.environ.get('DJANGO_SETTINGS_MODULE', 'clusterweb.settings')} is not the test "
            "settings (tests.settings): unset CLUSTERWEB_TEST"
        )
    return None


def exit_on_configuration_error(status: int = EXIT_CONFIGURATION) -> None:
    """Print the one line and exit (status 2 unless told) when the configuration cannot work."""
    line = configuration_error()
    if line:
        print(line, file=sys.stderr, flush=True)
        sys.exit(status)
