# Two entry points (see README): `make demo` and `make test`.
# Both create a local virtual environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test clean-venv

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/ecgi-jax demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
