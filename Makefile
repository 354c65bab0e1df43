# The two commands of the README: `make run` (the app on its demo folder) and `make test` (every test).
# Both set up .venv first, on a fresh machine with only Python 3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HASH   := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Two stamps: the app alone (what `make run` needs: no torch, ONNX Runtime runs the model) and everything
# for tests, training and packaging (`make test`).
APP    := $(VENV)/.installed-app-$(HASH)
STAMP  := $(VENV)/.installed-dev-$(HASH)

.PHONY: bench-cluster bench-peers setup setup-app sysdeps sysdeps-test run scan test test-core test-rest lint bench bench-serve package deb clean

setup: $(STAMP)

setup-app: $(APP)

$(APP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e .
	@rm -f $(VENV)/.installed-app-* && touch $@

$(STAMP): pyproject.toml $(APP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	@rm -f $(VENV)/.installed-dev-* && touch $@

# Qt's xcb/offscreen plugins need a few system libraries; install them where we can (root + apt).
sysdeps:
	@bash .ci/sysdeps.sh

sysdeps-test:
	@bash .ci/sysdeps.sh --test

run: setup-app sysdeps
	$(BIN)/lookalike-gui resources/demo

scan: setup-app
	$(BIN)/lookalike scan resources/demo

test: setup sysdeps-test
	@bash .ci/test.sh

lint: setup
	$(BIN)/ruff check core desktop training tests benchmarks packaging tools
	$(BIN)/ruff format --check core desktop training tests benchmarks packaging tools
	$(BIN)/lint-imports

bench: setup
	$(BIN)/lookalike bench

# Lookalike against Czkawka (PyPI bindings, a benchmark-only extra) on one mixed library, in one run.
bench-peers: setup
	$(BIN)/python -m pip install -q --disable-pip-version-check "czkawka==0.1.2"
	$(BIN)/python -m benchmarks.peers

# The Ray scan (a local Ray, the cluster extra) against the local scan on 200 and 600 photos: img/s, overhead,
# same JSON. Then pairs and groups of 100k-1M synthetic embeddings out of core: time, peak RSS, recall.
bench-cluster: setup
	$(BIN)/python -m benchmarks.cluster
	$(BIN)/python -m benchmarks.scale

# A real `lookalike serve` on 127.0.0.1 under 500 mixed uploads, 8 at a time: throughput, p50/p95, and checks
# (no 5xx, every bad upload a 4xx, RSS stable).
bench-serve: setup
	$(BIN)/python -m core.serve.bench

# The one-folder app dist/Lookalike/ (see packaging/README.md), checked by its own headless self-test.
package: setup
	$(BIN)/pyinstaller --noconfirm build.spec
	dist/Lookalike/Lookalike --self-test > /dev/null

# dist/lookalike_<version>_amd64.deb and dist/lookalike-<version>-linux-x86_64.tar.gz from dist/Lookalike/.
deb: package
	bash packaging/build_deb.sh

clean:
	rm -rf build dist .pytest_cache
