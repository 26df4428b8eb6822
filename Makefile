# Two commands for readers (`make test`, `make book`), one for authors (`make execute`).
# Every target creates .venv on first use and reuses it afterwards; it is rebuilt
# when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make execute NOTEBOOKS=book/02_x.ipynb` re-executes one chapter only.
NOTEBOOKS ?= $(sort $(wildcard book/*.ipynb))

# nbval runs every notebook in this environment's kernel and compares outputs
# after the substitutions in tests/nbval_sanitize.cfg (see CONTRIBUTING.md).
NBVAL_ARGS := --nbval --nbval-current-env \
              --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider book
UNIT_ARGS  := --doctest-modules companion benchmarks tools tests --ignore=tests/site
# Kernels started from an environment keep C-level output (TensorFlow's C++ notices)
# on the kernel's own stderr instead of copying it into cell outputs.
KERNEL_CONFIG := c.IPKernelApp.capture_fd_output = False

# The version matrix (`make compat`): environments in _build/envs, one per stack of
# tools/stacks.py, rebuilt when pyproject.toml or the stacks change.
ENVS  := _build/envs
FLOOR := $(ENVS)/floor
COLAB := $(ENVS)/colab

export PYTHONHASHSEED := 0

.PHONY: help env test lint unit nbval book site-test bench execute setup-cells clean \
        compat compat-floor compat-colab compat-envs

help:
	@echo "make test         lint, unit tests, and nbval over every notebook"
	@echo "make book         build the site into _build/html from the stored outputs"
	@echo "make site-test    check every page of the built site in headless Chromium"
	@echo "make compat       unit tests and nbval on the declared floor and on Colab's stack"
	@echo "make bench        time companion.numpy_conv against tf.nn.conv2d (not a test)"
	@echo "make execute      re-execute every notebook in place (authors only)"
	@echo "make setup-cells  rewrite the notebooks' Colab setup cells from _config.yml"
	@echo "make clean        remove _build and .venv"

env: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[book,test,notebook]'
	mkdir -p $(VENV)/etc/ipython
	echo '$(KERNEL_CONFIG)' > $(VENV)/etc/ipython/ipython_kernel_config.py
	touch $@

test: lint unit nbval

lint: $(STAMP)
	$(BIN)/ruff check companion tests tools book benchmarks
	$(BIN)/ruff format --check companion tests tools book benchmarks

unit: $(STAMP)
	$(BIN)/pytest $(UNIT_ARGS)

nbval: $(STAMP)
	$(BIN)/pytest $(NBVAL_ARGS)

# -- the version matrix ------------------------------------------------------------------
# $(call stack-env,DIR,STACK): a fresh venv in DIR holding `python -m tools.stacks STACK`.
define stack-env
rm -rf $(1) && $(PYTHON) -m venv $(1)
$(1)/bin/python -m pip install --quiet --upgrade pip
mkdir -p $(1)/etc/ipython
echo '$(KERNEL_CONFIG)' > $(1)/etc/ipython/ipython_kernel_config.py
$(BIN)/python -m tools.stacks $(2) > $(1)/requirements.txt
$(1)/bin/python -m pip install --quiet -r $(1)/requirements.txt
endef

# The declared floor, with the package installed editable as `make env` does.
$(FLOOR)/.installed: pyproject.toml tools/stacks.py $(STAMP)
	$(call stack-env,$(FLOOR),floor)
	$(FLOOR)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

# Colab's stack without the package (the setup cells install it), and the local wheels
# that let them install it offline.
$(COLAB)/.installed: pyproject.toml tools/stacks.py $(STAMP)
	$(call stack-env,$(COLAB),colab)
	$(COLAB)/bin/python -m pip download --quiet --dest $(COLAB)/wheels \
	    $$($(BIN)/python -m tools.stacks colab-wheels)
	touch $@

compat-envs: $(FLOOR)/.installed $(COLAB)/.installed

compat: compat-floor compat-colab

compat-floor: $(FLOOR)/.installed
	$(FLOOR)/bin/pytest $(UNIT_ARGS)
	$(FLOOR)/bin/pytest $(NBVAL_ARGS)

# Every notebook alone in an empty folder as on Colab (the simulation is nbval on this
# stack), then the unit tests with the package installed editable, offline.
compat-colab: $(COLAB)/.installed
	$(BIN)/python -m tools.colab_simulation --python $(COLAB)/bin/python --wheels $(COLAB)/wheels
	$(COLAB)/bin/python -m pip install --quiet --no-deps --no-index \
	    --find-links $(COLAB)/wheels -e .
	$(COLAB)/bin/pytest $(UNIT_ARGS)

book: $(STAMP)
	$(BIN)/jupyter-book build . --all --builder html --warningiserror --keep-going

# Needs Debian's chromium (/usr/bin/chromium); .ci/run installs it. Screenshots: _build/screenshots/.
site-test: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider tests/site

# Speed is measured, never asserted: see benchmarks/conv_speed.py. BENCH_ARGS="--quick --json x.json"
# The suite runs twice, in two processes: with every thread, then with one (TensorFlow
# fixes its thread pools when it starts); each run's --json/--csv file is its own.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.conv_speed $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.conv_speed --threads 1 $(BENCH_ARGS)

execute: $(STAMP)
	$(BIN)/jupyter execute --inplace --timeout=900 $(NOTEBOOKS)

setup-cells: $(STAMP)
	$(BIN)/python -m tools.setup_cells --write

clean:
	rm -rf _build $(VENV)
