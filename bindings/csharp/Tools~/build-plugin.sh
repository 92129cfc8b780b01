#!/usr/bin/env bash
# Build the native library and put it where the UPM package expects it:
#   bindings/csharp/Plugins/Linux/x86_64/libtether.so   (release build of tether-ffi)
# Usage: build-plugin.sh [--debug] [--tarball DIR]
#   --debug        copy the debug build instead (what tests/csharp/run.sh tests)
#   --tarball DIR  also pack the package as DIR/dev.tether.client-<version>.tgz, the layout
#                  Unity's "Add package from tarball..." takes (npm-style: a package/ folder)
# Other platforms are built on their own machines (see docs/CSHARP.md) and copied likewise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
ROOT="$PWD"
PKG="$ROOT/bindings/csharp"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE=release
TARBALL=""
while [ $# -gt 0 ]; do
    case "$1" in
    --debug) PROFILE=debug ;;
    --tarball) TARBALL="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$PROFILE" = release ]; then
    cargo build --quiet --release -p tether-ffi
else
    cargo build --quiet -p tether-ffi
fi
case "$(uname -s)-$(uname -m)" in
Linux-x86_64) DEST="$PKG/Plugins/Linux/x86_64/libtether.so"; LIB="$TARGET_DIR/$PROFILE/libtether.so" ;;
*) echo "build-plugin.sh: only Linux x86_64 is set up here; see docs/CSHARP.md for other platforms" >&2; exit 1 ;;
esac
install -m 0755 "$LIB" "$DEST"
echo "copied $LIB -> ${DEST#$ROOT/}"
if [ -n "$TARBALL" ]; then
    VERSION="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$PKG/package.json")"
    mkdir -p "$TARBALL"
    OUT="$(cd "$TARBALL" && pwd)/dev.tether.client-$VERSION.tgz"
    # Everything Unity imports, the samples, and the .meta files; not the tools.
    tar -C "$PKG" --exclude='./Tools~' --exclude='.gitignore' --transform 's,^\.,package,' -czf "$OUT" .
    echo "packed ${OUT}"
fi
