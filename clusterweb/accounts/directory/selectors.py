"""Reads for directory administration: the Users page (signups waiting, invitations, and every
directory user from the database copy), and the directory user an admin may act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db.models import Count

from clusterweb import clock
from clusterweb.accounts.models import (
    UNDECIDED_STATES,
    DirectoryUser,
    DisabledAccount,
    Signup,
    SignupState,
    User,
)
from clusterweb.permissions import is_admin


@dataclass(frozen=True)
class PersonRow:
    """One directory user on the Users page."""

    account: DirectoryUser
    last_login: datetime | None
    running_nodes: int | None  # None: no node inventory to count from
    disabled: DisabledAccount | None

    @property
    def uid(self) -> str:
        return self.account.uid

    @property
    def state(self) -> str:
        return self.account.state

    @property
    def disable_incomplete(self) -> bool:
        """A disable that failed part-way (the lock is not in the copy yet): run it again."""
        return self.disabled is not None and not self.account.locked


@dataclass(frozen=True)
class UsersPage:
    pending: list[Signup]
    invitations: list[Signup]
    recent: list[Signup]
    people: list[PersonRow] = field(default_factory=list)
    synced_at: datetime | None = None

    @property
    def polling(self) -> bool:
        """The page refreshes itself while an approval is being carried out."""
        return any(s.state == SignupState.PROVISIONING for s in self.pending)


def users_page(*, recent: int = 20) -> UsersPage:
    """The Users page: signups waiting for a decision or being provisioned, open invitations,
    and the latest settled ones."""
    now = clock.now()
    pending = list(
        Signup.objects.filter(state__in=[*UNDECIDED_STATES, SignupState.PROVISIONING]).order_by(
            "submitted_at", "id"
        )
    )
    invitations = list(
        Signup.objects.filter(state=SignupState.INVITED, expires_at__gt=now).order_by(
            "-invited_at", "-id"
        )
    )
    settled = list(
        Signup.objects.exclude(pk__in=[s.pk for s in pending + invitations]).order_by(
            "-updated_at", "-id"
        )[:recent]
    )
    people = directory_people()
    return UsersPage(
        pending=pending,
        invitations=invitations,
        recent=settled,
        people=people,
        synced_at=min((row.account.synced_at for row in people), default=None),
    )


def running_nodes_by_owner() -> dict[str, int] | None:
    """Running nodes per owner (LDAP uid) from the node inventory, or None when there is no
    inventory with owners to count from."""
    try:
        node = apps.get_model("provisioning", "Node")
    except LookupError:
        return None
    if "owner" not in {f.name for f in node._meta.get_fields()}:
        return None
    rows = (
        node.objects.filter(state="running")
        .exclude(owner="")
        .values("owner")
        .annotate(count=Count("pk"))
        .values_list("owner", "count")
    )
    return dict(rows)


def directory_people() -> list[PersonRow]:
    """Every directory user from the mirror, with their last dashboard login, running nodes and
    disable record: four queries, whatever the number of users."""
    accounts = list(DirectoryUser.objects.order_by("uid"))
    uids = [a.uid for a in accounts]
    logins = dict(User.objects.filter(username__in=uids).values_list("username", "last_login"))
    disabled = {d.uid: d for d in DisabledAccount.objects.filter(uid__in=uids)}
    nodes = running_nodes_by_owner()
    return [
        PersonRow(
            account=a,
            last_login=logins.get(a.uid),
            running_nodes=None if nodes is None else nodes.get(a.uid, 0),
            disabled=disabled.get(a.uid),
        )
        for a in accounts
    ]


def directory_user_visible(user: Any, uid: str) -> DirectoryUser | None:
    """A directory user an admin may act on; None for anyone else (403 comes first)."""
    if not is_admin(user) or not uid or len(uid) > 150 or "\x00" in uid:
        return None  # (a NUL from the URL would not even reach PostgreSQL)
    return DirectoryUser.objects.filter(uid=uid).first()


def usernames_with_a_role() -> list[str]:
    """The users the dashboard knows as admins or collaborators (active), by name: whom an admin
    may name as a launch's owner on a page."""
    from django.db.models import Q

    users = User.objects.filter(is_active=True).filter(
        Q(is_cluster_admin=True) | Q(is_collaborator=True)
    )
    return list(users.order_by("username").values_list("username", flat=True))
