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


def _send(
    kind: str,
    to: Sequence[str],
    context: dict[str, Any],
    *,
    message_id: str = "",
    attachments: Sequence[tuple[str, str, str]] = (),
) -> None:
    """``message_id``: a fixed Message-ID (a message that may be sent twice carries the same
    one, so mail clients fold the copies); ``attachments``: (file name, content, MIME type)."""
    recipients = [address for address in to if address]
    if not recipients:
        logger.warning("mail %s not sent: no recipients", kind)
        return
    subject = " ".join(render_to_string(f"emails/{kind}-subject.html", context).split())
    text = render_to_string(f"emails/{kind}-body-text.html", context)
    html = render_to_string(f"emails/{kind}-body-html.html", context)
    headers = {"Message-ID": message_id} if message_id else None
    message = EmailMultiAlternatives(
        subject, text, settings.DEFAULT_FROM_EMAIL, recipients, headers=headers
    )
    message.attach_alternative(html, "text/html")
    for name, content, mimetype in attachments:
        message.attach(name, content, mimetype)
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


def signup_invitation_send(*, to: str, signup: Any, link: str, tunnel_command: str) -> None:
    """The invitation: the one-time signup link and the tunnel that reaches the signup site."""
    _send(
        "signup-invitation",
        [to],
        {
            "signup": signup,
            "link": link,
            "tunnel_command": tunnel_command,
            "cluster": settings.CLUSTER_NAME,
            "tunnel_user": settings.SIGNUP_TUNNEL_USER,
        },
    )


def signup_review_request_send(*, to: str, signup: Any, review_url: str) -> None:
    """To one admin: a signup waits for approval (the links open the dashboard's review page)."""
    _send(
        "signup-review",
        [to],
        {"signup": signup, "review_url": review_url, "cluster": settings.CLUSTER_NAME},
    )


def signup_rejected_send(*, to: str, signup: Any) -> None:
    """To the applicant: the signup was refused (with the admin's reason, if given)."""
    _send("signup-rejected", [to], {"signup": signup, "cluster": settings.CLUSTER_NAME})


def signup_welcome_send(*, to: str, signup: Any, connect: dict[str, str]) -> None:
    """To the new collaborator: the account exists, and how to connect."""
    _send(
        "signup-welcome",
        [to],
        {"signup": signup, "connect": connect, "cluster": settings.CLUSTER_NAME},
    )


def password_reset_send(
    *,
    to: str,
    uid: str,
    link: str,
    tunnel_command: str,
    expires_at: Any,
    self_service: bool,
) -> None:
    """A one-time link to set a new password (sent by an admin, or asked for by the user)."""
    _send(
        "password-reset",
        [to],
        {
            "uid": uid,
            "link": link,
            "tunnel_command": tunnel_command,
            "expires_at": expires_at,
            "self_service": self_service,
            "cluster": settings.CLUSTER_NAME,
            "tunnel_user": settings.SIGNUP_TUNNEL_USER,
        },
    )


def budget_alert_send(*, to: Sequence[str], message_id: str, context: dict[str, Any]) -> None:
    """A budget threshold was crossed: figures, top cost drivers and action links (admins and
    the budget's extra recipients)."""
    _send("budget-alert", to, context, message_id=message_id)


def statement_send(
    *,
    to: Sequence[str],
    message_id: str,
    context: dict[str, Any],
    attachment: tuple[str, str, str],
) -> None:
    """Last month's statement with its CSV (a collaborator's own, or the whole cluster's)."""
    _send("statement", to, context, message_id=message_id, attachments=[attachment])


def launch_review_request_send(
    *, to: str, launch: Any, request_url: str, approvals_url: str
) -> None:
    """To one admin: a launch request waits for approval (its quote and why it waits)."""
    _send(
        "launch-review",
        [to],
        {
            "launch": launch,
            "request_url": request_url,
            "approvals_url": approvals_url,
            "cluster": settings.CLUSTER_NAME,
        },
    )


def launch_decision_send(*, to: Sequence[str], launch: Any, request_url: str) -> None:
    """To the requester (and the owner): approved, approved smaller (with the approver's note),
    rejected, or expired without a decision."""
    _send(
        "launch-decision",
        to,
        {"launch": launch, "request_url": request_url, "cluster": settings.CLUSTER_NAME},
    )


def launch_ended_send(*, to: Sequence[str], launch: Any, outcome: Any, request_url: str) -> None:
    """To the requester (and the owner): a launch ended, stopped or failed; its quote beside the
    actual cost and what made them differ; in plain words what went wrong, if anything."""
    _send(
        "launch-ended",
        to,
        {
            "launch": launch,
            "outcome": outcome,
            "request_url": request_url,
            "cluster": settings.CLUSTER_NAME,
        },
    )
