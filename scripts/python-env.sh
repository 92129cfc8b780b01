# Sourced (not run) by python/tests/run.sh, scripts/demo-act2.sh and bench/run.sh: the one
# definition of how a venv gets Tether's Python package, so the three cannot drift apart.
# Run from the repository root. Each function installs what it needs on a fresh Debian machine.

# tether_venv VENV: create the venv if missing (installing python3-venv from Debian if this
# Python lacks the venv module).
tether_venv() {
    local venv="$1"
    [ -x "$venv/bin/python" ] && return 0
    python3 -m venv "$venv" 2>/dev/null || {
        echo "python3 venv module missing: installing python3-venv"
        apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$venv"
    }
}

# tether_requirements VENV FILE: pip install -r FILE into the venv, again only when FILE changed
# since the last install (a stamp per file name in the venv).
tether_requirements() {
    local venv="$1" file="$2" stamp
    stamp="$venv/.requirements-$(basename "$(dirname "$file")")-$(basename "$file")"
    if [ ! -f "$stamp" ] || [ "$file" -nt "$stamp" ]; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$file" && touch "$stamp"
    fi
}

# tether_package VENV [MODULE]: Tether's wheel into the venv: scripts/wheel.sh (`make wheel`:
# maturin, a release build as users get it, into dist/) and `pip install` of that wheel, so the
# venv runs the very file that is distributed and tests/wheel checks (one extension build for
# both). Skipped when nothing the package is built from changed since the last install and
# MODULE (default `tether`) imports. Prints "up to date" when skipped; returns the build's or
# pip's status otherwise.
tether_package() {
    local venv="$1" module="${2:-tether}" stamp="$1/.tether-ws-installed" changed=""
    local sources=(python/src python/tether python/Cargo.toml python/pyproject.toml
        core/src core/Cargo.toml Cargo.toml Cargo.lock scripts/wheel.sh scripts/wheel-requirements.txt)
    if [ -f "$stamp" ] && "$venv/bin/python" -c "import $module" 2>/dev/null; then
        changed=$(find "${sources[@]}" -newer "$stamp" -print -quit 2>/dev/null || true)
    else
        changed="not installed"
    fi
    if [ -z "$changed" ]; then
        echo "up to date (nothing changed since the last install)"
        return 0
    fi
    # The stamp is taken before the build, so an edit made during it triggers the next one.
    touch "$stamp.new"
    local wheels
    if bash scripts/wheel.sh && wheels=(dist/tether_ws-*.whl) && [ "${#wheels[@]}" = 1 ] &&
        "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall \
            --no-deps --no-index "${wheels[0]}"; then
        mv "$stamp.new" "$stamp"
    else
        rm -f "$stamp.new"
        return 1
    fi
}
