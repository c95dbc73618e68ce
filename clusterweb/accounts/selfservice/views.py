"""The profile page (everyone logged in): one's directory account, password and SSH keys.

The page reads the database copy of the directory (``DirectoryUser``); each form posts to its own
view, which calls one service and either redirects or shows the page again with the form's
errors.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from clusterweb.accounts import throttle
from clusterweb.accounts.directory.services import AccountError, AccountStateError
from clusterweb.accounts.forms import PasswordChangeForm, SSHKeyRemoveForm, SSHKeysAddForm
from clusterweb.accounts.selfservice import selectors, services
from clusterweb.accounts.ssh_keys import MAX_KEYS
from clusterweb.errors import DirectoryUnavailable, IntegrationError

REFUSALS = (AccountError, AccountStateError)
UNAVAILABLE = (
    "The cluster's directory (LDAP) cannot be reached right now, so nothing was changed. Try "
    "again in a few minutes."
)


def _render(
    request: HttpRequest,
    *,
    password_form: PasswordChangeForm | None = None,
    keys_form: SSHKeysAddForm | None = None,
    remove_form: SSHKeyRemoveForm | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "account": selectors.directory_user_for(request.user),
        "password_form": password_form or PasswordChangeForm(user=request.user),
        "keys_form": keys_form or SSHKeysAddForm(),
        "remove_form": remove_form,
        "max_keys": MAX_KEYS,
        "rsa_min_bits": settings.SIGNUP_SSH_RSA_MIN_BITS,
    }
    return render(request, "accounts/profile.html", context, status=status)


@require_GET
@never_cache
def profile(request: HttpRequest) -> HttpResponse:
    return _render(request)


def _service_failed(form, exc: Exception) -> int:
    """Put a service's refusal on the form; the HTTP status to answer with."""
    if isinstance(exc, AccountError):
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return 200
    if isinstance(exc, DirectoryUnavailable):
        form.add_error(None, UNAVAILABLE)
        return 503
    form.add_error(None, str(exc))
    return 200


@sensitive_post_parameters("old_password", "new_password", "new_password_again")
@require_POST
@never_cache
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.POST, user=request.user)
    # Every attempt counts, so a borrowed session cannot be used to guess the old password.
    verdict = throttle.attempt((throttle.PASSWORD_CHANGE, request.user.username))
    if not verdict.allowed:
        form.is_valid()
        form.add_error(
            None,
            f"Too many password changes for this account: try again in about {verdict.minutes} "
            "minutes.",
        )
        return _render(request, password_form=form, status=429)
    if not form.is_valid():
        return _render(request, password_form=form)
    try:
        services.password_change(
            user=request.user,
            old_password=form.cleaned_data["old_password"],
            new_password=form.cleaned_data["new_password"],
            request=request,
        )
    except (*REFUSALS, IntegrationError) as exc:
        return _render(request, password_form=form, status=_service_failed(form, exc))
    messages.success(
        request,
        "Your password was changed: use the new one for SSH, JupyterHub and the dashboard. Your "
        "other dashboard sessions were ended.",
    )
    return redirect("accounts:profile")


@require_POST
@never_cache
def key_add(request: HttpRequest) -> HttpResponse:
    form = SSHKeysAddForm(request.POST)
    if not form.is_valid():
        return _render(request, keys_form=form)
    keys = form.cleaned_data["ssh_keys"]
    try:
        services.ssh_keys_add(user=request.user, keys=keys, request=request)
    except (*REFUSALS, IntegrationError) as exc:
        return _render(request, keys_form=form, status=_service_failed(form, exc))
    added = ", ".join(key.fingerprint for key in keys)
    messages.success(request, f"Added {len(keys)} key{'s' if len(keys) != 1 else ''}: {added}.")
    return redirect("accounts:profile")


@require_POST
@never_cache
def key_remove(request: HttpRequest) -> HttpResponse:
    form = SSHKeyRemoveForm(request.POST)
    if not form.is_valid():
        return _render(request, remove_form=form)
    fingerprint = form.cleaned_data["fingerprint"]
    try:
        services.ssh_key_remove(user=request.user, fingerprint=fingerprint, request=request)
    except (*REFUSALS, IntegrationError) as exc:
        return _render(request, remove_form=form, status=_service_failed(form, exc))
    messages.success(request, f"Removed the key {fingerprint}.")
    return redirect("accounts:profile")
