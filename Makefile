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
NBVAL := $(BIN)/pytest --nbval --nbval-current-env \
         --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider book

export PYTHONHASHSEED := 0

.PHONY: help env test lint unit nbval book site-test bench execute setup-cells clean

help:
	@echo "make test         lint, unit tests, and nbval over every notebook"
	@echo "make book         build the site into _build/html from the stored outputs"
	@echo "make site-test    check every page of the built site in headless Chromium"
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
	@# Kernels started from this environment keep C-level output (TensorFlow's C++
	@# notices) on the kernel's own stderr instead of copying it into cell outputs.
	mkdir -p $(VENV)/etc/ipython
	echo 'c.IPKernelApp.capture_fd_output = False' > $(VENV)/etc/ipython/ipython_kernel_config.py
	touch $@

test: lint unit nbval

lint: $(STAMP)
	$(BIN)/ruff check companion tests tools book benchmarks
	$(BIN)/ruff format --check companion tests tools book benchmarks

unit: $(STAMP)
	$(BIN)/pytest --doctest-modules companion benchmarks tools tests --ignore=tests/site

nbval: $(STAMP)
	$(NBVAL)

book: $(STAMP)
	$(BIN)/jupyter-book build . --all --builder html --warningiserror --keep-going

# Needs Debian's chromium (/usr/bin/chromium); .ci/run installs it. Screenshots: _build/screenshots/.
site-test: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider tests/site

# Speed is measured, never asserted: see benchmarks/conv_speed.py. BENCH_ARGS="--quick --json x.json"
bench: $(STAMP)
	$(BIN)/python -m benchmarks.conv_speed $(BENCH_ARGS)

execute: $(STAMP)
	$(BIN)/jupyter execute --inplace --timeout=900 $(NOTEBOOKS)

setup-cells: $(STAMP)
	$(BIN)/python -m tools.setup_cells --write

clean:
	rm -rf _build $(VENV)
