from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from billing.money import rate_str
from clusterweb import clock
from provisioning import selectors
from provisioning.cli import emit_json
from provisioning.models import Node, NodeState


class Command(BaseCommand):
    help = (
        "Nodes the cluster runs (with --all, also those it ran), with their hourly price and its "
        "source, from the database as the last inventory sync left it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="include terminated nodes")
        parser.add_argument("--user", default="", help="only the nodes this UID owns")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, all: bool, user: str, json: bool, **options):
        now = clock.now()
        nodes = Node.objects.order_by("launched_at", "instance_id")
        if not all:
            nodes = nodes.exclude(state=NodeState.TERMINATED)
        if user:
            nodes = nodes.filter(owner=user)
        rows = selectors.node_rows(nodes, now=now, region=settings.AWS_REGION)
        self._freshness(selectors.sync_status(now))
        if json:
            emit_json(self.stdout, {"nodes": [row.as_json() for row in rows]})
            return
        self.stdout.write(
            f"{'ID':<20} {'NAME':<24} {'POOL':<8} {'TYPE':<12} {'CAPACITY':<9} {'ZONE':<11} "
            f"{'STATE':<13} {'READY':<6} {'OWNER':<8} {'USD/H':>8}  SOURCE"
        )
        for row in rows:
            node = row.node
            ready = "-" if node.ready is None else "yes" if node.ready else "no"
            if row.price is None:
                hourly, source = "-", f"not billed ({node.state})"
            else:
                hourly = "unknown" if row.hourly is None else rate_str(row.hourly)
                source = row.price.described()
                if row.ipv4 is not None:
                    source += f"; + public IPv4 {row.ipv4.price_text}"
            self.stdout.write(
                f"{node.instance_id:<20} {node.name[:24]:<24} {node.pool or '-':<8} "
                f"{node.instance_type:<12} {node.capacity_type:<9} {node.zone:<11} "
                f"{node.state:<13} {ready:<6} {node.owner or '-':<8} {hourly:>8}  {source}"
            )

    def _freshness(self, status: selectors.SyncStatus) -> None:
        """How old the data is, on stderr (stdout stays one JSON object with --json)."""
        if status.never:
            self.stderr.write("warning: no inventory sync has succeeded yet")
            return
        self.stderr.write(
            f"inventory as of {status.as_of:%Y-%m-%d %H:%M:%S} UTC ({status.age_seconds} s ago)"
        )
        for part in status.warnings:
            seen = f"last read {part.age_seconds} s ago" if part.last_ok_at else "never read"
            error = f"; the latest attempt failed: {part.last_error}" if part.failing else ""
            self.stderr.write(f"warning: {part.label}: {seen}{error}")
