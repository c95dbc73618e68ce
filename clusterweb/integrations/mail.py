"""Outgoing email: one function per kind of mail, each rendered from a template triplet
``templates/emails/<kind>-subject.html``, ``-body-text.html`` and ``-body-html.html``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from clusterweb.errors import TransientError

logger = logging.getLogger(__name__)


def _send(kind: str, to: Sequence[str], context: dict[str, Any]) -> None:
    recipients = [address for address in to if address]
    if not recipients:
        logger.warning("mail %s not sent: no recipients", kind)
        return
    subject = " ".join(render_to_string(f"emails/{kind}-subject.html", context).split())
    text = render_to_string(f"emails/{kind}-body-text.html", context)
    html = render_to_string(f"emails/{kind}-body-html.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, recipients)
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except OSError as exc:  # SMTP errors are OSErrors; so are refused connections and timeouts
        raise TransientError(f"could not send {kind} mail: {exc}", system="smtp") from exc
    logger.info("mail %s sent to %d recipient(s)", kind, len(recipients))


def jobs_late_alert_send(*, to: Sequence[str], jobs: Sequence[Any], now: Any) -> None:
    """Tell admins that periodic jobs stopped running (watchdog)."""
    _send("jobs-late", to, {"jobs": jobs, "now": now})


def sandbox_welcome_send(*, to: Sequence[str], now: Any, web_url: str) -> None:
    """The first mail of a sandbox: shows the Mail page working."""
    _send("sandbox-welcome", to, {"now": now, "web_url": web_url})
