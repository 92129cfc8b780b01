#!/usr/bin/env bash
# Everything about Tether's C API, from the repository root, no arguments:
#   - installs cmake / pkg-config (and valgrind, gcc, g++ if missing) from Debian;
#   - builds the ffi crate and the test peer; checks include/tether.h is what the pinned
#     cbindgen generates from ffi/src (installing it into ~/.cache/tether/tools on first use) and that
#     ffi/ is formatted (clippy and the Rust unit tests run in `make test`);
#   - installs into a temporary prefix (ffi/install.sh) and builds everything against it;
#   - compiles the header as C and C++ (twice included, -Wall -Wextra -Wpedantic -Werror);
#   - runs the C suite, tests/c/test_*.c (each TEST registers itself; recorder.c is the shared
#     recorder, harness.c the runner and the peer), against tether-peer, and tether-ref-server
#     for envelope mode, under ASan+UBSan (static and shared linking) and under valgrind;
#   - builds the examples and the docs/C_API.md quickstarts with pkg-config and with CMake
#     (shared and static) and runs them against tether-peer;
#   - drives examples/game_loop through a server outage.
# Prints one line per check and ends with "c-tests: N passed, M failed"; exits non-zero on
# any failure. Every wait is bounded. KEEP_WORK=1 keeps the scratch directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$PWD"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tether-c-tests.XXXXXX")"
PREFIX="$WORK/prefix"
START=$SECONDS
PASSED=0
FAILED=0
PEER_CHILD=""

cleanup() {
    if [ -n "$PEER_CHILD" ] && kill -0 "$PEER_CHILD" 2>/dev/null; then
        kill "$PEER_CHILD" 2>/dev/null || true
        wait "$PEER_CHILD" 2>/dev/null || true
    fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "scratch directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; }
die() {
    echo "FATAL: $*" >&2
    echo "c-tests: $PASSED passed, $((FAILED + 1)) failed"
    exit 1
}
show_log() { echo "---- $1 (last 40 lines) ----"; tail -n 40 "$1" || true; echo "----"; }

# step NAME CMD...: run CMD (output to a log), count the result.
step() {
    local name="$1"
    shift
    local log="$WORK/log.$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_')" t0=$SECONDS
    if "$@" >"$log" 2>&1; then
        pass "$name ($((SECONDS - t0)) s)"
    else
        fail "$name ($((SECONDS - t0)) s)"
        show_log "$log"
    fi
}

# ---------------------------------------------------------------------------------------------
# Tools: install what is missing from Debian.
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v gcc >/dev/null || missing+=(gcc)
command -v g++ >/dev/null || missing+=(g++)
command -v microsocks >/dev/null || missing+=(microsocks) # test_reach.c
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing from Debian: ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------------------------------------
# Rust side: build, header freshness, format, install.
echo "building tether-ffi, tether-peer and tether-ref-server"
cargo build --quiet -p tether-ffi || die "cargo build -p tether-ffi"
cargo build --quiet -p tether-test-peers --bin tether-peer --bin tether-ref-server || die "cargo build tether-peer"
PEER_BIN="$TARGET_DIR/debug/tether-peer"
export TETHER_REF_SERVER="$TARGET_DIR/debug/tether-ref-server" # envelope mode (acks)
echo "built in $((SECONDS - START)) s"
export TETHER_PEER="$PEER_BIN"

step "header include/tether.h is fresh (ffi/gen-header.sh --check)" ffi/gen-header.sh --check
step "cargo fmt -p tether-ffi --check" cargo fmt -p tether-ffi -- --check
# clippy -D warnings and the crate's Rust unit tests run in `make test` (workspace-wide).

ffi/install.sh --debug --no-build "$PREFIX" >"$WORK/log.install" 2>&1 || { show_log "$WORK/log.install"; die "ffi/install.sh"; }
pass "ffi/install.sh into a temporary prefix"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
step "pkg-config knows tether and tether-static" pkg-config --exists --print-errors "tether >= 0.1" tether-static

# ---------------------------------------------------------------------------------------------
# Compile.
WARN=(-Wall -Wextra -Wpedantic -Werror)
CFLAGS=(-std=c11 -D_GNU_SOURCE -g -O1 "${WARN[@]}" -pthread)
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
read -r -a PC_CFLAGS <<<"$(pkg-config --cflags tether)"
read -r -a PC_SHARED <<<"$(pkg-config --libs tether)"
read -r -a PC_STATIC <<<"$(pkg-config --libs tether-static)"
SUITE=(tests/c/test_*.c tests/c/recorder.c tests/c/harness.c -Itests/c)

step "header compiles as C99 (included twice)" gcc -std=c99 "${WARN[@]}" -Wstrict-prototypes "${PC_CFLAGS[@]}" -c tests/c/header_c.c -o "$WORK/header_c99.o"
step "header compiles as C11 (included twice)" gcc -std=c11 "${WARN[@]}" -Wstrict-prototypes "${PC_CFLAGS[@]}" -c tests/c/header_c.c -o "$WORK/header_c11.o"
step "header compiles as C++11 (included twice)" g++ -std=c++11 "${WARN[@]}" "${PC_CFLAGS[@]}" -Iexamples/cpp -c tests/c/header_cpp.cpp -o "$WORK/header_cxx11.o"
step "header and tether.hpp compile as C++17" g++ -std=c++17 "${WARN[@]}" "${PC_CFLAGS[@]}" -Iexamples/cpp -c tests/c/header_cpp.cpp -o "$WORK/header_cxx17.o"

step "build c_suite (ASan+UBSan, static libtether.a)" gcc "${CFLAGS[@]}" "${SAN[@]}" "${PC_CFLAGS[@]}" "${SUITE[@]}" "${PC_STATIC[@]}" -o "$WORK/c_suite_asan_static"
step "build c_suite (ASan+UBSan, shared libtether.so)" gcc "${CFLAGS[@]}" "${SAN[@]}" "${PC_CFLAGS[@]}" "${SUITE[@]}" "${PC_SHARED[@]}" -Wl,-rpath,"$PREFIX/lib" -o "$WORK/c_suite_asan_shared"
step "build c_suite (for valgrind, shared libtether.so)" gcc "${CFLAGS[@]}" "${PC_CFLAGS[@]}" "${SUITE[@]}" "${PC_SHARED[@]}" -Wl,-rpath,"$PREFIX/lib" -o "$WORK/c_suite_valgrind"

# ---------------------------------------------------------------------------------------------
# The C test suite. Each run adds its own test count.
run_suite() {
    local name="$1" limit="$2"
    shift 2
    local log="$WORK/suite.$name.log" rc=0
    timeout -k 10 "$limit" "$@" >"$log" 2>&1 || rc=$?
    local summary p=0 f=0
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)"
    if [ -n "$summary" ]; then
        p="${summary%% passed*}"
        f="${summary#*, }"
        f="${f%% failed*}"
    fi
    grep -E '^(ok|FAIL|skip) - ' "$log" | sed "s/^/  [$name] /" || true
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
        fail "c_suite [$name] exited with status $rc (sanitizer, valgrind or timeout: see below)"
        show_log "$log"
    elif [ "$p" -eq 0 ]; then
        fail "c_suite [$name] ran no test"
    fi
    echo "  [$name] $summary ($((SECONDS - START)) s elapsed)"
}

