from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# (label, url name, admins only). Entries whose URL does not exist yet are left out, so later
# features appear in the navigation by adding their URL.
NAVIGATION = [
    ("Dashboard", "home", False),
    ("Nodes", "provisioning:nodes", False),
    ("Launches", "launches:mine", False),
    ("Approvals", "launches:approvals", True),
    ("Pools", "provisioning:pools", True),
    ("Estimate", "billing:estimate", False),
    ("Prices", "billing:prices", True),
    ("Budgets", "billing:budgets", True),
    ("Users", "accounts:users", True),
    ("Audit", "audit:list", True),
    ("Profile", "accounts:profile", False),
    ("Mail", "sandbox:mail", True),
]


def _pending_launches() -> int:
    from provisioning.launches.selectors import pending_count

    return pending_count()


# Counts shown beside a nav entry (admins only see these entries). Callables: a template calls
# them when it renders the nav, so an htmx fragment (no nav) never runs the query.
BADGES = {"launches:approvals": _pending_launches}


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav": []}
    items = []
    for label, name, admins_only in NAVIGATION:
        if admins_only and user.role != "admin":
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        item = {"label": label, "url": url, "active": request.path == url}
        if name in BADGES:
            item["badge"] = BADGES[name]
        items.append(item)
    # Sandbox-only buttons (Simulate spot interruption) show for admins of a sandbox only.
    return {"nav": items, "sandbox_controls": settings.SANDBOX and user.role == "admin"}
