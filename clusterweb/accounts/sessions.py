"""Dashboard sessions: ending every session of a user (a password change or reset, a disable)."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings


def sessions_end(*, user_id: int, keep: str | None = None) -> int:
    """End every dashboard session of user ``user_id`` (except ``keep``, the caller's own) by
    deleting it from the session store. Sessions hold the user's id only inside their encoded
    data, so the live ones are read; on this platform they number in the tens."""
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    # The dashboard's store, also when the signup site calls this (a password reset there): the
    # signup site's own SESSION_ENGINE keeps its sessions in another table.
    store = import_module(settings.SITES["web"]["SESSION_ENGINE"]).SessionStore
    # Session expiry is Django's own clock (the session store sets and checks it), not ours.
    live = Session.objects.filter(expire_date__gt=timezone.now()).iterator()
    ended = [
        s.session_key
        for s in live
        if s.session_key != keep and s.get_decoded().get("_auth_user_id") == str(user_id)
    ]
    for key in ended:
        store(session_key=key).delete()
    return len(ended)
