# The two commands: `make run` (quickstart end to end) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= store

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: run test install dev bench clean server deploy worker system-deps

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

# The service tests need a real PostgreSQL and a headless Chromium (Debian packages).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium chromium-driver"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(BIN)/synthfactory run recipes/quickstart.yaml --store $(STORE)
	$(BIN)/synthfactory versions $(STORE)/quickstart

test: $(VENV)/.installed-dev system-deps
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/neardup.py
	$(BIN)/python bench/embedding.py
	$(BIN)/python bench/gx_gate.py
	$(BIN)/python bench/collapse.py
	$(BIN)/python bench/scaling.py

# Run as a service: a Prefect server (SQLite by default), the deployments, and a process worker.
server: $(VENV)/.installed
	$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

deploy: $(VENV)/.installed
	$(BIN)/prefect work-pool create synthfactory --type process --overwrite
	$(BIN)/prefect deploy --prefect-file deploy/prefect.yaml --all
	$(BIN)/python -m flows.monitoring --within 90

# Heartbeats every 30 s: with the automation `make deploy` installs, a run whose worker dies is Crashed within 90 s.
worker: $(VENV)/.installed
	PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30 $(BIN)/prefect worker start --pool synthfactory

clean:
	rm -rf $(VENV) $(STORE) .pytest_cache
