# Tether: the two commands a newcomer needs.
#   make demo   build and run the demo (reference server behind a fault proxy, a client
#               streaming acked messages through cuts, resets, a stall and a restart; act 2:
#               two tether.server instances with Redis behind HAProxy, one killed mid-stream)
#   make test   the whole test suite: format, lint, Rust unit and integration tests, C/C++
#               tests under ASan+UBSan and valgrind, the Python package (its wheel, make wheel,
#               in .venv, mypy --strict, pytest; tether.server against Debian's redis-server,
#               installed if missing; proxies against tinyproxy and microsocks, likewise),
#               interop and protocol tests against reference servers on Python `websockets`
#               (venv created here) and Node `ws` (npm ci here), the wheel of `make wheel`
#               installed in a fresh venv without Rust (tests/wheel), the C# binding for Unity
#               under Debian's Mono (installed if missing)
# Both work on a fresh Debian machine with the Rust toolchain and Python 3.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := tests/peers/node/node_modules/.installed

.PHONY: demo test wheel chaos fuzz bench bench-outbox venv fmt lint stress redis-server haproxy proxies options-docs mono csharp-plugin csharp-package

demo: redis-server haproxy
	cargo run --release -q -p tether-core --example demo
	bash scripts/demo-act2.sh

test: $(VENV_STAMP) $(NODE_STAMP) redis-server haproxy proxies
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	python3 scripts/longfns.py --check core/src ffi/src python/src
	cargo build --workspace --bins
	TETHER_PYTHON="$(abspath $(PY))" TETHER_REQUIRE_INTEROP=1 cargo test --workspace
	bash tests/c/run.sh
	bash python/tests/run.sh
	bash tests/wheel/run.sh
	bash tests/csharp/run.sh

# The Python package as distributed, into dist/: one abi3 wheel (CPython >= 3.9, tagged
# manylinux_2_17: glibc 2.17 or later, linked with zig from PyPI `ziglang`) and the sdist
# (scripts/wheel.sh; docs/PYTHON.md, "Packaging"). `make test` checks both (tests/wheel).
wheel:
	bash scripts/wheel.sh

# The chaos soak alone, with its report tables (TETHER_CHAOS_LONG=1 for the 1,000,000-message run).
chaos: $(VENV_STAMP) $(NODE_STAMP)
	cargo build --release -p tether-test-peers --bins
	TETHER_PYTHON="$(abspath $(PY))" TETHER_REQUIRE_INTEROP=1 cargo test --release -p tether-core --test chaos -- --nocapture --test-threads=1

# Flakiness hunt: the Rust, C and Python suites N times each (default 10) with every core kept
# busy by a load generator; prints per-test failure counts (scripts/stress.sh: STRESS_SUITES=...).
stress: $(VENV_STAMP) $(NODE_STAMP)
	N="$(N)" STRESS_RUNS="$(STRESS_RUNS)" bash scripts/stress.sh

# Benchmarks: Tether (Rust, C, Python) beside raw tokio-tungstenite and the Python clients people
# use, against one echo server, then tether.server's acked messages/s (memory and Redis, beside raw
# mode); writes bench/RESULTS.md and bench/results.png (--quick: smoke run; BENCH_ARGS="--only
# server": only section (g), the rest of RESULTS.md kept).
bench: redis-server
	bash bench/run.sh $(BENCH_ARGS)

# The persistent outbox's cost (outbox_sync none / batch / always) beside the in-memory outbox,
# in one run; writes bench/OUTBOX.md.
bench-outbox:
	python3 bench/outbox.py $(BENCH_ARGS)

# cargo-fuzz targets (envelope decoders, URL and config parser), SECONDS each (default 60).
fuzz:
	bash scripts/fuzz.sh $(or $(SECONDS),60)

venv: $(VENV_STAMP)

# The venv for test peers built on libraries we did not write. Installs python3-venv from
# Debian if this Python lacks the venv module.
$(VENV_STAMP): tests/peers/python/requirements.txt
	@python3 -m venv $(VENV) 2>/dev/null || { \
		echo "python3 venv module missing: installing python3-venv"; \
		apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(PY) -m pip install -q --disable-pip-version-check -r tests/peers/python/requirements.txt
	touch $@

# Debian's redis-server, for tether.server's Redis store tests (they start their own on a free
# port); installed if missing, as python3-venv is (python/tests/run.sh checks it too).
redis-server:
	@command -v redis-server >/dev/null || { \
		echo "redis-server missing: installing redis-server"; \
		apt-get update -qq && apt-get install -y -qq redis-server; }

# Debian's HAProxy, the load balancer in front of the tether.server instances of the scale-out
# soak (python/tests/test_scale_out.py) and of demo act 2; installed if missing, likewise.
haproxy:
	@command -v haproxy >/dev/null || { \
		echo "haproxy missing: installing haproxy"; \
		apt-get update -qq && apt-get install -y -qq haproxy; }

# Debian's Mono (mcs + mono), for the C# binding's tests (tests/csharp/run.sh installs it too
# when missing); installed if missing, likewise.
mono:
	@{ command -v mcs >/dev/null && command -v mono >/dev/null; } || { \
		echo "mono missing: installing mono-complete"; \
		apt-get update -qq && apt-get install -y -qq mono-complete; }

# The Unity package's native library: a release build of tether-ffi copied to
# bindings/csharp/Plugins/Linux/x86_64/libtether.so (not committed); csharp-package also packs
# target/unity/dev.tether.client-<version>.tgz for Unity's "Add package from tarball".
csharp-plugin:
	bash "bindings/csharp/Tools~/build-plugin.sh"

csharp-package:
	bash "bindings/csharp/Tools~/build-plugin.sh" --tarball target/unity

# Debian's tinyproxy (HTTP CONNECT with BasicAuth) and microsocks (SOCKS5 with RFC 1929
# auth), the real proxies of core/tests/proxy*.rs (they start their own on free ports, with
# their own config in a temp dir); installed if missing, likewise. The tests fail without them.
proxies:
	@command -v tinyproxy >/dev/null && command -v microsocks >/dev/null || { \
		echo "tinyproxy or microsocks missing: installing them"; \
		apt-get update -qq && apt-get install -y -qq tinyproxy microsocks; }

# The Node reference server's dependencies, from the committed lockfile.
$(NODE_STAMP): tests/peers/node/package-lock.json
	npm ci --prefix tests/peers/node --no-audit --no-fund --loglevel=error
	touch $@

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

# Regenerate what is generated from core's option table (core/src/options.rs): the option
# tables in docs/PYTHON.md and docs/C_API.md and the ClientOptions TypedDict. The test suite
# (core/tests/options_doc.rs) fails when they are stale.
options-docs:
	cargo run -q -p tether-core --example options_doc -- --write
