#!/usr/bin/env bash
# The Python package's whole check, run from the repository root with no arguments:
#   1. the root venv .venv (created if missing) with python/requirements-dev.txt (pinned);
#   2. the package built and installed the way a user does it: `pip install ./python`
#      (maturin; skipped when nothing it is built from changed since the last install);
#   3. the Rust test peer (target/debug/tether-peer);
#   4. mypy --strict on python/examples and the package; stubtest on the native module;
#   5. pytest on python/tests, warnings as errors, a per-test timeout.
# Exits non-zero on the first failure.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

step() { printf '\n== %s\n' "$*"; }

step "venv $VENV"
if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV" 2>/dev/null || {
        echo "python3 venv module missing: installing python3-venv"
        apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$VENV"
    }
fi
# maturin's build backend runs the `maturin` executable: the venv's must come first.
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"

DEV_STAMP="$VENV/.python-dev-requirements"
if [ ! -f "$DEV_STAMP" ] || [ python/requirements-dev.txt -nt "$DEV_STAMP" ]; then
    "$PY" -m pip install -q --disable-pip-version-check -r python/requirements-dev.txt
    touch "$DEV_STAMP"
fi

step "pip install ./python"
INSTALL_STAMP="$VENV/.tether-ws-installed"
SOURCES=(python/src python/tether python/Cargo.toml python/pyproject.toml
         core/src core/Cargo.toml Cargo.toml Cargo.lock)
changed=""
if [ -f "$INSTALL_STAMP" ] && "$PY" -c "import tether" 2>/dev/null; then
    changed=$(find "${SOURCES[@]}" -newer "$INSTALL_STAMP" -print -quit 2>/dev/null || true)
else
    changed="not installed"
fi
if [ -n "$changed" ]; then
    # The stamp is taken before the build, so an edit made during it triggers the next one.
    touch "$INSTALL_STAMP.new"
    # --no-build-isolation: maturin comes pinned from requirements-dev.txt (a plain
    # `pip install ./python` fetches it into an isolated build env instead; same build).
    "$PY" -m pip install -q --disable-pip-version-check --no-build-isolation --force-reinstall \
        --no-deps ./python
    mv "$INSTALL_STAMP.new" "$INSTALL_STAMP"
else
    echo "up to date (nothing changed since the last install)"
fi

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
