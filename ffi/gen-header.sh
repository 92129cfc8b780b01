#!/usr/bin/env bash
# Regenerate include/tether.h from ffi/src with the pinned cbindgen.
#   ffi/gen-header.sh            write include/tether.h
#   ffi/gen-header.sh --check    regenerate to a temporary file; fail if include/tether.h differs
# cbindgen is installed on first use into ~/.cache/tether/tools (cargo install, pinned and
# --locked), so a fresh clone on the same machine does not compile it again.
set -euo pipefail
CBINDGEN_VERSION=0.29.4
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Outside the checkout, so fresh clones (CI) on the same machine reuse it; TETHER_TOOLS overrides.
TOOLS="${TETHER_TOOLS:-${HOME:-/tmp}/.cache/tether/tools}"
CBINDGEN="$TOOLS/bin/cbindgen"

if ! [ -x "$CBINDGEN" ] || [ "$("$CBINDGEN" --version 2>/dev/null)" != "cbindgen $CBINDGEN_VERSION" ]; then
    echo "installing cbindgen $CBINDGEN_VERSION into $TOOLS" >&2
    cargo install cbindgen --version "$CBINDGEN_VERSION" --locked --root "$TOOLS" --quiet
fi

generate() {
    (cd "$ROOT/ffi" && "$CBINDGEN" --quiet --config cbindgen.toml --crate tether-ffi --output "$1")
    # The option-table setters are made by a macro (table_setters! in ffi/src/config.rs), which
    # cbindgen does not expand: their declarations and docs come from ffi/examples/c_setters.rs.
    cargo run --quiet --manifest-path "$ROOT/Cargo.toml" -p tether-ffi --example c_setters >>"$1"
}

case "${1:-}" in
    --check)
        tmp="$(mktemp "${TMPDIR:-/tmp}/tether.h.XXXXXX")"
        trap 'rm -f "$tmp"' EXIT
        generate "$tmp"
        if ! diff -u "$ROOT/include/tether.h" "$tmp"; then
            echo "include/tether.h is stale: run ffi/gen-header.sh and commit the result" >&2
            exit 1
        fi
        ;;
    "")
        generate "$ROOT/include/tether.h"
        echo "wrote include/tether.h" >&2
        ;;
    *)
        echo "usage: ffi/gen-header.sh [--check]" >&2
        exit 2
        ;;
esac
