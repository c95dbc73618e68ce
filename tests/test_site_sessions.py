"""Issue 13, finding 11: the dashboard and the signup site keep their sessions apart. The signup
site has its own session table and no authentication middleware, so a dashboard session key
sent to it finds nothing and changes nothing, and the reverse."""

from importlib import import_module

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session

from clusterweb.accounts.signup.site_views import SESSION_INVITATION
from tests.fixtures.signup import invitation, site_switch

pytestmark = pytest.mark.django_db


def snapshot(key: str) -> tuple[str, object] | None:
    row = Session.objects.filter(session_key=key).first()
    return (row.session_data, row.expire_date) if row else None


def test_a_dashboard_session_key_finds_nothing_on_the_signup_site(
    client, as_alice, settings, account_directory
):
    site_switch(settings, "web")
    key = as_alice.cookies["clusterweb_session"].value
    before = snapshot(key)
    assert before is not None
    _, token = invitation()

    site_switch(settings, "signup")
    client.cookies["clusterweb_signup_session"] = key
    home = client.get("/")
    assert home.status_code == 200
    assert not hasattr(home.wsgi_request, "user")  # no authentication on the signup site
    assert "_auth_user_id" not in home.wsgi_request.session
    opened = client.get("/invitation/", {"token": token})  # cycles the signup site's session
    assert opened.status_code == 302
    assert client.cookies["clusterweb_signup_session"].value != key
    assert snapshot(key) == before  # alice's dashboard session is untouched

    site_switch(settings, "web")
    assert as_alice.get("/").status_code == 200


def test_a_signup_site_session_key_finds_nothing_on_the_dashboard(
    client, settings, account_directory
):
    _, token = invitation()
    site_switch(settings, "signup")
    assert client.get("/invitation/", {"token": token}).status_code == 302
    key = client.cookies["clusterweb_signup_session"].value
    site_store = import_module(django_settings.SITES["signup"]["SESSION_ENGINE"]).SessionStore
    held = site_store(key).load()
    assert SESSION_INVITATION in held

    site_switch(settings, "web")
    dashboard = client.__class__()
    dashboard.cookies["clusterweb_session"] = key
    response = dashboard.get("/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert SESSION_INVITATION not in response.wsgi_request.session
    assert not Session.objects.filter(session_key=key).exists()
    assert site_store(key).load() == held  # unchanged
