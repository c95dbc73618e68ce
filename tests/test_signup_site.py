"""The signup site serves its own pages and nothing of the dashboard."""

import re

import pytest
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


def test_the_signup_site_answers_404_for_every_dashboard_url(client, signup_site, as_alice):
    client.cookies = as_alice.cookies  # a dashboard session means nothing here
    for path in dashboard_paths():
        if path == "/":
            continue
        assert client.get(path).status_code == 404, path


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


def test_every_dashboard_url_pattern_is_404_on_the_signup_site(client, signup_site, as_alice):
    client.cookies = as_alice.cookies
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
]
# fmt: on


def test_every_signup_url_pattern_has_a_row_in_the_signup_matrix():
    names = set(url_names(get_resolver(SIGNUP_URLCONF)))
    assert names == {name for name, *_ in SIGNUP_TABLE}


@pytest.mark.parametrize(("name", "method", "stranger", "with_token"), SIGNUP_TABLE)
def test_each_signup_url_answers_as_the_signup_matrix_says(
    signup_site, directory_server, name, method, stranger, with_token
):
    _, token = invitation()
    for who, want in (("stranger", stranger), ("token", with_token)):
        client = Client(raise_request_exception=False)
        if who == "token":
            client.get(reverse("signup_invitation", urlconf=SIGNUP_URLCONF), {"token": token})
        url = reverse(name, urlconf=SIGNUP_URLCONF)
        if name == "signup_invitation" and who == "token":
            url += f"?token={token}"
        response = client.get(url) if method == "GET" else client.post(url, {})
        assert response.status_code != 500
        assert response.status_code == want, f"{method} {url} as {who}: {response.status_code}"
