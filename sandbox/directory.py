"""The persona directory of the sandbox and the tests (CONVENTIONS.md, "Directory personas")."""

from __future__ import annotations

from dataclasses import dataclass, field

# The layout and its names come from the directory's one source, shared with the compose image.
from deploy.ldap.slapd_setup import (  # noqa: F401 - re-exported: tests and adapters name them here
    ADMINS_GID,
    GROUPS_DN,
    PEOPLE_DN,
    POLICY_DN,
    ROOT_DN,
    SERVICE_DN,
    SUFFIX,
    UIDNUMBERS_DN,
    USERS_GID,
    ssha,
)
from deploy.ldap.slapd_setup import base_ldif as _layout_ldif


@dataclass(frozen=True)
class Persona:
    uid: str
    given_name: str
    surname: str
    mail: str
    uid_number: int
    groups: tuple[str, ...]
    password: str
    role: str
    ssh_keys: tuple[str, ...] = field(default=())

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{PEOPLE_DN}"


# The README's demo table shows these passwords; they exist only in the sandbox and the tests.
PERSONAS = (
    Persona(
        "alice",
        "Alice",
        "Admin",
        "alice@example.org",
        10001,
        ("admins", "users"),
        "alice-sandbox-pw",
        "admin",
    ),
    Persona(
        "bob",
        "Bob",
        "Collaborator",
        "bob@example.org",
        10002,
        ("users",),
        "bob-sandbox-pw",
        "collaborator",
    ),
    Persona(
        "carol", "Carol", "Outsider", "carol@example.org", 10003, (), "carol-sandbox-pw", "refused"
    ),
)
BY_UID = {p.uid: p for p in PERSONAS}


def base_ldif(service_password: str, personas: tuple[Persona, ...] = PERSONAS) -> str:
    """The whole directory as LDIF, for ``slapadd`` before the server starts."""
    return _layout_ldif(service_password, personas)
