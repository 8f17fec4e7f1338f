# dupq — the two commands a person needs: `make demo` and `make test` (`make docs` builds the site).
# Both create (or reuse) .venv and install the project from its own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# The venv first on PATH: notebook kernels and subprocess servers started by tests use its python.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install demo test docs lint format quora-model default-verifier bench-quality bench-encode bench-matcher bench-dedupe bench-table-fuzz report-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: on a CPU-only machine this takes the CPU wheel, never a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,docs,onnx,openvino,ray,distill,postgres]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dupq demo --out demo_output

test: $(STAMP)
	$(BIN)/ruff check dupq tests benchmarks
	$(BIN)/python -m pytest -q tests
	$(MAKE) docs

# The documentation site (MkDocs + Material, API reference by mkdocstrings) into site/ (git-ignored).
# --strict: a broken link or anchor, a page missing from the nav or a missing API object fails the build.
# Offline: nothing is downloaded at build time (mkdocs.yml: theme.font false, no social/privacy plugin).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check dupq tests benchmarks
	$(BIN)/ruff format --check dupq tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format dupq tests benchmarks
	$(BIN)/ruff check --fix dupq tests benchmarks

# The recommended Quora recipe: bi-encoder -> models/quora/, verifier -> models/quora-verifier/, and the
# quality table (benchmarks/results/quora-model.json). Needs ../shared/data (real Quora, PAWS, MQP …).
quora-model: $(STAMP)
	$(BIN)/python benchmarks/quora_model.py

# The verifier shipped inside the package (dupq/verifiers/default/: head.npz + dupq.json) and its
# quality table (benchmarks/results/default-verifier.json). Needs ../shared/data; ~10 min on 2 cores.
default-verifier: $(STAMP)
	$(BIN)/python benchmarks/default_verifier.py

bench-quality: $(STAMP)
	$(BIN)/python benchmarks/quality.py

bench-encode: $(STAMP)
	$(BIN)/python benchmarks/encode.py

bench-matcher: $(STAMP)
	$(BIN)/python benchmarks/matcher.py

bench-dedupe: $(STAMP)
	$(BIN)/python benchmarks/dedupe.py

# Issue 24's property test, nightly size: 10,000 random tables per check (writer+reader, dedupe, score);
# counts in benchmarks/results/table-fuzz.json. `make test` runs a bounded version (tests/test_table_roundtrip.py).
bench-table-fuzz: $(STAMP)
	$(BIN)/python benchmarks/table_fuzz.py

# The dedupe review report of a 100k-row run, opened in headless Chromium (Debian's `chromium`, driven by
# Playwright from the [report] extra; no browser download): its numbers against the summary JSON, the
# re-threshold time, docs/report.png and benchmarks/results/report-check-100k.json. Needs ../shared/data.
CHROMIUM ?= /usr/bin/chromium
report-check: $(STAMP)
	test -x $(CHROMIUM) || { echo "needs $(CHROMIUM): apt-get install -y chromium"; exit 1; }
	$(BIN)/pip install --quiet -e '.[report]'
	nice -n 10 $(BIN)/python benchmarks/report_check.py --chromium $(CHROMIUM) --quiet

clean:
	rm -rf demo_output site .pytest_cache .ruff_cache build dist *.egg-info
