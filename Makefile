# Two commands for a fresh machine: `make demo` and `make test`.
# Both build .venv from pyproject.toml first (once; again when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench catalogs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cryocube demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/cube_ingest.py

catalogs: $(STAMP)
	$(PY) scripts/make_catalogs.py --out catalogs

clean:
	rm -rf $(VENV) cryocube-demo
