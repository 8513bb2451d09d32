# Two commands do all set-up: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SIZE ?= small
VAR := $(or $(VAR_DIR),var)

.PHONY: run run-locked test bench lint migrate seed install install-dev browser clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	@$(BIN)/python -m omnichannel.preflight  # a wrong DATABASE_URL: one line, not a traceback
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo --size $(SIZE)

## run: install, migrate, seed demo data, start web server + Celery worker + beat on :8000
# One at a time per VAR_DIR: a second run re-seeded the demo stock under the first one's
# sales and started a second worker and beat. The lock (flock, on the file descriptor the
# steps inherit) lasts as long as the run; the file names the run holding it.
run: install
	@mkdir -p "$(VAR)"; exec 9>>"$(VAR)/run.lock"; \
	if ! $(BIN)/python -c 'import fcntl; fcntl.flock(9, fcntl.LOCK_EX | fcntl.LOCK_NB)' 2>/dev/null; then \
		echo "make run is already running here (pid $$(cat "$(VAR)/run.lock")): stop it first" \
			"(Ctrl-C in its terminal, or kill $$(cat "$(VAR)/run.lock"))" >&2; \
		exit 1; \
	fi; \
	echo $$$$ > "$(VAR)/run.lock"; \
	exec $(MAKE) --no-print-directory run-locked

# What run does once it holds its lock; not to be made on its own.
run-locked: seed
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo "Back office: http://127.0.0.1:$${WEB_PORT:-8000}/admin/   API docs: http://127.0.0.1:$${WEB_PORT:-8000}/api/docs/"
	$(BIN)/python -m omnichannel.honcho_start -f Procfile

## browser: Debian's Chromium and chromedriver, for the dashboard test (needs root and apt)
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver >/dev/null; \
	else echo "The dashboard test needs: apt-get install chromium chromium-driver" >&2; fi

## test: install dev dependencies, run the whole suite (PostgreSQL and Redis when reachable)
test: install-dev browser
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=omnichannel.settings_test > /dev/null
	$(BIN)/ruff check .
	$(BIN)/pytest

## bench: the benchmark table (ratios against a baseline measured in the same run)
bench: install-dev
	$(BIN)/python bench/run.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var staticfiles
