# Quick start:  make run   (set up .venv, serve the explorer on the bundled demo model)
#               make test  (set up .venv with test deps, run the whole suite)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: run test venv venv-dev demo-model bench screenshots clean

$(VENV)/.runtime: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime
venv-dev: $(VENV)/.dev

run: venv
	$(PY) app.py

# One worker per core (pytest-xdist; each module stays on one worker, every worker computes on one
# thread: tests/conftest.py), in a fixed order (pytest-randomly is installed: `-p randomly` shuffles).
test: venv-dev
	$(PY) -m pytest -q -p no:randomly -n auto --maxprocesses 4 --dist loadfile

# Regenerate the bundled demo checkpoint and example clips (see README, "Demo model").
demo-model: venv
	$(PY) -m nsnet demo-model --out assets

bench: venv
	$(PY) -m nsnet bench pipeline

# Redraw assets/screenshot.png and assets/screenshot_dataset.png from today's page
# (Debian's Chromium through Playwright; see docs/development.md).
screenshots: venv-dev
	$(PY) -m app.screenshots

clean:
	rm -rf $(VENV) .pytest_cache

# Mutation testing of the core modules (tests/mutate.py; minutes, one worker; not part of `make test`).
.PHONY: mutate
mutate: venv-dev
	nice -n 10 $(PY) tests/mutate.py --max-children 1
