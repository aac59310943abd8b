# Set-up and main jobs. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_VERBOSITY := error
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install browser bench lint

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

# Debian chromium for the browser tests (root only; skipped with a note otherwise).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -q && apt-get install -y -q chromium) >/dev/null 2>&1 || echo "note: chromium missing; browser tests will be skipped"; }

demo: $(STAMP)
	$(VENV)/bin/attnlens capture "I went to the store." "At the store, I bought fresh strawberries." -o out/demo_capture.npz
	$(VENV)/bin/attnlens view "I went to the store." "At the store, I bought fresh strawberries." -o out/demo_view.html
	$(VENV)/bin/attnlens predict fill-mask "the [MASK] module provides functions for working with [MASK] ."
	$(VENV)/bin/attnlens predict nsp "I went to the store." "At the store, I bought fresh strawberries."

test: $(STAMP) browser lint
	$(PY) -m pytest -q

# ruff, and the layer contract in pyproject.toml (imports run one way, also inside functions)
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

# Each mutation in scripts/mutation_check.py, applied to a scratch copy of src/ and tests/, must make its
# named tests fail (not part of `make test`; takes a while: one pytest run per mutation).
.PHONY: mutation-check
mutation-check: $(STAMP)
	$(PY) scripts/mutation_check.py
