"""The Users page (admins): signups waiting, open invitations and every directory user, the
directory sync button, and the confirmation page and action of each change to an account
(disable, enable, promote, demote, reset link)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from clusterweb.accounts.directory import selectors, services
from clusterweb.accounts.forms import AccountActionForm, InviteForm
from clusterweb.errors import IntegrationError
from clusterweb.permissions import admin_required, is_admin


def users_render(request: HttpRequest, invite_form: InviteForm | None = None) -> HttpResponse:
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
    return users_render(request)


@require_POST
@admin_required
def users_sync(request: HttpRequest) -> HttpResponse:
    """Read the directory into the database now (the page itself reads only the database)."""
    try:
        counts = services.directory_users_sync()
    except IntegrationError as exc:
        messages.error(request, f"The directory could not be read: {exc}")
    else:
        messages.success(request, f"Read {counts['people']} people from the directory.")
    return redirect(reverse("accounts:users") + "#people")


# (title, explanation, button) for each account action's confirmation page.
ACCOUNT_ACTIONS = {
    "disable": (
        "Disable {uid}",
        "{uid} loses every access at once: their dashboard sessions end, the directory refuses "
        "their password everywhere (SSH, JupyterHub, the dashboard), the bastion gives none of "
        "their SSH keys, they leave the {groups} group(s), and their JupyterHub servers are "
        "stopped within a minute. Their files and nodes stay. Enable gives everything back.",
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
        outcome = services.password_reset_issue(uid=uid, actor=actor, request=request)
        if outcome.sent:
            return f"Reset link sent to {uid} at {outcome.reset.email}."
        raise services.AccountStateError(
            f"The reset link for {uid} was made but not sent ({outcome.error}). Get it with "
            f"`manage.py users reset-link {uid} --by {actor.username}` to hand it over another way."
        )
    if action == "disable":
        services.account_disable(uid=uid, actor=actor, reason=reason, request=request)
        return (
            f"Disabled {uid}: no password or key of theirs works now, their sessions ended, and "
            "their JupyterHub servers are being stopped. An SSH session already open on the "
            f"bastion goes on until its operator ends it (sudo pkill -KILL -u {uid})."
        )
    services.ACTIONS[action](uid=uid, actor=actor, request=request)
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
        except (services.AccountError, services.AccountStateError) as exc:
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
        "self": account.uid.lower() == request.user.username.lower(),
    }
    return render(request, "accounts/account_confirm.html", context)
