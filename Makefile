# The README's two commands: `make run` and `make test`.
VENV ?= .venv
PY ?= python3
PIP := $(VENV)/bin/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test install install-test lint bench clean

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)

install: $(VENV)/bin/python
	$(PIP) install -q -e .

install-test: $(VENV)/bin/python
	bash scripts/test-deps.sh
	$(PIP) install -q -e '.[test]'

run: install
	$(VENV)/bin/sre-agent run

test: install-test
	$(VENV)/bin/ruff check agent checks tests bench dashboards
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q -p no:cacheprovider

lint: install-test
	$(VENV)/bin/ruff check agent checks tests bench dashboards
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: install-test
	$(VENV)/bin/python bench/http_checks.py

clean:
	rm -rf $(VENV) .sre-agent .pytest_cache
