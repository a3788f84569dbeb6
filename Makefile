# Everything a fresh machine needs: Python >= 3.9 and a Rust toolchain.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cra-built
SOURCES := $(shell find rust python -type f \( -name '*.rs' -o -name '*.py' -o -name '*.pyi' \)) Cargo.toml Cargo.lock pyproject.toml

# The Node binding (node/): built in the shared target dir (the dependencies
# the other builds compiled are reused), after the Python build has copied
# its own library out (make runs the steps of `test` one after another).
NODE   ?= node
NPM    ?= npm
NODE_TARGET := target
CRA_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

.PHONY: run test build cargo-test pytest postgres conformance bench bench-quick lint wheel clean node node-test

run: build
	$(PY) -m cra demo

test: build cargo-test pytest conformance bench-quick node-test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.9.4,<2.0"

$(STAMP): $(VENV)/bin/python $(SOURCES)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release --quiet --extras test,bench,server,dev,integrations
	touch $(STAMP)

build: $(STAMP)

cargo-test:
	cargo test --release --no-default-features --features postgres --quiet

pytest: build postgres
	$(PY) -m pytest -q -p no:cacheprovider tests

# PostgreSQL for the tests that start a throwaway server (tests/pg_server.py):
# Debian's package when initdb is neither on PATH nor under
# /usr/lib/postgresql/*/bin. If it cannot be installed, says so and goes on:
# those tests are skipped (they fail instead under CRA_REQUIRE_POSTGRES=1).
postgres:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		exit 0; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; \
	else echo "postgres: PostgreSQL could not be installed (not root and no sudo); its tests will be skipped"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "postgres: PostgreSQL could not be installed (no apt-get); its tests will be skipped"; exit 0; \
	fi; \
	echo "postgres: initdb not found, installing Debian's postgresql package"; \
	if $$SUDO apt-get -q update && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; then \
		echo "postgres: installed $$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)"; \
	else \
		echo "postgres: PostgreSQL could not be installed (apt-get failed$${SUDO:+ under sudo -n}); its tests will be skipped"; \
	fi

conformance: build
	$(PY) -m cra conformance

bench-quick: build postgres
	CRA_BENCH_QUICK=1 $(PY) -m pytest -q -p no:cacheprovider benches --benchmark-disable-gc \
		--benchmark-min-rounds=3 --benchmark-max-time=0.2 --benchmark-columns=median,mean,ops

bench: build
	$(PY) -m pytest -q -p no:cacheprovider benches --benchmark-disable-gc --benchmark-columns=min,median,mean,ops,rounds

lint: build
	cargo fmt --check
	cargo clippy --all-targets --features python,postgres -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest cra._core

# The addon (release) as node/cra.node, packed into node/cra-$(CRA_VERSION).tgz.
node:
	@command -v $(NODE) >/dev/null 2>&1 || { echo "make node: no \`$(NODE)\` on PATH" >&2; exit 1; }
	CARGO_TARGET_DIR=$(NODE_TARGET) cargo build --release --quiet --no-default-features --features node
	cp $(NODE_TARGET)/release/libcra_core.so node/cra.node.tmp && mv -f node/cra.node.tmp node/cra.node
	cd node && $(NPM) pkg set version=$(CRA_VERSION) && rm -f cra-*.tgz && $(NPM) pack --silent --offline >/dev/null
	@ls -l node/cra-$(CRA_VERSION).tgz | awk '{print "node package:", $$5, "bytes", $$9}'

# The Node tests when node is installed; says so when it is not.
node-test:
	@if command -v $(NODE) >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory node && $(NODE) --test node/test/; \
	else \
		echo "node-test: SKIPPED: no \`$(NODE)\` on PATH, the Node binding was not built or tested"; \
	fi

wheel: $(VENV)/bin/python
	$(VENV)/bin/maturin build --release --out dist
	@ls -l dist/*.whl | awk '{print "wheel size:", $$5, "bytes", $$9}'

clean:
	rm -rf target $(VENV) dist
