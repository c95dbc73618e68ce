from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from clusterweb.permissions import admin_required, is_admin
from provisioning import selectors, services
from provisioning.forms import PoolForm
from provisioning.models import Pool


def nodes_url(*, sort: str, descending: bool, terminated: bool) -> str:
    query = {"sort": f"-{sort}" if descending else sort}
    if terminated:
        query["terminated"] = "1"
    return f"{reverse('provisioning:nodes')}?{urlencode(query)}"


@require_GET
def nodes(request: HttpRequest) -> HttpResponse:
    """What runs and what it costs per hour, from the database (the sync keeps it current).
    Admins see every node, collaborators theirs and the always-on ones. The table polls itself
    (the htmx fragment) every 15 s without extending the session."""
    if request.user.role not in ("admin", "collaborator"):
        raise PermissionDenied("Collaborators and admins only.")
    inventory = selectors.node_inventory(
        nodes=selectors.nodes_visible_to(request.user),
        sort=request.GET.get("sort"),
        terminated=request.GET.get("terminated") == "1",
    )
    context = {
        "inventory": inventory,
        "poll_url": nodes_url(
            sort=inventory.sort,
            descending=inventory.descending,
            terminated=inventory.terminated_shown,
        ),
        "storage": selectors.storage_summary(inventory.now) if is_admin(request.user) else None,
        "left_behind": selectors.left_behind_visible_to(request.user, inventory.now),
    }
    template = "provisioning/nodes.html#inventory" if request.htmx else "provisioning/nodes.html"
    return render(request, template, context)


@require_GET
@admin_required
def pools(request: HttpRequest) -> HttpResponse:
    return render(request, "provisioning/pools.html", {"pools": selectors.pools_list()})


def _pool_form_page(request: HttpRequest, form: PoolForm, pool: Pool | None) -> HttpResponse:
    return render(request, "provisioning/pool_form.html", {"form": form, "pool": pool})


def _pool_submit(request: HttpRequest, pool: Pool | None) -> HttpResponse:
    form = PoolForm(request.POST)
    if form.is_valid():
        try:
            saved = services.pool_save(
                actor=request.user,
                data=form.pool_data(),
                slug=pool.slug if pool else None,
                request=request,
            )
        except services.PoolInputError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(request, f"Pool {saved.slug} saved.")
            return redirect(f"{reverse('provisioning:pools')}#pool-{saved.slug}")
    return _pool_form_page(request, form, pool)


@require_http_methods(["GET", "POST"])
@admin_required
def pool_add(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _pool_submit(request, None)
    return _pool_form_page(request, PoolForm(initial={"kind": "burst", "lifecycle": "spot"}), None)


@require_http_methods(["GET", "POST"])
@admin_required
def pool_edit(request: HttpRequest, slug: str) -> HttpResponse:
    pool = get_object_or_404(Pool, slug=slug)
    if request.method == "POST":
        return _pool_submit(request, pool)
    return _pool_form_page(request, PoolForm.for_pool(pool), pool)
