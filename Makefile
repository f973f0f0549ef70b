# Two commands on a fresh machine: `make serve` and `make test`. Everything lives in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 8000

.PHONY: serve test lint bench train-digit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[train,test,distilbert,tracking]'
	touch $@ $(VENV)/.serve

serve: $(VENV)/.serve  ## Start the service on the models in models/ (the committed defaults).
	$(BIN)/deepserve serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev  ## Lint, type-check the service, check the import rules, then run every test.
	$(BIN)/ruff check app training tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

bench: $(VENV)/.dev
	$(BIN)/python -m bench.digit_latency

train-digit: $(VENV)/.dev  ## Train the digit CNN (downloads MNIST unless DATA=path is given).
	$(BIN)/deepserve train digit $(if $(DATA),--data $(DATA))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
