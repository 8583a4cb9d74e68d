# Two commands for a new user: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' msxai_bids/__init__.py)
IMAGE ?= msxai/msxai:$(VERSION)

.PHONY: install demo test test-fast lint clean-demo image image-test image-clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: $(STAMP) lint
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check msxai_bids tests benchmarks
	$(BIN)/hadolint Dockerfile
	$(BIN)/bosh validate --bids boutiques.json

clean-demo:
	rm -rf demo

# The container image, built with buildah (no Docker engine needed); see scripts/image.sh.
image:
	IMAGE=$(IMAGE) bash scripts/image.sh

# Build, then run the participant level inside the image as an arbitrary user.
image-test: image
	IMAGE=$(IMAGE) bash scripts/image_test.sh

image-clean:
	buildah rmi $(IMAGE)
