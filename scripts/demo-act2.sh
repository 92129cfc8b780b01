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

# shellcheck source=python-env.sh
source scripts/python-env.sh
tether_venv "$VENV"
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"
tether_requirements "$VENV" python/requirements-dev.txt
echo "the tether Python package (pip install ./python) for the server instances:"
tether_package "$VENV" tether.server.app

echo
echo "== Act 2: durable sessions. Two server instances behind a load balancer, one killed mid-stream"
exec "$PY" tests/scale/demo_act2.py
