from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver
from django.core.management.base import CommandError

from clusterweb.bind import bind_refusal


class Command(StaticRunserver):
    """Django's development server, refusing non-loopback addresses (see clusterweb.bind)."""

    def run(self, **options):
        address = f"[{self.addr}]:{self.port}" if self._raw_ipv6 else f"{self.addr}:{self.port}"
        refusal = bind_refusal(address, in_cluster=settings.IN_CLUSTER)
        if refusal:
            raise CommandError(refusal)
        return super().run(**options)
