# The two commands a new user runs: `make demo` and `make test`. Both install first if needed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

# Pinned here and in pyproject.toml; torch goes in first so no other build gets pulled in.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# lerobot 0.4.4 (last release for Python 3.11) pins torch<2.11: installed without its
# dependencies; what it needs at run time is listed in pyproject.toml.
LEROBOT_PIN := lerobot==0.4.4

.PHONY: install demo test test-full bench clean system-deps

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@$(MAKE) --no-print-directory system-deps
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]} (set PYTHON=python3.11)"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $(LEROBOT_PIN)
	# Reading LeRobot video datasets: torchcodec (its pins exclude our torch too) + Debian's ffmpeg.
	$(PY) -m pip install --quiet --no-deps torchcodec==0.17.0
	touch $@

# Headless MuJoCo rendering needs Mesa's EGL (the one system prerequisite; see README).
system-deps:
	@if ! ldconfig -p | grep -q libEGL_mesa; then \
	  echo "Installing Mesa EGL for headless rendering (apt)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q libegl1 libegl-mesa0 libgl1-mesa-dri libgles2; \
	fi
	@if ! ldconfig -p | grep -q libavcodec; then \
	  echo "Installing ffmpeg's libraries for LeRobot video datasets (apt)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends ffmpeg; \
	fi

# The SAIL loop on the CPU preset (configs/sail_budget/cpu_tiny.yaml): demos, pretraining, 3
# iterations on 2 unseen tasks, report in runs/demo/report/ (~28 min on 2 cores). Rerun: resumes.
demo: install
	$(VENV)/bin/embodied-sail preset=cpu_tiny hydra.run.dir=runs/demo

# Tests start worker processes beside the main one: OpenMP threads that spin while they wait made
# a training step 5-10x slower on 2 shared cores (0.86 s vs 2.9-4.2 s); alone they are ~25 % faster.
test: install
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/pytest -q

# The slow tests at full size (CI runs their short form).
test-full: install
	OMP_WAIT_POLICY=PASSIVE EMBODIED_FULL_TESTS=1 $(VENV)/bin/pytest -q

bench: install
	$(PY) benchmarks/sim_throughput.py
	$(PY) benchmarks/store_throughput.py
	$(PY) benchmarks/planner_speed.py
	$(PY) benchmarks/policy_speed.py

clean:
	rm -rf $(VENV) build dist *.egg-info outputs multirun
