from django.conf import settings
from django.core.management.base import BaseCommand

from clusterweb import clock
from clusterweb.accounts.directory.services import directory_users_sync
from clusterweb.audit.services import audit_record
from clusterweb.integrations import mail
from sandbox.history import sandbox_history_seed
from sandbox.pools import sandbox_pools_seed


class Command(BaseCommand):
    help = "Seed a fresh sandbox database (run by `make run` after migrate)."

    def handle(self, *args, **options):
        mail.sandbox_welcome_send(
            to=["alice@example.org"], now=clock.now(), web_url=f"http://{settings.BIND}/"
        )
        pools = sandbox_pools_seed()
        self.stdout.write(f"pools: {', '.join(p.slug for p in pools)}, with launch templates")
        # The month replayed through the AWS layer, spot prices included (the product's spot
        # price sync reads them from the layer, as from AWS).
        history = sandbox_history_seed()
        self.stdout.write(f"history: {history}")
        # The Users page reads a copy of the directory; make it before the first page is shown.
        people = directory_users_sync()
        self.stdout.write(f"directory copy: {people['people']} people")
        audit_record(action="sandbox.seeded", source="cli")
        self.stdout.write("sandbox seeded")
