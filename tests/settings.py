"""Test settings: the product's settings module, with the test seams switched on and every
outside service pointed at a throwaway server on a free loopback port.

This module is the only switch of test behaviour (TESTING: the shared clock, failpoints, a fast
password hasher); the product reads no variable for it. Subprocesses a test starts (a Celery
worker, manage.py) inherit DJANGO_SETTINGS_MODULE=tests.settings from pytest-django, and with it
this module.

The ports are chosen here, before Django reads its settings, and exported in the environment, so
the fixtures start each server on its port and every subprocess (a Celery worker) inherits them.
"""

import os
import secrets
import tempfile

from sandbox.kube.join import CA_CERT_HASH
from sandbox.services.base import free_port

if not os.environ.get("CLUSTERWEB_TEST_RUN_DIR"):
    os.environ["CLUSTERWEB_TEST_RUN_DIR"] = tempfile.mkdtemp(prefix="clusterweb-test-")
    os.environ["CLUSTERWEB_TEST_RUN_OWNER"] = str(os.getpid())
RUN_DIR = os.environ["CLUSTERWEB_TEST_RUN_DIR"]

_defaults = {
    "CLUSTERWEB_VAR_DIR": f"{RUN_DIR}/var",
    "CLUSTERWEB_CLOCK_FILE": f"{RUN_DIR}/clock",
    "CLUSTERWEB_FAILPOINTS": f"@{RUN_DIR}/failpoints",
    "SECRET_KEY": secrets.token_urlsafe(40),
    "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    "LDAP_URI": f"ldap://127.0.0.1:{free_port()}",
    "LDAP_BIND_DN": "cn=clusterweb,ou=services,dc=cluster,dc=local",
    "LDAP_BIND_PASSWORD": secrets.token_urlsafe(16),
    "LDAP_BASE_DN": "dc=cluster,dc=local",
    "EMAIL_HOST": "127.0.0.1",
    "EMAIL_PORT": str(free_port()),
    # Every delay the code waits on is short under tests.
    "LDAP_TIMEOUT": "1",
    "REDIS_TIMEOUT": "0.5",
    "EMAIL_TIMEOUT": "2",
    "DATABASE_TIMEOUT": "10",
    "HEARTBEAT_INTERVAL_SECONDS": "60",
    "SIGNUP_RETRY_SECONDS": "1",
    # Launches: the simulator's CA pin, a join timeout of seconds, quick looks.
    "KUBE_CA_CERT_HASH": CA_CERT_HASH,
    "LAUNCH_JOIN_TIMEOUT_SECONDS": "20",
    "LAUNCH_POLL_SECONDS": "0.1",
    "LAUNCH_LEASE_SECONDS": "3",
}
for _key, _value in _defaults.items():
    os.environ.setdefault(_key, _value)
for _key in ("CLUSTERWEB_SANDBOX", "CLUSTERWEB_IN_CLUSTER", "ALERT_EMAILS", "KUBECONFIG"):
    os.environ.pop(_key, None)

from clusterweb.settings import *  # noqa: E402, F403
from clusterweb.settings import DATABASES  # noqa: E402

TESTING = True
# Launch steps go to a queue of their own in tests, consumed only by the workers a launch test
# starts with the simulator's kubeconfig: the session's shared worker (no simulated cloud) never
# runs a step of a request another test approved. The product routes them to the default queue.
CELERY_TASK_ROUTES = {"provisioning.launches.tasks.launch_advance": {"queue": "launches"}}
# A worker subprocess a test starts against the simulator gets its kubeconfig here (KUBECONFIG
# itself is dropped above, so a developer's own cluster is never reached from tests).
KUBE_CONFIG_PATH = os.environ.get("CLUSTERWEB_TEST_KUBECONFIG", "")
# The shared clock offset and the armed failpoints, read by every process of the run.
CLOCK_FILE = os.environ["CLUSTERWEB_CLOCK_FILE"]
FAILPOINTS = os.environ["CLUSTERWEB_FAILPOINTS"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: a Celery worker subprocess must see the same test database.
    DATABASES["default"]["TEST"] = {"NAME": f"{RUN_DIR}/test.sqlite3"}

# Serve static files from the source folders: tests do not run collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
