"""A throwaway OpenLDAP server (slapd) with the persona directory."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import ldap

from deploy.ldap import slapd_setup
from sandbox import directory
from sandbox.services.base import ManagedProcess, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"


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
        # The configuration and layout of deploy/ldap/slapd_setup.py, the compose image's too.
        slapd_setup.load(
            self.dir,
            root_password=self.root_password,
            service_password=self.service_password,
            personas=directory.PERSONAS,
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
