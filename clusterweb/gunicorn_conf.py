"""gunicorn configuration: ``gunicorn -c python:clusterweb.gunicorn_conf clusterweb.wsgi``.

Sized for a t2.small shared with LDAP: two sync workers, recycled to bound memory.
"""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterweb.settings")

from django.conf import settings

from clusterweb.bind import bind_refusal
from clusterweb.startup import exit_on_configuration_error

# Before anything reads a setting: a bad variable stops the arbiter with one line.
exit_on_configuration_error()

# The signup site (CLUSTERWEB_SITE=signup) is the same application on its own address.
bind = [settings.SIGNUP_BIND if settings.SITE == "signup" else settings.BIND]
workers = 2
threads = 2
timeout = 30
graceful_timeout = 10
max_requests = 1000
max_requests_jitter = 100
accesslog = "-"
# The access log never holds query strings: tokens travel in some URLs (signup links).
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = "127.0.0.1"


def on_starting(server):
    for address in server.cfg.bind:
        refusal = bind_refusal(address, in_cluster=settings.IN_CLUSTER)
        if refusal:
            print(refusal, file=sys.stderr)
            sys.exit(2)


def post_worker_init(worker):
    # The late-job alert must go out while the Celery worker is dead even if nobody opens a page:
    # each web worker runs the alert thread from its start (clusterweb/health/alerter.py).
    from clusterweb.health import alerter

    alerter.start(periodic=True)
