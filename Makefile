# Two commands from a fresh clone:   make run FOLDER=~/ComfyUI/output   and   make test
# Both create .venv when missing and reinstall only when pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
FOLDER ?=

.PHONY: run test test-fast bench lint clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per install flavour; pyproject.toml newer than the stamp means reinstall.
$(VENV)/.installed-app: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed-app

run: $(VENV)/.installed-app
	$(PY) -m gentriage $(FOLDER)

test: $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

# Everything but the tests marked slow (real-process crash tests, big corpora): for the
# edit-test loop; `make test` stays the full suite.
test-fast: $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen $(PY) -m benchmarks $(BENCH_ARGS)

# Import layers (import-linter), style and likely bugs (ruff), types (mypy); configured in
# pyproject.toml.
lint: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean-venv:
	rm -rf $(VENV)
