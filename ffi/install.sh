#!/usr/bin/env bash
# Install the Tether C API into PREFIX, the usual way for C and C++ consumers:
#   PREFIX/include/tether.h
#   PREFIX/lib/libtether.a
#   PREFIX/lib/libtether.so.X.Y.Z, libtether.so.ABI -> (soname), libtether.so -> (dev link)
#   PREFIX/lib/pkgconfig/tether.pc, tether-static.pc
#   PREFIX/lib/cmake/Tether/TetherConfig.cmake, TetherConfigVersion.cmake
#
# usage: ffi/install.sh [--debug] [--no-build] PREFIX
#   --debug     install the debug build (default: release)
#   --no-build  do not run cargo; install what target/<profile> holds
# Environment: LIBDIR (default "lib"), CARGO_TARGET_DIR (default <repo>/target).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=release
build=1
prefix=""
while [ $# -gt 0 ]; do
    case "$1" in
        --debug) profile=debug ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        -*) echo "install.sh: unknown option $1" >&2; exit 2 ;;
        *) [ -z "$prefix" ] || { echo "install.sh: one PREFIX only" >&2; exit 2; }; prefix="$1" ;;
    esac
    shift
done
[ -n "$prefix" ] || { echo "usage: ffi/install.sh [--debug] [--no-build] PREFIX" >&2; exit 2; }
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
libdir="${LIBDIR:-lib}"
target="${CARGO_TARGET_DIR:-$ROOT/target}"

if [ "$build" = 1 ]; then
    if [ "$profile" = release ]; then
        cargo build --quiet --manifest-path "$ROOT/Cargo.toml" -p tether-ffi --release
    else
        cargo build --quiet --manifest-path "$ROOT/Cargo.toml" -p tether-ffi
    fi
fi

header="$ROOT/include/tether.h"
macro() { sed -n "s/^#define $1 \([0-9][0-9]*\)\$/\1/p" "$header"; }
major="$(macro TETHER_VERSION_MAJOR)"
minor="$(macro TETHER_VERSION_MINOR)"
patch="$(macro TETHER_VERSION_PATCH)"
[ -n "$major" ] && [ -n "$minor" ] && [ -n "$patch" ] || { echo "install.sh: no version macros in $header" >&2; exit 1; }
version="$major.$minor.$patch"
if [ "$major" = 0 ]; then abi="0.$minor"; else abi="$major"; fi   # matches ffi/build.rs

case "$(uname -s)" in
    Linux) native_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc" ;;   # rustc --print native-static-libs
    *) echo "install.sh: only Linux is supported for now" >&2; exit 1 ;;
esac
bits="$(getconf LONG_BIT)"

src="$target/$profile"
for f in libtether.a libtether.so; do
    [ -f "$src/$f" ] || { echo "install.sh: $src/$f missing (build first, or drop --no-build)" >&2; exit 1; }
done

install -d "$prefix/include" "$prefix/$libdir/pkgconfig" "$prefix/$libdir/cmake/Tether"
install -m 0644 "$header" "$prefix/include/tether.h"
install -m 0644 "$src/libtether.a" "$prefix/$libdir/libtether.a"
install -m 0755 "$src/libtether.so" "$prefix/$libdir/libtether.so.$version"
ln -sfn "libtether.so.$version" "$prefix/$libdir/libtether.so.$abi"
ln -sfn "libtether.so.$abi" "$prefix/$libdir/libtether.so"

subst() {
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" \
        -e "s|@MAJOR@|$major|g" -e "s|@MINOR@|$minor|g" -e "s|@ABI@|$abi|g" \
        -e "s|@NATIVE_LIBS@|$native_libs|g" -e "s|@SIZEOF_VOID_P@|$((bits / 8))|g" \
        -e "s|@SIZEOF_VOID_P_BITS@|$bits|g" "$1" > "$2"
}
subst "$ROOT/ffi/tether.pc.in" "$prefix/$libdir/pkgconfig/tether.pc"
subst "$ROOT/ffi/tether-static.pc.in" "$prefix/$libdir/pkgconfig/tether-static.pc"
subst "$ROOT/cmake/TetherConfig.cmake.in" "$prefix/$libdir/cmake/Tether/TetherConfig.cmake"
subst "$ROOT/cmake/TetherConfigVersion.cmake.in" "$prefix/$libdir/cmake/Tether/TetherConfigVersion.cmake"
echo "installed Tether $version ($profile) into $prefix" >&2
