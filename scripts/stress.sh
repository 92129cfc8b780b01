#!/usr/bin/env bash
# Flakiness hunt: run the test suites N times each while a load generator keeps every core
# busy, and print how often each test failed.
#
#   scripts/stress.sh              (or `make stress`)
#   N=3 scripts/stress.sh          runs per suite (STRESS_RUNS works too; default 10)
#   STRESS_SUITES="rust c" ...     which suites, any of: rust c python (default all three)
#   STRESS_LOAD=0 ...              no load generator (default 1: one busy loop per core)
#   STRESS_NICE=10 ...             niceness of the load (default 10: the tests keep most of
#                                  the CPU but are preempted and delayed, as on a busy machine)
#   STRESS_RUN_LIMIT=1200 ...      seconds one suite run may take before it counts as a
#                                  failure ("timed out") and is killed
#
# The suites are those of `make test`: the Rust workspace's unit and integration tests
# (cargo test --tests, TETHER_REQUIRE_INTEROP=1, so the interop tests cannot skip), the C
# suite (tests/c/run.sh: ASan static and shared, valgrind, consumers, game loop) and the
# Python suite (pytest as python/tests/run.sh runs it). Everything is built once up front;
# the runs only run. Failures are read from each run's log: cargo's "test NAME ... FAILED",
# the C runner's "FAIL - NAME", pytest's "FAILED NAME" / "ERROR NAME"; a run that fails
# without naming a test (a crash, a sanitizer abort, a timeout) counts under
# "(run exited N)". Logs of every run stay in a temporary directory printed at the start
# and the end. The load generator always stops (trap), and each of its processes is bounded
# in time by itself as well. Exits non-zero if any test failed in any run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

RUNS="${N:-${STRESS_RUNS:-10}}"
SUITES="${STRESS_SUITES:-rust c python}"
LOAD="${STRESS_LOAD:-1}"
NICE="${STRESS_NICE:-10}"
RUN_LIMIT="${STRESS_RUN_LIMIT:-1200}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

case "$RUNS" in
'' | *[!0-9]* | 0)
    echo "stress: N must be a positive number, got '$RUNS'" >&2
    exit 2
    ;;
esac
for suite in $SUITES; do
    case "$suite" in
    rust | c | python) ;;
    *)
        echo "stress: unknown suite '$suite' (rust, c, python)" >&2
        exit 2
        ;;
    esac
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tether-stress.XXXXXX")"
FAILURES="$WORK/failures.tsv" # one line per failure: suite<TAB>test
: >"$FAILURES"
echo "stress: $RUNS run(s) of: $SUITES; logs in $WORK"

LOAD_PIDS=()
stop_load() {
    local pid
    for pid in "${LOAD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${LOAD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    LOAD_PIDS=()
}
trap stop_load EXIT
trap 'stop_load; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Build everything once (without the load: it would only slow the build down).
build() {
    echo "stress: building (log: $WORK/build.log)"
    {
        cargo build --workspace --bins &&
            cargo test --workspace --tests --no-run &&
            if [[ " $SUITES " == *" rust "* ]]; then make -s venv "tests/peers/node/node_modules/.installed"; fi &&
            if [[ " $SUITES " == *" python "* ]]; then
                # The venv, the installed package, the peer, mypy and stubtest; collect only.
                bash python/tests/run.sh --collect-only -q
            fi
    } >"$WORK/build.log" 2>&1
}
if ! build; then
    tail -n 40 "$WORK/build.log"
    echo "stress: the build failed; nothing was run"
    exit 1
fi

# ---------------------------------------------------------------------------------------------
# The load: one busy loop per core, niced, each bounded by `timeout` in case this script dies
# without running its trap (SIGKILL).
start_load() {
    [ "$LOAD" = 1 ] || return 0
    local cores limit i
    cores="$(nproc 2>/dev/null || echo 2)"
    limit=$((RUNS * RUN_LIMIT * 3 + 600))
    for ((i = 0; i < cores; i++)); do
        nice -n "$NICE" timeout "$limit" bash -c 'while :; do :; done' &
        LOAD_PIDS+=("$!")
    done
    echo "stress: load generator: $cores busy loop(s) at nice $NICE (pids ${LOAD_PIDS[*]})"
}

