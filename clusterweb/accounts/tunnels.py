"""The ssh commands people are sent: the tunnel through the bastion's ``join`` account to the
signup site (invitations, reset links), and the way to the dashboard (the welcome mail)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default


def _bind_port(bind: str, default: int) -> int:
    tail = bind.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else default


def signup_tunnel_command() -> str:
    """The command that reaches the signup site through the bastion's ``join`` account."""
    local = _port(settings.SIGNUP_BASE_URL, 8001)
    remote = _bind_port(settings.SIGNUP_BIND, 8001)
    return (
        f"ssh -N -L {local}:{settings.SIGNUP_HOST}:{remote} -p {settings.BASTION_PORT} "
        f"{settings.SIGNUP_TUNNEL_USER}@{settings.BASTION_HOST}"
    )


def connect_instructions(username: str) -> dict[str, str]:
    """How a new collaborator connects (the welcome email)."""
    local = _port(settings.DASHBOARD_BASE_URL, 8000)
    remote = _bind_port(settings.BIND, 8000)
    at = f"-p {settings.BASTION_PORT} {username}@{settings.BASTION_HOST}"
    return {
        "ssh": f"ssh {at}",
        "dashboard_tunnel": f"ssh -N -L {local}:{settings.DASHBOARD_HOST}:{remote} {at}",
        "dashboard_url": settings.DASHBOARD_BASE_URL,
    }
