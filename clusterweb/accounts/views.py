from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from clusterweb.accounts import selectors, services
from clusterweb.accounts.forms import InviteForm, LoginForm, RejectForm
from clusterweb.accounts.models import SignupState
from clusterweb.permissions import admin_required

LOGIN_ERRORS = {
    "invalid": "Wrong username or password.",
    "no_access": "Your password is right, but you have no access to Clusterweb: your account is "
    "in neither the admins nor the users group. Ask the cluster's admin.",
    "unavailable": "The cluster directory (LDAP) is unreachable, so your password cannot be "
    "checked right now. Try again in a few minutes. Nothing was counted against your account.",
}


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


# --- The Users page (admins): signups and invitations ---------------------------------------------
def _back(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


def _users_render(request: HttpRequest, invite_form: InviteForm | None = None) -> HttpResponse:
    page = selectors.users_page()
    context = {
        "page": page,
        "invite_form": invite_form or InviteForm(),
        "invitation_hours": settings.SIGNUP_INVITATION_HOURS,
    }
    if request.htmx:
        # The polling fragment: HTTP 286 stops the polling once nothing is being provisioned.
        response = render(request, "accounts/users.html#signups", context)
        if not page.polling:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "accounts/users.html", context)


@require_GET
@admin_required
def users(request: HttpRequest) -> HttpResponse:
    return _users_render(request)


@require_POST
@admin_required
def invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _users_render(request, form)
    try:
        outcome = services.invitation_create(
            email=form.cleaned_data["email"],
            days=form.cleaned_data["days"],
            actor=request.user,
            request=request,
        )
    except services.SignupError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _users_render(request, form)
    _invitation_message(request, outcome)
    return redirect("accounts:users")


def _invitation_message(request: HttpRequest, outcome: services.InvitationOutcome) -> None:
    if outcome.sent:
        messages.success(request, f"Invitation sent to {outcome.signup.email}.")
    else:
        messages.error(
            request,
            f"The invitation for {outcome.signup.email} was saved, but the email could not be "
            f"sent ({outcome.error}). Re-send it when mail works again.",
        )


@require_GET
@admin_required
def signup_detail(request: HttpRequest, pk: int) -> HttpResponse:
    signup = get_object_or_404(selectors.signups_visible_to(request.user), pk=pk)
    context = {"signup": signup, "reject_form": RejectForm()}
    if request.htmx:
        response = render(request, "accounts/signup_detail.html#status", context)
        if signup.state != SignupState.PROVISIONING:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "accounts/signup_detail.html", context)


def _decide(request: HttpRequest, pk: int, action: Callable[[], Any], done: str) -> HttpResponse:
    get_object_or_404(selectors.signups_visible_to(request.user), pk=pk)
    try:
        signup = action()
    except (services.SignupStateError, services.SignupError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done.format(signup=signup))
    return redirect(_back(request, reverse("accounts:users")))


@require_POST
@admin_required
def signup_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(
        request,
        pk,
        lambda: services.signup_approve(signup_id=pk, actor=request.user, request=request),
        "Approved {signup.username}: the account is being created.",
    )


@require_POST
@admin_required
def signup_reject(request: HttpRequest, pk: int) -> HttpResponse:
    form = RejectForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    return _decide(
        request,
        pk,
        lambda: services.signup_reject(
            signup_id=pk, actor=request.user, reason=reason, request=request
        ),
        "Rejected {signup.username}; they are told by email.",
    )


@require_POST
@admin_required
def invitation_resend(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(selectors.signups_visible_to(request.user), pk=pk)
    try:
        outcome = services.invitation_resend(signup_id=pk, actor=request.user, request=request)
    except services.SignupStateError as exc:
        messages.error(request, str(exc))
    else:
        _invitation_message(request, outcome)
    return redirect(_back(request, reverse("accounts:users")))


@require_POST
@admin_required
def invitation_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(
        request,
        pk,
        lambda: services.invitation_revoke(signup_id=pk, actor=request.user, request=request),
        "Revoked the invitation for {signup.email}: its link no longer works.",
    )
