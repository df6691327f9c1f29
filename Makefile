# Muster - developer and CI entry points (GNU make, recipes run by /bin/sh).
#   make run      create .venv, install deps, migrate, load demo data, index, serve on $(PORT)
#   make serve    the production server: install, migrate, run gunicorn (gunicorn.conf.py);
#                 settings from the environment (README, "Running in production");
#                 DEMO=1 loads the demo data first (development only)
#   make test     install dev deps and run pytest ($(PYTEST_ARGS) passed through)
#   make lint     ruff check
#   make migrate  apply database migrations (development config)
#   make clean    remove .venv, instance/ and caches

VENV        := .venv
BIN         := $(VENV)/bin
FLASK       := $(BIN)/flask --app wsgi
PORT        ?= 5000
PYTEST_ARGS ?=

# Interpreter used to create the venv: the first of these that actually runs and
# is >= 3.11 (pyenv shims exist for versions that are not active, so "found on
# PATH" is not enough). Override with e.g. `make PYTHON=/usr/bin/python3.12 run`.
# Recursive (?=) so the probe only runs when the venv has to be created.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; \
	done)

.PHONY: run serve test lint migrate clean venv install install-dev

venv: $(BIN)/python
install: $(VENV)/.installed-prod
install-dev: $(VENV)/.installed-dev

$(BIN)/python:
	@py='$(PYTHON)'; \
	if [ -z "$$py" ]; then \
		echo "error: no Python >= 3.11 found (tried python3.13 python3.12 python3.11 python3); set PYTHON=/path/to/python3.11+" >&2; exit 1; \
	fi; \
	if ! command -v "$$py" >/dev/null 2>&1; then \
		echo "error: PYTHON=$$py not found" >&2; exit 1; \
	fi; \
	if ! "$$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		echo "error: $$py is `"$$py" -V 2>&1`; Muster needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; \
	fi; \
	echo "creating $(VENV) with $$py (`"$$py" -V 2>&1`)"; \
	"$$py" -m venv $(VENV)

# Stamp files: reinstall only when a requirements file changes. The venv is an
# order-only prerequisite so recreating it does not by itself force a reinstall
# (a fresh venv has no stamps anyway).
$(VENV)/.installed-prod: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

# requirements-dev.txt starts with `-r requirements.txt`, so this covers runtime deps too.
$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

# `make run` leaves .flaskenv behind, so the flask commands of the README, typed in a new
# shell in this folder, use the development settings too: Flask's CLI reads the file
# (python-dotenv). A variable set in the shell wins over it, gunicorn never reads it, and
# it is git-ignored; delete it to make flask commands production again. Kept if present.
.flaskenv:
	@printf '%s\n' '# Written by make run: flask commands in this folder use the development settings.' \
		'# Delete this file to make them production again (README, Command line).' \
		'MUSTER_ENV=development' > $@
	@echo "wrote $@: flask commands in this folder now use MUSTER_ENV=development"

run: $(VENV)/.installed-prod .flaskenv
	MUSTER_ENV=development $(FLASK) db upgrade
	MUSTER_ENV=development $(FLASK) demo load --if-empty
	@# Rebuild the search index when it is missing or out of step with the database.
	MUSTER_ENV=development $(FLASK) search check >/dev/null || MUSTER_ENV=development $(FLASK) search reindex
	MUSTER_ENV=development $(FLASK) run --host 127.0.0.1 --port $(PORT)

# MUSTER_ENV is the caller's (production unless set). config.py checks the environment
# first, so a missing SECRET_KEY or DATABASE_URL is one clear line, not a traceback per
# worker. The search index is not rebuilt here: the host's indexer (a standby thread in
# one worker, or `flask search worker`) recovers it and follows the change log.
# FLASK_SKIP_DOTENV: the .flaskenv `make run` writes must not turn a server into development.
serve: $(VENV)/.installed-prod
	@$(BIN)/python config.py
	FLASK_SKIP_DOTENV=1 $(FLASK) db upgrade
	@if [ -n "$(DEMO)" ]; then FLASK_SKIP_DOTENV=1 $(FLASK) demo load --if-empty; fi
	@# Notification e-mails go from a process of their own (requests never send mail),
	@# ended with gunicorn however it stops.
	@if [ -n "$$MUSTER_MAIL_SERVER$$MAIL_SERVER" ]; then \
		FLASK_SKIP_DOTENV=1 $(FLASK) notify send --every 60 & sender=$$!; \
		trap 'kill $$sender 2>/dev/null' EXIT INT TERM; \
		$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app; \
	else exec $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app; fi

migrate: $(VENV)/.installed-prod
	MUSTER_ENV=development $(FLASK) db upgrade

# pytest's exit status is make's: failures (1) and "no tests collected" (5) both fail.
test: $(VENV)/.installed-dev
	MUSTER_ENV=testing $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) instance .flaskenv .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
