"""Typed readers for environment variables, and the registry of every variable Clusterweb reads.

Each reader registers the variable it reads (name, kind, default, meaning) in ``REGISTRY``, so the
settings module is the one list of configuration: ``.env.example``, the README table and the
compose file are checked against it by tests.

A malformed value raises ``ImproperlyConfigured`` naming the variable, which stops start-up. So
does a value that parses but could not work: every number is finite and has an upper bound (a
duration of 10**20 seconds overflows ``timedelta`` in the middleware on every request), a database
URL names its database, a list that must not be empty is not.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Var:
    name: str
    kind: str
    default: str
    help: str
    secret: bool = False
    maximum: float | None = None


REGISTRY: dict[str, Var] = {}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _register(
    name: str,
    kind: str,
    default: object,
    help: str,
    secret: bool = False,
    maximum: float | None = None,
) -> None:
    REGISTRY[name] = Var(name, kind, "" if default is None else str(default), help, secret, maximum)


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Environment variable {name}={value!r} is malformed: {expected}")


def env_str(name: str, default: str, help: str) -> str:
    _register(name, "string", default, help)
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool, help: str) -> bool:
    _register(name, "boolean", "1" if default else "0", help)
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _bad(name, value, "expected one of 1/0, true/false, yes/no, on/off")


def env_int(
    name: str, default: int, help: str, *, minimum: int = 0, maximum: int | None = None
) -> int:
    """A whole number in ``[minimum, maximum]``. Give every reader a maximum (a test checks the
    registry): each number Clusterweb reads is a count, a size or a duration, and an unbounded one
    fails later, on every request."""
    _register(name, "integer", default, help, maximum=maximum)
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "expected a whole number") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise _bad(name, value, f"expected at least {minimum}{upper}")
    return number


def env_float(
    name: str, default: float, help: str, *, minimum: float = 0.0, maximum: float | None = None
) -> float:
    """A finite number in ``[minimum, maximum]`` (``inf`` and ``nan`` parse as floats: refused)."""
    _register(name, "number", default, help, maximum=maximum)
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise _bad(name, value, "expected a number") from None
    if not math.isfinite(number) or number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise _bad(name, value, f"expected a finite number of at least {minimum}{upper}")
    return number


def env_list(name: str, default: list[str], help: str, *, required: bool = False) -> list[str]:
    """Comma-separated items; ``required`` refuses a value with no item in it."""
    _register(name, "comma-separated list", ",".join(default), help)
    value = _raw(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",") if item.strip()]
    if required and not items:
        raise _bad(name, value, "expected at least one item")
    return items


def env_url(
    name: str, default: str, help: str, *, schemes: tuple[str, ...], shown_default: str = ""
) -> str:
    _register(name, "URL", shown_default or default, help)
    value = _raw(name)
    if value is None or value == "":
        return default
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise _bad(name, redact_url(value), f"expected a URL starting with {' or '.join(schemes)}")
    try:
        parts.port  # noqa: B018 - a non-numeric port raises ValueError here
    except ValueError:
        raise _bad(name, redact_url(value), "the port is not a number") from None
    if parts.scheme not in ("sqlite", "file") and not parts.hostname:
        raise _bad(name, redact_url(value), "the URL has no host")
    return value


def database_url_problem(url: str) -> str | None:
    """What makes a database URL unusable although it parses, or None. ``sqlite://x.db`` reads
    ``x.db`` as a host and ``sqlite://`` as nothing: dj-database-url turns both into an in-memory
    database that each process (web, worker, beat) holds alone and loses on exit."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if (
            parts.netloc
            or not parts.path.startswith("/")
            or parts.path.strip("/") in ("", ":memory:")
        ):
            return "expected sqlite:///ABSOLUTE/PATH (three slashes, then a file)"
    elif not parts.path.strip("/"):
        return "the URL names no database (postgres://USER:PASSWORD@HOST:PORT/NAME)"
    return None


def env_choice(name: str, default: str, help: str, *, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (case-insensitive; returned as spelled in ``choices``)."""
    _register(name, "string", default, f"{help} One of {', '.join(choices)}.")
    value = _raw(name)
    if value is None or value == "":
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise _bad(name, value, f"expected one of {', '.join(choices)}")


def env_bind(name: str, default: str, help: str) -> str:
    """A listen address for gunicorn: ``HOST:PORT``, ``[V6]:PORT`` or ``unix:PATH``."""
    _register(name, "string", default, help)
    value = _raw(name)
    if value is None or value == "":
        return default
    if value.startswith("unix:"):
        if len(value) > len("unix:"):
            return value
    else:
        host, sep, port = value.rpartition(":")
        if sep and host and port.isdigit() and 1 <= int(port) <= 65535:
            return value
    raise _bad(name, value, "expected HOST:PORT (a port from 1 to 65535) or unix:PATH")


def env_secret(name: str, default: str, help: str) -> str:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (Kubernetes secrets, Docker
    secrets). Never include the value in an error message."""
    _register(name, "secret", "", help, secret=True)
    _register(f"{name}_FILE", "path", "", f"File holding {name} (alternative to {name})")
    path = _raw(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"Environment variable {name}_FILE={path!r} cannot be read: {exc.strerror}"
            ) from None
    value = _raw(name)
    return default if value is None or value == "" else value


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
