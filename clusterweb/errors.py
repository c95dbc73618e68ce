"""The project's own exceptions for failures at its boundaries.

Adapters in ``clusterweb.integrations`` translate their SDK's errors into these, so services and
tasks decide what to do from one question: is it worth trying again?
"""

from __future__ import annotations


class IntegrationError(Exception):
    """An outside system refused or failed a request."""

    permanent: bool = True

    def __init__(self, message: str, *, system: str = "", code: str = "") -> None:
        super().__init__(message)
        self.system = system
        self.code = code


class PermanentError(IntegrationError):
    """Retrying the same request cannot succeed (bad input, forbidden, not found, invalid)."""

    permanent = True


class TransientError(IntegrationError):
    """The request may succeed later (unreachable, timeout, throttled, conflict on a stale read)."""

    permanent = False


class DirectoryUnavailable(TransientError):
    """The LDAP directory could not be reached or did not answer in time."""
