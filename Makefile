# Set-up and everyday commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# strict editable mode: mypy resolves the package-dir mapping (see DESIGN.md)
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

# The main job on the embedded default: plugins.toml, SQLite under var/, in-process bus.
run: $(STAMP)
	$(BIN)/campusguard models install movenet
	$(BIN)/campusguard run plugins.toml

# Every test, with lint and type checks first.
test: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd /tmp && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p campusguard.core -p campusguard.sdk -p campusguard.plugins -p campusguard.adapters -p campusguard.detectors
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/bus_throughput.py
	$(BIN)/python bench/plugins_cold_start.py
	$(BIN)/python bench/motion_gate.py

clean:
	rm -rf $(VENV) build *.egg-info var
