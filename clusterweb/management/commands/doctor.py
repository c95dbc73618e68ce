from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from clusterweb.health.doctor import doctor_run


class Command(BaseCommand):
    help = (
        "Preflight for a deployment: check the database, Redis, worker and beat, LDAP, SMTP, AWS "
        "(credentials, each EC2 call as a dry run, Cost Explorer), Kubernetes (identity, each "
        "verb Clusterweb uses) and JupyterHub (the token's scopes), without side effects. One "
        "line per item; exit status 1 when any item is a problem."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, json: bool = False, **options):
        as_json = json
        findings = doctor_run()
        problems = [finding for finding in findings if not finding.ok]
        if as_json:
            payload = {
                "checks": [finding.as_json() for finding in findings],
                "ok": not problems,
            }
            self.stdout.write(_dumps(payload))
        else:
            width = max(len(finding.id) for finding in findings)
            for finding in findings:
                line = f"{finding.state:<8} {finding.id:<{width}}  {finding.detail}"
                if finding.fix:
                    line += f" -- fix: {finding.fix}"
                self.stdout.write(line)
        if problems:
            raise CommandError(
                f"{len(problems)} problem(s): {', '.join(f.id for f in problems)}", returncode=1
            )


def _dumps(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True)
