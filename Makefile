# canaryflow — the two commands: `make demo` and `make test`. Each installs what it needs itself.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBIAN_PACKAGES := prometheus postgresql chromium fonts-liberation jq

.PHONY: demo dev dev-wait test lint typecheck unit deps venv debian-deps bench clean screenshot

demo: deps
	$(BIN)/canaryflow demo

# Runs until Ctrl-C or SIGTERM (`kill %1` after `make dev &`: make passes SIGTERM on, the stack stops).
dev: deps
	exec $(BIN)/canaryflow dev

# Waits until a `make dev` started elsewhere is up (it writes .canaryflow/env then), up to 3 minutes.
dev-wait:
	@$(BIN)/canaryflow dev --wait >/dev/null

test: deps lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile

# The README's picture of the Temporal UI, taken while the README's "Ten lines" run as written and wait for
# the approval (the suite itself writes only to temporary folders).
screenshot: deps
	CANARYFLOW_SCREENSHOT=$(CURDIR)/docs/temporal-ui.png $(BIN)/pytest -q -p no:cacheprovider \
	  tests/test_demo.py -k test_the_readme_ten_lines_run_as_written

lint: venv
	$(BIN)/ruff check canaryflow workflows activities worker.py tests benchmarks

typecheck: venv
	$(BIN)/mypy canaryflow

deps: venv debian-deps

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

debian-deps:
	@scripts/install-debian-deps.sh $(DEBIAN_PACKAGES)

bench: deps
	$(BIN)/python benchmarks/bench_resolve.py

clean:
	rm -rf $(VENV) .canaryflow .mypy_cache .ruff_cache .pytest_cache canaryflow.db
