# The two commands of the README: `make demo` and `make test`. Each creates or reuses .venv and installs
# what it needs: the demo the core package only; the tests also the training extra (torch==2.13.0, CPU).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
DEMO_OUT ?= demo_output

.PHONY: demo test benchmark clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core-installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[test,train]"
	touch $(VENV)/.core-installed $@

demo: $(VENV)/.core-installed
	$(VENV)/bin/gliomaforecast demo --out $(DEMO_OUT)

test: $(VENV)/.test-installed
	$(PY) -m pytest -n 2 -q

benchmark: $(VENV)/.test-installed
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis
