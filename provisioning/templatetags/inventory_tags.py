"""Durations on the inventory pages: ``{{ seconds|ago }}`` ("40 s", "3 min", "2 h 5 min") and
``{{ timedelta|duration }}`` for uptimes, and ``{{ bytes|gib }}`` for allocatable memory."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django import template

register = template.Library()


def _human(seconds: int) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@register.filter
def ago(seconds: int | None) -> str:
    return "never" if seconds is None else _human(seconds)


@register.filter
def duration(value: timedelta | None) -> str:
    return "" if value is None else _human(int(value.total_seconds()))


@register.filter
def gib(value: int | None) -> str:
    if value is None:
        return ""
    return f"{(Decimal(value) / 1024**3).quantize(Decimal('0.1'))} GiB"


@register.filter
def quote_label(quote) -> str:
    """Where a price comes from, in a few words for a table cell (the full description goes in
    the cell's title and the notice, if any, is shown beside it)."""
    if quote is None:
        return ""
    if not quote.known:
        return "no price in the catalog"
    if quote.overridden:
        return quote.source.split(":")[0]
    since = quote.effective_from
    if quote.kind == "spot":
        label = f"spot price {quote.zone}".rstrip()
        return f"{label}, since {since:%Y-%m-%d %H:%M} UTC" if since else label
    kind = {"on-demand": "on-demand", "ipv4": "public IPv4", "storage": "storage"}.get(
        quote.kind, quote.kind
    )
    label = f"{kind} list price, catalog"
    return f"{label}, since {since:%Y-%m-%d}" if since else label
