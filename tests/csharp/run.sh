#!/usr/bin/env bash
# The C# binding (bindings/csharp, a Unity UPM package) under Mono, from the repository root:
#   - installs mono-complete from Debian if mcs or mono is missing (and gcc, for the layout
#     probe), the way the Makefile installs redis-server and haproxy;
#   - builds tether-ffi (debug) and the test peers; stages the package as Unity would see it,
#     with libtether.so in Plugins/Linux/x86_64/ (tools/.gitignore left out);
#   - checks the package: package.json and the asmdefs parse, every asset has a .meta with a
#     unique guid (Tools~/unity_meta.py --check);
#   - compiles Runtime/ alone as the asmdef does (mcs, warnings as errors, XML docs required on
#     every public item), also with UNITY_IOS and UNITY_WEBGL defined (the "__Internal" and
#     not-supported branches);
#   - compiles the C# blocks of README.md, docs/CSHARP.md and the package README;
#   - compiles the test suite (tests/csharp/*.cs, a reflection-registered runner) with the
#     samples (Samples~) and a UnityEngine stub, and runs it against tether-peer and
#     tether-ref-server, with the C struct layout from tests/csharp/layout.c;
#   - runs a process that exits with a live, undisposed client (must exit 0, promptly).
# Prints one line per check and ends with "csharp-tests: N passed, M failed"; exits non-zero on
# any failure. Every wait is bounded. KEEP_WORK=1 keeps the scratch directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$PWD"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tether-csharp-tests.XXXXXX")"
START=$SECONDS
PASSED=0
FAILED=0

