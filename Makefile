# Two commands for a new user: `make demo` and `make test`. Both set up what is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch for development machines and CI (it lies on this machine's disk).
# A GPU operator installs a CUDA build instead: `make setup TORCH_SPEC='torch>=2.4'`.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.motif-installed

.PHONY: setup system demo test train bench lint clean

setup: system $(STAMP)

system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "setup: creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "setup: installing $(TORCH_SPEC) and Motif's dependencies into $(VENV)"
	@$(BIN)/pip install -q --disable-pip-version-check "$(TORCH_SPEC)" 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/python -c "import torch, miditok, symusic, fluidsynth, soundfile, discord, sqlalchemy" \
		|| { echo "setup: the dependencies did not install (see pip's output above)"; exit 1; }
	@touch $(STAMP)
	@echo "setup: done"

demo: setup
	$(BIN)/python -m engine compose engine/examples/motif.mid --bars 16 --candidates 4 \
		--seed 7 --out out/demo

test: setup
	$(BIN)/python -m pytest -q

# The shipped base model, in two stages (README, "The shipped base model"): the pieces as
# converted, then on from there over the pieces and their augmented copies.
train: setup
	$(BIN)/python -m engine data build --copies 0 --data-dir data/plain
	$(BIN)/python -m engine train --data-dir data/plain --out data/plain/base.pt --steps 4000 --time-budget 55
	$(BIN)/python -m engine data build
	$(BIN)/python -m engine train --init-from data/plain/base.pt --steps 1500 --time-budget 28 --lr 1e-3

bench: setup
	$(BIN)/python -m bench

# CI runs this before the tests: lint rules and the formatter's layout on every file, and
# the types of what the bot process runs (engine/api and bot/; pyproject.toml, [tool.mypy]).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf out .pytest_cache .ruff_cache .mypy_cache
