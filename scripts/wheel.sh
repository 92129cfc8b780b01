#!/usr/bin/env bash
# `make wheel`: the Python package as it is distributed, into dist/ (TETHER_DIST overrides):
#   dist/tether_ws-<v>-cp39-abi3-manylinux_2_17_x86_64.whl   one wheel for CPython >= 3.9
#   dist/tether_ws-<v>.tar.gz                                the sdist (builds with a Rust toolchain)
# maturin (python/requirements-dev.txt) and zig (PyPI `ziglang`, scripts/wheel-requirements.txt)
# come pinned into the root venv .venv. Why zig and what the tag promises: docs/PYTHON.md,
# "Packaging". Old tether_ws files in dist/ are removed first, so dist/ holds exactly one wheel.
# python/tests/run.sh installs this same wheel (scripts/python-env.sh, tether_package) and
# tests/wheel/run.sh checks it in a fresh venv: the extension is built once per `make test`.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
DIST="${TETHER_DIST:-$ROOT/dist}"

# shellcheck source=python-env.sh
source scripts/python-env.sh
tether_venv "$VENV"
tether_requirements "$VENV" python/requirements-dev.txt
tether_requirements "$VENV" scripts/wheel-requirements.txt
# maturin finds zig as `python -m ziglang` of the venv: the venv must come first.
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"

mkdir -p "$DIST"
rm -f "$DIST"/tether_ws-*.whl "$DIST"/tether_ws-*.tar.gz
maturin sdist --manifest-path python/Cargo.toml --out "$DIST"
# --zig: link against zig's glibc 2.17 stubs (this machine's glibc would make it 2_34);
# --auditwheel check: fail, rather than bundle, if the extension needs any library outside
# the manylinux policy (it needs only libc, libm, libgcc_s).
maturin build --release --manifest-path python/Cargo.toml --zig \
    --compatibility manylinux_2_17 --auditwheel check --out "$DIST"
ls -l "$DIST"/tether_ws-*
