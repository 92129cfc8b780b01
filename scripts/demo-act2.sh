#!/usr/bin/env bash
# Act 2 of `make demo` (tests/scale/demo_act2.py): two tether.server instances with the Redis
# session store behind HAProxy, one killed mid-stream, the tally unchanged.
# Installs what it needs on a fresh Debian machine: haproxy and redis-server from Debian (by
# the Python script, only when missing), the root venv .venv with python/requirements-dev.txt,
# and the tether package (`pip install ./python`, skipped when nothing it is built from changed;
# the same stamp as python/tests/run.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="$(pwd)/.venv"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV" 2>/dev/null || {
        echo "python3 venv module missing: installing python3-venv"
        apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$VENV"
    }
fi
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"

DEV_STAMP="$VENV/.python-dev-requirements"
if [ ! -f "$DEV_STAMP" ] || [ python/requirements-dev.txt -nt "$DEV_STAMP" ]; then
    "$PY" -m pip install -q --disable-pip-version-check -r python/requirements-dev.txt
    touch "$DEV_STAMP"
fi

INSTALL_STAMP="$VENV/.tether-ws-installed"
SOURCES=(python/src python/tether python/Cargo.toml python/pyproject.toml
         core/src core/Cargo.toml Cargo.toml Cargo.lock)
changed=""
if [ -f "$INSTALL_STAMP" ] && "$PY" -c "import tether.server.app" 2>/dev/null; then
    changed=$(find "${SOURCES[@]}" -newer "$INSTALL_STAMP" -print -quit 2>/dev/null || true)
else
    changed="not installed"
fi
if [ -n "$changed" ]; then
    echo "building the tether Python package (pip install ./python) for the server instances"
    touch "$INSTALL_STAMP.new"
    "$PY" -m pip install -q --disable-pip-version-check --no-build-isolation --force-reinstall \
        --no-deps ./python
    mv "$INSTALL_STAMP.new" "$INSTALL_STAMP"
fi

echo
echo "== Act 2: durable sessions. Two server instances behind a load balancer, one killed mid-stream"
exec "$PY" tests/scale/demo_act2.py
