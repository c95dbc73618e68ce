from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.budgets import actions as budget_actions
from billing.budgets import selectors as budget_selectors
from billing.budgets import services as budget_services
from billing.forms import BudgetForm, FreezeForm, OverrideAddForm, OverrideRemoveForm, PlanForm
from billing.models import STORAGE_SERVICES, PriceKind
from billing.money import amount_str
from billing.prices import estimates, selectors, services
from clusterweb.permissions import admin_required


def _region(requested: str | None) -> str:
    regions = selectors.price_regions()
    if requested in regions:
        return requested
    return settings.AWS_REGION if settings.AWS_REGION in regions or not regions else regions[0]


@require_http_methods(["GET", "POST"])
def estimate(request: HttpRequest) -> HttpResponse:
    """What would a plan cost? Every logged-in user; reads only (a missing price is noted)."""
    region = _region(request.GET.get("region"))
    form = PlanForm(
        request.POST or None,
        initial={"plan": estimates.example_plan(request.GET.get("example", ""), region)},
    )
    result = None
    if form.is_bound and form.is_valid():
        try:
            result = estimates.estimate_run(plan_text=form.cleaned_data["plan"])
        except estimates.PlanError as exc:
            form.add_error("plan", str(exc))
    context = {
        "form": form,
        "result": result,
        "examples": {name: title for name, (title, _) in estimates.EXAMPLES.items()},
        "region": region,
        "regions": selectors.price_regions(),
        "instance_types": selectors.instance_types(region),
        "storage_services": STORAGE_SERVICES,
    }
    template = "billing/estimate.html#result" if request.htmx else "billing/estimate.html"
    return render(request, template, context)


def _prices_page(request: HttpRequest, region: str, add_form: OverrideAddForm) -> HttpResponse:
    context = {
        "region": region,
        "regions": selectors.price_regions(),
        "table": selectors.price_table(region),
        "overrides": selectors.price_overrides_in_force(),
        "gaps": selectors.price_gaps_open(),
        "add_form": add_form,
        "kinds": PriceKind.choices,
        "instance_types": selectors.instance_types(region),
        "storage_services": STORAGE_SERVICES,
        "spot_max_age_hours": settings.SPOT_PRICE_MAX_AGE_HOURS,
    }
    template = "billing/prices.html#catalog" if request.htmx else "billing/prices.html"
    return render(request, template, context)


def _prices_url(region: str, anchor: str = "") -> str:
    url = f"{reverse('billing:prices')}?{urlencode({'region': region})}"
    return f"{url}#{anchor}" if anchor else url


@require_GET
@admin_required
def prices(request: HttpRequest) -> HttpResponse:
    """Every price with its source and effective date; overrides highlighted (admins only)."""
    region = _region(request.GET.get("region"))
    return _prices_page(request, region, OverrideAddForm(initial={"region": region}))


@require_POST
@admin_required
def override_add(request: HttpRequest) -> HttpResponse:
    form = OverrideAddForm(request.POST)
    if form.is_valid():
        try:
            override = services.price_override_add(
                actor=request.user, request=request, **form.cleaned_data
            )
        except services.PriceInputError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(
                request,
                f"Override set: {override.kind} {override.item} in {override.region} at "
                f"{override.price.normalize()} USD per {override.unit}.",
            )
            return redirect(_prices_url(override.region, "overrides"))
    return _prices_page(request, _region(request.POST.get("region")), form)


@require_POST
@admin_required
def override_remove(request: HttpRequest) -> HttpResponse:
    form = OverrideRemoveForm(request.POST)
    region = _region(request.POST.get("region"))
    if not form.is_valid():
        messages.error(request, "Choose an override to remove.")
        return redirect(_prices_url(region, "overrides"))
    try:
        override = services.price_override_remove(
            actor=request.user, override_id=form.cleaned_data["override"], request=request
        )
    except services.PriceInputError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Override removed: {override.kind} {override.item} in {override.region}; the "
            "catalog price applies again.",
        )
        region = override.region
    return redirect(_prices_url(region, "overrides"))


