# bandpo: two commands do all the set-up (see README.md):
#   make verify   creates .venv if missing, then runs the verification matrix (bandpo verify)
#   make test     creates .venv if missing, then lint + the test suite + the notebooks
#
# Torch: this Makefile installs torch==2.13.0 first, a CPU build (~0.9 GB installed).  With a
# GPU, install the CUDA build of torch into .venv yourself before `make env` (any torch>=2.2
# satisfies the project's range and is kept), or set TORCH_SPEC, e.g.
#   make env TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
OUT ?= out
PYTEST_ARGS ?=

.PHONY: env verify test lint format test-py test-notebooks test-slow figures bench clean-env

$(BIN)/bandpo: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[dev,trl]'
	@touch $(BIN)/bandpo

env: $(BIN)/bandpo

verify: env
	$(BIN)/bandpo verify --out $(OUT)/verify

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: env
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-py: env
	$(BIN)/pytest -q -n 2 -m "not slow and not gpu" $(PYTEST_ARGS)

test-notebooks: env
	$(BIN)/pytest -q --nbmake notebooks

test: lint test-py test-notebooks

# Vocabulary-scale CVXPY and other long cases; .ci/run runs these after `make test`.
test-slow: env
	$(BIN)/pytest -q -n 2 -m "slow" $(PYTEST_ARGS)

figures: env
	$(BIN)/bandpo figures --out docs/figures --format png

bench: env
	$(BIN)/bandpo bench --out $(OUT)/bench

clean-env:
	rm -rf $(VENV)
