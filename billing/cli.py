"""Command line plumbing shared by ``manage.py estimate`` and ``manage.py prices``: the exit
statuses of CONVENTIONS.md (0 done, 1 failed, 2 bad input, 3 not permitted), one JSON object on
stdout with ``--json``, messages on stderr."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from django.core.exceptions import PermissionDenied
from django.core.management.base import OutputWrapper

from billing.models import PriceOverride
from billing.money import rate_str
from billing.prices.selectors import PriceQuote
from clusterweb.errors import IntegrationError

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_PERMITTED = 1, 2, 3


def fail(stderr: OutputWrapper, message: str, code: int) -> NoReturn:
    stderr.write(message)
    raise SystemExit(code)


def emit_json(stdout: OutputWrapper, payload: dict[str, Any]) -> None:
    stdout.write(json.dumps(payload, indent=2, sort_keys=False))


def actor_for(uid: str, stderr: OutputWrapper) -> Any:
    """The user named by ``--by``, with groups as the directory has them now."""
    if not uid:
        fail(stderr, "--by UID is required: the admin this change is made by", EXIT_BAD_INPUT)
    from clusterweb.accounts.login.services import user_from_directory

    try:
        return user_from_directory(uid=uid)
    except PermissionDenied as exc:
        fail(stderr, str(exc), EXIT_NOT_PERMITTED)
    except IntegrationError as exc:
        fail(stderr, f"cannot check {uid} in the directory: {exc}", EXIT_FAILED)


def quote_json(quote: PriceQuote) -> dict[str, Any]:
    return {
        "price": None if quote.price is None else rate_str(quote.price),
        "unit": quote.unit,
        "kind": quote.kind,
        "source": quote.source,
        "effective_from": quote.effective_from.isoformat() if quote.effective_from else None,
        "notice": quote.notice,
        "overridden": quote.overridden,
    }


def override_json(override: PriceOverride) -> dict[str, Any]:
    return {
        "id": override.pk,
        "state": "ended" if override.ended_at else "in_force",
        "kind": override.kind,
        "region": override.region,
        "item": override.item,
        "price": rate_str(override.price),
        "unit": override.unit,
        "note": override.note,
        "effective_from": override.effective_from.isoformat(),
        "ended_at": override.ended_at.isoformat() if override.ended_at else None,
        "created_by": override.created_by_username,
        "ended_by": override.ended_by_username or None,
    }
