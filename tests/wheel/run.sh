#!/usr/bin/env bash
# The distributed Python package, checked the way a user without Rust gets it (run by
# `make test`, from the repository root, after python/tests/run.sh):
#   1. dist/ brought up to date by scripts/wheel.sh (`make wheel`; after python/tests/run.sh,
#      which installed that same wheel, cargo finds nothing to rebuild);
#   2. the Rust echo peer the quickstart talks to (target/debug/tether-peer);
#   3. pytest on tests/wheel: the wheel's tags, `auditwheel show`, its files, the sdist's files,
#      and a fresh venv of Debian's /usr/bin/python3 under `env -i PATH=/usr/bin:/bin` (no
#      cargo, no rustc, no pyenv) into which the wheel is installed with pip --no-index and
#      the README's Python quickstarts run as pasted, against the real server.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

step() { printf '\n== %s\n' "$*"; }

step "scripts/wheel.sh (make wheel)"
bash scripts/wheel.sh

step "tether-peer"
cargo build -q -p tether-test-peers --bin tether-peer
export TETHER_PEER="$TARGET_DIR/debug/tether-peer"

# The fresh venv is made from Debian's python3; a machine without its venv module gets it the
# way scripts/python-env.sh does.
if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c "import ensurepip, venv" 2>/dev/null; then
    echo "Debian python3 or its venv module missing: installing python3-venv"
    apt-get update -qq && apt-get install -y -qq python3 python3-venv
fi

step "pytest tests/wheel"
"$VENV/bin/python" -m pytest tests/wheel -W error -p no:cacheprovider --timeout=120 -q \
    --rootdir tests/wheel "$@"
