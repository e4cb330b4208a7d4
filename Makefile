# Two entry points (see README): `make demo` and `make test`.
# Both create a local virtual environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test clean-venv

# --no-compile: pip would byte-compile every module of jax, scipy, matplotlib, ... (14 of the 26 s
# of this install on 2 cores); Python compiles the ~1 000 modules a run imports on first use instead.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/ecgi-jax demo

# One worker per core (at most 4: each JAX process also multithreads), a test file per worker so
# that module fixtures are built once: on 2 cores 461 s instead of 674 s for one process.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 --dist loadfile

clean-venv:
	rm -rf $(VENV)
