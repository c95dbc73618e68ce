from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from clusterweb.accounts import account_services, selectors, services
from clusterweb.accounts.forms import AccountActionForm, InviteForm, LoginForm, RejectForm
from clusterweb.accounts.models import SignupState
from clusterweb.errors import IntegrationError
from clusterweb.permissions import admin_required, is_admin

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
        "sync_minutes": max(1, settings.DIRECTORY_SYNC_SECONDS // 60),
        "reset_hours": settings.PASSWORD_RESET_HOURS,
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


# --- The Users page (admins): directory accounts --------------------------------------------------
@require_POST
@admin_required
def users_sync(request: HttpRequest) -> HttpResponse:
    """Read the directory into the database now (the page itself reads only the database)."""
    try:
        counts = account_services.directory_users_sync()
    except IntegrationError as exc:
        messages.error(request, f"The directory could not be read: {exc}")
    else:
        messages.success(request, f"Read {counts['people']} people from the directory.")
    return redirect(reverse("accounts:users") + "#people")


# (title, explanation, button) for each account action's confirmation page.
ACCOUNT_ACTIONS = {
    "disable": (
        "Disable {uid}",
        "{uid} loses every access at once: the directory refuses their password everywhere "
        "(SSH, JupyterHub, the dashboard), the bastion gives none of their SSH keys, they leave "
        "the {groups} group(s), and their dashboard sessions end. Their files and nodes stay. "
        "Enable gives everything back.",
        "Disable",
    ),
    "enable": (
        "Enable {uid}",
        "{uid} gets back the groups they had when they were disabled and can log in again.",
        "Enable",
    ),
    "promote": (
        "Make {uid} an admin",
        "{uid} joins the admins group: they can approve launches and signups, invite people, "
        "and disable accounts.",
        "Make admin",
    ),
    "demote": (
        "Remove {uid} from the admins",
        "{uid} leaves the admins group and keeps the access of a collaborator (if they are in "
        "the users group).",
        "Remove admin rights",
    ),
    "reset": (
        "Send {uid} a password reset link",
        "{uid} gets an email at {mail} with a one-time link to the signup site (through the join "
        "tunnel) where they choose a new password. The link expires after {hours} hours; an "
        "older link stops working.",
        "Send reset link",
    ),
}


def _account_act(request: HttpRequest, uid: str, action: str, reason: str) -> str:
    actor = request.user
    if action == "reset":
        outcome = account_services.password_reset_issue(uid=uid, actor=actor, request=request)
        if outcome.sent:
            return f"Reset link sent to {uid} at {outcome.reset.email}."
        raise account_services.AccountStateError(
            f"The reset link for {uid} was made but not sent ({outcome.error}). Get it with "
            f"`manage.py users reset-link {uid} --by {actor.username}` to hand it over another way."
        )
    if action == "disable":
        account_services.account_disable(uid=uid, actor=actor, reason=reason, request=request)
        return f"Disabled {uid}: no password or key of theirs works now, and their sessions ended."
    account_services.ACTIONS[action](uid=uid, actor=actor, request=request)
    return {
        "enable": f"Enabled {uid}.",
        "promote": f"{uid} is an admin now.",
        "demote": f"{uid} is no longer an admin.",
    }[action]


@require_http_methods(["GET", "POST"])
@admin_required
def account_action(request: HttpRequest, uid: str, action: str) -> HttpResponse:
    """GET: the confirmation page of ``action`` on directory user ``uid``; POST: do it."""
    account = selectors.directory_user_visible(request.user, uid)
    if account is None:
        raise Http404("No such directory user.")
    form = AccountActionForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            done = _account_act(request, account.uid, action, form.cleaned_data["reason"])
        except (account_services.AccountError, account_services.AccountStateError) as exc:
            messages.error(request, getattr(exc, "message", str(exc)))
        except IntegrationError as exc:
            messages.error(request, f"The directory did not take the change: {exc}. Try again.")
        else:
            messages.success(request, done)
        request.user.refresh_from_db()
        if not is_admin(request.user):  # an admin who just demoted themselves
            return redirect("home")
        return redirect(reverse("accounts:users") + "#people")
    title, text, button = ACCOUNT_ACTIONS[action]
    values = {
        "uid": account.uid,
        "mail": account.mail or "(no address)",
        "hours": settings.PASSWORD_RESET_HOURS,
        "groups": " and ".join(
            g for g in (settings.LDAP_USER_GROUP, settings.LDAP_ADMIN_GROUP) if g in account.groups
        )
        or "no",
    }
    context = {
        "account": account,
        "action": action,
        "form": form,
        "title": title.format(**values),
        "text": text.format(**values),
        "button": button,
        "self": account.uid == request.user.username,
    }
    return render(request, "accounts/account_confirm.html", context)
