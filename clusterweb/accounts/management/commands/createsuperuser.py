"""``createsuperuser`` for the break-glass account: Django's command, plus the directory check.

A local superuser and a directory person must never share a name (issue 13, finding 2): an LDAP
login never lands in a local row, and a signup cannot take a local name. So the name is refused
when the directory has it; while the directory cannot be asked, it is refused unless
``--without-directory-check`` says to go ahead. The local row itself then holds the name: the
signup name check refuses any name a local account holds (``login.selectors``)."""

from __future__ import annotations

from django.contrib.auth.management.commands import createsuperuser

from clusterweb.accounts.models import User
from clusterweb.audit.services import audit_record
from clusterweb.errors import IntegrationError
from clusterweb.integrations import ldap as ldap_directory


class Command(createsuperuser.Command):
    help = (
        "Create the local break-glass superuser (it logs in while the directory is down). "
        "Refuses a name the directory has; while the directory is unreachable, refuses unless "
        "--without-directory-check."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--without-directory-check",
            action="store_true",
            help="create the account even though the directory cannot be asked whether it has "
            "the name (the name is then held locally: no signup can take it)",
        )

    def handle(self, *args, **options):
        self.without_directory_check = options["without_directory_check"]
        self.directory_checked = True
        before = set(User.objects.values_list("pk", flat=True))
        super().handle(*args, **options)
        for user in User.objects.exclude(pk__in=before):
            audit_record(
                action="account.break_glass_created",
                actor_username="manage.py",
                target=user.username,
                detail={"directory_checked": self.directory_checked},
                source="cli",
            )

    def _validate_username(self, username, verbose_field_name, database):
        problem = super()._validate_username(username, verbose_field_name, database)
        if problem or not username:
            return problem
        if User.objects.db_manager(database).filter(username__iexact=username).exists():
            return f"Error: That {verbose_field_name} is already taken (in another case)."
        try:
            taken = ldap_directory.username_taken(username)
        except IntegrationError as exc:
            if self.without_directory_check:
                self.directory_checked = False
                self.stderr.write(
                    f"The directory is unreachable ({exc}); creating {username!r} without "
                    "checking it, as --without-directory-check asks. The name is now held "
                    "locally: no signup can take it."
                )
                return None
            return (
                f"The directory is unreachable ({exc}), so it cannot be checked that it has no "
                f"{username!r}. Try again when it is back, or pass --without-directory-check."
            )
        if taken:
            return (
                f"The directory already has a {taken} named {username!r}: a break-glass account "
                "needs a name nobody in the directory has."
            )
        return None
