# tramoe: the two commands a new user needs are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# DDS stays on this machine; each run gets its own domain so parallel runs do not cross-talk.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$$$ % 100 + 100 )))
export MUJOCO_GL := egl
export HF_HUB_OFFLINE := 1

.PHONY: install test demo smoke bench models models-multitask clean

install:
	@bash scripts/install.sh

test: install
	$(PY) -m pytest test -q

# One LIBERO episode through the ROS graph in real time with the shipped models (models/): bag, track video, summary.json.
demo: install
	$(VENV)/bin/tramoe-demo --out runs/demo

# Tiny track model and policy trained on generated data with the real training code (no LIBERO, ~2 min).
smoke: install
	$(VENV)/bin/tramoe-smoke-demo --out runs/smoke

# The shipped default models from nothing: LIBERO collection, training, evaluation (hours on a CPU).
models: install
	bash scripts/make_models.sh

# One policy for the ten LIBERO-Object tasks, grown from the shipped task-0 policy (after `make models`; hours;
# in progress, not yet the default: models/README.md).
models-multitask: install
	bash scripts/make_multitask_policy.sh

bench: install
	$(VENV)/bin/tramoe-bench models
	$(VENV)/bin/tramoe-bench graph --json

clean:
	rm -rf build runs
