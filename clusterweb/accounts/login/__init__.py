"""Logging in and out, the lockout, and the session rules (see the package docstring)."""
