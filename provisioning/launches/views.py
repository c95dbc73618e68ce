"""The launch pages: the Spark form with its live quote, the request page (its progress part
polled), My launches and All launches, the Approvals page with Approve / Reject, Cancel, and the
approval policy. Thin: a permission-checked lookup, one form or service call, then a page, a
fragment (htmx) or a redirect. The services own every write; the forms are shared with the CLI."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from clusterweb.accounts.directory.selectors import usernames_with_a_role
from clusterweb.permissions import admin_required, is_admin, member_required
from provisioning.launches import quotes, selectors, services
from provisioning.launches.execution_views import execution_context
from provisioning.launches.forms import (
    ApprovalPolicyForm,
    ApproveForm,
    RejectForm,
    SparkLaunchForm,
)
from provisioning.launches.models import (
    FINAL_STATES,
    ApprovalPolicy,
    LaunchKind,
    LaunchRequest,
    LaunchState,
)
from provisioning.models import Pool

SPARK_POOL = "spark"
# The request page's progress part polls itself this often until the request is final.
POLL_SECONDS = 3
# A service's field name, as the approve form calls it.
_APPROVE_FIELDS = {"count": "workers", "hours": "hours", "note": "note"}


def _form_error(form: Any, field: str | None, message: str, names: dict[str, str]) -> None:
    name = names.get(field or "", field)
    form.add_error(name if name in form.fields else None, message)


# --- The Spark form -------------------------------------------------------------------------------
def _spark_initial(form: SparkLaunchForm) -> dict[str, Any]:
    """What a new form starts with: one worker of the pool's first type, for an hour."""
    return {
        "workers": 1 if form.room else None,
        "instance_type": form.fields["instance_type"].initial,
        "capacity_type": form.fields["capacity_type"].initial,
        "hours": 1,
        "owner": form.fields["owner"].initial,
    }


def _spark_page(
    request: HttpRequest, form: SparkLaunchForm | None, pool: Pool | None, *, live: bool = False
) -> dict[str, Any]:
    quote = None
    if form is not None and form.is_bound:
        quote = form.quote()
    elif form is not None:  # a new form: the quote of what it starts with
        quote = SparkLaunchForm(form.initial, user=request.user, pool=pool).quote()
    policy = ApprovalPolicy.current()
    reason = None
    if quote is not None:
        reason = services.approval_reason(
            policy=policy,
            kind=LaunchKind.SPARK,
            requested_by=request.user,
            max_cost=quote.max_cost,
        )
    return {
        "form": form,
        "pool": pool,
        "quote": quote,
        "approval_reason": reason,
        "policy": policy,
        "room": form.room if form is not None else 0,
        "admin": is_admin(request.user),
        "owners": usernames_with_a_role() if is_admin(request.user) and not live else [],
        "live": live,
    }


@require_http_methods(["GET", "POST"])
@member_required
def spark(request: HttpRequest) -> HttpResponse:
    """Ask for Spark workers. GET with htmx (the form's fields as the query) answers with the
    live quote only; POST asks for the launch and goes to its page, or shows the form again with
    its errors and everything typed kept."""
    pool = Pool.objects.filter(slug=SPARK_POOL).first()
    template = "provisioning/launches/spark.html"
    if pool is None:
        return render(request, template, _spark_page(request, None, None))
    if request.method == "POST":
        form = SparkLaunchForm(request.POST, user=request.user, pool=pool)
        if form.is_valid():
            try:
                launch = form.save(request=request)
            except services.LaunchInputError as exc:
                _form_error(form, exc.field, exc.message, {"count": "workers"})
            else:
                messages.success(request, _requested_message(launch))
                return redirect("launches:detail", pk=launch.pk)
        return render(request, template, _spark_page(request, form, pool))
    if request.htmx:
        form = SparkLaunchForm(request.GET, user=request.user, pool=pool)
        return render(request, f"{template}#quote", _spark_page(request, form, pool, live=True))
    form = SparkLaunchForm(user=request.user, pool=pool)
    form.initial = _spark_initial(form)
    return render(request, template, _spark_page(request, form, pool))


