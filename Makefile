# opsbot: `make run` starts the bot on its embedded defaults, `make test` checks everything.
# Both bootstrap what they need on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Most tests wait on loopback I/O, so more workers than cores pays off.
PYTEST_WORKERS ?= 4
PYTEST_ARGS ?= -n $(PYTEST_WORKERS)

.DEFAULT_GOAL := help
.PHONY: help run serve test test-slow lint typecheck pytest browser screenshot infra-check bench lock clean preflight stop-db

help:
	@echo "make run        the sandbox: opsbot with Slack, PagerDuty and AWS emulated, and a web console"
	@echo "make serve      start opsbot on its embedded defaults (SQLite under var/)"
	@echo "make test       lint, type-check and run the whole suite (SQLite and PostgreSQL)"
	@echo "make test-slow  the long fault-injection tests"
	@echo "make bench      benchmarks; prints a table, writes bench/results/"
	@echo "make stop-db    stop the private PostgreSQL cluster that make test starts and leaves running"
	@echo "make lock       re-pin requirements.lock from pyproject.toml"

$(STAMP): pyproject.toml requirements.lock
	.ci/preflight python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

run: $(STAMP)
	$(BIN)/opsbot dev

serve: $(STAMP)
	$(BIN)/opsbot db upgrade
	$(BIN)/opsbot serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy bot handlers sandbox bench

# TEST_DATABASE_URL when set, else this checkout's private cluster (started once, reused).
pytest: $(STAMP) browser
	url="$$(.ci/test-postgres)" && TEST_DATABASE_URL="$$url" $(BIN)/pytest $(PYTEST_ARGS)

# What the machine must have (Python, PostgreSQL, Terraform, the provider mirror) is
# checked first, one line per missing piece; only then the rest, in this order.
test: preflight
	$(MAKE) --no-print-directory lint typecheck pytest infra-check

preflight:
	.ci/preflight

stop-db:
	.ci/test-postgres stop

test-slow: $(STAMP)
	url="$$(.ci/test-postgres)" && TEST_DATABASE_URL="$$url" $(BIN)/pytest -m slow $(PYTEST_ARGS)

# Debian's Chromium for the browser tests (they skip, saying why, where it cannot be installed).
browser:
	.ci/install-chromium

# docs/console.png, the README's picture of the sandbox console.
screenshot: $(STAMP) browser
	$(BIN)/python -m tests.sandbox.screenshot docs/console.png

infra-check:
	.ci/check-infra

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,bench]'
	touch $@

# Joined with &&: a cluster that cannot start fails the run, as in pytest, not SQLite instead.
bench: $(BENCH_STAMP)
	url="$$(.ci/test-postgres)" && TEST_DATABASE_URL="$$url" $(BIN)/python -m bench

lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet '.[dev,bench]'
	.venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^opsbot' > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache var