export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
[ -x "$WORK/c_suite_asan_static" ] && run_suite asan-static 180 "$WORK/c_suite_asan_static"
[ -x "$WORK/c_suite_asan_shared" ] && run_suite asan-shared 180 "$WORK/c_suite_asan_shared"
# Under valgrind the TLS tests are skipped (they run in both ASan runs): memcheck cannot follow
# definedness through ring's AES-GCM assembly and reports "uninitialised" ciphertext and tags,
# a known false-positive class of optimized AES-GCM code (OpenSSL's too). A suppression would
# also hide real uninitialised bytes written to sockets, so the test is skipped instead.
[ -x "$WORK/c_suite_valgrind" ] && TETHER_TIMEOUT_SCALE=4 TETHER_TEST_SKIP=tls_with_a_custom_ca,reach_with_a_client_certificate \
    run_suite valgrind 240 \
    valgrind -q --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,possible \
    --errors-for-leak-kinds=definite,possible --fair-sched=yes \
    --suppressions=tests/c/valgrind.supp "$WORK/c_suite_valgrind"
unset ASAN_OPTIONS UBSAN_OPTIONS

# ---------------------------------------------------------------------------------------------
# Consumers: pkg-config and CMake builds of the examples and the quickstarts.
EX="$WORK/examples"
mkdir -p "$EX"
CC_EX=(gcc -std=c11 "${WARN[@]}" -pthread)
CXX_EX=(g++ -std=c++17 "${WARN[@]}" -pthread -Iexamples/cpp)

