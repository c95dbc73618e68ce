#!/usr/bin/env bash
# The one gate, locally and in CI: lint, Django's checks, migrations, then the suite on
# PostgreSQL (a throwaway server, or the one at DATABASE_URL) and the sqlite-marked tests on
# SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== django checks"
env -u DATABASE_URL .venv/bin/python manage.py check --fail-level WARNING
env -u DATABASE_URL .venv/bin/python manage.py makemigrations --check --dry-run
echo "== pytest on PostgreSQL"
.venv/bin/python -m sandbox.services.postgres -- .venv/bin/pytest --durations=25 "$@"
echo "== pytest on SQLite (tests marked sqlite)"
env -u DATABASE_URL .venv/bin/pytest -m sqlite --durations=10 "$@"
