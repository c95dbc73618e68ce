import os
import shutil

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.personas",
    "tests.fixtures.browser",
    "tests.fixtures.kube",
    "tests.fixtures.jupyterhub",
    "tests.fixtures.signup",
    "tests.fixtures.accounts",
]


def pytest_sessionfinish(session, exitstatus):
    # The run directory (sockets, clock, failpoints, slapd data) belongs to the process that
    # created it in tests/settings.py.
    if os.environ.get("CLUSTERWEB_TEST_RUN_OWNER") == str(os.getpid()):
        shutil.rmtree(os.environ["CLUSTERWEB_TEST_RUN_DIR"], ignore_errors=True)
