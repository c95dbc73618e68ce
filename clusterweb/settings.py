"""Clusterweb's settings: one module, read from the environment.

Every variable goes through a typed reader in ``clusterweb.env`` that registers it (see
``ENV_REGISTRY``) and rejects malformed values with a message naming the variable. Defaults run on a
laptop: SQLite under ``var/``, every service on loopback, DEBUG off. Importing this module connects
to nothing.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from clusterweb.env import (
    REGISTRY,
    database_url_problem,
    env_bind,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    env_url,
    redact_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# Upper bounds of the numbers read below: every one is finite and bounded (a duration of 10**20
# seconds passes a "whole number" test and then overflows timedelta on every request).
MAX_TIMEOUT_SECONDS = 600  # the longest any single outside call may hang a worker
MAX_INTERVAL_SECONDS = 366 * 24 * 3600  # a year: no interval or lifetime here is longer
MAX_INTERVAL_HOURS = 366 * 24
MAX_COUNT = 100_000

VAR_DIR = Path(
    env_str(
        "CLUSTERWEB_VAR_DIR",
        str(BASE_DIR / "var"),
        "Where Clusterweb keeps its "
        "local state: the SQLite database, the generated secret key, mail files.",
    )
)

# --- Process mode -------------------------------------------------------------------------------
# The test seams (the movable clock, failpoints, a fast password hasher) are switched on by the
# test settings module (tests/settings.py) and by nothing this module reads: a variable left set
# in a production environment cannot change how Clusterweb behaves. (A web, worker or beat start
# that finds CLUSTERWEB_TEST set refuses to run: clusterweb.startup.)
TESTING = False
SANDBOX_ENV_FILE = VAR_DIR / "sandbox" / "env"
if SANDBOX_ENV_FILE.exists():
    # `make run` writes this file so that manage.py in the same checkout reaches the running
    # sandbox. Variables already set in the environment win. (The test settings give every run
    # its own CLUSTERWEB_VAR_DIR, where no such file exists.)
    for _line in SANDBOX_ENV_FILE.read_text().splitlines():
        _key, _sep, _value = _line.partition("=")
        if _sep and _key.strip() and not _key.lstrip().startswith("#"):
            os.environ.setdefault(_key.strip(), _value.strip())

SANDBOX = env_bool(
    "CLUSTERWEB_SANDBOX",
    False,
    "Run against the simulated cloud of `make run`: "
    "enables the sandbox-only pages (Mail). Off in every real deployment.",
)
IN_CLUSTER = env_bool(
    "CLUSTERWEB_IN_CLUSTER",
    False,
    "The process runs inside the cluster behind "
    "the bastion (no Ingress): only then may the web server bind a "
    "non-loopback address.",
)
BIND = env_bind(
    "CLUSTERWEB_BIND",
    "127.0.0.1:8000",
    "Address the web server (gunicorn) binds. Must be loopback unless CLUSTERWEB_IN_CLUSTER=1.",
)
SIGNUP_BIND = env_bind(
    "CLUSTERWEB_SIGNUP_BIND",
    "127.0.0.1:8001",
    "Address the signup site binds. Same loopback rule as CLUSTERWEB_BIND.",
)
CLUSTER_NAME = env_str(
    "CLUSTER_NAME",
    "sandbox",
    "The cluster's name: the value of the "
    "`clusterweb:cluster` EC2 tag that makes an instance a member.",
)

DEBUG = env_bool("DEBUG", False, "Django debug pages. Never on outside a laptop.")
SECRET_KEY = env_secret(
    "SECRET_KEY", "", "Django's signing key. Default: generated once into var/secret_key."
)
if not SECRET_KEY:
    _key_file = VAR_DIR / "secret_key"
    if _key_file.exists():
        SECRET_KEY = _key_file.read_text().strip()
    else:
        SECRET_KEY = secrets.token_urlsafe(50)
        _key_file.parent.mkdir(parents=True, exist_ok=True)
        _key_file.touch(mode=0o600)
        _key_file.write_text(SECRET_KEY)
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS",
    ["127.0.0.1", "localhost", "[::1]"],
    "Host names the site answers to (the tunnel's end is 127.0.0.1). Never empty: Django would "
    "answer every request with 400.",
    required=True,
)
LOG_LEVEL = env_choice(
    "LOG_LEVEL",
    "INFO",
    "Level of the application's log.",
    choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
)

# --- Applications -------------------------------------------------------------------------------
INSTALLED_APPS = [
    # Before staticfiles: our runserver refuses non-loopback binds.
    "clusterweb",
    "clusterweb.accounts",
    "clusterweb.audit",
    "clusterweb.health",
    "provisioning",
    "billing",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
]
if SANDBOX:
    # The sandbox's seed command and Mail page; never installed in a real deployment.
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "clusterweb.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "clusterweb.accounts.login.middleware.SessionIdleMiddleware",
    "clusterweb.accounts.login.middleware.MembershipRecheckMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "clusterweb.accounts.login.middleware.LoginRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

SITE = env_str(
    "CLUSTERWEB_SITE",
    "web",
    "Which site this process serves: `web` (the dashboard, "
    "port 8000) or `signup` (the signup pages only, port 8001, own cookie names).",
)
if SITE not in ("web", "signup"):
    raise ImproperlyConfigured(
        f"Environment variable CLUSTERWEB_SITE={SITE!r} is malformed: expected web or signup"
    )
WSGI_APPLICATION = "clusterweb.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "clusterweb.context_processors.navigation",
                "clusterweb.health.context_processors.health_banner",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'clusterweb.sqlite3'}",
    "postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:///ABSOLUTE/PATH. The web site, worker and "
    "beat share it.",
    schemes=("sqlite", "postgres", "postgresql"),
    shown_default="sqlite:///<CLUSTERWEB_VAR_DIR>/clusterweb.sqlite3",
)
DATABASE_TIMEOUT = env_int(
    "DATABASE_TIMEOUT",
    5,
    "Seconds to wait for a database connection or (SQLite) a write lock.",
    minimum=1,
    maximum=MAX_TIMEOUT_SECONDS,
)
_problem = database_url_problem(DATABASE_URL)
if _problem:
    raise ImproperlyConfigured(
        f"Environment variable DATABASE_URL={redact_url(DATABASE_URL)!r} is malformed: {_problem}"
    )
_db = dj_database_url.parse(DATABASE_URL)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    _db["OPTIONS"] = {
        # Web, worker and beat share one file: WAL lets readers run beside the writer, the busy
        # timeout queues writers instead of failing, and IMMEDIATE takes the write lock at BEGIN so
        # a read-then-write transaction cannot deadlock on lock upgrade.
        "timeout": DATABASE_TIMEOUT,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
        f"PRAGMA busy_timeout={DATABASE_TIMEOUT * 1000};",
    }
else:
    _db["CONN_MAX_AGE"] = 60
    _db["CONN_HEALTH_CHECKS"] = True
    _db["OPTIONS"] = {"connect_timeout": DATABASE_TIMEOUT}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication: the cluster's LDAP directory -----------------------------------------------
import ldap  # noqa: E402 - after the environment has been read; importing it connects to nothing
from django_auth_ldap.config import LDAPSearch  # noqa: E402

from clusterweb.accounts.group_types import MemberUidGroupType  # noqa: E402

LDAP_URI = env_url(
    "LDAP_URI",
    "ldap://127.0.0.1:389",
    "The cluster's OpenLDAP server.",
    schemes=("ldap", "ldaps", "ldapi"),
)
LDAP_BIND_DN = env_str(
    "LDAP_BIND_DN",
    "",
    "DN Clusterweb binds as to search the directory "
    "(read-only is enough for login). Empty: anonymous.",
)
LDAP_BIND_PASSWORD = env_secret("LDAP_BIND_PASSWORD", "", "Password of LDAP_BIND_DN.")
LDAP_BASE_DN = env_str("LDAP_BASE_DN", "dc=cluster,dc=local", "The directory's suffix.")
LDAP_PEOPLE_DN = env_str("LDAP_PEOPLE_DN", f"ou=people,{LDAP_BASE_DN}", "Where users live.")
LDAP_GROUPS_DN = env_str("LDAP_GROUPS_DN", f"ou=groups,{LDAP_BASE_DN}", "Where posixGroups live.")
LDAP_ADMIN_GROUP = env_str("LDAP_ADMIN_GROUP", "admins", "posixGroup whose members are admins.")
LDAP_USER_GROUP = env_str("LDAP_USER_GROUP", "users", "posixGroup whose members are collaborators.")
LDAP_TIMEOUT = env_float(
    "LDAP_TIMEOUT",
    5.0,
    "Seconds before an LDAP connect or operation is "
    "given up (the login page then says the directory is unreachable).",
    minimum=0.1,
    maximum=MAX_TIMEOUT_SECONDS,
)
LDAP_START_TLS = env_bool("LDAP_START_TLS", False, "Use StartTLS on ldap:// connections.")
DIRECTORY_UID_PATTERN = env_str(
    "DIRECTORY_UID_PATTERN",
    "[a-z_][a-z0-9_-]{0,31}",
    "Regular expression every directory uid matches (after stripping and lower-casing): login "
    "names outside it are refused before any LDAP call, and signup names must match it. See "
    "docs/accounts.md.",
)
try:
    _uid_pattern = re.compile(DIRECTORY_UID_PATTERN)
except re.error as exc:
    raise ImproperlyConfigured(
        f"Environment variable DIRECTORY_UID_PATTERN={DIRECTORY_UID_PATTERN!r} is malformed: {exc}"
    ) from exc
if _uid_pattern.fullmatch("") or not _uid_pattern.pattern.isascii():
    raise ImproperlyConfigured(
        "Environment variable DIRECTORY_UID_PATTERN must be ASCII and must not match an empty name."
    )
AUTH_RECHECK_SECONDS = env_int(
    "AUTH_RECHECK_SECONDS",
    300,
    "How often a logged-in user's groups are re-read from the directory.",
    minimum=1,
    maximum=MAX_INTERVAL_SECONDS,
)

AUTH_LDAP_SERVER_URI = LDAP_URI
AUTH_LDAP_BIND_DN = LDAP_BIND_DN
AUTH_LDAP_BIND_PASSWORD = LDAP_BIND_PASSWORD
AUTH_LDAP_START_TLS = LDAP_START_TLS
AUTH_LDAP_CONNECTION_OPTIONS = {
    ldap.OPT_NETWORK_TIMEOUT: LDAP_TIMEOUT,
    ldap.OPT_TIMEOUT: LDAP_TIMEOUT,
    ldap.OPT_REFERRALS: 0,
}
# LDAPSearch escapes the username before it goes into the filter.
AUTH_LDAP_USER_SEARCH = LDAPSearch(LDAP_PEOPLE_DN, ldap.SCOPE_ONELEVEL, "(uid=%(user)s)")
AUTH_LDAP_GROUP_SEARCH = LDAPSearch(LDAP_GROUPS_DN, ldap.SCOPE_ONELEVEL, "(objectClass=posixGroup)")
# Membership is memberUid only: a signup's gidNumber is the users group's, and django-auth-ldap's
# PosixGroupType would count that primary group as membership (issue 13, finding 4).
AUTH_LDAP_GROUP_TYPE = MemberUidGroupType(name_attr="cn")
AUTH_LDAP_USER_ATTR_MAP = {"first_name": "givenName", "last_name": "sn", "email": "mail"}
AUTH_LDAP_USER_FLAGS_BY_GROUP = {
    "is_cluster_admin": f"cn={LDAP_ADMIN_GROUP},{LDAP_GROUPS_DN}",
    "is_collaborator": f"cn={LDAP_USER_GROUP},{LDAP_GROUPS_DN}",
}
AUTH_LDAP_ALWAYS_UPDATE_USER = True
AUTH_LDAP_CACHE_TIMEOUT = 0  # group membership must be re-read on every check

AUTHENTICATION_BACKENDS = [
    # Break-glass first: a local superuser logs in without touching LDAP, so it works while the
    # directory is down. Users created from LDAP have no usable local password.
    "clusterweb.accounts.backends.BreakGlassBackend",
    "clusterweb.accounts.backends.ClusterLDAPBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LOGIN_LOCKOUT_FAILURES = env_int(
    "LOGIN_LOCKOUT_FAILURES",
    5,
    "Failed logins for one username (within the window) that lock it.",
    minimum=1,
    maximum=MAX_COUNT,
)
LOGIN_LOCKOUT_WINDOW_SECONDS = env_int(
    "LOGIN_LOCKOUT_WINDOW_SECONDS",
    900,
    "Window in which failures are counted.",
    minimum=1,
    maximum=MAX_INTERVAL_SECONDS,
)
LOGIN_LOCKOUT_SECONDS = env_int(
    "LOGIN_LOCKOUT_SECONDS",
    900,
    "How long a locked username stays locked (cool-off).",
    minimum=1,
    maximum=MAX_INTERVAL_SECONDS,
)

# --- Sessions and cookies -----------------------------------------------------------------------
# Plain HTTP through an encrypted SSH tunnel: cookies cannot be Secure; they are HttpOnly and Lax.
# Sessions live in the database (not Redis: a Redis outage breaks no page); the engine and cookie
# names are per site (SITES, below).
SESSION_IDLE_SECONDS = env_int(
    "SESSION_IDLE_SECONDS",
    3600,
    "Inactivity after which a session ends (background polling does not count as activity).",
    minimum=60,
    maximum=MAX_INTERVAL_SECONDS,
)
SESSION_COOKIE_AGE = env_int(
    "SESSION_MAX_AGE_SECONDS",
    12 * 3600,
    "Absolute session lifetime.",
    minimum=60,
    maximum=MAX_INTERVAL_SECONDS,
)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = False
CSRF_FAILURE_VIEW = "clusterweb.views.csrf_failure"

# --- The two sites -----------------------------------------------------------------------------
# What differs between the dashboard and the signup site (CLUSTERWEB_SITE picks one; tests switch
# with these). The signup site has its own cookie names, its own session table (a dashboard
# session key finds nothing there, and the reverse: clusterweb.accounts.site_sessions) and no
# authentication: nothing there knows a logged-in user.
_DASHBOARD_ONLY_MIDDLEWARE = (
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "clusterweb.accounts.login.middleware.SessionIdleMiddleware",
    "clusterweb.accounts.login.middleware.MembershipRecheckMiddleware",
    "clusterweb.accounts.login.middleware.LoginRequiredMiddleware",
)
SITES = {
    "web": {
        "ROOT_URLCONF": "clusterweb.urls",
        "MIDDLEWARE": list(MIDDLEWARE),
        "SESSION_ENGINE": "django.contrib.sessions.backends.db",
        "SESSION_COOKIE_NAME": "clusterweb_session",
        "CSRF_COOKIE_NAME": "clusterweb_csrf",
    },
    "signup": {
        "ROOT_URLCONF": "clusterweb.urls_signup",
        "MIDDLEWARE": [m for m in MIDDLEWARE if m not in _DASHBOARD_ONLY_MIDDLEWARE],
        "SESSION_ENGINE": "clusterweb.accounts.site_sessions",
        "SESSION_COOKIE_NAME": "clusterweb_signup_session",
        "CSRF_COOKIE_NAME": "clusterweb_signup_csrf",
    },
}
ROOT_URLCONF = SITES[SITE]["ROOT_URLCONF"]
MIDDLEWARE = SITES[SITE]["MIDDLEWARE"]
SESSION_ENGINE = SITES[SITE]["SESSION_ENGINE"]
SESSION_COOKIE_NAME = SITES[SITE]["SESSION_COOKIE_NAME"]
CSRF_COOKIE_NAME = SITES[SITE]["CSRF_COOKIE_NAME"]

# --- Security headers ---------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

# --- Static files -------------------------------------------------------------------------------
STATIC_URL = "/static/"
# Collected once per checkout or image (not per VAR_DIR): whitenoise serves them from here.
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Redis and Celery ---------------------------------------------------------------------------
REDIS_URL = env_url(
    "REDIS_URL",
    "redis://127.0.0.1:6379/0",
    "Redis: the Celery broker, nothing else (sessions, lockouts and task results live in the "
    "database, so a Redis outage breaks no page).",
    schemes=("redis", "rediss"),
)
REDIS_TIMEOUT = env_float(
    "REDIS_TIMEOUT",
    2.0,
    "Seconds before a Redis connect or command is given up.",
    minimum=0.1,
    maximum=MAX_TIMEOUT_SECONDS,
)
CELERY_BROKER_URL = REDIS_URL
# No result backend: every task's outcome is a row in the database (status, error, log). A Redis
# result store would also make every publish subscribe to results, which hangs a web request for
# many seconds while Redis is down.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis redelivers a task that is not acknowledged within this time; every retry countdown is
    # far below it.
    "visibility_timeout": 3600,
    "socket_connect_timeout": REDIS_TIMEOUT,
    "socket_timeout": REDIS_TIMEOUT,
    # Connecting to publish gives up after one quick retry: a web request must not hang on a
    # Redis outage (the worker's own reconnect loop uses broker_connection_max_retries).
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = REDIS_TIMEOUT
CELERY_REDIS_SOCKET_TIMEOUT = REDIS_TIMEOUT
# A publish that fails is not retried for long inside a web request: the row is the truth and a
# sweeper re-enqueues what never started.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

HEARTBEAT_INTERVAL_SECONDS = env_int(
    "HEARTBEAT_INTERVAL_SECONDS",
    60,
    "Interval of the heartbeat and watchdog jobs.",
    minimum=1,
    maximum=MAX_INTERVAL_SECONDS,
)
ALERT_EMAILS = env_list(
    "ALERT_EMAILS",
    [],
    "Where operational alerts go (late jobs). Empty: "
    "every admin who has logged in and has an email address.",
)

AUDIT_RETENTION_DAYS = env_int(
    "AUDIT_RETENTION_DAYS",
    400,
    "Days an audit event is kept; the daily cleanup removes older ones (and expired sessions "
    "and stale rate-limit rows).",
    minimum=1,
    maximum=36500,
)

# --- Email --------------------------------------------------------------------------------------
EMAIL_HOST = env_str(
    "EMAIL_HOST", "", "SMTP server. Empty: mail is written to var/mail/ instead of sent."
)
EMAIL_PORT = env_int("EMAIL_PORT", 25, "SMTP port.", minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "", "SMTP user name (empty: no authentication).")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "", "SMTP password.")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False, "STARTTLS to the SMTP server.")
EMAIL_TIMEOUT = env_int(
    "EMAIL_TIMEOUT",
    10,
    "Seconds before an SMTP connection is given up.",
    minimum=1,
    maximum=MAX_TIMEOUT_SECONDS,
)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "clusterweb@localhost", "Sender of every mail.")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"

# --- Outside systems read by adapters -----------------------------------------------------------
AWS_ENDPOINT_URL = env_str(
    "AWS_ENDPOINT_URL",
    "",
    "Read by boto3 itself: set only to reach a "
    "moto server (the sandbox). Real AWS uses boto3's credential chain.",
)
AWS_REGION = env_str("AWS_REGION", "eu-west-1", "The AWS region of the cluster.")
AWS_CONNECT_TIMEOUT = env_float(
    "AWS_CONNECT_TIMEOUT",
    5.0,
    "Seconds before connecting to an AWS API is given up.",
    minimum=0.1,
    maximum=MAX_TIMEOUT_SECONDS,
)
AWS_READ_TIMEOUT = env_float(
    "AWS_READ_TIMEOUT",
    20.0,
    "Seconds to wait for an AWS API's answer (Cost Explorer is the slow one).",
    minimum=0.1,
    maximum=MAX_TIMEOUT_SECONDS,
)
AWS_MAX_ATTEMPTS = env_int(
    "AWS_MAX_ATTEMPTS",
    4,
    "Attempts per AWS call, the first included: boto3's adaptive mode retries throttling, "
    "5xx and connection errors with backoff up to this many.",
    minimum=1,
    maximum=20,
)
SPOT_INTERRUPTION_QUEUE_URL = env_url(
    "SPOT_INTERRUPTION_QUEUE_URL",
    "",
    "SQS queue receiving EC2's two-minute spot interruption warnings (an EventBridge rule on "
    "`EC2 Spot Instance Interruption Warning` with this queue as target). Empty: none.",
    schemes=("https", "http"),
)
KUBE_CONFIG_PATH = env_str(
    "KUBECONFIG", "", "Path of a kubeconfig. Empty: in-cluster configuration (the service account)."
)
KUBE_REQUEST_TIMEOUT = env_float(
    "KUBE_REQUEST_TIMEOUT",
    10.0,
    "Seconds before a Kubernetes API request is given up.",
    minimum=0.1,
    maximum=MAX_TIMEOUT_SECONDS,
)

# --- JupyterHub ---------------------------------------------------------------------------------
# Read by clusterweb.integrations.jupyterhub when first used: Clusterweb is a service of the hub
# whose token's role has the scopes admin:users and servers (sandbox/jupyterhub/README.md).
JUPYTERHUB_URL = env_url(
    "JUPYTERHUB_URL",
    "",
    "The JupyterHub Clusterweb starts users' servers on: its public proxy or the hub itself "
    "(e.g. http://hub:8081); the REST API is under /hub/api. Empty: JupyterHub is not configured.",
    schemes=("http", "https"),
)
JUPYTERHUB_API_TOKEN = env_secret(
    "JUPYTERHUB_API_TOKEN",
    "",
    "API token of Clusterweb's service in JupyterHub (its role needs the scopes admin:users and "
    "servers).",
)
JUPYTERHUB_TIMEOUT = env_float(
    "JUPYTERHUB_TIMEOUT",
    10.0,
    "Seconds before a JupyterHub API request is given up (each request; waiting for a server to "
    "start takes longer).",
    minimum=0.1,
    maximum=MAX_TIMEOUT_SECONDS,
)

# --- Signup -------------------------------------------------------------------------------------
# Collaborators sign up on the signup site (port 8001, through the bastion's tunnel-only `join`
# account) with an admin's invitation; an approval writes their LDAP entry. See docs/signup.md.
SIGNUP_BASE_URL = env_url(
    "SIGNUP_BASE_URL",
    "http://127.0.0.1:8001",
    "The signup site as a newcomer's browser reaches it through the tunnel: invitation links "
    "start with it.",
    schemes=("http", "https"),
)
DASHBOARD_BASE_URL = env_url(
    "DASHBOARD_BASE_URL",
    "http://127.0.0.1:8000",
    "The dashboard as a user's browser reaches it through the tunnel: links in emails start "
    "with it.",
    schemes=("http", "https"),
)
BASTION_HOST = env_str(
    "BASTION_HOST",
    "127.0.0.1",
    "The bastion's public host name, as tunnel commands in emails name it.",
)
BASTION_PORT = env_int("BASTION_PORT", 22, "The bastion's SSH port.", minimum=1, maximum=65535)
SIGNUP_TUNNEL_USER = env_str(
    "SIGNUP_TUNNEL_USER", "join", "The bastion's tunnel-only account that opens the signup site."
)
SIGNUP_HOST = env_str(
    "SIGNUP_HOST",
    "127.0.0.1",
    "Where the bastion forwards the signup tunnel to (the signup site's address seen from the "
    "bastion).",
)
DASHBOARD_HOST = env_str(
    "DASHBOARD_HOST",
    "127.0.0.1",
    "Where the bastion forwards a user's dashboard tunnel to (named in the welcome email).",
)
SIGNUP_INVITATION_HOURS = env_int(
    "SIGNUP_INVITATION_HOURS",
    72,
    "How long an invitation link stays valid.",
    minimum=1,
    maximum=MAX_INTERVAL_HOURS,
)
SIGNUP_AUTO_APPROVE = env_bool(
    "SIGNUP_AUTO_APPROVE",
    False,
    "Approve a signup at once when the admin who invited it is still an admin (no review).",
)
SIGNUP_PASSWORD_SCHEME = env_str(
    "SIGNUP_PASSWORD_SCHEME",
    "ARGON2",
    "How a new password is hashed for the directory: ARGON2 (slapd's argon2 module) or SSHA512 "
    "(slapd's pw-sha2 module).",
).upper()
if SIGNUP_PASSWORD_SCHEME not in ("ARGON2", "SSHA512"):
    raise ImproperlyConfigured(
        f"Environment variable SIGNUP_PASSWORD_SCHEME={SIGNUP_PASSWORD_SCHEME!r} is malformed: "
        "expected ARGON2 or SSHA512"
    )
SIGNUP_PASSWORD_MIN_LENGTH = env_int(
    "SIGNUP_PASSWORD_MIN_LENGTH",
    12,
    "Shortest password a signup may choose.",
    minimum=8,
    maximum=128,
)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": SIGNUP_PASSWORD_MIN_LENGTH},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Names that are, or may become, a local account or group on a cluster host, where a directory
# account of the same name would share its identity (sudo rights, group access, an SSH login):
# fmt: off
_RESERVED_USERNAMES = [
    # Ours and the cluster's services.
    "root", "admin", "admins", "administrator", "join", "bastion", "clusterweb", "clusterweb-keys",
    "jupyter", "jupyterhub", "spark", "kube", "kubernetes", "kubelet", "etcd", "users",
    # Debian base-passwd: the static users and groups of every Debian/Ubuntu host
    # (/usr/share/base-passwd/passwd.master and group.master, salsa.debian.org/debian/base-passwd).
    "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "_apt", "adm", "tty",
    "disk", "kmem", "dialout", "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio", "dip",
    "operator", "src", "shadow", "utmp", "video", "sasl", "plugdev", "staff", "wheel",
    # systemd's and Debian packages' system users and groups (systemd sysusers.d, Debian Policy
    # 9.2.2 dynamically allocated ids; the ones an Ubuntu/Debian server image carries).
    "systemd-network", "systemd-resolve", "systemd-timesync", "systemd-journal",
    "systemd-coredump", "systemd-oom", "systemd-journal-remote", "messagebus", "sshd", "_ssh",
    "polkitd", "netdev", "input", "kvm", "render", "sgx", "crontab", "uuidd", "tss", "rdma",
    "_rpc", "statd", "dnsmasq", "usbmux", "fwupd-refresh", "avahi", "geoclue",
    # Ubuntu cloud images (/etc/passwd and /etc/group of the server cloud image): the default
    # user and the groups cloud-init gives it (lxd), and the image's daemons.
    "ubuntu", "debian", "lxd", "syslog", "landscape", "pollinate", "tcpdump", "_chrony",
    "chrony", "ntp", "_ntp",
    # Amazon Linux and AWS agents: ec2-user (the AMI's default user); ssm-user (created by the
    # SSM agent for Session Manager, with passwordless sudo: docs.aws.amazon.com/systems-manager/
    # latest/userguide/session-manager-getting-started-ssm-user-permissions.html);
    # ec2-instance-connect (runs EC2 Instance Connect's AuthorizedKeysCommand: docs.aws.amazon.com/
    # AWSEC2/latest/UserGuide/ec2-instance-connect-set-up.html); Amazon Linux's daemons.
    "ec2-user", "ssm-user", "ec2-instance-connect", "rpc", "rpcuser", "dbus", "libstoragemgmt",
    "nfsnobody", "cwagent", "amazon-ssm-agent",
    # Other cloud images' default users (cloud-init's default_user: RHEL's cloud-user and the
    # distributions' own names).
    "cloud-user", "centos", "fedora", "rocky", "almalinux", "core", "opc", "azureuser",
    # Jupyter docker-stacks' notebook user (NB_USER, jupyter-docker-stacks.readthedocs.io,
    # "Common Features").
    "jovyan",
    # Container runtimes (the docker group is root on the host) and directory clients on the hosts
    # (nss-pam-ldapd's nslcd, SSSD, nscd).
    "docker", "containerd", "dockremap", "nslcd", "sssd", "nscd",
    # Databases and mail on cluster hosts.
    "postgres", "redis", "openldap", "postfix", "postdrop", "mysql",
]
# fmt: on
SIGNUP_RESERVED_USERNAMES = env_list(
    "SIGNUP_RESERVED_USERNAMES",
    _RESERVED_USERNAMES,
    "User names nobody may sign up with (system accounts and groups, the bastion's own).",
)
SIGNUP_HOME_BASE = env_str(
    "SIGNUP_HOME_BASE", "/home", "Parent of a new account's home directory (HOME_BASE/uid)."
)
SIGNUP_LOGIN_SHELL = env_str("SIGNUP_LOGIN_SHELL", "/bin/bash", "A new account's login shell.")
SIGNUP_UID_NUMBER_MIN = env_int(
    "SIGNUP_UID_NUMBER_MIN",
    10001,
    "Lowest uidNumber given to a new account (the allocator starts above the directory's highest).",
    minimum=1000,
    maximum=2_000_000_000,
)
SIGNUP_UID_LOCKS_DN = env_str(
    "SIGNUP_UID_LOCKS_DN",
    f"ou=uidnumbers,{LDAP_BASE_DN}",
    "Where the allocator claims uidNumbers (one entry per number, so the directory decides a "
    "race). Clusterweb's service account needs write access there.",
)
SIGNUP_SSH_RSA_MIN_BITS = env_int(
    "SIGNUP_SSH_RSA_MIN_BITS", 3072, "Smallest RSA SSH key accepted.", minimum=2048, maximum=16384
)
SIGNUP_RETRY_SECONDS = env_int(
    "SIGNUP_RETRY_SECONDS",
    10,
    "First retry delay of an approval waiting for the directory; it doubles up to 30 times this.",
    minimum=1,
    maximum=3600,
)
SIGNUP_SWEEP_SECONDS = env_int(
    "SIGNUP_SWEEP_SECONDS",
    300,
    "Interval of the signup sweeper (expires invitations, re-enqueues stuck approvals).",
    minimum=10,
    maximum=MAX_INTERVAL_SECONDS,
)

# --- Launch requests ------------------------------------------------------------------------------
LAUNCH_APPROVAL_HOURS = env_int(
    "LAUNCH_APPROVAL_HOURS",
    24,
    "How long a launch request may wait for an admin's decision before it expires.",
    minimum=1,
    maximum=MAX_INTERVAL_HOURS,
)
LAUNCH_EXPIRE_SWEEP_SECONDS = env_int(
    "LAUNCH_EXPIRE_SWEEP_SECONDS",
    300,
    "Interval of the sweeper that expires launch requests nobody decided in time.",
    minimum=10,
    maximum=MAX_INTERVAL_SECONDS,
)

# --- Prices -------------------------------------------------------------------------------------
# The catalog (bundled tables, bulk price list imports, admin overrides) and the spot price points
# the spot price sync records. A spot figure is used only while the region's last successful sync
# is this recent; past it, every spot lookup shows on-demand and says the spot price is unknown.
SPOT_PRICE_MAX_AGE_HOURS = env_int(
    "SPOT_PRICE_MAX_AGE_HOURS",
    6,
    "Hours after the last successful spot price sync of a region during which its spot prices "
    "are used; after that spot prices count as unknown and on-demand prices are shown instead.",
    minimum=1,
    maximum=MAX_INTERVAL_HOURS,
)

# --- Inventory ----------------------------------------------------------------------------------
# The inventory sync (provisioning.inventory) reads EC2, Kubernetes, EBS, EFS, S3 and public IPv4
# addresses into the database; pages read only the database. See docs/inventory.md.
INVENTORY_SYNC_SECONDS = env_int(
    "INVENTORY_SYNC_SECONDS",
    60,
    "Interval of the inventory sync (EC2 instances, Kubernetes nodes, volumes, storage sizes, "
    "public IPv4 addresses). Pages warn when its last success is older than three intervals.",
    minimum=10,
    maximum=MAX_INTERVAL_SECONDS,
)
SPOT_PRICE_SYNC_SECONDS = env_int(
    "SPOT_PRICE_SYNC_SECONDS",
    3600,
    "Interval of the spot price sync (describe_spot_price_history for the pools' instance types "
    "and zones). Keep it well below SPOT_PRICE_MAX_AGE_HOURS.",
    minimum=60,
    maximum=MAX_INTERVAL_SECONDS,
)
S3_BUCKETS = env_list(
    "S3_BUCKETS",
    [],
    "S3 buckets whose size the inventory reads from CloudWatch. Empty: the buckets tagged "
    "`clusterweb:cluster` with CLUSTER_NAME.",
)
POOLS_FILE = env_str(
    "POOLS_FILE",
    "",
    "JSON or YAML file of node pools, loaded by `manage.py pools load --by UID` when no file is "
    "named. Empty: pools are edited on the Pools page only.",
)

# --- Launch execution (issue 18; docs/launches.md "Execution") ------------------------------------
KUBE_JOIN_ENDPOINT = env_str(
    "KUBE_JOIN_ENDPOINT",
    "",
    "host:port of the API server that new nodes join (`kubeadm join HOST:PORT`). Empty: the "
    "address Clusterweb's own Kubernetes client talks to.",
)
KUBE_CA_CERT_HASH = env_str(
    "KUBE_CA_CERT_HASH",
    "",
    "sha256:<hex> pin of the cluster CA's public key that join scripts pass to `kubeadm join` "
    "(`kubeadm token create --print-join-command` prints it). Empty: launches fail, saying so.",
)
LAUNCH_JOIN_TIMEOUT_SECONDS = env_int(
    "LAUNCH_JOIN_TIMEOUT_SECONDS",
    900,
    "How long a launch's instances may take to run and join as Ready nodes (and its workers to "
    "register) before the launch fails and everything it started is removed. Also the lifetime "
    "of the launch's bootstrap token.",
    minimum=1,
    maximum=7200,
)
LAUNCH_POLL_SECONDS = env_float(
    "LAUNCH_POLL_SECONDS",
    5.0,
    "Seconds between two looks at a launch or stop in progress (each look is one short task).",
    minimum=0.05,
    maximum=300,
)
LAUNCH_LEASE_SECONDS = env_int(
    "LAUNCH_LEASE_SECONDS",
    120,
    "How long a worker may hold a launch's step before another may take it over (a worker killed "
    "mid-step delays its launch by at most this much). Longer than any one step takes.",
    minimum=1,
    maximum=3600,
)
LAUNCH_SWEEP_SECONDS = env_int(
    "LAUNCH_SWEEP_SECONDS",
    60,
    "Interval of the launch sweeper, which enqueues again launches and stops that no task is "
    "carrying (a lost message, a killed worker, Redis down when they were enqueued).",
    minimum=1,
    maximum=MAX_INTERVAL_SECONDS,
)

# --- Accounts -----------------------------------------------------------------------------------
# Self-service (profile, password reset links) and administration (disable, enable, promote) of
# directory accounts; rate limits of the forms strangers reach. See docs/accounts.md.
PASSWORD_RESET_HOURS = env_int(
    "PASSWORD_RESET_HOURS",
    24,
    "How long a password reset link stays valid.",
    minimum=1,
    maximum=MAX_INTERVAL_HOURS,
)
PASSWORD_RESET_SELF_SERVICE = env_bool(
    "PASSWORD_RESET_SELF_SERVICE",
    False,
    "Let people ask for a reset link themselves by email address on the signup site (the answer "
    "never says whether the address is known). Off: only admins send reset links.",
)
DIRECTORY_SYNC_SECONDS = env_int(
    "DIRECTORY_SYNC_SECONDS",
    300,
    "Interval of the directory sync that copies people, groups, SSH keys and locks into the "
    "database (the Users and profile pages read only the copy).",
    minimum=30,
    maximum=MAX_INTERVAL_SECONDS,
)
ACCOUNTS_ATTEMPT_LIMIT = env_int(
    "ACCOUNTS_ATTEMPT_LIMIT",
    10,
    "Attempts allowed per window for each invitation (signup form), reset link, user name "
    "(reset, password change) and email address (reset requests).",
    minimum=1,
    maximum=MAX_COUNT,
)
ACCOUNTS_ATTEMPT_WINDOW_SECONDS = env_int(
    "ACCOUNTS_ATTEMPT_WINDOW_SECONDS",
    900,
    "The window of ACCOUNTS_ATTEMPT_LIMIT.",
    minimum=1,
    maximum=MAX_INTERVAL_SECONDS,
)
# Django refuses (HTTP 400) a request body larger than this before any form parses it, so a
# megabyte pasted into a key field never reaches the key parser. The largest legitimate form
# (a cost plan of 100,000 characters) fits.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int(
    "REQUEST_MAX_BYTES",
    512 * 1024,
    "Largest request body (form data) accepted, in bytes; larger ones are refused with HTTP 400 "
    "before parsing.",
    minimum=64 * 1024,
    maximum=100 * 1024 * 1024,
)

# --- Cost ---------------------------------------------------------------------------------------
# Month-to-date cost rows recomputed from the inventory and the price catalog, the forecast, and
# the bill as Cost Explorer reports it (each get_cost_and_usage request costs $0.01, so it is read
# by one periodic job only, never by a page or a command). See docs/costs.md.
COST_REFRESH_SECONDS = env_int(
    "COST_REFRESH_SECONDS",
    60,
    "Interval of the cost refresh, which recomputes this month's per-resource, per-day cost rows "
    "from the inventory and the price catalog (database only, no AWS call).",
    minimum=10,
    maximum=MAX_INTERVAL_SECONDS,
)
COST_EXPLORER_ENABLED = env_bool(
    "COST_EXPLORER_ENABLED",
    True,
    "Read the bill from AWS Cost Explorer (get_cost_and_usage, $0.01 per request) to show it "
    "beside the estimate. Off: estimates only.",
)
COST_EXPLORER_INTERVAL_HOURS = env_int(
    "COST_EXPLORER_INTERVAL_HOURS",
    8,
    "Hours between two Cost Explorer reads (AWS refreshes its cost data at most three times a "
    "day, 8 to 24 hours late); after a failed read it is tried again after one hour.",
    minimum=1,
    maximum=MAX_INTERVAL_HOURS,
)

# --- Test seams ---------------------------------------------------------------------------------
# Empty here: only the test settings module (tests/settings.py) sets them, with TESTING.
CLOCK_FILE = ""
FAILPOINTS = ""

# --- Internationalisation and time --------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Logging ------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Control characters in a message (a user name with a newline) are written escaped.
    "formatters": {
        "plain": {
            "class": "clusterweb.logs.EscapingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # django-auth-ldap logs a warning with the exception on every LDAP error; ours is clearer.
        "django_auth_ldap": {"level": "ERROR"},
    },
}

ENV_REGISTRY = REGISTRY
