# cogbroker: `make demo` to see it work, `make test` to check everything (what CI runs).
#
# Every target installs what it needs when it is missing (the interop venv, gnome-keyring as
# root), so a fresh Debian machine with Rust and Python needs nothing done by hand.

CARGO ?= cargo
PYTHON ?= python3

# The pinned moto for `make interop` (shared/peers.md was checked against this version).
MOTO_VERSION := 5.2.5
# The real AWS clients of the interop AWS tests (AWS CLI v1, and boto3, which moto brings).
AWSCLI_VERSION := 1.46.2
VENV := target/interop-venv
MOTO_SERVER := $(VENV)/bin/moto_server
MOTO_STAMP := $(VENV)/.moto-$(MOTO_VERSION)-awscli-$(AWSCLI_VERSION)

# Where cargo puts its binaries: asked of cargo, so CARGO_TARGET_DIR (or `build.target-dir` in a
# cargo config) is honoured. Expanded only by the targets that run a built binary.
TARGET_DIR = $(shell $(CARGO) metadata --format-version 1 --no-deps | \
	$(PYTHON) -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

# Where `make install` puts things (per user, no root needed).
BIN_DIR ?= $(HOME)/.local/bin
UNIT_DIR ?= $(HOME)/.config/systemd/user

# The password that unlocks the throwaway keyring of `make keyring`; it guards nothing.
KEYRING_TEST_PASSWORD := cogbroker-test

.DEFAULT_GOAL := help
.PHONY: help build demo test fmt fmt-check clippy lint unit demo-once interop keyring keyring-deps \
	browser browser-deps install clean-venv bench bench-quick bench-build symbol-order fuzz fuzz-deps soak

help:
	@echo 'make demo        build and run `cogbroker demo`: an emulator, the daemon, a login, tokens'
	@echo 'make test        everything CI checks: fmt, clippy, build, unit + e2e tests, demo, interop, keyring, browser'
	@echo 'make build       build the binaries (cogbroker, cognito-emulator)'
	@echo 'make interop     the auth flows against moto, AWS credentials with the AWS CLI and boto3 (installs them in $(VENV))'
	@echo 'make keyring     the store against a real Secret Service (gnome-keyring in a private D-Bus)'
	@echo 'make browser     a web page in headless Chromium cannot read a token from the TCP port'
	@echo 'make lint        rustfmt --check and clippy -D warnings'
	@echo 'make fmt         format the workspace'
	@echo 'make install     the binary to $(BIN_DIR), the systemd user units to $(UNIT_DIR)'
	@echo 'make clean-venv  remove the interop venv'
	@echo 'make bench       release build, every performance row against its baselines, table -> docs/benchmarks.md (~7 min cold)'
	@echo 'make bench-quick the same rows, shorter (CI smoke, < 2 min); writes nothing'
	@echo 'make symbol-order re-trace the hot paths into crates/cogbroker/symbol-order.txt (valgrind)'
	@echo 'make fuzz        every cargo-fuzz target for FUZZ_SECONDS each (default 60; nightly, installs cargo-fuzz)'
	@echo 'make soak        the daemon under load and upstream faults for SOAK_SECONDS (default 600)'

build:
	$(CARGO) build --workspace --bins

demo: build
	$(CARGO) run --quiet -p cogbroker -- demo

# In this order, cheapest first, so a formatting slip fails in a second, not after the suite
# (sub-makes, so `make -j test` keeps the order too).
test:
	$(MAKE) --no-print-directory fmt-check
	$(MAKE) --no-print-directory clippy
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory demo-once
	$(MAKE) --no-print-directory interop
	$(MAKE) --no-print-directory keyring
	$(MAKE) --no-print-directory browser
	@echo '==> make test: all checks passed'

fmt:
	$(CARGO) fmt --all

fmt-check:
	@echo '==> cargo fmt --check'
	$(CARGO) fmt --all -- --check

# `--all-targets` skips the `test = false` targets (interop, keyring, browser), so they are named explicitly.
clippy:
	@echo '==> cargo clippy -D warnings'
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p cogbroker-e2e --test interop --test keyring --test browser --test soak -- -D warnings

lint: fmt-check clippy

# nextest runs each test in its own process and in parallel; doctests need `cargo test --doc`.
unit: build
	@echo '==> unit, router and end-to-end tests'
	@# Emulator RSA keys made once and reused by every emulator the suite starts (jwt.rs).
	@export COGNITO_EMULATOR_KEY_CACHE='$(TARGET_DIR)/emulator-keys'; \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
		echo '$(CARGO) nextest run --workspace --no-fail-fast'; \
		$(CARGO) nextest run --workspace --no-fail-fast --no-tests=warn && \
		echo '$(CARGO) test --doc --workspace' && \
		$(CARGO) test --doc --workspace; \
	else \
		echo '$(CARGO) test --workspace --no-fail-fast'; \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

demo-once: build
	@echo '==> cogbroker demo --once'
	'$(TARGET_DIR)/debug/cogbroker' demo --once

$(MOTO_STAMP):
	@echo '==> installing moto[server]==$(MOTO_VERSION) and awscli==$(AWSCLI_VERSION) into $(VENV)'
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
		echo 'make interop: `$(PYTHON) -m venv` is unavailable; install it (Debian: apt-get install python3-venv)' >&2; \
		exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)' 'awscli==$(AWSCLI_VERSION)'
	touch $@

