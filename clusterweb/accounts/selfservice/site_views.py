"""Password reset pages on the signup site (port 8001, reached through the bastion's ``join``
tunnel, so someone locked out of their account can reach them).

As with invitations, the link's token is checked once, its reset kept in the signup site's own
session, and the browser sent on to ``/reset/password/``: the token leaves the address bar, the
history and any Referer at once.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods

from clusterweb.accounts import throttle
from clusterweb.accounts.directory.services import AccountError
from clusterweb.accounts.forms import PasswordResetForm, ResetRequestForm
from clusterweb.accounts.models import PasswordReset, User
from clusterweb.accounts.selfservice import selectors, services
from clusterweb.errors import DirectoryUnavailable

SESSION_RESET = "password_reset"  # {"id": reset pk, "digest": the token's SHA-256}
SESSION_RESET_DONE = "password_reset_done"  # the uid whose password this browser just set

_ASK_AGAIN = "Ask the cluster's admin for a new link."
PROBLEMS = {
    "forged": (
        404,
        "This reset link is not valid",
        "Check that you copied the whole link from the email. If you were sent a newer link, use "
        "that one. " + _ASK_AGAIN,
    ),
    "missing": (
        404,
        "Open the link from your email",
        "To set a new password, open the personal link in the password reset email (with the SSH "
        "tunnel running).",
    ),
    "expired": (410, "This reset link has expired", "Reset links work for a limited time. "),
    "used": (
        410,
        "This reset link has been used",
        "Each link sets a password once. If that was not you, tell the cluster's admin at once.",
    ),
    "withdrawn": (
        410,
        "This reset link was replaced",
        "A newer link was sent for this account: use the one in the latest email.",
    ),
    "disabled": (
        403,
        "This account is disabled",
        "A disabled account's password cannot be reset. Talk to the cluster's admin.",
    ),
}


def _problem(request: HttpRequest, problem: str) -> HttpResponse:
    status, title, text = PROBLEMS[problem]
    if problem == "expired":
        text += _ASK_AGAIN
    return render(
        request, "signup/reset_problem.html", {"title": title, "text": text}, status=status
    )


@login_not_required
@never_cache
@require_GET
def password_reset(request: HttpRequest) -> HttpResponse:
    """The link of the reset email: check the token, keep its reset in the session."""
    reset, problem = selectors.reset_for_token(request.GET.get("token", ""))
    if problem:
        services.reset_refused_record(problem=problem, reset=reset, request=request)
        return _problem(request, problem)
    request.session.cycle_key()
    request.session[SESSION_RESET] = {"id": reset.pk, "digest": reset.token_hash}
    return redirect("password_reset_form")


def _person(reset: PasswordReset) -> User:
    """An unsaved user carrying the account's name and address, for the similarity check."""
    return User(username=reset.uid, first_name=reset.full_name, email=reset.email)


@sensitive_post_parameters("password", "password_again")
@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def password_reset_form(request: HttpRequest) -> HttpResponse:
    held = request.session.get(SESSION_RESET) or {}
    if not held:
        return _problem(request, "missing")
    reset, problem = selectors.reset_held(held.get("id"), held.get("digest"))
    if problem:
        return _problem(request, problem)
    form = PasswordResetForm(request.POST or None, person=_person(reset))
    status = 200
    if request.method == "POST":
        verdict = throttle.attempt(
            (throttle.RESET_LINK, str(reset.pk)), (throttle.RESET_USER, reset.uid)
        )
        if not verdict.allowed:
            form.is_valid()
            form.add_error(
                None, f"Too many attempts: try again in about {verdict.minutes} minutes."
            )
            status = 429
        elif form.is_valid():
            try:
                services.password_reset_complete(
                    reset_id=reset.pk,
                    token_digest=held["digest"],
                    password=form.cleaned_data["password"],
                    request=request,
                )
            except services.ResetRefused as refused:
                return _problem(request, refused.problem)
            except AccountError as exc:
                form.add_error("password", exc.message)
            except DirectoryUnavailable:
                form.add_error(
                    None,
                    "The cluster's directory cannot be reached, so your password was not "
                    "changed. Your link still works: try again in a few minutes.",
                )
                status = 503
            else:
                request.session.pop(SESSION_RESET, None)
                request.session[SESSION_RESET_DONE] = reset.uid
                return redirect("password_reset_done")
    return render(request, "signup/reset_form.html", {"form": form, "reset": reset}, status=status)


@login_not_required
@never_cache
@require_GET
def password_reset_done(request: HttpRequest) -> HttpResponse:
    return render(
        request, "signup/reset_done.html", {"uid": request.session.get(SESSION_RESET_DONE)}
    )


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def password_reset_request(request: HttpRequest) -> HttpResponse:
    """Ask for a reset link by email address (only with PASSWORD_RESET_SELF_SERVICE). The answer
    is the same whether the address belongs to an account or not."""
    if not settings.PASSWORD_RESET_SELF_SERVICE:
        raise Http404("Self-service password reset is off.")
    form = ResetRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.password_reset_request(email=form.cleaned_data["email"], request=request)
        return render(
            request,
            "signup/reset_requested.html",
            {"hours": settings.PASSWORD_RESET_HOURS},
        )
    return render(request, "signup/reset_request.html", {"form": form})
