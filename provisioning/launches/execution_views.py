"""The execution's part of the request page (issue 18): the Stop button, the instances, the
running cost, the quote against the actual cost and how to use Spark workers. The request page
(``views.detail``) adds :func:`execution_context` to its context and includes
``provisioning/launches/_execution.html``; its htmx polling refreshes this part too."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from clusterweb.permissions import is_admin, member_required
from provisioning.launches import execution, selectors, spark
from provisioning.launches.models import LaunchRequest, LaunchState
from provisioning.launches.outcomes import outcome_of
from provisioning.models import Node


def execution_context(request: HttpRequest, launch: LaunchRequest) -> dict[str, Any]:
    """What ``_execution.html`` shows. Reads the database only (no page calls AWS or
    Kubernetes): the inventory's rows for the instances, the cost rows for the cost."""
    own = request.user.pk in (launch.owner_id, launch.requested_by_id)
    running = launch.state == LaunchState.RUNNING
    return {
        "can_stop": launch.state in (LaunchState.LAUNCHING, LaunchState.RUNNING)
        and (own or is_admin(request.user)),
        "nodes": list(Node.objects.filter(request=str(launch.pk)).order_by("instance_id")),
        "cost_so_far": execution.actual_cost(launch.pk),
        "outcome": outcome_of(launch),
        "spark_ui": f"http://127.0.0.1:{spark.UI_PORT}/" if running else "",
        "spark_snippet": spark.usage_snippet() if launch.kind == "spark" else "",
        "master_url": spark.MASTER_URL,
    }


@require_POST
@member_required
def stop(request: HttpRequest, pk: int) -> HttpResponse:
    """Stop a launch (its owner or requester, or an admin); a request that runs nothing yet is
    cancelled. Anyone who may not see the request gets 404 (collaborators see only their own)."""
    launch = get_object_or_404(selectors.requests_visible_to(request.user), pk=pk)
    launch = execution.launch_stop(launch.pk, by=request.user, request=request)
    if launch.state == LaunchState.CANCELLED:
        messages.success(request, f"Request {launch.pk} is cancelled.")
    else:
        messages.success(
            request,
            f"Launch {launch.pk} is {launch.state}: its workers, instances and join credentials "
            "are being removed.",
        )
    return redirect("launches:detail", pk=launch.pk)
