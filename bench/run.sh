#!/usr/bin/env bash
# Tether's benchmark, one command (docs/BENCHMARKS.md):
#
#   bench/run.sh            full run (5 runs per figure; about 10 minutes on 2 cores once built)
#   bench/run.sh --quick    smoke test (1 run, short phases; under 3 minutes once built)
#   bench/run.sh --only server
#                           only (g), tether.server's acked messages/s (bench/server_bench.py):
#                           replaces that section of bench/RESULTS.md, leaves the rest as is;
#                           builds only the Python package (about 2 minutes; --quick: 20 s)
#
# Other options go to bench/run.py (--runs N, --duration S, --clients raw,tether-rust,...,
# --workloads a,b,c,d,e,f,g, --idle-conns 1000,10000, --pin auto|yes|no, --no-perf).
#
# Builds what it needs first:
#   - bench/ (standalone Cargo package: echo server, raw tokio-tungstenite client, Tether Rust
#     client, fastwebsockets client) into bench/target;
#   - the C API (cargo build --release -p tether-ffi -> target/release/libtether.a) and the C
#     client bench/target/c/bench_tether, if ffi/ and include/tether.h are there;
#   - the peers: bench-fastwebsockets (in bench/), bench/target/c/bench_lws (libwebsockets)
#     and bench/target/cpp/bench_beast (Boost.Beast), with Debian's libwebsockets-dev,
#     libboost-dev and libboost-system-dev installed if missing;
#   - bench/.venv with bench/requirements.txt (pinned), and Tether's Python package
#     (pip install ./python) if python/ is there;
#   - Debian's redis-server for (g), installed if missing (as `make test` does).
# A part that does not build is reported and its columns are left out; the rest still runs.
# Writes bench/RESULTS.md, bench/results.png, bench/out/results.json and bench/out/run.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
BENCH="$ROOT/bench"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$BENCH/.venv"
PY="$VENV/bin/python"
mkdir -p "$BENCH/out"
BUILD_LOG="$BENCH/out/build.log"
: >"$BUILD_LOG"

step() { printf '== %s\n' "$*"; }
warn() { printf 'bench: %s (details: bench/out/build.log)\n' "$*" >&2; }

# Up to 10,000 connections in one process (plus the server's): raise the open-file limit as
# far as the hard limit allows; run.py caps the idle test at what fits and says so.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --only server: (g) alone needs neither the Rust nor the C clients.
ONLY_SERVER=""
prev=""
for a in "$@"; do
    if [ "$a" = "--only=server" ] || { [ "$prev" = "--only" ] && [ "$a" = "server" ]; }; then
        ONLY_SERVER=1
    fi
    prev="$a"
done

# (g) runs tether.server against Debian's redis-server (the Makefile's redis-server target).
if ! command -v redis-server >/dev/null; then
    echo "redis-server missing: installing redis-server"
    apt-get update -qq && apt-get install -y -qq redis-server
fi

if [ -z "$ONLY_SERVER" ]; then
    step "cargo build --release (bench/)"
    cargo build --release -q --manifest-path "$BENCH/Cargo.toml" --target-dir "$BENCH/target"

    step "C API"
    if [ -f include/tether.h ] && [ -f ffi/Cargo.toml ]; then
        if cargo build --release -q -p tether-ffi >>"$BUILD_LOG" 2>&1 && [ -f "$TARGET_DIR/release/libtether.a" ]; then
            mkdir -p "$BENCH/target/c"
            # Static linking: the same library code as the Rust client, no LD_LIBRARY_PATH.
            # Native libraries as listed by `rustc --print native-static-libs` (see ffi/install.sh).
            if cc -O2 -std=c11 -Wall -Wextra -Iinclude "$BENCH/c/bench_tether.c" \
                "$TARGET_DIR/release/libtether.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc \
                -o "$BENCH/target/c/bench_tether.new" >>"$BUILD_LOG" 2>&1; then
                mv "$BENCH/target/c/bench_tether.new" "$BENCH/target/c/bench_tether"
            else
                rm -f "$BENCH/target/c/bench_tether"
                warn "the C client does not compile: C columns left out"
            fi
        else
            rm -f "$BENCH/target/c/bench_tether"
            warn "cargo build -p tether-ffi failed: C columns left out"
        fi
    else
        rm -f "$BENCH/target/c/bench_tether"
        warn "no C API yet (include/tether.h, ffi/): C columns left out"
    fi

    # The C and C++ peers (docs/BENCHMARKS.md): libwebsockets and Boost.Beast from Debian,
    # installed if their headers are missing (as redis-server above).
    if [ ! -f /usr/include/libwebsockets.h ] || [ ! -f /usr/include/boost/beast.hpp ]; then
        echo "libwebsockets-dev / Boost headers missing: installing libwebsockets-dev libboost-dev libboost-system-dev"
        { apt-get update -qq && apt-get install -y -qq libwebsockets-dev libboost-dev libboost-system-dev; } \
            >>"$BUILD_LOG" 2>&1 || warn "apt-get install of the C/C++ peers' packages failed"
    fi
    mkdir -p "$BENCH/target/c" "$BENCH/target/cpp"
    step "libwebsockets peer (bench/c/bench_lws.c)"
    # shellcheck disable=SC2046
    if [ -f /usr/include/libwebsockets.h ] && cc -O2 -std=c11 -Wall -Wextra "$BENCH/c/bench_lws.c" \
        $(pkg-config --cflags --libs libwebsockets 2>/dev/null || echo -lwebsockets) \
        -o "$BENCH/target/c/bench_lws.new" >>"$BUILD_LOG" 2>&1; then
        mv "$BENCH/target/c/bench_lws.new" "$BENCH/target/c/bench_lws"
    else
        rm -f "$BENCH/target/c/bench_lws"
        warn "the libwebsockets client does not build: its columns are left out"
    fi
    step "Boost.Beast peer (bench/cpp/bench_beast.cpp)"
    # Header-only in Boost 1.74; rebuilt only when the source is newer (about a minute).
    if [ -f "$BENCH/target/cpp/bench_beast" ] && [ "$BENCH/target/cpp/bench_beast" -nt "$BENCH/cpp/bench_beast.cpp" ] \
        && [ "$BENCH/target/cpp/bench_beast" -nt "$BENCH/c/peer_common.h" ]; then
        :
    elif [ -f /usr/include/boost/beast.hpp ] && c++ -O2 -std=c++17 -Wall -Wextra "$BENCH/cpp/bench_beast.cpp" \
        -lpthread -o "$BENCH/target/cpp/bench_beast.new" >>"$BUILD_LOG" 2>&1; then
        mv "$BENCH/target/cpp/bench_beast.new" "$BENCH/target/cpp/bench_beast"
    else
        rm -f "$BENCH/target/cpp/bench_beast"
        warn "the Boost.Beast client does not build: its columns are left out"
    fi
fi  # --only server

step "venv bench/.venv"
# shellcheck source=../scripts/python-env.sh
source scripts/python-env.sh
tether_venv "$VENV"
tether_requirements "$VENV" "$BENCH/requirements.txt"

step "Tether's Python package"
if [ -f python/pyproject.toml ]; then
    # maturin comes pinned from bench/requirements.txt; a release build, as users get it.
    if ! tether_package "$VENV" >>"$BUILD_LOG" 2>&1; then
        warn "pip install ./python failed: Tether Python columns left out"
    fi
else
    warn "no python/ package yet: Tether Python columns left out"
fi

step "uptime: $(uptime)"
exec "$PY" "$BENCH/run.py" "$@"
