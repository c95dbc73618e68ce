"""The admins' signup pages on the dashboard: inviting, a signup's detail, approving or
rejecting it, re-sending or revoking an invitation. (The pages the invitee uses are on the signup
site: ``site_views.py``.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from clusterweb.accounts.directory.views import users_render
from clusterweb.accounts.forms import InviteForm, RejectForm
from clusterweb.accounts.models import SignupState
from clusterweb.accounts.signup import selectors, services
from clusterweb.permissions import admin_required


# --- The Users page (admins): signups and invitations ---------------------------------------------
def _back(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


@require_POST
@admin_required
def invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    if not form.is_valid():
        return users_render(request, form)
    try:
        outcome = services.invitation_create(
            email=form.cleaned_data["email"],
            days=form.cleaned_data["days"],
            actor=request.user,
            request=request,
        )
    except services.SignupError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return users_render(request, form)
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
