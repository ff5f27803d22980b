# rcomet — the one place that knows how to build, run, test and benchmark.
#   make run      build release and run the server on its built-in defaults (ARGS="icomet.conf")
#   make test     formatting, lints and every test (what CI runs)
#   make bench    the quick benchmarks (a few minutes)
#   make microbench  in-process micro-benchmarks of the hot paths (benches/, divan; ~1 minute)
#   make c1000k   the million-connection benchmark (C=... to change the target; ICOMET_BIN=... adds
#                 an iComet 0.2.5 column); exits non-zero when a server misses its target
#   make messenger  rcomet vs iComet 0.2.5 side by side (ICOMET_BIN=/path/to/icomet-server)
#   make ws-bench  /ws against /stream: idle memory at 19,000 and 1 x 1,000 fan-out, both engines
#   make ws-conformance  /ws against the Python `websockets` client, both engines, every case shown
#                 (needs: python3 -m pip install -r tests/ws_conformance/requirements.txt)

CARGO ?= cargo

.PHONY: all build run test fmt lint unit bench microbench c1000k messenger ws-bench ws-conformance clean

all: build

build:
	$(CARGO) build --release --workspace

# ARGS: a config file and/or flags for the server, e.g. make run ARGS="icomet.conf".
ARGS ?=

run:
	$(CARGO) run --release --bin rcomet -- $(ARGS)

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

test: fmt lint unit

bench: build
	bash bench/quick.sh

# Divan options for every bench binary (the command line wins over each bench's own settings;
# --sample-size would also override the fan-out's one push per sample, so leave it out).
MICROBENCH_ARGS ?= --sample-count 1000 --max-time 3

microbench:
	$(CARGO) bench -p rcomet -- $(MICROBENCH_ARGS)

c1000k: build
	bash bench/c1000k.sh

messenger: build
	bash bench/messenger.sh

ws-bench: build
	bash bench/ws.sh

ws-conformance:
	$(CARGO) test --test ws_conformance -- --nocapture --test-threads 1

clean:
	$(CARGO) clean
