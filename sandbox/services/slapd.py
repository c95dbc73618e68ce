"""A throwaway OpenLDAP server (slapd) with the persona directory."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import ldap

from sandbox import directory
from sandbox.services.base import ManagedProcess, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"

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


class SlapdServer:
    """``start()`` loads the persona directory with slapadd and runs slapd in the foreground on
    a free loopback port; ``stop()`` and ``start()`` again keep the data (an outage test)."""

    def __init__(
        self, workdir: Path, port: int | None = None, service_password: str | None = None
    ) -> None:
        self.dir = Path(workdir)
        self.port = port or free_port()
        self.root_password = secrets.token_urlsafe(16)
        self.service_password = service_password or secrets.token_urlsafe(16)
        self.process: ManagedProcess | None = None
        self._loaded = False

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Clusterweb's settings for this server."""
        return {
            "LDAP_URI": self.uri,
            "LDAP_BIND_DN": directory.SERVICE_DN,
            "LDAP_BIND_PASSWORD": self.service_password,
            "LDAP_BASE_DN": directory.SUFFIX,
        }

    def _load(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        conf = self.dir / "slapd.conf"
        conf.write_text(
            CONFIG.format(
                lpk_schema=REPO / "deploy" / "ldap" / "openssh-lpk.schema",
                dir=self.dir,
                suffix=directory.SUFFIX,
                root_dn=directory.ROOT_DN,
                root_pw=self.root_password,
                policy_dn=directory.POLICY_DN,
                service_dn=directory.SERVICE_DN,
                people_dn=directory.PEOPLE_DN,
                groups_dn=directory.GROUPS_DN,
                uidnumbers_dn=directory.UIDNUMBERS_DN,
            )
        )
        conf.chmod(0o600)
        ldif = self.dir / "base.ldif"
        ldif.write_text(directory.base_ldif(self.service_password))
        subprocess.run(
            [SLAPADD, "-q", "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True
        )
        self._loaded = True

    def start(self) -> SlapdServer:
        if not self._loaded:
            self._load()
        self.process = ManagedProcess(
            "slapd",
            [SLAPD, "-d", "0", "-h", f"{self.uri}/", "-f", str(self.dir / "slapd.conf")],
            log=self.dir / "slapd.log",
        ).start()
        wait_for_port(self.port, process=self.process.process, name="slapd")
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def running(self) -> bool:
        return bool(self.process and self.process.running())

    def admin(self) -> ldap.ldapobject.LDAPObject:
        """A connection bound as the root DN: tests change the directory through it."""
        conn = ldap.initialize(self.uri)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        conn.simple_bind_s(directory.ROOT_DN, self.root_password)
        return conn

    def group_member_remove(self, group: str, uid: str) -> None:
        conn = self.admin()
        try:
            conn.modify_s(
                f"cn={ldap.dn.escape_dn_chars(group)},{directory.GROUPS_DN}",
                [(ldap.MOD_DELETE, "memberUid", [uid.encode()])],
            )
        finally:
            conn.unbind_s()

    def group_member_add(self, group: str, uid: str) -> None:
        conn = self.admin()
        try:
            conn.modify_s(
                f"cn={ldap.dn.escape_dn_chars(group)},{directory.GROUPS_DN}",
                [(ldap.MOD_ADD, "memberUid", [uid.encode()])],
            )
        finally:
            conn.unbind_s()
