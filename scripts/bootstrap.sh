#!/usr/bin/env bash
# Set up everything Clusterweb needs on a fresh Debian 12 / Ubuntu 24.04 machine: system packages
# (installed when run as root, otherwise the exact command is printed), the .venv and the pinned
# Python dependencies. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
APT_PACKAGES=(
  slapd ldap-utils libldap2-dev libsasl2-dev   # OpenLDAP server + python-ldap build deps
  redis-server                                  # Celery broker
  postgresql                                    # the test suite's database server
  chromium                                      # browser tests (Playwright drives Debian's build)
  openssh-server openssh-client                 # bastion tunnel tests
  build-essential                               # compiles python-ldap
)

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "Clusterweb needs Python 3.11 or newer: no '$PYTHON' found." >&2
  echo "  apt-get install python3 python3-venv python3-dev" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Clusterweb needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1)." >&2
  echo "Set PYTHON=/path/to/python3.11 (or newer) and run again." >&2
  exit 1
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Debian's own python needs its venv and headers packages; a pyenv or other build has them.
if ! "$PYTHON" -c 'import ensurepip, sysconfig, os; os.stat(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null; then
  missing+=(python3-venv python3-dev)
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Missing system packages. Run as root:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24" 2>&1 | grep -v "is ignored" || true
# constraints.txt pins every transitive dependency to what the suite was last run with.
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[sandbox,test]" 2>&1 \
  | grep -v "is ignored" || true
.venv/bin/python -c 'import django, ldap, celery, kubernetes, moto, playwright' \
  || { echo "Python dependencies did not install; see the output above." >&2; exit 1; }