# --- Budgets -------------------------------------------------------------------------------------
def _budget_page(
    request: HttpRequest,
    *,
    budget_form: BudgetForm | None = None,
    freeze_form: FreezeForm | None = None,
    status: int = 200,
) -> HttpResponse:
    view = budget_selectors.budget_overview()
    budget = view.budget
    if budget_form is None:
        budget_form = BudgetForm(
            initial={
                "monthly": "" if view.monthly is None else amount_str(view.monthly),
                "thresholds": ",".join(str(p) for p in budget.thresholds)
                if budget
                else "50,80,100",
                "forecast": ",".join(str(p) for p in budget.forecast_thresholds)
                if budget
                else "100",
                "recipients": ", ".join(budget.recipients) if budget else "",
            }
        )
    context = {
        "view": view,
        "bar": view.bar(),
        "chart": view.chart(),
        "estimate": view.overview.estimate,
        "budget_form": budget_form,
        "freeze_form": freeze_form or FreezeForm(),
        "actions": budget_actions.ACTIONS.values(),
    }
    return render(request, "billing/budgets.html", context, status=status)


@require_GET
@admin_required
def budgets(request: HttpRequest) -> HttpResponse:
    """The month's spend and forecast against the budget, the alerts sent, each collaborator's
    spend, the freeze (admins only; collaborators see the budget's state on the dashboard)."""
    return _budget_page(request)


@require_POST
@admin_required
def budget_set(request: HttpRequest) -> HttpResponse:
    form = BudgetForm(request.POST)
    if form.is_valid():
        try:
            budget_services.budget_set(actor=request.user, request=request, **form.cleaned_data)
        except budget_services.BudgetInputError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(request, "Budget saved.")
            return redirect(reverse("billing:budgets"))
    return _budget_page(request, budget_form=form)


@require_POST
@admin_required
def budget_freeze(request: HttpRequest) -> HttpResponse:
    form = FreezeForm(request.POST)
    if form.is_valid():
        try:
            budget_services.budget_freeze(
                actor=request.user, reason=form.cleaned_data["reason"], request=request
            )
        except budget_services.BudgetInputError as exc:
            form.add_error("reason", str(exc))
        else:
            messages.success(request, "New launches are frozen until the 1st.")
            return redirect(reverse("billing:budgets"))
    return _budget_page(request, freeze_form=form)


@require_POST
@admin_required
def budget_unfreeze(request: HttpRequest) -> HttpResponse:
    budget_services.budget_unfreeze(actor=request.user, request=request)
    messages.success(request, "The freeze is lifted: new launches may be requested again.")
    return redirect(reverse("billing:budgets"))


@require_http_methods(["GET", "POST"])
@admin_required
def budget_action(request: HttpRequest, action: str) -> HttpResponse:
    """An alert's action link: GET shows what it would do and asks to confirm (a GET never
    acts: a mail scanner or a prefetching client opening the link changes nothing); the admin's
    POST does it."""
    chosen = budget_actions.ACTIONS.get(action)
    if chosen is None:
        raise Http404("No such budget action.")
    alert = budget_selectors.alert_for_link(request.GET.get("alert") or request.POST.get("alert"))
    form = FreezeForm(
        request.POST or None,
        initial={"reason": budget_selectors.freeze_reason_suggested(alert)},
    )
    freezing = chosen.slug == budget_actions.FREEZE
    if request.method == "POST" and (form.is_valid() or not freezing):
        reason = form.cleaned_data.get("reason", "") if freezing else ""
        try:
            outcome = budget_actions.action_run(
                slug=chosen.slug,
                actor=request.user,
                reason=reason,
                # A stop confirms the launches the page listed, and only those.
                confirmed=None if freezing else request.POST.getlist("launch"),
                request=request,
            )
        except budget_services.BudgetInputError as exc:
            form.add_error("reason", str(exc))
        else:
            messages.success(request, outcome.message)
            return redirect(reverse("billing:budgets"))
    context = {
        "action": chosen,
        "alert": alert,
        "form": form,
        "targets": budget_actions.action_targets(chosen.slug),
        "launches": budget_actions.action_launches(chosen.slug),
        "freeze": budget_selectors.freeze_state(),
    }
    return render(request, "billing/budget_action.html", context)
