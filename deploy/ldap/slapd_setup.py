"""The cluster directory's slapd: its configuration and its layout, in one place.

Used three ways, so they can never disagree:
- the sandbox and the tests (``sandbox.services.slapd``) start a throwaway slapd with it;
- the compose stack's directory image (deploy/ldap/Dockerfile) runs ``main()`` as its entrypoint;
- tests/deploy/test_compose.py runs ``prepare()`` under the compose service's environment and
  starts the local slapd with the result.

The configuration: core, cosine, inetorgperson, nis and the openssh-lpk schema (this folder; Debian
ships none), the mdb backend, ppolicy (the Users page locks accounts with pwdAccountLockedTime),
argon2 and pw-sha2 (the password schemes the signup writes), and the access rules of Clusterweb's
service account. The layout: ou=people, ou=groups (posixGroups ``users`` and ``admins``),
ou=services (Clusterweb's service account), ou=policies (the default password policy) and
ou=uidnumbers (the signup's uidNumber claims).

Standard library only: the directory image has Python but not Clusterweb's dependencies.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
LPK_SCHEMA = HERE / "openssh-lpk.schema"
SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"

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

CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include {lpk_schema}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
# Password schemes the signup writes pre-hashed: ARGON2 (the default) and SSHA512.
moduleload argon2
moduleload pw-sha2
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
password-hash {{SSHA}}
loglevel none

database mdb
maxsize 104857600
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_pw}
directory {dir}/data
index objectClass eq
index uid,cn,memberUid,uidNumber,gidNumber,mail eq
# The directory sync pages through every person as the service account: no total for its paged
# searches (slapd stops a paged search at the size limit, 500, otherwise; docs/accounts.md).
limits dn.exact="{service_dn}" size.prtotal=unlimited

# The password policy overlay: the Users page locks accounts with pwdAccountLockedTime.
overlay ppolicy
ppolicy_default "{policy_dn}"

# Clusterweb's service account writes accounts and group memberships (signup approval) and
# uidNumber claims; it may set a person's password but never read one back.
access to dn.subtree="{people_dn}" attrs=userPassword
  by self write
  by dn.exact="{service_dn}" =w
  by anonymous auth
  by * none
access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to dn.subtree="{people_dn}"
  by dn.exact="{service_dn}" write
  by users read
  by * none
access to dn.subtree="{groups_dn}"
  by dn.exact="{service_dn}" write
  by users read
  by * none
access to dn.subtree="{uidnumbers_dn}"
  by dn.exact="{service_dn}" write
  by * none
access to *
  by dn.exact="{service_dn}" read
  by users read
  by * none
"""


def slapd_conf(*, workdir: Path, root_password: str) -> str:
    """slapd.conf for a server whose pid file and database live under ``workdir``."""
    return CONFIG.format(
        lpk_schema=LPK_SCHEMA,
        dir=workdir,
        suffix=SUFFIX,
        root_dn=ROOT_DN,
        root_pw=ssha(root_password),  # never the clear text on the config volume
        policy_dn=POLICY_DN,
        service_dn=SERVICE_DN,
        people_dn=PEOPLE_DN,
        groups_dn=GROUPS_DN,
        uidnumbers_dn=UIDNUMBERS_DN,
    )


def ssha(password: str) -> str:
    """An RFC 2307 {SSHA} hash, as slapd's own password-hash would store it."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _entry(dn: str, attrs: list[tuple[str, str]]) -> str:
    return "\n".join([f"dn: {dn}", *(f"{k}: {v}" for k, v in attrs)]) + "\n"


def base_ldif(service_password: str, personas: Iterable = ()) -> str:
    """The whole directory as LDIF, for ``slapadd`` before the server starts. ``personas``
    (sandbox.directory.Persona) become people with user-private groups and group members."""
    personas = tuple(personas)
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
        entries.append(_entry(f"uid={person.uid},{PEOPLE_DN}", attrs))
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


def load(workdir: Path, *, root_password: str, service_password: str, personas=()) -> Path:
    """Write slapd.conf under ``workdir`` and bulk-load the layout into an empty database (a
    database that already holds entries is kept). Returns the path of slapd.conf."""
    workdir = Path(workdir)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    conf = workdir / "slapd.conf"
    conf.write_text(slapd_conf(workdir=workdir, root_password=root_password))
    conf.chmod(0o600)
    if not (workdir / "data" / "data.mdb").exists():
        ldif = workdir / "base.ldif"
        ldif.write_text(base_ldif(service_password, personas))
        try:
            subprocess.run(
                [SLAPADD, "-q", "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True
            )
        finally:
            ldif.unlink()
    return conf


def prepare(environ: dict[str, str]) -> list[str]:
    """The directory image's start-up: check its environment, write the configuration, load the
    layout on first start; the slapd command line to run. Variables:

    - ``LDAP_ROOT_PASSWORD`` (required): the password of ``cn=admin,dc=cluster,dc=local``;
    - ``LDAP_SERVICE_PASSWORD`` (required): Clusterweb's service account's (its LDAP_BIND_PASSWORD);
    - ``LDAP_LISTEN``: slapd's listener URL, default ``ldap://0.0.0.0:1389/`` (the container's
      address; compose publishes it on the host's loopback only);
    - ``LDAP_DATA_DIR``: configuration and database, default ``/var/lib/clusterweb-ldap``.
    """
    missing = [n for n in ("LDAP_ROOT_PASSWORD", "LDAP_SERVICE_PASSWORD") if not environ.get(n)]
    if missing:
        raise SystemExit(f"clusterweb-ldap: set {' and '.join(missing)}")
    workdir = Path(environ.get("LDAP_DATA_DIR") or "/var/lib/clusterweb-ldap")
    conf = load(
        workdir,
        root_password=environ["LDAP_ROOT_PASSWORD"],
        service_password=environ["LDAP_SERVICE_PASSWORD"],
    )
    listen = environ.get("LDAP_LISTEN") or "ldap://0.0.0.0:1389/"
    return [SLAPD, "-d", "0", "-h", listen, "-f", str(conf)]


def main() -> None:
    argv = prepare(dict(os.environ))
    sys.stdout.flush()
    os.execv(argv[0], argv)  # noqa: S606 - slapd in the foreground as the container's process


if __name__ == "__main__":
    main()
