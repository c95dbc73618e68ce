"""The signup site serves its own pages and nothing of the dashboard."""

import re

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.fixtures.signup import invitation
from tests.test_url_matrix import url_names

pytestmark = pytest.mark.django_db

SIGNUP_URLCONF = "clusterweb.urls_signup"


def dashboard_paths() -> list[str]:
    paths = []
    for entry in get_resolver("clusterweb.urls").url_patterns:
        if isinstance(entry, URLResolver | URLPattern):
            paths.append("/" + str(entry.pattern))
    return paths


def with_dashboard_session(client, as_alice):
    """``client`` sends alice's dashboard session key as the signup site's session cookie (the
    cookie names differ, so merely copying her cookies would send the signup site nothing)."""
    key = as_alice.cookies["clusterweb_session"].value
    client.cookies["clusterweb_signup_session"] = key
    return key


def test_the_signup_site_answers_404_for_every_dashboard_url(client, as_alice, signup_site):
    key = with_dashboard_session(client, as_alice)  # a dashboard session means nothing here
    for path in dashboard_paths():
        if path == "/":
            continue
        response = client.get(path)
        assert response.status_code == 404, path
        assert not hasattr(response.wsgi_request, "user"), path
        assert "_auth_user_id" not in response.wsgi_request.session, path
    assert Session.objects.filter(session_key=key).exists()


def concrete_paths(resolver: URLResolver, prefix: str = "/") -> list[str]:
    """Every URL pattern of ``resolver``, nested ones too, with a sample value in each
    parameter (a signup site must not answer any of them, whatever the arguments)."""
    samples = {"uuid": "00000000-0000-0000-0000-000000000001"}
    paths = []
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern).lstrip("^").rstrip("$")
        route = re.sub(r"<(?:(\w+):)?\w+>", lambda m: samples.get(m[1] or "", "1"), route)
        if isinstance(entry, URLResolver):
            paths += concrete_paths(entry, route)
        else:
            paths.append(route)
    return paths


def test_every_dashboard_url_pattern_is_404_on_the_signup_site(client, as_alice, signup_site):
    with_dashboard_session(client, as_alice)
    paths = concrete_paths(get_resolver("clusterweb.urls"))
    assert "/users/signups/1/approve/" in paths
    for path in paths:
        if path == "/":
            continue
        for response in (client.get(path), client.post(path, {})):
            assert response.status_code == 404, f"{path} answered {response.status_code}"


def test_the_signup_site_has_its_own_start_page(client, signup_site):
    response = client.get("/")
    assert response.status_code == 200
    assert b"signup site" in response.content


def test_the_signup_site_serves_its_static_files(client, signup_site):
    assert client.get("/static/clusterweb.css").status_code == 200


def test_the_signup_site_uses_its_own_cookie_names(client, signup_site, directory_server):
    _, token = invitation()
    client.get("/invitation/", {"token": token})
    client.get("/join/")
    assert "clusterweb_signup_session" in client.cookies
    assert "clusterweb_signup_csrf" in client.cookies
    assert "clusterweb_session" not in client.cookies


# --- The signup site's own matrix: every URL pattern × GET and POST, nobody logged in -----------
# "token" is a client that opened a valid invitation link first; "stranger" did not.
# fmt: off
SIGNUP_TABLE = [
    # url name            method  stranger token
    ("signup_home",       "GET",  200,     200),
    ("signup_home",       "POST", 405,     405),
    ("signup_invitation", "GET",  404,     302),  # the link itself: no token → not found
    ("signup_invitation", "POST", 405,     405),
    ("signup_form",       "GET",  404,     200),
    ("signup_form",       "POST", 404,     200),  # an empty form comes back with errors
    ("signup_submitted",  "GET",  200,     200),
    ("signup_submitted",  "POST", 405,     405),
    # Password reset: for these rows "token" opened a reset link (not an invitation) first.
    # The self-service request page exists only with PASSWORD_RESET_SELF_SERVICE (off here).
    ("password_reset",         "GET",  404, 302),
    ("password_reset",         "POST", 405, 405),
    ("password_reset_form",    "GET",  404, 200),
    ("password_reset_form",    "POST", 404, 200),
    ("password_reset_done",    "GET",  200, 200),
    ("password_reset_done",    "POST", 405, 405),
    ("password_reset_request", "GET",  404, 404),
    ("password_reset_request", "POST", 404, 404),
]
# fmt: on


def reset_token() -> str:
    """A fresh password reset link's token (for bob, sent by alice)."""
    from urllib.parse import parse_qs, urlsplit

    from clusterweb.accounts.directory.services import password_reset_issue
    from sandbox.directory import BY_UID
    from tests.fixtures.personas import user_for

    outcome = password_reset_issue(uid="bob", actor=user_for(BY_UID["alice"]), source="cli")
    return parse_qs(urlsplit(outcome.link).query)["token"][0]


def test_every_signup_url_pattern_has_a_row_in_the_signup_matrix():
    names = set(url_names(get_resolver(SIGNUP_URLCONF)))
    assert names == {name for name, *_ in SIGNUP_TABLE}


@pytest.mark.parametrize(("name", "method", "stranger", "with_token"), SIGNUP_TABLE)
def test_each_signup_url_answers_as_the_signup_matrix_says(
    signup_site, directory_server, name, method, stranger, with_token
):
    link = "signup_invitation"
    if name.startswith("password_reset"):
        link, token = "password_reset", reset_token()
    else:
        _, token = invitation()
    for who, want in (("stranger", stranger), ("token", with_token)):
        client = Client(raise_request_exception=False)
        if who == "token":
            client.get(reverse(link, urlconf=SIGNUP_URLCONF), {"token": token})
        url = reverse(name, urlconf=SIGNUP_URLCONF)
        if name == link and who == "token":
            url += f"?token={token}"
        response = client.get(url) if method == "GET" else client.post(url, {})
        assert response.status_code != 500
        assert response.status_code == want, f"{method} {url} as {who}: {response.status_code}"
