# llm3d: `make demo` and `make test` set everything up on first use (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup demo demo-ros test test-fast doctor clean

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/llm3d demo $(DEMO_ARGS)

# The same episode through the ROS 2 nodes (bringup --sim, goal_pose, the services and the action).
demo-ros: setup
	$(VENV)/bin/llm3d demo --ros $(DEMO_ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything but the `slow` tests.
test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

doctor: setup
	$(VENV)/bin/llm3d doctor

clean:
	rm -rf build .pytest_cache
