"""The login and logout pages."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from clusterweb.accounts.forms import LoginForm
from clusterweb.accounts.login import services

LOGIN_ERRORS = {
    "invalid": "Wrong username or password.",
    "no_access": "Your password is right, but you have no access to Clusterweb: your account is "
    "in neither the admins nor the users group. Ask the cluster's admin.",
    "unavailable": "The cluster directory (LDAP) is unreachable, so your password cannot be "
    "checked right now. Try again in a few minutes. Nothing was counted against your account.",
}


@sensitive_post_parameters("password")
@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = ""
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        outcome = services.login_attempt(
            request=request,
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password"],
        )
        if outcome.user is not None:
            return redirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
        if outcome.error == "locked":
            minutes = max(1, round(outcome.retry_after_seconds / 60))
            form.add_error(
                None,
                "Too many failed logins for this username. It is locked for "
                f"about {minutes} more minute{'s' if minutes != 1 else ''}.",
            )
            status = 429
        else:
            form.add_error(None, LOGIN_ERRORS[outcome.error])
            status = 503 if outcome.error == "unavailable" else 200
    return render(request, "accounts/login.html", {"form": form, "next": next_url}, status=status)


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        services.logout_perform(request=request)
        messages.info(request, "You are logged out.")
        return redirect(settings.LOGOUT_REDIRECT_URL)
    return render(request, "accounts/logout.html")
