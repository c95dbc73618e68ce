from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billing.budgets.selectors import budget_overview
from billing.costs.selectors import dashboard_for
from clusterweb.health.services import health_report, readiness


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: this month's cost (estimate, bill, forecast) and the nodes, from the
    database. Its cost section polls this view (htmx), which then answers with that section."""
    context = dashboard_for(request.user)
    if not request.htmx:
        # The cluster's budget state, for everyone (collaborators too): spend, forecast, freeze.
        context["budget_view"] = budget_overview(overview=context["overview"])
    template = "billing/_dashboard.html#costs" if request.htmx else "home.html"
    return render(request, template, context)


# The three health endpoints are anonymous (probes carry no session) and cheap: a probe calls
# them every few seconds on a site served by a handful of threads.


@login_not_required
@never_cache
@require_GET
def healthz_live(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. No database, no dependency: an orchestrator restarts the
    pod only when this fails, and restarting never fixes an outage elsewhere."""
    return JsonResponse({"live": True})


@login_not_required
@never_cache
@require_GET
def healthz_ready(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers and is migrated, so pages can be served. 503 with the
    reason otherwise (the pod gets no traffic, and is not restarted)."""
    ready, reason = readiness()
    if ready:
        return JsonResponse({"ready": True})
    return JsonResponse({"ready": False, "reason": reason}, status=503)


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The JSON health report of every dependency and job. 503 only when this process cannot
    serve (the database is unreachable or not migrated); a late worker, beat or job, or an outage
    of Redis or LDAP, is reported with 200, so it never gets the web pods restarted."""
    report = health_report()
    return JsonResponse(report, status=200 if report["database"]["ok"] else 503)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    response = render(request, "errors/csrf.html", status=403)
    # static/clusterweb-errors.js tells an expired form from any other 403 by this header.
    response["X-Clusterweb-Error"] = "csrf"
    return response
