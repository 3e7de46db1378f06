# Everything runs inside a virtual environment in the checkout, created on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench venv kube chromium clean

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

# Debian's headless Chromium for the console's browser tests, which Playwright drives (it never downloads
# a browser). Installed through apt when missing and make runs as root (CI); otherwise those tests are
# skipped and name the missing binary.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
			>/dev/null || echo "make: could not install chromium: the browser tests will be skipped" >&2; \
	else echo "make: $(CHROMIUM) is missing (as root: apt-get install chromium): the browser tests will be skipped" >&2; fi

test: lint kube chromium
	$(BIN)/python -m pytest

bench: $(STAMP) kube
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .partnerctl .pytest_cache .mypy_cache .ruff_cache
