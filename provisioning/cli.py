"""Command line plumbing of ``manage.py nodes``, ``sync`` and ``pools``: CONVENTIONS.md's exit
statuses (0 done, 1 failed, 2 bad input, 3 not permitted), exactly one JSON object on stdout with
``--json``, messages on stderr."""

from __future__ import annotations

from billing.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_NOT_PERMITTED,
    actor_for,
    emit_json,
    fail,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_NOT_PERMITTED", "actor_for", "emit_json", "fail"]
