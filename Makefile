# The README's two commands: `make demo` and `make test`. Both bootstrap first:
# Debian packages when missing, a venv in .venv, the project installed editable.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEB_PKGS := mosquitto mosquitto-clients postgresql fonts-wqy-microhei libmtdev1 socat
PYTEST_WORKERS ?= 3
PYTEST_ARGS ?=

.PHONY: bootstrap debs demo test soak lint format bench

bootstrap: debs $(STAMP)

# dpkg-query is fast, so the check runs every time; apt-get only when something is missing.
debs:
	@command -v dpkg-query >/dev/null || { echo "not Debian: install $(DEB_PKGS) yourself"; exit 0; }; \
	missing=""; \
	for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq $$missing; } || exit 1; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "install them with: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev]'
	touch $(STAMP)

demo: bootstrap
	$(VENV)/bin/kiosk demo

test: bootstrap
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not soak" $(PYTEST_ARGS)

soak: bootstrap
	$(PY) -m pytest -q -m soak -p no:timeout $(PYTEST_ARGS)

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: bootstrap
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: bootstrap
	@failed=""; for b in bench/*.py; do echo "== $$b"; $(PY) $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "targets missed:$$failed"; exit 1; fi
