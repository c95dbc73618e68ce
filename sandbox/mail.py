"""Reading the sandbox SMTP sink's folder of .eml files (for the Mail page)."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from django.conf import settings

NAME = re.compile(r"^[0-9]+-[0-9]{5}\.eml$")


def mail_dir() -> Path:
    return Path(settings.VAR_DIR) / "sandbox" / "mail"


@dataclass
class Mail:
    name: str
    message: EmailMessage

    @property
    def received(self) -> datetime:
        return datetime.fromtimestamp(int(self.name.split("-")[0]) / 1e9, tz=UTC)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "(no subject)")

    @property
    def sender(self) -> str:
        return str(self.message["From"] or "")

    @property
    def recipients(self) -> str:
        return str(self.message["To"] or "")

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part else ""


def _load(path: Path) -> Mail:
    return Mail(path.name, email.message_from_bytes(path.read_bytes(), policy=email.policy.default))


def mail_list(limit: int = 200) -> list[Mail]:
    folder = mail_dir()
    if not folder.is_dir():
        return []
    paths = sorted((p for p in folder.iterdir() if NAME.match(p.name)), reverse=True)
    return [_load(p) for p in paths[:limit]]


def mail_get(name: str) -> Mail | None:
    if not NAME.match(name):
        return None
    path = mail_dir() / name
    return _load(path) if path.is_file() else None
