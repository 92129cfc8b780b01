#!/usr/bin/env bash
# Opt-in, not in `make test`: Tether on a free-threaded CPython, built from the sdist, with the
# GIL left off. Needs TETHER_FT_PYTHON=/path/to/python3.14t (pyo3 0.30 supports free-threaded
# CPython from 3.14 on; it refuses 3.13t) and a Rust toolchain; `make wheel` first.
# Not run to the end on the project's machines: they have no 3.14t (docs/PYTHON.md,
# "Free-threaded Python", says what was tried).
#   1. a venv of it with the pinned build and test tools (not mypy);
#   2. `pip install dist/tether_ws-<v>.tar.gz`: maturin and pyo3 build a version-specific
#      cp314t extension, abi3 being impossible there;
#   3. `import tether` must leave the GIL disabled (the module declares gil_used = false);
#   4. pytest on python/tests (without the scale-out soak) in that venv: an extension that did
#      not declare it would turn the GIL on with a RuntimeWarning, fatal under -W error.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET_DIR/venv-ft"
PY="${TETHER_FT_PYTHON:?set TETHER_FT_PYTHON to a free-threaded python3.14t}"

step() { printf '\n== %s\n' "$*"; }

"$PY" -c 'import sys; assert not getattr(sys, "_is_gil_enabled", lambda: True)(), "not free-threaded"'

step "venv $VENV, tether from the sdist"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
sdist=(dist/tether_ws-*.tar.gz)
[ -f "${sdist[0]}" ] || { echo "no sdist in dist/: run make wheel first"; exit 1; }
grep -E '^(maturin|pytest|pytest-timeout|websockets|redis)==' python/requirements-dev.txt \
    >"$VENV/requirements-ft.txt"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$VENV/requirements-ft.txt"
PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    --no-build-isolation --force-reinstall --no-deps "${sdist[0]}"
(cd "$TARGET_DIR" && "$VENV/bin/python" -W error -c '
import sys, sysconfig, tether
assert sysconfig.get_config_var("Py_GIL_DISABLED") == 1
assert not sys._is_gil_enabled(), "importing tether enabled the GIL"
print("tether", tether.__version__, "on", sys.version.split()[0], "free-threaded, GIL off")')

step "tether-peer, tether-ref-server"
cargo build -q -p tether-test-peers --bin tether-peer --bin tether-ref-server
export TETHER_PEER="$TARGET_DIR/debug/tether-peer"
export TETHER_REF_SERVER="$TARGET_DIR/debug/tether-ref-server"
export TETHER_REQUIRE_REDIS=1

step "pytest python/tests on the free-threaded build (scale-out soak left out)"
"$VENV/bin/python" -m pytest python/tests -W error -p no:cacheprovider --timeout=60 -q \
    -k "not scale_out" "$@"
