# fastnst — `make help` lists the targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install test test-fast test-quickstart docs lint format gatys train stylize app bench clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

install: ## create .venv and install fastnst (editable) with the dev, onnx and app extras
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,onnx,app]'

test: ## run the test suite (fails if no test ran)
	$(BIN)/python -m pytest -q -m "not quickstart" $(ARGS)

test-fast: ## unit tests only (skip slow integration tests)
	$(BIN)/python -m pytest -q -m "not slow and not quickstart" $(ARGS)

test-quickstart: ## run the README quick start as written, in a copy of the repo (~10 min: it trains)
	$(BIN)/python -m pytest -q -m quickstart tests/test_quickstart.py $(ARGS)

docs: ## build the documentation site into site/ (mkdocs --strict: broken links fail)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

lint: ## ruff check + ruff format --check (what CI runs)
	$(BIN)/ruff check src tests scripts *.py
	$(BIN)/ruff format --check src tests scripts *.py

format: ## ruff format + autofix
	$(BIN)/ruff format src tests scripts *.py
	$(BIN)/ruff check --fix src tests scripts *.py

gatys: ## Gatys optimization, e.g. make gatys ARGS="style=starry_night content=photo.jpg output=out.png"
	$(BIN)/python gatys.py $(ARGS)

train: ## train a feed-forward network, e.g. make train ARGS="style=scream experiment=cpu_quick"
	$(BIN)/python train.py $(ARGS)

stylize: ## stylize with a bundled or trained network, e.g. make stylize ARGS="style=the_scream input=a.jpg" (or model=outputs/...)
	$(BIN)/python stylize.py $(ARGS)

app: ## the local web app, e.g. make app ARGS="models=outputs/ port=7860"
	$(BIN)/python app.py $(ARGS)

bench: ## run the benchmarks (slow)
	$(BIN)/python scripts/bench/bench_convs.py
	$(BIN)/python scripts/bench/bench_gatys.py
	$(BIN)/python scripts/bench/bench_train.py
	$(BIN)/python scripts/bench/bench_inference.py

clean: ## remove caches (keeps .venv and outputs)
	rm -rf .pytest_cache .ruff_cache src/*.egg-info build dist
