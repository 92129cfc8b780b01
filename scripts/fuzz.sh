#!/usr/bin/env bash
# Fuzz tether-core's input parsers with cargo-fuzz (libFuzzer). See docs/FUZZING.md.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all) for SECONDS (default 60). Needs the nightly toolchain
# (`rustup toolchain install nightly`); installs cargo-fuzz into target/tools if it is missing.
# Seeds are read from fuzz/corpus/<target>/ (committed, never written); new inputs libFuzzer
# finds go to fuzz/work/<target>/ (ignored by git). A crash leaves its input in
# fuzz/artifacts/<target>/ and makes this script exit non-zero.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]  (SECONDS a positive integer)" >&2
    exit 2
fi

all_targets=(envelope_text envelope_binary ws_url config_builder)
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=("${all_targets[@]}")
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi

tools="$root/target/tools"
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz into $tools"
    cargo install cargo-fuzz --locked --root "$tools"
fi

# Build all targets once (release with debug assertions, ASan: cargo-fuzz's defaults).
(cd fuzz && cargo +nightly fuzz build)

status=0
summary=()
for target in "${targets[@]}"; do
    seeds="fuzz/corpus/$target"
    work="fuzz/work/$target"
    if [ ! -d "$seeds" ]; then
        echo "unknown target $target (no $seeds)" >&2
        exit 2
    fi
    mkdir -p "$work" "fuzz/artifacts/$target"
    log="fuzz/work/$target.log"
    echo "== $target: ${seconds}s (log: $log)"
    # The first corpus directory receives new inputs; the seed directory is only read.
    # -rss_limit_mb bounds memory per input; -max_len keeps inputs to frame-sized samples.
    if (cd fuzz && cargo +nightly fuzz run "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/") >"$log" 2>&1; then
        result="ok"
    else
        result="FAILED"
        status=1
    fi
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)"
    summary+=("$target: $result, ${execs:-?} execs, ${cov:-cov: ?}, corpus $(find "$work" -type f | wc -l) found + $(find "$seeds" -type f | wc -l) seeds")
    if [ "$result" = FAILED ]; then
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -n 20 || true
    fi
done

echo
printf '%s\n' "${summary[@]}"
exit "$status"
