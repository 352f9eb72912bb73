# Roost: `make demo` runs a demo node, `make test` runs every test. Both set up what they
# need (wasm toolchain, plugin builds, PostgreSQL for the tests) on their own.

CARGO ?= cargo
CONFIG ?= examples/demo/roost.toml

.PHONY: all toolchain plugins build demo test unit lint bench clean

all: build plugins

toolchain:
	scripts/setup-wasm-toolchain.sh

plugins: toolchain
	scripts/build-plugins.sh

build:
	$(CARGO) build -p roost

demo: plugins build
	$(CARGO) run -q -p roost -- serve --config $(CONFIG)

# Every test: unit tests, the plugin runtime against real hostile components, storage on
# SQLite and on PostgreSQL, SMTP intake driven by real clients (smtplib, swaks, smtp-source).
test: plugins
	scripts/ensure-postgres.sh
	scripts/ensure-test-peers.sh
	scripts/fetch-bounce-corpus.sh
	$(CARGO) test -p roost -p roost-bounce -p roost-plugin-sdk -p subject-tag -p moderation -p subscription -p tracking -p reports -p bounce --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Figures, not pass/fail (release build): plugin call cost and compile-cache hit time;
# SMTP intake against Postfix's smtp-sink and a durable Postfix instance; a 100,000-member
# fan-out against Postfix relaying the same with XVERP; the same on 1, 2 and 3 nodes on one
# PostgreSQL (recipients/s, CPU per node, database transactions per recipient).
bench: plugins
	scripts/ensure-postgres.sh
	scripts/ensure-test-peers.sh
	$(CARGO) bench -p roost --bench plugin_calls
	$(CARGO) bench -p roost --bench intake
	$(CARGO) bench -p roost --bench fanout
	$(CARGO) bench -p roost --bench cluster
	$(CARGO) bench -p roost --bench tracking

clean:
	$(CARGO) clean
