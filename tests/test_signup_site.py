"""The signup site serves its own pages and nothing of the dashboard."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db


@pytest.fixture
def signup_site(settings):
    settings.ROOT_URLCONF = "clusterweb.urls_signup"
    settings.SESSION_COOKIE_NAME = "clusterweb_signup_session"
    settings.CSRF_COOKIE_NAME = "clusterweb_signup_csrf"


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


def test_the_signup_site_has_its_own_start_page(client, signup_site):
    response = client.get("/")
    assert response.status_code == 200
    assert b"signup site" in response.content


def test_the_signup_site_serves_its_static_files(client, signup_site):
    assert client.get("/static/clusterweb.css").status_code == 200
