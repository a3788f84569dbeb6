# Everything a fresh machine needs: Python >= 3.9 and a Rust toolchain.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cra-built
SOURCES := $(shell find rust python -type f \( -name '*.rs' -o -name '*.py' -o -name '*.pyi' \)) Cargo.toml Cargo.lock pyproject.toml

.PHONY: run test build cargo-test pytest conformance bench bench-quick lint wheel clean

run: build
	$(PY) -m cra demo

test: build cargo-test pytest conformance bench-quick

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
	cargo test --release --no-default-features --quiet

pytest: build
	$(PY) -m pytest -q -p no:cacheprovider tests

conformance: build
	$(PY) -m cra conformance

bench-quick: build
	CRA_BENCH_QUICK=1 $(PY) -m pytest -q -p no:cacheprovider benches --benchmark-disable-gc \
		--benchmark-min-rounds=3 --benchmark-max-time=0.2 --benchmark-columns=median,mean,ops

bench: build
	$(PY) -m pytest -q -p no:cacheprovider benches --benchmark-disable-gc --benchmark-columns=min,median,mean,ops,rounds

lint: build
	cargo fmt --check
	cargo clippy --all-targets --features python -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest cra._core

wheel: $(VENV)/bin/python
	$(VENV)/bin/maturin build --release --out dist
	@ls -l dist/*.whl | awk '{print "wheel size:", $$5, "bytes", $$9}'

clean:
	rm -rf target $(VENV) dist
