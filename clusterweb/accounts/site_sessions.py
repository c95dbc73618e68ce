"""The signup site's session engine (SESSION_ENGINE of CLUSTERWEB_SITE=signup): Django's database
sessions, stored in the signup site's own table (``SignupSiteSession``), never the dashboard's.
Both sites share one database and one SECRET_KEY, so with one table a dashboard session cookie
value would open the same session on the signup site, and the reverse."""

from __future__ import annotations

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore


class SessionStore(DatabaseSessionStore):
    # A salt of its own, so data signed for one site's sessions never decodes as the other's.
    key_salt = "clusterweb.accounts.site_sessions"

    @classmethod
    def get_model_class(cls):  # type: ignore[override]
        from clusterweb.accounts.models import SignupSiteSession

        return SignupSiteSession
