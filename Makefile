# TicketDrop: `make demo` runs the mesh and a small ticket drop; `make test` runs every
# test against the real local stack. Everything installs itself under .stack/.

SHELL := /bin/bash
BUF := .stack/node/node_modules/.bin/buf
GRPCURL := .stack/venv/bin/grpcurl

.PHONY: demo test bench chaos up down stack-up stack-down stack-status stack-reset services-status \
        build lint fmt-check clippy lint-proto lint-deploy test-only compose-test web-screenshots

## The two commands of the README.

demo: up
	@echo
	@target/release/ticketdrop health
	@echo
	@event=demo-$$(date +%s); \
	target/release/ticketdrop drop --event $$event --protocol all --fans 2000 --seats 100 && \
	for protocol in 2pc saga lease; do target/release/ticketdrop audit --event $$event-$$protocol || exit 1; done && \
	echo && echo "Which coordinator of the log served which purchases:" && \
	target/release/ticketdrop coordinators && \
	echo && echo "The fans' page: http://127.0.0.1:50080/   the operator's live view of this drop: http://127.0.0.1:50080/#/operator (drop $$event)"

test: stack-up fmt-check clippy lint-proto lint-deploy test-only

## The local stack (PostgreSQL, Redis, DynamoDB Local, grpcurl, buf).

stack-up:
	@scripts/stack.sh up

stack-down:
	@scripts/stack.sh down

stack-status:
	@scripts/stack.sh status

# Stops the stack and deletes its data; the installed tools stay.
stack-reset: down
	@scripts/stack.sh reset

## The stack plus the services in the background on their fixed ports.

up: stack-up
	@scripts/services.sh up

down:
	@scripts/services.sh down
	@scripts/stack.sh down

services-status:
	@scripts/services.sh status

## Every figure of docs/benchmarks.md from one run on a freshly reset stack: the stores'
## raw pace, 50,000 fans on 500 seats under each protocol, uncontended latency on the
## fresh and the aged store, the scaling drops and the picture. Resets .stack/ data.

bench:
	@$(MAKE) --no-print-directory stack-reset
	@$(MAKE) --no-print-directory up
	target/release/ticketdrop bench --scaling --write docs/benchmarks.md \
		--svg docs/benchmarks.svg --json target/bench.json

## The chaos lab: every scenario under every protocol on a mesh of its own (services
## built with their failpoints); the measured comparison into docs/chaos.md.

CHAOS_SEED ?= 42

chaos: stack-up
	cargo build -p client -p coordinator -p inventory-pg -p orders-dynamo -p payments -p waiting-room $(FEATURES)
	target/debug/ticketdrop chaos --protocol all --scenario all --seed $(CHAOS_SEED) \
		--markdown docs/chaos.md --history target/chaos-history.jsonl

## docker-compose.yml brought up for real with podman (installed here, on a base image
## made with debootstrap), a drop under each protocol through the containers with a
## coordinator replica killed mid-drop, the audit, teardown; the time of each step.

compose-test:
	@scripts/compose-test.sh

## Screenshots of every page of the web front end, at desktop and phone width, into
## docs/web/ (a mesh of its own, real browser; see docs/web.md).

web-screenshots: stack-up
	cargo build -p inventory-pg -p orders-dynamo -p payments -p coordinator -p waiting-room -p notifier -p client -p web
	TICKETDROP_SCREENSHOTS_DIR=$(CURDIR)/docs/web cargo nextest run -p web --run-ignored only screenshots

## Checks.

build:
	cargo build --workspace --all-targets

fmt-check:
	cargo fmt --all --check

# The crash tests and the chaos lab need the services' named failpoints (off in release
# builds: `make up` runs services without them).
FEATURES := --features coordinator/failpoints,inventory-pg/failpoints,orders-dynamo/failpoints,payments/failpoints

clippy:
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --workspace --all-targets $(FEATURES) -- -D warnings

lint-proto: stack-up
	$(BUF) lint

# The Kubernetes manifests against the API schemas, offline, and every container of them
# and of docker-compose.yml against the variables its binary reads.
lint-deploy: stack-up
	.stack/venv/bin/python scripts/lint-deploy.py

lint: fmt-check clippy lint-proto lint-deploy

# A failing test's panic message is the last thing it prints: no backtrace after it,
# so a short excerpt of the run (CI shows one) names what failed.
#
# Every service binary is built first: cargo builds a package's binary for tests only
# when that package has integration tests of its own, and the mesh spawns all of them.
test-only:
	cargo build --workspace --all-targets $(FEATURES)
	@export RUST_BACKTRACE=0; if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace $(FEATURES) --no-fail-fast; \
	else \
		cargo test --workspace $(FEATURES) --no-fail-fast; \
	fi
