# The two commands of the README:
#   make run    environment, data/ regenerated when missing, dvc repro (the whole pipeline on the synthetic data)
#   make test   environment, then the test suite
# The virtual environment lives outside the checkout, keyed by the lock file's hash, so clones and CI reuse it and
# a changed lock file builds a new one. Override with `make VENV=.venv ...`.
SHELL := /bin/bash
PYTHON ?= python3
LOCK := requirements-lock.txt
LOCK_HASH := $(shell sha256sum $(LOCK) | cut -c1-12)
VENV ?= $(HOME)/.cache/lmfusion/venv-$(LOCK_HASH)
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test env data repro bench venv clean-outputs

run: repro

env: $(VENV)/.installed
	@# the package is installed editable from whichever checkout ran make last; repoint it when that changed
	@if [ "$$($(BIN)/python -c 'import lmfusion, pathlib; print(pathlib.Path(lmfusion.__file__).resolve().parents[2])' 2>/dev/null)" != "$(CURDIR)" ]; then \
		$(BIN)/pip install -q --no-deps --no-build-isolation -e . ; fi

$(VENV)/.installed: $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r $(LOCK)
	touch $@

data: env
	@if [ ! -d data ]; then \
		echo "data/ is missing: regenerating the synthetic dataset (lmfusion synth --out data --n 200 --seed 0)"; \
		lmfusion synth --out data --n 200 --seed 0 ; fi

repro: data
	dvc repro

test: env
	pytest

bench: env
	python benchmarks/bench_train.py
	python benchmarks/bench_predict.py

venv:
	@echo $(VENV)
