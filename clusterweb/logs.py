"""Log lines an attacker cannot forge: every control character in a message (a newline, a
carriage return, an escape sequence, a Unicode line separator or direction override) is written
escaped, as Python writes it in a string literal, so one record is one line and a user name or
any other value from outside cannot start a line of its own or recolour a terminal."""

from __future__ import annotations

import logging
import re

# C0 and C1 controls and DEL, Unicode's line and paragraph separators, and the bidirectional
# marks, embeddings, overrides and isolates (Trojan Source, CVE-2021-42574).
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def escape_controls(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class EscapingFormatter(logging.Formatter):
    """A formatter whose ``%(message)s`` has its control characters escaped. A traceback is
    appended as Python prints it (its line breaks are ours, not an attacker's). With ``inner``,
    it escapes the message and leaves the rest to that formatter (Celery's worker formatter)."""

    def __init__(self, *args, inner: logging.Formatter | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        clean = logging.makeLogRecord(record.__dict__)
        clean.msg = escape_controls(record.getMessage())
        clean.args = None
        return (self.inner or super()).format(clean)
