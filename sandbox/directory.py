"""The persona directory of the sandbox and the tests (CONVENTIONS.md, "Directory personas")."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field

SUFFIX = "dc=cluster,dc=local"
ROOT_DN = f"cn=admin,{SUFFIX}"
SERVICE_DN = f"cn=clusterweb,ou=services,{SUFFIX}"
PEOPLE_DN = f"ou=people,{SUFFIX}"
GROUPS_DN = f"ou=groups,{SUFFIX}"
POLICY_DN = f"cn=default,ou=policies,{SUFFIX}"
# The signup allocator claims each uidNumber with an entry here (docs/signup.md).
UIDNUMBERS_DN = f"ou=uidnumbers,{SUFFIX}"
USERS_GID = 10000
ADMINS_GID = 10100


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


def ssha(password: str) -> str:
    """An RFC 2307 {SSHA} hash, as slapd's own password-hash would store it."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _entry(dn: str, attrs: list[tuple[str, str]]) -> str:
    return "\n".join([f"dn: {dn}", *(f"{k}: {v}" for k, v in attrs)]) + "\n"


def base_ldif(service_password: str, personas: tuple[Persona, ...] = PERSONAS) -> str:
    """The whole directory as LDIF, for ``slapadd`` before the server starts."""
    entries = [
        _entry(
            SUFFIX,
            [
                ("objectClass", "top"),
                ("objectClass", "dcObject"),
                ("objectClass", "organization"),
                ("o", "Cluster"),
                ("dc", "cluster"),
            ],
        ),
    ]
    for ou in ("people", "groups", "services", "policies", "uidnumbers"):
        entries.append(
            _entry(f"ou={ou},{SUFFIX}", [("objectClass", "organizationalUnit"), ("ou", ou)])
        )
    entries.append(
        _entry(
            SERVICE_DN,
            [
                ("objectClass", "organizationalRole"),
                ("objectClass", "simpleSecurityObject"),
                ("cn", "clusterweb"),
                ("userPassword", ssha(service_password)),
                ("description", "Clusterweb's service account"),
            ],
        )
    )
    entries.append(
        _entry(
            POLICY_DN,
            [
                ("objectClass", "top"),
                ("objectClass", "device"),
                ("objectClass", "pwdPolicy"),
                ("cn", "default"),
                ("pwdAttribute", "userPassword"),
                ("pwdLockout", "TRUE"),
                ("pwdMaxFailure", "0"),
                ("pwdMustChange", "FALSE"),
                ("pwdAllowUserChange", "TRUE"),
            ],
        )
    )
    for person in personas:
        attrs = [
            ("objectClass", "inetOrgPerson"),
            ("objectClass", "posixAccount"),
            ("objectClass", "ldapPublicKey"),
            ("uid", person.uid),
            ("cn", f"{person.given_name} {person.surname}"),
            ("givenName", person.given_name),
            ("sn", person.surname),
            ("mail", person.mail),
            ("uidNumber", str(person.uid_number)),
            ("gidNumber", str(person.uid_number)),
            ("homeDirectory", f"/home/{person.uid}"),
            ("loginShell", "/bin/bash"),
            ("userPassword", ssha(person.password)),
        ]
        attrs += [("sshPublicKey", key) for key in person.ssh_keys]
        entries.append(_entry(person.dn, attrs))
        # A user-private group, so a person's primary group never grants a Clusterweb role.
        entries.append(
            _entry(
                f"cn={person.uid},{GROUPS_DN}",
                [
                    ("objectClass", "posixGroup"),
                    ("cn", person.uid),
                    ("gidNumber", str(person.uid_number)),
                ],
            )
        )
    for name, gid in (("users", USERS_GID), ("admins", ADMINS_GID)):
        members = [("memberUid", p.uid) for p in personas if name in p.groups]
        entries.append(
            _entry(
                f"cn={name},{GROUPS_DN}",
                [
                    ("objectClass", "posixGroup"),
                    ("cn", name),
                    ("gidNumber", str(gid)),
                    *members,
                ],
            )
        )
    return "\n".join(entries)
