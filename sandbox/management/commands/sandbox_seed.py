from django.conf import settings
from django.core.management.base import BaseCommand

from clusterweb import clock
from clusterweb.audit.services import audit_record
from clusterweb.integrations import mail


class Command(BaseCommand):
    help = "Seed a fresh sandbox database (run by `make run` after migrate)."

    def handle(self, *args, **options):
        mail.sandbox_welcome_send(
            to=["alice@example.org"], now=clock.now(), web_url=f"http://{settings.BIND}/"
        )
        audit_record(action="sandbox.seeded", source="cli")
        self.stdout.write("sandbox seeded")