def _requested_message(launch: LaunchRequest) -> str:
    if launch.state == LaunchState.PENDING_APPROVAL:
        return f"Request {launch.pk} is waiting for an admin: {launch.approval_reason}."
    return f"Request {launch.pk} is approved."


# --- The request page -----------------------------------------------------------------------------
def _request_context(request: HttpRequest, launch: LaunchRequest) -> dict[str, Any]:
    own = request.user.pk in (launch.owner_id, launch.requested_by_id)
    return {
        "launch": launch,
        "steps": list(launch.steps.all()),
        "final": launch.state in FINAL_STATES,
        "poll_seconds": POLL_SECONDS,
        "can_cancel": launch.state in services.CANCELLABLE_STATES
        and (own or is_admin(request.user)),
        # An admin's decision part quotes again: on the full page only, never on each poll.
        "decision": _decision(launch) if is_admin(request.user) and not request.htmx else None,
        "approval_deadline": services.approval_deadline(launch),
        # Issue 18: instances, Stop, cost so far, quote against actual, how to use the workers.
        **execution_context(request, launch),
    }


@require_GET
@member_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A request: parameters, quote, approval and its progress (state and step log). The
    progress part polls this view (htmx), which answers with that part alone and stops the
    polling (286) once the request is final. Strangers get 404."""
    launch = get_object_or_404(selectors.requests_visible_to(request.user), pk=pk)
    context = _request_context(request, launch)
    if request.htmx:
        response = render(request, "provisioning/launches/_progress.html", context)
        if context["final"]:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "provisioning/launches/detail.html", context)


@require_POST
@member_required
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a request that runs nothing yet: its requester or owner, or an admin."""
    launch = get_object_or_404(selectors.requests_visible_to(request.user), pk=pk)
    try:
        services.cancel(launch.pk, by=request.user, request=request)
    except services.LaunchInputError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Request {launch.pk} is cancelled.")
    return redirect("launches:detail", pk=launch.pk)


# --- My launches / All launches -------------------------------------------------------------------
def _list_page(request: HttpRequest, launches: Any, *, everyone: bool) -> HttpResponse:
    state = request.GET.get("state", "")
    if state in LaunchState.values:
        launches = launches.filter(state=state)
    else:
        state = ""
    page = Paginator(launches, 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "everyone": everyone,
        "state": state,
        "states": LaunchState.choices,
        "admin": is_admin(request.user),
    }
    return render(request, "provisioning/launches/list.html", context)


@require_GET
@member_required
def mine(request: HttpRequest) -> HttpResponse:
    """The requests the user owns or asked for (admins' own too), newest first."""
    return _list_page(
        request,
        selectors.requests_visible_to(request.user).filter(
            Q(owner=request.user) | Q(requested_by=request.user)
        ),
        everyone=False,
    )


@require_GET
@admin_required
def everyone(request: HttpRequest) -> HttpResponse:
    """Every request (admins)."""
    return _list_page(request, selectors.requests_visible_to(request.user), everyone=True)


# --- Approvals ------------------------------------------------------------------------------------
def _decision(
    launch: LaunchRequest,
    approve_form: ApproveForm | None = None,
    reject_form: RejectForm | None = None,
    error: str = "",
) -> dict[str, Any]:
    """What an admin sees to decide a request: the quote again now and how it moved since the
    request, the pool's room now, and the two forms. After a decision: the outcome."""
    context: dict[str, Any] = {"launch": launch, "error": error}
    if launch.state != LaunchState.PENDING_APPROVAL:
        return context
    quote = quotes.requote(launch)
    room = selectors.pool_room(launch.pool, exclude_request=launch.pk)
    context.update(
        {
            "quote": quote,
            "change": quotes.quote_change(launch, quote),
            "room": room,
            "fits": launch.count <= room,
            # A request the pool has no room for now starts as the smaller approval that fits.
            "approve_form": approve_form
            or ApproveForm(
                launch=launch, initial={"workers": room} if 0 < room < launch.count else None
            ),
            "reject_form": reject_form or RejectForm(launch=launch),
        }
    )
    return context


