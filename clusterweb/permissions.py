"""Role checks. Every view is behind login (LoginRequiredMiddleware); these add the role.
Strangers to an object get 404 (selectors restrict querysets), the wrong role 403."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


def is_admin(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.role == "admin")


def admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """403 for anyone logged in who is not an admin."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_admin(request.user):
            raise PermissionDenied("Admins only.")
        return view(request, *args, **kwargs)

    return wrapper


def member_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """403 for anyone logged in who is neither an admin nor a collaborator (the middleware ends
    such a session at its first request; this keeps the view safe without it)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if getattr(request.user, "role", None) not in ("admin", "collaborator"):
            raise PermissionDenied("Collaborators and admins only.")
        return view(request, *args, **kwargs)

    return wrapper
