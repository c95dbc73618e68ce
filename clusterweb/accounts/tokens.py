"""One-time tokens in links (invitations, password resets): only their SHA-256 is stored."""

from __future__ import annotations

import hashlib


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
