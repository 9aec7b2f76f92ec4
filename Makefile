# neural_ae: two commands from a fresh clone.
#   make demo  - create/reuse .venv, then run the embedded demo (no data, no ROS daemon, no GPU)
#   make test  - create/reuse .venv, then run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.neural_ae-installed
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
export PYTHONUNBUFFERED := 1

.PHONY: demo test venv lint bench clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.py setup.cfg package.xml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/neural-ae demo

test: $(STAMP)
	ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$$(( ($$$$ % 100) + 101 ))} $(PY) -m pytest test

lint: $(STAMP)
	$(PY) -m pytest test/test_flake8.py test/test_pep257.py

bench: $(STAMP)
	$(VENV)/bin/neural-ae bench

clean:
	rm -rf $(VENV) build install log *.egg-info out
