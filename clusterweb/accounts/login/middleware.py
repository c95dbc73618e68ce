"""Session rules that every request passes through."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url

from clusterweb import clock
from clusterweb.accounts.login import services
from clusterweb.errors import DirectoryUnavailable

# Requests that only poll for progress send this header (see base.html): they must not count as
# activity, or a page left open would keep its session alive for ever.
POLL_HEADER = "X-Clusterweb-Poll"


def _is_poll(request: HttpRequest) -> bool:
    return request.headers.get(POLL_HEADER) == "1"


class SessionIdleMiddleware:
    """End sessions after ``SESSION_IDLE_SECONDS`` without activity, and any session older than
    ``SESSION_MAX_AGE_SECONDS``. Uses the project clock so tests can move time."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = clock.now().timestamp()
            last_seen = request.session.get(services.SESSION_LAST_SEEN, 0)
            login_at = request.session.get(services.SESSION_LOGIN_AT, 0)
            if now - last_seen > settings.SESSION_IDLE_SECONDS or (
                now - login_at > settings.SESSION_COOKIE_AGE
            ):
                services.logout_perform(request=request, reason="expired")
                messages.info(
                    request, "Your session ended after a period of inactivity. Please log in again."
                )
            elif not _is_poll(request) and now - last_seen > 30:
                # Written at most every 30 s: a session write per request would cost a database
                # write per click.
                request.session[services.SESSION_LAST_SEEN] = now
        return self.get_response(request)


class MembershipRecheckMiddleware:
    """Re-read the user's groups every ``AUTH_RECHECK_SECONDS``; a user who lost both roles is
    logged out at once. While the directory is unreachable the session goes on (the bastion and
    every other cluster login depend on the directory too) and the check is tried again."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not user.is_break_glass:
            checked = user.groups_checked_at
            interval = timedelta(seconds=settings.AUTH_RECHECK_SECONDS)
            if checked is None or clock.now() - checked >= interval:
                with suppress(DirectoryUnavailable):
                    services.user_membership_refresh(user=user)
            if user.role is None:
                services.logout_perform(request=request, reason="access_revoked")
                messages.error(request, "You no longer have access to Clusterweb.")
        return self.get_response(request)


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Django's, plus: an htmx request gets an ``HX-Redirect`` so the whole page goes to the
    login form instead of the form landing inside a fragment."""

    def handle_no_permission(self, request: HttpRequest, view_func: Callable) -> HttpResponse:
        if getattr(request, "htmx", False):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = resolve_url(settings.LOGIN_URL)
            return response
        return super().handle_no_permission(request, view_func)
