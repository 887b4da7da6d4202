# Two commands do all set-up: `make test` and `make reproduce` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test reproduce book clean

install: $(STAMP)

# torch is installed first and pinned: torch==2.13.0 is the CPU build; an unpinned torch pulls CUDA.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,book]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

reproduce: $(STAMP)
	$(PY) -m sdn.demo --out results/demo

clean:
	rm -rf $(VENV) book/_build
