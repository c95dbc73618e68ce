"""Merge ghost users into their person's row (issue 13, finding 1).

Before the login name had to match the uid pattern, slapd let look-alike spellings (``ｂｏｂ``,
``𝐛𝐨𝐛``, ``bⓞb``) bind as the person they imitate, and each spelling became a Django user of
its own. Such a ghost is a row with no local password whose name is not ASCII but folds
(Unicode NFKC, then case folding: what slapd's ``caseIgnoreMatch`` does) to an ASCII name.

Every row that points at a ghost (audit events, signups, bills, and whatever else has a foreign
key to the user) is pointed at the person's row; audit events keep the name they recorded, so the
history stays as it happened. The ghost's groups and permissions are added to the person's, its
sessions are deleted and then the row. When the person never logged in under their own name,
the first ghost is renamed to that name instead. A ghost whose name folds to no ASCII name, or
to the name of a local (break-glass) account, is deactivated, never merged. The directory is not
touched.
"""

from __future__ import annotations

import logging
import unicodedata
from importlib import import_module

from django.conf import settings
from django.db import migrations

logger = logging.getLogger(__name__)

UNUSABLE_PASSWORD_PREFIX = "!"  # noqa: S105 - django.contrib.auth.hashers' prefix, not a password


def folded(name: str) -> str:
    """``name`` as slapd compares a uid: compatibility-folded, case-folded, stripped."""
    once = unicodedata.normalize("NFKC", name)
    return unicodedata.normalize("NFKC", once.casefold()).strip()


def _local(user) -> bool:
    return bool(user.password) and not user.password.startswith(UNUSABLE_PASSWORD_PREFIX)


def _user_relations(apps):
    """(model, field name) of every foreign key to the user model in the migration state."""
    user_label = settings.AUTH_USER_MODEL.lower()
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if (
                field.concrete
                and field.is_relation
                and (field.many_to_one or field.one_to_one)
                and field.related_model is not None
                and field.related_model._meta.label_lower == user_label
            ):
                yield model, field.name


def _sessions_delete(user_ids: set[int]) -> None:
    if not user_ids:
        return
    store = import_module(settings.SESSION_ENGINE).SessionStore
    from django.contrib.sessions.models import Session

    wanted = {str(pk) for pk in user_ids}
    for session in Session.objects.iterator():
        try:
            data = store().decode(session.session_data)
        except Exception:  # noqa: S112 - a session that cannot be read is nobody's
            continue
        if data.get("_auth_user_id") in wanted:
            session.delete()


def merge_ghost_users(apps, schema_editor=None) -> dict[str, int]:
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    counts = {"merged": 0, "renamed": 0, "deactivated": 0}
    ghosts: dict[str, list] = {}
    for user in User.objects.order_by("pk"):
        if user.username.isascii() or _local(user):
            continue
        ghosts.setdefault(folded(user.username), []).append(user)
    relations = list(_user_relations(apps))
    gone: set[int] = set()
    for name, rows in ghosts.items():
        people = list(User.objects.filter(username__iexact=name)) if name.isascii() else []
        if not name or not name.isascii() or any(_local(p) for p in people):
            for ghost in rows:
                User.objects.filter(pk=ghost.pk).update(
                    is_active=False, is_cluster_admin=False, is_collaborator=False
                )
                gone.add(ghost.pk)
                counts["deactivated"] += 1
            continue
        person = next((p for p in people if p.username == name), people[0] if people else None)
        if person is None:
            person, rows = rows[0], rows[1:]
            User.objects.filter(pk=person.pk).update(username=name)
            gone.add(person.pk)  # its sessions named the look-alike: log it in again
            counts["renamed"] += 1
        for ghost in rows:
            for model, field in relations:
                model.objects.filter(**{field: ghost.pk}).update(**{field: person.pk})
            person.groups.add(*ghost.groups.all())
            person.user_permissions.add(*ghost.user_permissions.all())
            if ghost.last_login and (not person.last_login or ghost.last_login > person.last_login):
                User.objects.filter(pk=person.pk).update(last_login=ghost.last_login)
            gone.add(ghost.pk)
            User.objects.filter(pk=ghost.pk).delete()
            counts["merged"] += 1
    _sessions_delete(gone)
    if any(counts.values()):
        logger.warning("ghost users: %s", counts)
    return counts


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_signup_site_session"),
        ("audit", "0001_initial"),
        ("billing", "0003_cost_rows_and_bill"),
        ("sessions", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(merge_ghost_users, migrations.RunPython.noop)]
