"""The WSGI application gunicorn (and runserver) serve.

Two checks wrap Django's application, because this module is all a bare
``gunicorn clusterweb.wsgi`` loads (the project's gunicorn config does the same checks earlier):

- a configuration that cannot work stops the worker with one line; exit status 4 is gunicorn's
  "App failed to load", on which the arbiter halts instead of restarting the worker forever;
- outside the cluster a request that did not arrive on a loopback address is refused
  (clusterweb.bind.LoopbackOnly), whatever address the server was told to bind.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterweb.settings")

from clusterweb.startup import exit_on_configuration_error

exit_on_configuration_error(status=4)

from clusterweb.bind import LoopbackOnly  # noqa: E402

application = LoopbackOnly(get_wsgi_application())
