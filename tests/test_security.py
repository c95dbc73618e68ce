"""The security baseline: headers, cookies, CSRF, idle sessions and where the server may listen."""

import os
import re
import subprocess
import sys
import time

import pytest
from django.test import Client
from django.urls import reverse

from clusterweb.accounts.login.middleware import POLL_HEADER
from clusterweb.bind import bind_refusal
from sandbox.services.base import free_port, port_open
from tests.fixtures.personas import logged_in_client

pytestmark = pytest.mark.django_db


def test_every_response_carries_the_security_headers(client):
    response = client.get(reverse("login"))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_script_or_style(as_alice):
    content = as_alice.get(reverse("home")).content.decode()
    assert re.search(r"<script(?![^>]*\bsrc=)", content) is None
    assert "<style" not in content
    assert re.search(r"\sstyle=", content) is None
    assert re.search(r"\son[a-z]+=", content) is None
    assert '"allowEval": false' in content and '"includeIndicatorStyles": false' in content


def test_htmx_is_served_from_our_own_static_files(client):
    content = client.get(reverse("login")).content.decode()
    src = re.search(r'<script src="([^"]+htmx[^"]+)"', content).group(1)
    assert src.startswith("/static/")
    assert client.get(src).status_code == 200


def test_session_and_csrf_cookies_are_httponly_lax_and_not_secure(client, directory_server, alice):
    client.get(reverse("login"))
    response = client.post(reverse("login"), {"username": alice.uid, "password": alice.password})
    for name in ("clusterweb_session", "clusterweb_csrf"):
        cookie = response.cookies.get(name) or client.cookies[name]
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Lax"
        assert not cookie["secure"]


def test_a_post_without_the_csrf_token_is_refused():
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "alice", "password": "x"})
    assert response.status_code == 403
    assert b"The form expired" in response.content


def test_htmx_posts_carry_the_token_from_the_body_header(alice):
    client = logged_in_client(alice)
    client.handler.enforce_csrf_checks = True
    page = client.get(reverse("home")).content.decode()
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    refused = client.post(reverse("logout"), HTTP_HX_REQUEST="true")
    assert refused.status_code == 403
    accepted = client.post(reverse("logout"), HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 302


def test_a_session_ends_after_the_idle_time(alice, shared_clock, settings):
    client = logged_in_client(alice)
    shared_clock.advance(settings.SESSION_IDLE_SECONDS + 5)
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_activity_extends_a_session_but_background_polling_does_not(alice, shared_clock, settings):
    active, polling = logged_in_client(alice), logged_in_client(alice)
    shared_clock.advance(settings.SESSION_IDLE_SECONDS - 60)
    assert active.get(reverse("home")).status_code == 200
    assert polling.get(reverse("home"), headers={POLL_HEADER: "1"}).status_code == 200
    shared_clock.advance(120)
    assert active.get(reverse("home")).status_code == 200
    assert polling.get(reverse("home")).status_code == 302


def test_an_htmx_request_without_a_session_is_sent_to_the_login_page(client):
    response = client.get(reverse("audit:list"), HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("login")


@pytest.mark.parametrize(
    ("address", "in_cluster", "allowed"),
    [
        ("127.0.0.1:8000", False, True),
        ("127.0.0.5:8000", False, True),
        ("[::1]:8000", False, True),
        ("localhost:8000", False, True),
        ("unix:/run/clusterweb.sock", False, True),
        ("0.0.0.0:8000", False, False),
        ("[::]:8000", False, False),
        ("10.0.3.7:8000", False, False),
        ("0.0.0.0:8000", True, True),
    ],
)
def test_the_bind_rule(address, in_cluster, allowed):
    assert (bind_refusal(address, in_cluster=in_cluster) is None) is allowed


def _env(**extra):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "clusterweb.settings", **extra}
    env.pop("CLUSTERWEB_IN_CLUSTER", None)
    return env


def test_gunicorn_refuses_a_public_bind():
    port = free_port()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:clusterweb.gunicorn_conf",
            "-b",
            f"0.0.0.0:{port}",
            "clusterweb.wsgi",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Refusing to listen on 0.0.0.0" in result.stderr
    assert not port_open(port)


def test_gunicorn_serves_on_loopback(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:clusterweb.gunicorn_conf",
            "-b",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "clusterweb.wsgi",
        ],
        env=_env(CLUSTERWEB_VAR_DIR=str(tmp_path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_runserver_refuses_a_public_bind():
    result = subprocess.run(
        [sys.executable, "manage.py", "runserver", "--noreload", "0.0.0.0:8999"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Refusing to listen on 0.0.0.0:8999" in result.stderr


@pytest.fixture
def public_address():
    """A non-loopback IPv4 address of this machine: an existing one, or one on a dummy
    interface created for the test. Traffic to it never leaves the machine."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        address = line.split()[3].split("/")[0]
        if not address.startswith("127."):
            yield address
            return
    link = f"cwt{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", link, "type", "dummy"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "198.18.0.1/32", "dev", link], check=True)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        yield "198.18.0.1"
    finally:
        subprocess.run(["ip", "link", "del", link], check=False)


def _get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - our own server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_bare_gunicorn_on_every_address_answers_only_requests_that_arrive_on_loopback(
    tmp_path, public_address
):
    # Without the project's config nothing stops the bind: the application refuses by the
    # address each connection arrived on (gunicorn.socket's getsockname), not by the Host header.
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"0.0.0.0:{port}",
            "--workers",
            "1",
            "clusterweb.wsgi",
        ],
        env=_env(CLUSTERWEB_VAR_DIR=str(tmp_path), ALLOWED_HOSTS=f"127.0.0.1,{public_address}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.1)
        status, body = _get(f"http://{public_address}:{port}/login/")
        assert status == 403
        assert "only on a loopback address" in body
        status, body = _get(f"http://127.0.0.1:{port}/login/")
        assert status == 200
        assert 'name="password"' in body
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_runserver_passes_the_arrival_address_the_check_reads(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=_env(CLUSTERWEB_VAR_DIR=str(tmp_path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        status, _ = _get(f"http://127.0.0.1:{port}/login/")
        assert status == 200
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize(
    ("environ", "in_cluster", "served"),
    [
        ({"clusterweb.local_address": "127.0.0.1"}, False, True),
        ({"clusterweb.local_address": "::ffff:127.0.0.1"}, False, True),
        ({"clusterweb.local_address": "192.0.2.2"}, False, False),
        ({"SERVER_NAME": "127.0.0.1", "HTTP_HOST": "127.0.0.1"}, False, False),  # no signal
        ({"clusterweb.local_address": "10.0.3.7"}, True, True),
    ],
)
def test_the_arrival_rule(environ, in_cluster, served, settings):
    from clusterweb.bind import LoopbackOnly

    settings.IN_CLUSTER = in_cluster
    seen = []

    def app(environ, start_response):
        start_response("200 OK", [])
        seen.append(True)
        return [b"ok"]

    statuses = []
    LoopbackOnly(app)(environ, lambda status, headers: statuses.append(status))
    assert bool(seen) is served
    assert statuses == ["200 OK" if served else "403 Forbidden"]