# The quickstarts of docs/C_API.md, exactly as written there.
extract_block() { # FILE FIRST_LINE_MARKER OUT
    awk -v marker="$2" '
        /^```/ { if (inblock) { inblock = 0; if (found) exit } else { fence = 1; next } }
        fence == 1 { fence = 0; if (index($0, marker) > 0) { inblock = 1; found = 1 } }
        inblock { print }
    ' "$1" >"$3"
    [ -s "$3" ]
}
step "docs/C_API.md has the C quickstart" extract_block docs/C_API.md "quickstart.c:" "$EX/quickstart.c"
step "docs/C_API.md has the C++ quickstart" extract_block docs/C_API.md "quickstart.cpp:" "$EX/quickstart.cpp"
step "README.md has the same C quickstart" extract_block README.md "quickstart.c:" "$EX/readme_quickstart.c"
step "README.md has the same C++ quickstart" extract_block README.md "quickstart.cpp:" "$EX/readme_quickstart.cpp"
step "README.md and docs/C_API.md C quickstarts agree" cmp "$EX/quickstart.c" "$EX/readme_quickstart.c"
step "README.md and docs/C_API.md C++ quickstarts agree" cmp "$EX/quickstart.cpp" "$EX/readme_quickstart.cpp"

step "pkg-config: examples/c/echo.c, shared" "${CC_EX[@]}" examples/c/echo.c "${PC_CFLAGS[@]}" "${PC_SHARED[@]}" -o "$EX/echo_pc_shared"
step "pkg-config: examples/c/echo.c, static" "${CC_EX[@]}" examples/c/echo.c "${PC_CFLAGS[@]}" "${PC_STATIC[@]}" -o "$EX/echo_pc_static"
step "pkg-config: examples/cpp/echo.cpp (C++17 wrapper)" "${CXX_EX[@]}" examples/cpp/echo.cpp "${PC_CFLAGS[@]}" "${PC_SHARED[@]}" -o "$EX/echo_cpp_pc"
step "pkg-config: examples/game_loop/game_loop.c" "${CC_EX[@]}" examples/game_loop/game_loop.c "${PC_CFLAGS[@]}" "${PC_SHARED[@]}" -o "$EX/game_loop"
step "pkg-config: docs quickstart.c" "${CC_EX[@]}" "$EX/quickstart.c" "${PC_CFLAGS[@]}" "${PC_SHARED[@]}" -o "$EX/quickstart_c"
step "pkg-config: docs quickstart.cpp" "${CXX_EX[@]}" "$EX/quickstart.cpp" "${PC_CFLAGS[@]}" "${PC_SHARED[@]}" -o "$EX/quickstart_cpp"

cmake_build() {
    cmake -S tests/c/cmake_consumer -B "$WORK/cmake" -DCMAKE_BUILD_TYPE=Debug \
        -DCMAKE_PREFIX_PATH="$PREFIX" -DTETHER_REPO="$ROOT" &&
        cmake --build "$WORK/cmake" --parallel 2
}
step "CMake: find_package(Tether) builds the examples (Tether::tether, Tether::tether_static)" cmake_build

# ---------------------------------------------------------------------------------------------
# Run them against tether-peer (one peer, driven through a coprocess).
coproc PEER { exec "$PEER_BIN"; }
# Copy the pid: bash unsets the coproc variables (PEER_PID, PEER) as soon as it exits.
PEER_CHILD=$PEER_PID
PEER_OUT=${PEER[0]}
PEER_IN=${PEER[1]}
read -r -t 15 -u "$PEER_OUT" line || die "tether-peer did not start"
PORT="${line#PORT }"
URL="ws://127.0.0.1:$PORT/"
echo "tether-peer listening on $URL"

peer_cmd() { # COMMAND: send it, expect "OK..."
    local reply=""
    echo "$1" >&"$PEER_IN"
    read -r -t 15 -u "$PEER_OUT" reply || { echo "peer: no answer to '$1'"; return 1; }
    [[ "$reply" == OK* ]] || { echo "peer: '$1' -> '$reply'"; return 1; }
}

# run_ok NAME EXPECTED_OUTPUT CMD...: exit 0 within 30 s and print EXPECTED_OUTPUT.
run_ok() {
    local name="$1" expect="$2"
    shift 2
    local log="$WORK/run.$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_')" rc=0
    LD_LIBRARY_PATH="$PREFIX/lib" timeout -k 5 30 "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] && grep -qF -- "$expect" "$log"; then
        pass "$name"
    else
        fail "$name (exit $rc)"
        show_log "$log"
    fi
}

run_ok "run echo (pkg-config, shared)" "3 of 3 messages echoed" "$EX/echo_pc_shared" "$URL"
run_ok "run echo (pkg-config, static)" "3 of 3 messages echoed" "$EX/echo_pc_static" "$URL"
run_ok "run echo_cpp (pkg-config)" "3 of 3 messages echoed" "$EX/echo_cpp_pc" "$URL"
run_ok "run docs quickstart.c" "got: hello" "$EX/quickstart_c" "$URL"
run_ok "run docs quickstart.cpp" "got: hello" "$EX/quickstart_cpp" "$URL"
run_ok "run echo (CMake, Tether::tether)" "3 of 3 messages echoed" "$WORK/cmake/echo_shared" "$URL"
run_ok "run echo (CMake, Tether::tether_static)" "3 of 3 messages echoed" "$WORK/cmake/echo_static" "$URL"
run_ok "run echo_cpp (CMake)" "3 of 3 messages echoed" "$WORK/cmake/echo_cpp" "$URL"
run_ok "bad URL is refused with the reason" "did you mean ws://" bash -c '"$1" "http://127.0.0.1/" 2>&1; [ $? -eq 2 ]' _ "$EX/echo_pc_shared"

# ---------------------------------------------------------------------------------------------
# The game loop keeps drawing frames through an outage and reconnects.
game_loop_test() {
    local fifo="$WORK/game.fifo" gpid gfd line frame last=-1 gaps=0 seen_frames=0
    local outage_frames=0 outage_frames_total=0 after_frames=0 phase=connect deadline
    mkfifo "$fifo"
    LD_LIBRARY_PATH="$PREFIX/lib" timeout -k 5 60 "$EX/game_loop" "$URL" >"$fifo" 2>"$WORK/game_loop.err" &
    gpid=$!
    exec {gfd}<"$fifo"
    deadline=$((SECONDS + 45))
    while [ $SECONDS -lt $deadline ]; do
        if ! read -r -t 10 -u "$gfd" line; then
            echo "game loop: no output for 10 s (phase $phase)"
            break
        fi
        echo "$line" >>"$WORK/game_loop.out"
        if [[ "$line" =~ ^frame\ ([0-9]+) ]]; then
            frame="${BASH_REMATCH[1]}"
            if [ "$last" -ge 0 ] && [ "$frame" -ne $((last + 1)) ]; then gaps=$((gaps + 1)); fi
            last=$frame
            seen_frames=$((seen_frames + 1))
        fi
        case "$phase" in
        connect)
            if [[ "$line" == "event: ready"* ]]; then
                # Take the server away: stop listening and cut the connection.
                peer_cmd stop && peer_cmd drop || break
                phase=down
            fi
            ;;
        down)
            [[ "$line" == "event: disconnected"* ]] && phase=outage
            ;;
        outage)
            [[ "$line" == "event: ready"* ]] && { echo "game loop: ready while the server was stopped"; break; }
            if [[ "$line" == frame* ]]; then
                outage_frames=$((outage_frames + 1))
                if [ $outage_frames -ge 30 ]; then
                    peer_cmd restart || break
                    phase=back
                fi
            fi
            ;;
        back)
            if [[ "$line" == "event: ready"* ]]; then phase=after; outage_frames_total=$outage_frames; fi
            [[ "$line" == frame* ]] && outage_frames=$((outage_frames + 1))
            ;;
        after)
            if [[ "$line" == frame* ]]; then
                after_frames=$((after_frames + 1))
                if [ "$after_frames" -ge 10 ]; then
                    kill -TERM "$gpid" 2>/dev/null || true
                    phase=stopping
                fi
            fi
            ;;
        stopping)
            if [[ "$line" == summary* ]]; then
                phase=done
                break
            fi
            ;;
        esac
    done
    exec {gfd}<&-
    local rc=0
    wait "$gpid" || rc=$?
    echo "game loop: phase=$phase frames=$seen_frames outage_frames=$outage_frames_total gaps=$gaps exit=$rc"
    grep '^summary' "$WORK/game_loop.out" || true
    [ "$phase" = done ] && [ "$rc" -eq 0 ] && [ "$gaps" -eq 0 ] &&
        [ "$outage_frames_total" -ge 30 ] &&
        grep -qE '^summary .*readies=2 reconnects=1 ' "$WORK/game_loop.out"
}
if [ -x "$EX/game_loop" ]; then
    step "game loop: frames keep coming through a drop and an outage, then it reconnects" game_loop_test
else
    fail "game loop: not built"
fi

peer_cmd quit >/dev/null 2>&1 || true
wait "$PEER_CHILD" 2>/dev/null || true
PEER_CHILD=""

echo "C tests finished in $((SECONDS - START)) s"
echo "c-tests: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
