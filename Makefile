# The two everyday commands, each setting up what it needs on first use (README, first block):
#   make search    the default search (python search.py +search=nsga2) on the data in data/
#   make test      the tests
# Both create .venv (torch 2.13.0 first, the CPU build where there is no nvidia-smi, then this package
# with [dev]; redone when pyproject.toml changes) and fetch the default data into data/ unless
# FALSR_DATA_DIR names a data folder. Options:
#   make search ARGS="search.generations=1"     Hydra overrides      make test ARGS="tests/test_fetch.py -x"
#   make data FETCH_MIRROR=/path/or/url         fetch from a mirror  make venv PYTHON=python3.11

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
FETCH_MIRROR ?=
ARGS ?=

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU index only where it answers (5 s): pip retries an unreachable index five times for every package, which
# cost 1 min 56 s against 36 s for `pip install torch==2.13.0` from a local wheel on a machine that reaches only
# the package registries (measured here, 2026-12-07). Where it does not answer, pip takes $(TORCH) from the
# configured indexes (on PyPI, a CUDA build: the line below says so).
TORCH_CPU_ARGS = $(shell $(PYTHON) -c "import urllib.request as u; u.urlopen('$(TORCH_CPU_INDEX)', timeout=5)" \
	>/dev/null 2>&1 && echo --extra-index-url $(TORCH_CPU_INDEX))

.PHONY: search test data venv venv-ray

search: data
	$(PY) search.py +search=nsga2 $(ARGS)

# pytest exits 5 when it collected no test: a failure here too.
test: data
	@status=0; $(PY) -m pytest -q $(ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$status

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1; then \
		echo "$(VENV): nvidia-smi found: installing $(TORCH) with CUDA"; \
		$(PY) -m pip install "$(TORCH)"; \
	else \
		args="$(TORCH_CPU_ARGS)"; \
		if [ -n "$$args" ]; then echo "$(VENV): no nvidia-smi: installing the CPU build of $(TORCH)"; \
		else echo "$(VENV): no nvidia-smi, $(TORCH_CPU_INDEX) unreachable: installing $(TORCH) from pip's indexes"; fi; \
		$(PY) -m pip install "$(TORCH)" $$args; \
	fi
	$(PY) -m pip install -e ".[dev]"
	@touch $@

# The Ray cluster tests' venv (CI; README, Beyond one machine): hydra-ray-launcher pins cloudpickle<3 (and so an
# older joblib), so Ray gets its own venv beside .venv: the CPU build of $(TORCH), then this package with [dev,ray].
VENV_RAY ?= .venv-ray
RAY_STAMP := $(VENV_RAY)/.installed

venv-ray: $(RAY_STAMP)

$(RAY_STAMP): pyproject.toml
	@test -x $(VENV_RAY)/bin/python || $(PYTHON) -m venv $(VENV_RAY)
	$(VENV_RAY)/bin/python -m pip install "$(TORCH)" $(TORCH_CPU_ARGS)
	$(VENV_RAY)/bin/python -m pip install -e ".[dev,ray]"
	@touch $@

data: $(STAMP)
	@if [ -n "$$FALSR_DATA_DIR" ]; then \
		echo "data: FALSR_DATA_DIR=$$FALSR_DATA_DIR (nothing fetched)"; \
	else \
		$(PY) -m falsr.fetch default $(if $(FETCH_MIRROR),--mirror "$(FETCH_MIRROR)"); \
	fi

# The README's two commands in a fresh clone of HEAD in a temporary folder (no ../shared, no FALSR_DATA_DIR,
# its own .venv and data/): the tests, then a small search whose front must be written.
FRESH_TEST_ARGS ?=
FRESH_SEARCH_ARGS ?= search.settings.population_size=4 search.generations=1 trainer.max_steps=3 \
	data.patch_size=32 data.batch_size=4 data.samples_per_epoch=12
.PHONY: fresh-check
fresh-check:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	git clone -q . "$$tmp/falsr" && cd "$$tmp/falsr" && \
	env -u FALSR_DATA_DIR $(MAKE) test ARGS="$(FRESH_TEST_ARGS)" FETCH_MIRROR="$(FETCH_MIRROR)" && \
	env -u FALSR_DATA_DIR $(MAKE) search ARGS="$(FRESH_SEARCH_ARGS)" FETCH_MIRROR="$(FETCH_MIRROR)" && \
	test -s multirun/search/*/pareto.json && echo "fresh-check: tests passed, front written in a fresh clone"