@require_GET
@admin_required
def approvals(request: HttpRequest) -> HttpResponse:
    """What waits for an admin, oldest first, each with why and the quote now."""
    pending = [_decision(launch) for launch in selectors.requests_pending()]
    policy = ApprovalPolicy.current()
    context = {
        "pending": pending,
        "policy": policy,
        "policy_kinds": [kind for kind in LaunchKind.values if policy.requires(kind)],
    }
    return render(request, "provisioning/launches/approvals.html", context)


def _decided(request: HttpRequest, launch: LaunchRequest, context: dict[str, Any]) -> HttpResponse:
    """The decision part again (htmx), or back to where the admin decided from."""
    if request.htmx:
        next_page = "detail" if request.POST.get("next") == "detail" else "approvals"
        return render(
            request, "provisioning/launches/_decide.html", {"d": context, "next": next_page}
        )
    if context.get("error"):
        messages.error(request, context["error"])
    elif context["launch"].state != LaunchState.PENDING_APPROVAL:
        messages.success(request, _decided_message(context["launch"]))
    else:
        for errors in (context.get("approve_form"), context.get("reject_form")):
            for message in errors.errors.values() if errors is not None else []:
                messages.error(request, " ".join(message))
    if request.POST.get("next") == "detail":
        return redirect("launches:detail", pk=launch.pk)
    return redirect("launches:approvals")


def _decided_message(launch: LaunchRequest) -> str:
    if launch.state == LaunchState.REJECTED:
        return f"Rejected request {launch.pk}; {launch.requested_by.username} is told by email."
    size = f"{launch.granted_count} × {launch.instance_type} for {launch.granted_hours} h"
    return (
        f"Approved request {launch.pk}{' (smaller than asked)' if launch.approved_smaller else ''}:"
        f" {size}; {launch.requested_by.username} is told by email."
    )


@require_POST
@admin_required
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve, perhaps smaller (fewer workers or hours). The service re-quotes and re-checks the
    pool's room; a request somebody decided first says so and changes nothing."""
    launch = get_object_or_404(selectors.requests_visible_to(request.user), pk=pk)
    form = ApproveForm(request.POST, launch=launch)
    error = ""
    if form.is_valid():
        try:
            launch = form.save(by=request.user, request=request)
        except services.LaunchStateError as exc:
            error = exc.message
            launch.refresh_from_db()
        except services.LaunchInputError as exc:
            _form_error(form, exc.field, exc.message, _APPROVE_FIELDS)
    return _decided(request, launch, _decision(launch, approve_form=form, error=error))


@require_POST
@admin_required
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    launch = get_object_or_404(selectors.requests_visible_to(request.user), pk=pk)
    form = RejectForm(request.POST, launch=launch)
    error = ""
    if form.is_valid():
        try:
            launch = form.save(by=request.user, request=request)
        except services.LaunchInputError as exc:
            error = exc.message
            launch.refresh_from_db()
    return _decided(request, launch, _decision(launch, reject_form=form, error=error))


# --- The approval policy --------------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
@admin_required
def policy(request: HttpRequest) -> HttpResponse:
    """The threshold and, per kind, whether collaborators always need approval."""
    current = ApprovalPolicy.current()
    if request.method == "POST":
        form = ApprovalPolicyForm(request.POST)
        if form.is_valid():
            try:
                form.save(by=request.user, request=request)
            except services.LaunchInputError as exc:
                _form_error(form, exc.field, exc.message, {})
            else:
                messages.success(request, "Approval policy saved.")
                return redirect("launches:policy")
    else:
        form = ApprovalPolicyForm(initial=ApprovalPolicyForm.initial_from(current))
    return render(request, "provisioning/launches/policy.html", {"form": form, "policy": current})
