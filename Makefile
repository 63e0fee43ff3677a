# qtap: `make run` serves on http://127.0.0.1:8000, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.dev-installed
MODEL_STAMP := $(VENV)/.local-model-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck pytest setup migrate first-user local-model serve-scaled bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP) $@

# llama.cpp is built for any x86-64/ARM CPU, not tuned to this one: a build tuned to a CPU with AMX
# crashes in its AMX kernels on some virtual machines (seen: a segfault on the first prompt longer than
# a few tokens). No wheel cache, so a wheel built earlier with other flags is never reused.
$(MODEL_STAMP): requirements-local-model.txt | $(BIN)/python
	CMAKE_ARGS="-DGGML_NATIVE=OFF $${CMAKE_ARGS:-}" $(BIN)/pip install --quiet --no-cache-dir -r requirements-local-model.txt
	touch $@

setup: $(STAMP)

migrate: setup
	$(BIN)/python manage.py migrate --no-input

first-user: migrate
	$(BIN)/python manage.py ensure_first_user

run: first-user
	$(BIN)/python manage.py collectstatic --no-input --verbosity 0
	$(BIN)/daphne -b $(HOST) -p $(PORT) qtap_site.asgi:application

# Debian's Chromium for the browser tests (never a downloaded browser build).
browser:
	@command -v /usr/bin/chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy providers qtap_site

pytest: $(DEV_STAMP) $(MODEL_STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

local-model: first-user $(MODEL_STAMP)
	$(BIN)/python manage.py local_model

# Without both URLs the two processes would each keep their own SQLite file and in-memory layer: refuse.
serve-scaled: $(STAMP)
	@if [ -z "$$DATABASE_URL" ] || [ -z "$$REDIS_URL" ]; then \
	  echo "serve-scaled: set DATABASE_URL=postgres://... and REDIS_URL=redis://... first (see README)"; exit 1; fi
	$(BIN)/python manage.py migrate --no-input
	trap 'kill $$(jobs -p) 2>/dev/null' INT TERM EXIT; \
	$(BIN)/daphne -b $(HOST) -p 8001 qtap_site.asgi:application & \
	$(BIN)/daphne -b $(HOST) -p 8002 qtap_site.asgi:application & \
	wait

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