# The AWS tests run the built `cogbroker` under the AWS CLI and boto3, hence `build`.
interop: $(MOTO_STAMP) build
	@echo '==> interop against moto $(MOTO_VERSION), the AWS CLI $(AWSCLI_VERSION) and boto3'
	COGBROKER_MOTO_SERVER='$(abspath $(MOTO_SERVER))' COGBROKER_AWS_CLI='$(abspath $(VENV)/bin/aws)' \
		COGBROKER_PYTHON='$(abspath $(VENV)/bin/python)' $(CARGO) test -p cogbroker-e2e --test interop

# Installs the Secret Service when it is missing and we may (root with apt-get); otherwise says how.
keyring-deps:
	@if command -v dbus-run-session >/dev/null 2>&1 && command -v dbus-send >/dev/null 2>&1 && \
		command -v gnome-keyring-daemon >/dev/null 2>&1 && command -v secret-tool >/dev/null 2>&1; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo '==> installing gnome-keyring and dbus (apt-get)'; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			gnome-keyring libsecret-tools dbus dbus-bin dbus-daemon dbus-session-bus-common >/dev/null; \
	else \
		echo 'make keyring needs gnome-keyring-daemon, secret-tool, dbus-run-session and dbus-send:' >&2; \
		echo '  sudo apt-get install gnome-keyring libsecret-tools dbus' >&2; \
		exit 1; \
	fi

# The keyring tests share one Secret Service (and `secret-tool search --all` lists every item), so
# they run one at a time: in parallel, one test's search raced another's delete.
# A private session bus with a freshly unlocked gnome-keyring (tests/keyring/session.sh), so the
# test never touches a real keyring. The test binary is built first so the bus lives only as long
# as the test.
keyring: keyring-deps build
	@echo '==> keyring against a real Secret Service (gnome-keyring in a private D-Bus session)'
	$(CARGO) test -p cogbroker-e2e --test keyring --no-run
	COGBROKER_KEYRING_PASSWORD='$(KEYRING_TEST_PASSWORD)' COGBROKER_TEST_KEYRING=1 \
		dbus-run-session -- sh tests/keyring/session.sh $(CARGO) test -p cogbroker-e2e --test keyring \
		-- --test-threads=1

# Installs Chromium when it is missing and we may (root with apt-get); otherwise says how.
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo '==> installing chromium (apt-get)'; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo 'make browser needs Chromium (/usr/bin/chromium):' >&2; \
		echo '  sudo apt-get install chromium' >&2; \
		exit 1; \
	fi

