# Everything runs inside a virtual environment in the checkout, created on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench venv kube clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/partnerctl --repo . demo

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests benchmarks
	$(BIN)/mypy reconciler
	$(BIN)/lint-imports

# The real kube-apiserver, etcd and kubectl, built once from the Go module proxy into
# ~/.cache/partnerctl/kube (about 8 minutes the first time). Without Go it says so and the tests
# that need them are skipped.
kube:
	@bash tests/support/build_kube.sh >/dev/null || [ $$? -eq 3 ]

test: lint kube
	$(BIN)/python -m pytest

bench: $(STAMP) kube
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .partnerctl .pytest_cache .mypy_cache .ruff_cache
