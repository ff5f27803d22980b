# rcomet — the one place that knows how to build, run, test and benchmark.
#   make run      build release and run the server on its built-in defaults (ARGS="icomet.conf")
#   make test     formatting, lints and every test (what CI runs)
#   make browser-deps  the browser test's npm packages (npm ci in tests/browser, only when the lock
#                 file changed); make test runs it. The test also needs Chromium (.ci/run installs it)
#   make js-deps  clients/js's npm packages (esbuild, for rcomet.js; npm ci when the lock changed)
#   make js-test  rcomet.js's unit tests, build and size check (node --test in clients/js)
#   make demo     the chat demo's app server (contrib/demo; rcomet on its defaults must be running)
#   make bench    the quick benchmarks (a few minutes)
#   make microbench  in-process micro-benchmarks of the hot paths (benches/, divan; ~1 minute)
#   make fuzz     coverage-guided fuzzing of every parser (libFuzzer via cargo-fuzz, stable
#                 toolchain, installed when missing): FUZZ_S seconds per target (default 30),
#                 FUZZ_TARGETS="http_request ws_decode" for some only. make test runs the same
#                 harnesses over the corpus and generated inputs as a cargo test (fuzz/tests)
#   make soak     a bounded churn soak (SOAK_S seconds of clients, default 420: under 10 minutes;
#                 ENGINE=io_uring): samples memory, descriptors, connections, timers and mailbox
#                 depth, and exits non-zero when anything leaked (see bench/soak.sh)
#   make burst    does a burst stall anyone else? a probe's connect → long-poll → push → delivery
#                 every 20 ms while N /stream subscribers (default 60000, ENGINE=io_uring) connect,
#                 are held and are all killed at once; exits non-zero past p99 5 ms / max 50 ms
#   make bulk     the same probe while CHANNELS (200000) channels are created, broadcast to and
#                 all expire together, a /psub reader connected; the same bound (bench/bulk.sh)
#   make big-channel  the same probe while one channel of N (18000) /stream subscribers gets
#                 pushes (each N sends); the same bound (bench/big_channel.sh)
#   make c1000k   the million-connection benchmark (C=... to change the target; ICOMET_BIN=... adds
#                 an iComet 0.2.5 column); exits non-zero when a server misses its target
#   make messenger  rcomet vs iComet 0.2.5 side by side (ICOMET_BIN=/path/to/icomet-server)
#   make install  install the release binary (make build first; BIN=... names another), config,
#                 systemd unit, sysctl files and docs (PREFIX=/usr/local, DESTDIR=, BINDIR,
#                 SYSCONFDIR, UNITDIR); make uninstall removes them again (not the config)
#   make deb      build release and a Debian package in DEB_DIR (default target/deb)
#   make ws-bench  /ws against /stream: idle memory at 19,000 and 1 x 1,000 fan-out, both engines
#   make cluster-bench  3 nodes over a real redis-server against one node without Redis: pushes,
#                 fan-out, CPU (rcomet and Redis) and memory per subscriber (see bench/cluster.sh;
#                 needs redis-server and redis-cli); writes bench/results/cluster-DATE/
#   make ws-conformance  /ws against the Python `websockets` client, both engines, every case shown
#                 (needs: python3 -m pip install -r tests/ws_conformance/requirements.txt)

CARGO ?= cargo

.PHONY: all build run test fmt lint unit browser-deps js-deps js-test demo bench microbench soak burst bulk big-channel c1000k messenger ws-bench cluster-bench ws-conformance fuzz install uninstall deb clean

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

unit: browser-deps js-deps
	$(CARGO) test --workspace

# tests/browser.rs drives headless Chromium with playwright-core from tests/browser. npm writes
# node_modules/.package-lock.json on every install; it is remade when the lock file is newer.
BROWSER_DIR := tests/browser

browser-deps: $(BROWSER_DIR)/node_modules/.package-lock.json

$(BROWSER_DIR)/node_modules/.package-lock.json: $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing (Node.js 20+ with npm): run .ci/run or install Node.js"; exit 1; }
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund
	touch $@

# clients/js (rcomet.js): esbuild from npm; tests/js_client.rs and tests/browser.rs build it.
JS_DIR := clients/js

js-deps: $(JS_DIR)/node_modules/.package-lock.json

$(JS_DIR)/node_modules/.package-lock.json: $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing (Node.js 20+ with npm): run .ci/run or install Node.js"; exit 1; }
	cd $(JS_DIR) && npm ci --no-audit --no-fund
	touch $@

js-test: js-deps
	cd $(JS_DIR) && node --test test/

demo: js-deps
	cd $(JS_DIR) && node build.mjs
	node contrib/demo/server.mjs $(DEMO_ARGS)

test: fmt lint unit

bench: build
	bash bench/quick.sh

# Divan options for every bench binary (the command line wins over each bench's own settings;
# --sample-size would also override the fan-out's one push per sample, so leave it out).
MICROBENCH_ARGS ?= --sample-count 1000 --max-time 3

microbench:
	$(CARGO) bench -p rcomet -- $(MICROBENCH_ARGS)

# Seconds per fuzz target, and the targets (all when empty); see fuzz/run.sh.
FUZZ_S ?= 30
FUZZ_TARGETS ?=

fuzz:
	CARGO="$(CARGO)" bash fuzz/run.sh $(FUZZ_S) $(FUZZ_TARGETS)

soak: build
	bash bench/soak.sh

burst: build
	bash bench/burst.sh

bulk: build
	bash bench/bulk.sh

big-channel: build
	bash bench/big_channel.sh

c1000k: build
	bash bench/c1000k.sh

messenger: build
	bash bench/messenger.sh

# Where cargo builds (CARGO_TARGET_DIR and cargo's config honoured); asked only when needed.
TARGET_DIR = $(shell CARGO="$(CARGO)" bash bench/target_dir.sh)
# The binary to install or package (default: the release build); `make deb BIN=...` skips the
# build. `make install` never builds, so that `sudo make install` does not run cargo as root.
BIN ?=
INSTALL_BIN = $(or $(BIN),$(TARGET_DIR)/release/rcomet)

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= $(if $(filter /usr /usr/,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
DATADIR ?= $(PREFIX)/share
DOCDIR ?= $(DATADIR)/doc/rcomet
INSTALL_ENV = DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" BINDIR="$(BINDIR)" SYSCONFDIR="$(SYSCONFDIR)" \
	UNITDIR="$(UNITDIR)" DATADIR="$(DATADIR)" DOCDIR="$(DOCDIR)"

install:
	$(INSTALL_ENV) bash contrib/install.sh "$(INSTALL_BIN)"

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/rcomet" "$(DESTDIR)$(UNITDIR)/rcomet.service"
	rm -rf "$(DESTDIR)$(DATADIR)/rcomet" "$(DESTDIR)$(DOCDIR)"
	@echo "uninstall: kept $(DESTDIR)$(SYSCONFDIR)/rcomet/rcomet.conf"

DEB_DIR ?= $(TARGET_DIR)/deb

deb: $(if $(BIN),,build)
	bash contrib/debian/build-deb.sh "$(INSTALL_BIN)" "$(DEB_DIR)"

ws-bench: build
	bash bench/ws.sh

cluster-bench: build
	bash bench/cluster.sh

ws-conformance:
	$(CARGO) test --test ws_conformance -- --nocapture --test-threads 1

clean:
	$(CARGO) clean
	rm -rf fuzz/libfuzzer/target
