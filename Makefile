# Two commands on a fresh machine: `make serve` and `make test`. Everything lives in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# This host only; `make serve HOST=0.0.0.0` serves the network (README, "Access control").
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test test-fast lock lint bench train-digit clean ray-serve ray-bench test-ray

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Installs come from the lock files in requirements/ (exact versions, sha256-checked; `make lock` writes them from
# pyproject.toml), then the project itself without dependencies.
LOCK := requirements

$(VENV)/.serve: $(LOCK)/serve.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r $(LOCK)/serve.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# torch first, from PyTorch's CPU index: PyPI's torch==2.13.0 is the CUDA build (several GB with its nvidia
# packages). Its own dependencies then come from PyPI with the rest (dev.txt).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

$(VENV)/.dev: $(LOCK)/torch.txt $(LOCK)/dev.txt pyproject.toml training/pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes --no-deps -r $(LOCK)/torch.txt --index-url $(TORCH_INDEX)
	$(BIN)/pip install -q --require-hashes -r $(LOCK)/dev.txt
	$(BIN)/pip install -q --no-deps -e . -e ./training  # the serving and training packages
	touch $@ $(VENV)/.serve

lock:  ## Rewrite requirements/*.txt from pyproject.toml (pins kept while allowed; UPGRADE=1 takes the newest).
	TORCH_INDEX=$(TORCH_INDEX) bash $(LOCK)/lock.sh

serve: $(VENV)/.serve  ## Start the service on the models in models/ (the committed defaults).
	$(BIN)/deepserve serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.dev  ## Lint, check the format, type-check the service and check the import rules.
	$(BIN)/ruff check app training tests bench tools
	$(BIN)/ruff format --check app training  # tests and bench keep their hand-laid case tables
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint  ## `make lint`, then every test.
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.dev  ## The tests not marked slow (no training runs, real servers or fuzzing): minutes, not hours.
	$(BIN)/python -m pytest -q -m "not slow"

$(VENV)/.ray: pyproject.toml $(VENV)/.dev
	$(BIN)/pip install -q -e '.[ray]'
	touch $@

ray-serve: $(VENV)/.ray  ## DeepServe on Ray Serve: 2 replicas on a local 2-node cluster, on :$(PORT) (Ctrl-C stops).
	$(BIN)/python -m app.http.ray_serve --replicas 2 --port $(PORT)

ray-bench: $(VENV)/.ray  ## 1 vs 2 replicas' throughput, spread, and a replica killed mid-stream (about 2 minutes).
	$(BIN)/python -m bench.ray_replicas

test-ray: $(VENV)/.ray  ## The Ray Serve test and the contract tests against the Ray URL (2-3 minutes).
	DEEPSERVE_TEST_RAY=1 $(BIN)/python -m pytest -q -k ray tests/test_api_contract.py tests/test_oip.py tests/test_ray_serve.py

bench: $(VENV)/.dev
	$(BIN)/python -m bench.digit_latency

train-digit: $(VENV)/.dev  ## Train the digit CNN (downloads MNIST unless DATA=path is given).
	$(BIN)/deepserve train digit $(if $(DATA),--data $(DATA))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
