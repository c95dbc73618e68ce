from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.forms import OverrideAddForm, OverrideRemoveForm, PlanForm
from billing.models import STORAGE_SERVICES, PriceKind
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
