#!/usr/bin/env bash
# The Python package's whole check, run from the repository root with no arguments:
#   1. the root venv .venv (created if missing) with python/requirements-dev.txt (pinned);
#   2. the package built and installed the way a user gets it: the wheel of `make wheel`
#      (scripts/wheel.sh, into dist/), `pip install`ed (skipped when nothing it is built from
#      changed since the last install; tests/wheel/run.sh checks that same wheel);
#   3. the Rust test peer (target/debug/tether-peer);
#   4. mypy --strict on python/examples and the package; stubtest on the native module;
#   5. pytest on python/tests (tether.server's tests start Debian's redis-server, installed here
#      if missing), warnings as errors, a per-test timeout.
# Exits non-zero on the first failure.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

step() { printf '\n== %s\n' "$*"; }

step "venv $VENV"
# shellcheck source=../../scripts/python-env.sh
source scripts/python-env.sh
tether_venv "$VENV"
# tether.server's tests start a real redis-server (Debian's) on a free port.
if ! command -v redis-server >/dev/null; then
    echo "redis-server missing: installing redis-server"
    apt-get update -qq && apt-get install -y -qq redis-server
fi
export TETHER_REQUIRE_REDIS=1
# test_reach.py goes through real proxies: Debian's tinyproxy and microsocks (as `make proxies`).
if ! command -v tinyproxy >/dev/null || ! command -v microsocks >/dev/null; then
    echo "tinyproxy or microsocks missing: installing them"
    apt-get update -qq && apt-get install -y -qq tinyproxy microsocks || {
        echo "cannot install tinyproxy and microsocks (needed by test_reach.py)" >&2; exit 1; }
fi
# maturin's build backend runs the `maturin` executable: the venv's must come first.
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"

tether_requirements "$VENV" python/requirements-dev.txt

step "make wheel, pip install dist/tether_ws-*.whl"
tether_package "$VENV"

step "tether-peer, tether-ref-server"
cargo build -q -p tether-test-peers --bin tether-peer --bin tether-ref-server
export TETHER_PEER="$TARGET_DIR/debug/tether-peer"
export TETHER_REF_SERVER="$TARGET_DIR/debug/tether-ref-server"

step "mypy --strict, stubtest"
export MYPY_CACHE_DIR="$TARGET_DIR/mypy-cache"  # not in the work tree
"$PY" -m mypy --strict python/examples python/tether
# The hand-written stub against the built module (signatures, names, finality).
# (Run from the target dir: stubtest leaves a .mypy_cache in its working directory.)
(cd "$TARGET_DIR" && "$PY" -m mypy.stubtest tether._tether \
    --allowlist "$ROOT/python/tests/stubtest-allowlist.txt")

step "pytest"
# Run from a directory outside python/ so `import tether` is the installed package.
"$PY" -m pytest python/tests -W error -p no:cacheprovider --timeout=60 -q "$@"
