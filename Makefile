# rcomet — the one place that knows how to build, run, test and benchmark.
#   make run      build release and run the server on its built-in defaults
#   make test     formatting, lints and every test (what CI runs)
#   make bench    the quick benchmarks (a few minutes)
#   make c1000k   the million-connection benchmark (C=... to change the target)

CARGO ?= cargo

.PHONY: all build run test fmt lint unit bench c1000k clean

all: build

build:
	$(CARGO) build --release --workspace

run:
	$(CARGO) run --release --bin rcomet

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

test: fmt lint unit

bench: build
	bash bench/quick.sh

c1000k: build
	bash bench/c1000k.sh

clean:
	$(CARGO) clean
