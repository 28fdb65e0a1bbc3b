# The two commands: `make run` (quickstart end to end) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= store

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: run test install dev bench clean server deploy worker

PREFECT_PORT ?= 4200

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# llama-cpp-python builds from source on first install (~5 min on 2 cores); pip caches the wheel.
# torch first, pinned to the CPU build: an unpinned torch pulls several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(BIN)/synthfactory run recipes/quickstart.yaml --store $(STORE)
	$(BIN)/synthfactory versions $(STORE)/quickstart

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/neardup.py
	$(BIN)/python bench/embedding.py
	$(BIN)/python bench/gx_gate.py
	$(BIN)/python bench/collapse.py

# Run as a service: a Prefect server (SQLite by default), the deployments, and a process worker.
server: $(VENV)/.installed
	$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

deploy: $(VENV)/.installed
	$(BIN)/prefect work-pool create synthfactory --type process --overwrite
	$(BIN)/prefect deploy --prefect-file deploy/prefect.yaml --all

worker: $(VENV)/.installed
	$(BIN)/prefect worker start --pool synthfactory

clean:
	rm -rf $(VENV) $(STORE) .pytest_cache