cleanup() {
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "scratch directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; }
die() {
    echo "FATAL: $*" >&2
    echo "csharp-tests: $PASSED passed, $((FAILED + 1)) failed"
    exit 1
}
show_log() { echo "---- $1 (last 40 lines) ----"; tail -n 40 "$1" || true; echo "----"; }

step() { # NAME CMD...: run CMD (output to a log), count the result
    local name="$1"
    shift
    local log="$WORK/log.$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_')"
    if "$@" >"$log" 2>&1; then
        pass "$name"
    else
        fail "$name"
        show_log "$log"
    fi
}

# ---------------------------------------------------------------------------------------------
# Tools.
missing=()
{ command -v mcs >/dev/null && command -v mono >/dev/null; } || missing+=(mono-complete)
command -v gcc >/dev/null || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing from Debian: ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
CSC=mcs
echo "compiler: $($CSC --version | head -n 1); runtime: $(mono --version | head -n 1)"

echo "building tether-ffi, tether-peer and tether-ref-server"
cargo build --quiet -p tether-ffi || die "cargo build -p tether-ffi"
cargo build --quiet -p tether-test-peers --bin tether-peer --bin tether-ref-server || die "cargo build test peers"
export TETHER_PEER="$TARGET_DIR/debug/tether-peer"
export TETHER_REF_SERVER="$TARGET_DIR/debug/tether-ref-server"
echo "built in $((SECONDS - START)) s"

# ---------------------------------------------------------------------------------------------
# The package, staged as Unity sees it.
PKG="$WORK/package"
mkdir -p "$PKG"
tar -C bindings/csharp --exclude='./Tools~' --exclude='.gitignore' -cf - . | tar -C "$PKG" -xf -
PLUGIN_DIR="$PKG/Plugins/Linux/x86_64"
install -m 0755 "$TARGET_DIR/debug/libtether.so" "$PLUGIN_DIR/libtether.so"

json_ok() { python3 -c 'import json, sys; [json.load(open(p)) for p in sys.argv[1:]]' "$@"; }
step "package.json and the asmdefs are valid JSON" json_ok "$PKG/package.json" "$PKG/Runtime/Tether.Runtime.asmdef" "$PKG/Samples~/TetherSample/Tether.Samples.asmdef"
asmdef_refs() {
    python3 - "$PKG" <<'EOF'
import json, sys, os
pkg = sys.argv[1]
runtime = json.load(open(os.path.join(pkg, "Runtime/Tether.Runtime.asmdef")))
sample = json.load(open(os.path.join(pkg, "Samples~/TetherSample/Tether.Samples.asmdef")))
manifest = json.load(open(os.path.join(pkg, "package.json")))
assert runtime["noEngineReferences"] is True, "Runtime must not need UnityEngine"
assert sample["references"] == [runtime["name"]], "the sample references the runtime by name"
assert all(os.path.isdir(os.path.join(pkg, s["path"])) for s in manifest["samples"]), "sample paths exist"
assert manifest["name"].count(".") >= 2 and manifest["name"] == manifest["name"].lower(), "UPM name"
EOF
}
step "asmdef references, sample paths and the package name agree" asmdef_refs
step "every package asset has a .meta with a unique guid (Tools~/unity_meta.py --check)" python3 "bindings/csharp/Tools~/unity_meta.py" --check

# ---------------------------------------------------------------------------------------------
# Compile.
BIN="$WORK/bin"
mkdir -p "$BIN"
RUNTIME_SRC=("$PKG"/Runtime/*.cs)
step "Runtime compiles alone (mcs, warnings as errors, XML docs on every public item)" \
    $CSC -target:library -out:"$BIN/Tether.Runtime.dll" -doc:"$BIN/Tether.Runtime.xml" -warn:4 -warnaserror+ "${RUNTIME_SRC[@]}"
step "Runtime compiles for iOS (UNITY_IOS: DllImport(\"__Internal\"))" \
    $CSC -target:library -define:UNITY_IOS -out:"$WORK/ios.dll" -warnaserror+ "${RUNTIME_SRC[@]}"
step "Runtime compiles for WebGL (UNITY_WEBGL: refused at construction)" \
    $CSC -target:library -define:UNITY_WEBGL -out:"$WORK/webgl.dll" -warnaserror+ "${RUNTIME_SRC[@]}"
ios_lib() { # the whole listing first: grep -q closing the pipe early would fail it (pipefail)
    local map
    map="$(monodis --implmap "$WORK/ios.dll")" || return 1
    grep -q ' __Internal)' <<<"$map" && ! grep -q ' tether)' <<<"$map"
}
step "the iOS build imports from __Internal only" ios_lib
[ -f "$BIN/Tether.Runtime.dll" ] || die "Runtime did not compile"
step "compile the test suite with the samples and a UnityEngine stub" \
    $CSC -out:"$BIN/TetherTests.exe" -r:"$BIN/Tether.Runtime.dll" -r:System.Core -warn:4 \
    tests/csharp/*.cs "$PKG"/Samples~/TetherSample/*.cs
[ -f "$BIN/TetherTests.exe" ] || die "the test suite did not compile"

# The C# blocks of the docs compile against the Runtime and the UnityEngine stub.
doc_blocks() { # FILE: compile each ```csharp block of FILE on its own
    local file="$1" dir="$WORK/doc.$(echo "$1" | tr / _)" n=0 f
    mkdir -p "$dir"
    awk -v dir="$dir" '/^```csharp$/ { n++; out = dir "/block" n ".cs"; next } /^```$/ { out = "" } out { print > out }' "$file"
    for f in "$dir"/block*.cs; do
        [ -f "$f" ] || { echo "no csharp block in $file"; return 1; }
        n=$((n + 1))
        $CSC -target:library -out:"$f.dll" -r:"$BIN/Tether.Runtime.dll" -r:System.Core tests/csharp/UnityStub.cs "$f" || return 1
    done
    echo "$n blocks compiled"
}
step "README.md's C# block compiles" doc_blocks README.md
step "docs/CSHARP.md's C# blocks compile" doc_blocks docs/CSHARP.md
step "the package README's C# block compiles" doc_blocks bindings/csharp/README.md

gcc -std=c11 -Wall -Wextra -Werror -Iinclude tests/csharp/layout.c -o "$WORK/layout" || die "layout.c"
export TETHER_LAYOUT="$("$WORK/layout")"

# ---------------------------------------------------------------------------------------------
# Run: the library from the staged package's Plugins folder, as a Linux player loads it.
export LD_LIBRARY_PATH="$PLUGIN_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
SUITE_LOG="$WORK/suite.log"
T0=$SECONDS
rc=0
timeout -k 10 240 mono --debug "$BIN/TetherTests.exe" >"$SUITE_LOG" 2>&1 || rc=$?
grep -E '^(ok|FAIL) - ' "$SUITE_LOG" | sed 's/^/  [mono] /' || true
summary="$(grep -E '^csharp-tests: [0-9]+ passed, [0-9]+ failed$' "$SUITE_LOG" | tail -n 1 || true)"
if [ -n "$summary" ]; then
    p="${summary#csharp-tests: }"
    p="${p%% passed*}"
    f="${summary#*, }"
    f="${f%% failed*}"
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
fi
if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
    fail "the Mono suite exited with status $rc (crash or timeout: see below)"
    show_log "$SUITE_LOG"
elif [ "${p:-0}" -eq 0 ]; then
    fail "the Mono suite ran no test"
fi
echo "  [mono] ${summary:-no summary} ($((SECONDS - T0)) s)"

exit_with_live_client() {
    local out
    out="$(timeout -k 5 30 mono "$BIN/TetherTests.exe" --exit-with-live-client)" || return 1
    grep -q "exiting with the client alive" <<<"$out"
}
step "a process exits cleanly with an undisposed, connected client" exit_with_live_client

echo "C# tests finished in $((SECONDS - START)) s"
echo "csharp-tests: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