# ---------------------------------------------------------------------------------------------
# One run of one suite: run it into a log, append its failures to $FAILURES.
run_suite() {
    local suite="$1" run="$2" log="$WORK/$1.$2.log" rc=0 t0=$SECONDS found
    case "$suite" in
    rust)
        TETHER_PYTHON="$PY" TETHER_REQUIRE_INTEROP=1 \
            timeout -k 30 "$RUN_LIMIT" cargo test --workspace --tests --no-fail-fast >"$log" 2>&1 || rc=$?
        # "test some::name ... FAILED", with the test binary it ran in.
        found="$(awk '
            /^ *Running / { bin = $NF; gsub(/[()]/, "", bin); sub(/.*\//, "", bin); sub(/-[0-9a-f]+$/, "", bin) }
            /^test .* \.\.\. FAILED$/ { name = $2; print bin "::" name }
        ' "$log")"
        ;;
    c)
        timeout -k 30 "$RUN_LIMIT" bash tests/c/run.sh >"$log" 2>&1 || rc=$?
        # "  [asan-shared] FAIL - name (12 ms)" and "FAIL - step name (3 s)".
        found="$(sed -nE 's/^ *(\[[a-z-]+\] )?FAIL - (.*)$/\1\2/p' "$log" |
            sed -E 's/ \([0-9]+ m?s\)$//; s/ \(exit [0-9]+\)$//')"
        ;;
    python)
        TETHER_PEER="$TARGET_DIR/debug/tether-peer" PATH="$VENV/bin:$PATH" \
            timeout -k 30 "$RUN_LIMIT" "$PY" -m pytest python/tests -W error -p no:cacheprovider \
            --timeout=60 -q -rfE >"$log" 2>&1 || rc=$?
        found="$(sed -nE 's/^(FAILED|ERROR) ([^ ]+).*$/\2/p' "$log")"
        ;;
    esac
    if [ -n "$found" ]; then
        printf '%s\n' "$found" | sed "s/^/$suite\t/" >>"$FAILURES"
    elif [ "$rc" -ne 0 ]; then
        local why="run exited $rc"
        [ "$rc" -eq 124 ] && why="run timed out after $RUN_LIMIT s"
        printf '%s\t(%s)\n' "$suite" "$why" >>"$FAILURES"
    fi
    local n=0
    [ -n "$found" ] && n="$(printf '%s\n' "$found" | wc -l)"
    printf 'stress: %-6s run %d/%d: exit %d, %d failed test(s), %d s (%s)\n' \
        "$suite" "$run" "$RUNS" "$rc" "$n" "$((SECONDS - t0))" "$log"
}

START=$SECONDS
start_load
for ((run = 1; run <= RUNS; run++)); do
    for suite in $SUITES; do run_suite "$suite" "$run"; done
done
stop_load

# ---------------------------------------------------------------------------------------------
# Report.
echo
echo "stress: per-test failures in $RUNS run(s) per suite ($(( (SECONDS - START) / 60 )) min, load: $([ "$LOAD" = 1 ] && echo "$(nproc) busy loop(s) at nice $NICE" || echo off))"
printf '%-8s %-9s %s\n' suite failures test
total=0
for suite in $SUITES; do
    lines="$(awk -F'\t' -v s="$suite" '$1 == s { print $2 }' "$FAILURES" | sort | uniq -c | sort -rn)"
    if [ -z "$lines" ]; then
        printf '%-8s %-9s %s\n' "$suite" "0/$RUNS" "(no failure)"
        continue
    fi
    while read -r count name; do
        printf '%-8s %-9s %s\n' "$suite" "$count/$RUNS" "$name"
        total=$((total + count))
    done <<<"$lines"
done
echo "stress: total: $total failure(s) in $RUNS run(s) of: $SUITES; logs in $WORK"
[ "$total" -eq 0 ]
