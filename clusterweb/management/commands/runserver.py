from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver
from django.core.management.base import CommandError
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer

from clusterweb.bind import LOCAL_ADDRESS_KEY, bind_refusal


class LocalAddressRequestHandler(WSGIRequestHandler):
    """Django's request handler, adding the connection's local address to the environ: the
    signal clusterweb.bind.LoopbackOnly checks (Django's server passes no socket)."""

    def get_environ(self):
        environ = super().get_environ()
        environ[LOCAL_ADDRESS_KEY] = self.connection.getsockname()[0]
        return environ


class LocalAddressWSGIServer(WSGIServer):
    def __init__(self, server_address, handler_class, *args, **kwargs):
        super().__init__(server_address, LocalAddressRequestHandler, *args, **kwargs)


class Command(StaticRunserver):
    """Django's development server, refusing non-loopback addresses (see clusterweb.bind)."""

    server_cls = LocalAddressWSGIServer

    def run(self, **options):
        address = f"[{self.addr}]:{self.port}" if self._raw_ipv6 else f"{self.addr}:{self.port}"
        refusal = bind_refusal(address, in_cluster=settings.IN_CLUSTER)
        if refusal:
            raise CommandError(refusal)
        return super().run(**options)
