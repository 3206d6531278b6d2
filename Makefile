# tramoe: the two commands a new user needs are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# DDS stays on this machine; each run gets its own domain so parallel runs do not cross-talk.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$$$ % 100 + 100 )))
export MUJOCO_GL := egl
export HF_HUB_OFFLINE := 1

.PHONY: install test demo bench models clean

install:
	@bash scripts/install.sh

test: install
	$(PY) -m pytest test -q

demo: install
	$(VENV)/bin/tramoe-smoke-demo --out runs/demo

# The shipped default models from nothing: LIBERO collection, training, evaluation (hours on a CPU).
models: install
	bash scripts/make_models.sh

bench: install
	$(VENV)/bin/tramoe-bench models
	$(VENV)/bin/tramoe-bench graph --json

clean:
	rm -rf build runs
