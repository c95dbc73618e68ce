from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billing.costs.selectors import dashboard_for
from clusterweb.health.services import health_report


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: this month's cost (estimate, bill, forecast) and the nodes, from the
    database. Its cost section polls this view (htmx), which then answers with that section."""
    context = dashboard_for(request.user)
    template = "billing/_dashboard.html#costs" if request.htmx else "home.html"
    return render(request, template, context)


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """JSON health of every dependency. 503 only when the database is down (the process cannot
    serve anything); a degraded dependency is reported with 200 so the pod is not restarted for
    an outage elsewhere."""
    report = health_report()
    return JsonResponse(report, status=200 if report["database"]["ok"] else 503)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    response = render(request, "errors/csrf.html", status=403)
    # static/clusterweb-errors.js tells an expired form from any other 403 by this header.
    response["X-Clusterweb-Error"] = "csrf"
    return response
