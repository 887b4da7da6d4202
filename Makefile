# Two commands do all set-up: `make test` and `make reproduce` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test reproduce reproduce-quick verify book clean

install: $(STAMP)

# torch is installed first and pinned: torch==2.13.0 is the CPU build; an unpinned torch pulls CUDA.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,book]"
	touch $(STAMP)

# The test suite includes the whole pipeline in quick mode (every notebook, then the book).
test: $(STAMP)
	$(PY) -m pytest -q

# Every notebook of the study into results/ (committed), then the book (book/_build/html).
reproduce: $(STAMP)
	$(PY) pipeline.py

# Same notebooks and code with few epochs, into results-quick/ (git-ignored).
reproduce-quick: $(STAMP)
	$(PY) pipeline.py --quick

# Rerun a few fits of the committed ensemble on this machine; one verdict per fit (bit-identical,
# within the committed ensemble's range, or outside it) and the compute path of both sides.
verify: $(STAMP)
	$(PY) pipeline.py --verify

# The book from the committed results/ only: runs no notebook. MathJax comes from npm (once).
book: $(STAMP)
	$(PY) pipeline.py --book-only

clean:
	rm -rf $(VENV) book/_build results-quick .cache