# Security test 15: an attacker page in headless Chromium against the daemon on loopback TCP
# (tests/browser/main.rs). The test fails, never skips, when Chromium is missing.
browser: browser-deps build
	@echo '==> a web page in headless Chromium against the daemon on loopback TCP'
	$(CARGO) test -p cogbroker-e2e --test browser -- --nocapture

install:
	$(CARGO) build --release -p cogbroker
	install -d '$(BIN_DIR)' '$(UNIT_DIR)'
	install -m 0755 '$(TARGET_DIR)/release/cogbroker' '$(BIN_DIR)/cogbroker'
	install -m 0644 systemd/cogbroker.service systemd/cogbroker.socket '$(UNIT_DIR)/'
	@echo 'installed $(BIN_DIR)/cogbroker and the units in $(UNIT_DIR); now run:'
	@echo '  systemctl --user daemon-reload && systemctl --user enable --now cogbroker.socket'

clean-venv:
	rm -rf $(VENV)

# `make bench` (not part of `make test`): the release binaries measured as a black box against
# baselines the bench builds and starts itself (docs/benchmarks.md). The AWS CLI and pycognito
# baselines come from PyPI into $(BENCH_VENV); if pip cannot install them, their rows say so.
BENCH_VENV := target/bench-venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP):
	@echo '==> installing awscli and pycognito into $(BENCH_VENV) (bench baselines)'
	@rm -rf $(BENCH_VENV)
	@if $(PYTHON) -m venv $(BENCH_VENV) && \
		$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check awscli pycognito; then \
		touch $@; \
	else \
		echo 'bench: pip could not install awscli/pycognito; those rows will say so' >&2; \
	fi

# Two builds, so the product binaries get the same features as in `cargo build --release`.
bench-build:
	$(CARGO) build --release -p cogbroker -p cognito-emulator
	$(CARGO) build --release -p cogbroker-bench

bench: bench-build
	@$(MAKE) --no-print-directory $(BENCH_STAMP) || true
	'$(TARGET_DIR)/release/cogbroker-bench' --venv $(BENCH_VENV) --out docs/benchmarks.md

# Re-traces the hot paths and rewrites crates/cogbroker/symbol-order.txt (crates/cogbroker/build.rs
# hands it to the linker); then relinks with the new list. Needs valgrind.
symbol-order: bench-build
	scripts/symbol-order.sh '$(TARGET_DIR)/release'
	$(CARGO) build --release -p cogbroker

bench-quick: bench-build
	@$(MAKE) --no-print-directory $(BENCH_STAMP) || true
	'$(TARGET_DIR)/release/cogbroker-bench' --quick --venv $(BENCH_VENV)

# `make fuzz` (not part of `make test`): each cargo-fuzz target in fuzz/ (its own workspace, so
# the stable build never needs nightly) for FUZZ_SECONDS. New inputs go to target/fuzz-corpus;
# the committed seeds in fuzz/corpus replay on stable in `make test` (tests/it/fuzz_corpus.rs).
# A crash is saved under fuzz/artifacts/<target>/: fix it, then add the input to fuzz/corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := config jwt srp_challenge cognito_error token_query host_header json_body git \
	docker cargo bazel kube_exec_info goauth

fuzz-deps:
	@$(CARGO) +nightly --version >/dev/null 2>&1 || { \
		echo 'make fuzz needs a nightly toolchain: rustup toolchain install nightly' >&2; exit 1; }
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

fuzz: fuzz-deps
	@for target in $(FUZZ_TARGETS); do \
		echo "==> fuzz $$target for $(FUZZ_SECONDS) s"; \
		mkdir -p target/fuzz-corpus/$$target; \
		$(CARGO) +nightly fuzz run $$target target/fuzz-corpus/$$target fuzz/corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=16384 -rss_limit_mb=2048 || exit 1; \
	done

# `make soak` (not part of `make test`): tests/soak/main.rs; CI may run `make soak SOAK_SECONDS=120`.
SOAK_SECONDS ?= 600

soak: build
	COGBROKER_SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test -p cogbroker-e2e --test soak -- --nocapture
