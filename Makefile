# The README's two commands: `make demo` and `make test`. Both set up what they
# need first; slow builds are cached outside the repository (pip cache, Go
# module and build caches, and ~/.cache/weir/toolchain keyed by version).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= out/demo

.PHONY: setup demo test test-newest-python lint unit cluster-down clean

$(BIN)/.installed: pyproject.toml lab/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,engine,plots]' -e ./lab
	touch $@

setup: $(BIN)/.installed
	e2e/install-prometheus.sh
	e2e/toolchain/build.sh >/dev/null

demo: setup
	$(BIN)/weir demo --out $(DEMO_OUT)

lint: $(BIN)/.installed
	$(BIN)/ruff check operator lab tests $(wildcard bench)
	$(BIN)/ruff format --check operator lab tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-newest-python

# The unit tests again on the newest Python weir supports (3.13), in a Debian
# trixie root filesystem and venv cached under ~/.cache/weir/newest-python.
test-newest-python:
	e2e/newest-python/run.sh

cluster-down: $(BIN)/.installed
	$(BIN)/weir cluster down

clean: cluster-down
	rm -rf $(VENV) out

# The image (Containerfile) with podman, buildah or docker, whichever is here
# (e2e/image/build.sh): tagged IMAGE_REPO:<chart appVersion>, cached by content.
# IMAGE_BASE=docker.io/library/python:3.11-slim builds on a registry base
# instead of the Debian one made on this machine.
IMAGE_REPO ?= ghcr.io/weir-dev/weir
IMAGE_BASE ?=

.PHONY: image
image:
	IMAGE_REPO='$(IMAGE_REPO)' IMAGE_BASE='$(IMAGE_BASE)' e2e/image/build.sh
