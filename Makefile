# The two set-up commands of the README: `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 3000
#: A development API key (admin role) made on the first `make serve`; see README "Security".
KEYS   ?= data/api-keys

.PHONY: install serve test train bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

train: install
	$(BIN)/yield-ensemble train

$(KEYS):
	mkdir -p $(dir $(KEYS))
	umask 077 && echo "dev:admin:$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(24))')" > $(KEYS)
	@echo "made a development API key (admin role) in $(KEYS)"

serve: install $(KEYS)
	$(BIN)/yield-ensemble train --if-missing
	YIELD_ENSEMBLE_API_KEYS_FILE=$${YIELD_ENSEMBLE_API_KEYS_FILE:-$(abspath $(KEYS))} \
	BENTOML_DO_NOT_TRACK=true $(BIN)/bentoml serve service:YieldEnsemble --port $(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	BENTOML_DO_NOT_TRACK=true $(BIN)/pytest

bench: install
	BENTOML_DO_NOT_TRACK=true $(BIN)/python -m bench
