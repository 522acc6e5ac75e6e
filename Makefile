# The two set-up commands of the README: `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 3000

.PHONY: install serve test train bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

train: install
	$(BIN)/yield-ensemble train

serve: install
	$(BIN)/yield-ensemble train --if-missing
	BENTOML_DO_NOT_TRACK=true $(BIN)/bentoml serve service:YieldEnsemble --port $(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	BENTOML_DO_NOT_TRACK=true $(BIN)/pytest

bench: install
	BENTOML_DO_NOT_TRACK=true $(BIN)/python -m bench
