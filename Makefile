# The two set-up commands of the README: `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 3000
#: The address `make serve` binds: this machine only by default; 0.0.0.0 serves other hosts.
HOST   ?= 127.0.0.1
#: A development API key (admin role) made on the first `make serve`; see README "Security".
KEYS   ?= data/api-keys

.PHONY: install serve test train bench

$(STAMP): pyproject.toml
	@echo "installing the packages into $(VENV) (about 3.4 GB, TensorFlow most of it;" \
	      "2-5 minutes on a first run; pip lists what it fetches)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)
	@echo "installed; run 'source $(VENV)/bin/activate' to use yield-ensemble and python from it"

install: $(STAMP)

train: install
	$(BIN)/yield-ensemble train

$(KEYS):
	mkdir -p $(dir $(KEYS))
	umask 077 && echo "dev:admin:$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(24))')" > $(KEYS)
	@echo "made a development API key (admin role) in $(KEYS)"

serve: install $(KEYS)
	@echo "serving on http://$(HOST):$(PORT) (HOST=0.0.0.0 for other hosts, PORT=... another port)"
	$(BIN)/yield-ensemble train --if-missing
	YIELD_ENSEMBLE_API_KEYS_FILE=$${YIELD_ENSEMBLE_API_KEYS_FILE:-$(abspath $(KEYS))} \
	BENTOML_DO_NOT_TRACK=true $(BIN)/bentoml serve service:YieldEnsemble --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	BENTOML_DO_NOT_TRACK=true $(BIN)/pytest

bench: install
	BENTOML_DO_NOT_TRACK=true $(BIN)/python -m bench
