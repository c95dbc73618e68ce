"""The signup site's pages (port 8001, clusterweb/urls_signup.py): nobody here is logged in.

An invitation link (``/invitation/?token=...``) is checked once and its invitation moved into
the signup site's own session, then the browser is sent on to ``/join/``: the token leaves the
address bar, the history and any Referer at once.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods

from clusterweb import clock
from clusterweb.accounts import throttle
from clusterweb.accounts.forms import SignupForm
from clusterweb.accounts.models import Signup
from clusterweb.accounts.signup import selectors, services
from clusterweb.errors import DirectoryUnavailable

SESSION_INVITATION = "signup_invitation"  # {"id": signup pk, "digest": the token's SHA-256}
SESSION_SUBMITTED = "signup_submitted"  # the pk of the signup this browser submitted

PROBLEMS = {
    "forged": (
        404,
        "This signup link is not valid",
        "Check that you copied the whole link from your invitation email. If it still does not "
        "work, the admin may have sent you a newer invitation: use the link in the latest one.",
    ),
    "missing": (
        404,
        "Open the link from your invitation",
        "To sign up, open the personal link in your invitation email (with the SSH tunnel "
        "running).",
    ),
    "expired": (
        410,
        "This invitation has expired",
        "Invitation links are valid for a limited time. Ask the admin who invited you to send it "
        "again.",
    ),
    "used": (
        410,
        "This invitation has already been used",
        "Each link works once. If you have just submitted the form, your signup is waiting for "
        "an admin's approval and you will get an email.",
    ),
    "revoked": (
        410,
        "This invitation was withdrawn",
        "An admin revoked it. Ask the admin who invited you if you think this is a mistake.",
    ),
}


def _problem(request: HttpRequest, problem: str) -> HttpResponse:
    status, title, text = PROBLEMS[problem]
    return render(request, "signup/problem.html", {"title": title, "text": text}, status=status)


@login_not_required
@require_GET
def signup_home(request: HttpRequest) -> HttpResponse:
    context = {"self_service_reset": settings.PASSWORD_RESET_SELF_SERVICE}
    return render(request, "signup/placeholder.html", context)


@login_not_required
@never_cache
@require_GET
def signup_invitation(request: HttpRequest) -> HttpResponse:
    """The link of the invitation email: check the token, keep its invitation in the session."""
    signup, problem = selectors.invitation_for_token(request.GET.get("token", ""))
    if problem:
        services.invitation_refused_record(problem=problem, signup=signup, request=request)
        return _problem(request, problem)
    request.session.cycle_key()
    request.session[SESSION_INVITATION] = {"id": signup.pk, "digest": signup.token_hash}
    return redirect("signup_form")


def _held_invitation(request: HttpRequest) -> tuple[Signup | None, str | None]:
    held = request.session.get(SESSION_INVITATION)
    if not held:
        return None, "missing"
    signup = Signup.objects.filter(pk=held.get("id")).first()
    if signup is None or not hmac.compare_digest(signup.token_hash, held.get("digest", "")):
        return None, "forged"
    return signup, services.invitation_problem(signup, clock.now())


@sensitive_post_parameters("password", "password_again")
@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def signup_form(request: HttpRequest) -> HttpResponse:
    signup, problem = _held_invitation(request)
    if problem:
        submitted = request.session.get(SESSION_SUBMITTED)
        if problem in ("used", "missing") and submitted and request.method == "POST":
            return redirect("signup_submitted")  # the same form, sent twice
        return _problem(request, problem)
    form = SignupForm(request.POST or None, initial={"email": signup.email})
    status = 200
    # Every submission counts against the invitation, valid or not: a leaked link cannot be
    # used to probe the directory's user names at speed.
    verdict = (
        throttle.attempt((throttle.SIGNUP_SUBMIT, str(signup.pk)))
        if request.method == "POST"
        else throttle.Verdict(True)
    )
    if not verdict.allowed:
        form.is_valid()
        form.add_error(
            None,
            f"Too many attempts with this invitation: try again in about {verdict.minutes} "
            "minutes.",
        )
        status = 429
    elif request.method == "POST" and form.is_valid():
        try:
            services.signup_submit(
                signup_id=signup.pk,
                token_digest=request.session[SESSION_INVITATION]["digest"],
                username=form.cleaned_data["username"],
                full_name=form.cleaned_data["full_name"],
                password=form.cleaned_data["password"],
                keys=form.cleaned_data["ssh_keys"],
                request=request,
            )
        except services.InvitationRefused as refused:
            return _problem(request, refused.problem)
        except services.SignupError as exc:
            form.add_error(exc.field, exc.message)
        except DirectoryUnavailable:
            form.add_error(
                None,
                "The cluster's directory cannot be reached, so your user name cannot be checked "
                "right now. Please try again in a few minutes.",
            )
            status = 503
        else:
            request.session.pop(SESSION_INVITATION, None)
            request.session[SESSION_SUBMITTED] = signup.pk
            return redirect("signup_submitted")
    keys = form.cleaned_data.get("ssh_keys") if hasattr(form, "cleaned_data") else None
    context = {
        "form": form,
        "signup": signup,
        "keys": keys or [],
        "rsa_min_bits": settings.SIGNUP_SSH_RSA_MIN_BITS,
    }
    return render(request, "signup/form.html", context, status=status)


@login_not_required
@never_cache
@require_GET
def signup_submitted(request: HttpRequest) -> HttpResponse:
    signup = Signup.objects.filter(pk=request.session.get(SESSION_SUBMITTED) or 0).first()
    return render(request, "signup/submitted.html", {"signup": signup})
