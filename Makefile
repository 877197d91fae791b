# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint bench fuzz eval screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(BIN)/alerts run

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check alerts scheduler db tests bench
	$(BIN)/mypy alerts scheduler db

# A longer schema-fuzzing campaign than the suite's (FUZZ_EXAMPLES per operation and caller).
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} $(BIN)/python -m pytest tests/test_fuzz -q $(PYTEST_ARGS)

# Precision and recall of each target's rule on the labelled items (EXTRA=more.jsonl adds
# files, e.g. readers' labels).
eval: $(STAMP)
	$(BIN)/python -m alerts.matching.evaluation tests/data/eval/*.jsonl $(EXTRA)

bench: $(STAMP)
	$(BIN)/python bench/feeds_fetch.py
	$(BIN)/python bench/feeds_e2e.py
	$(BIN)/python bench/digests.py
	$(BIN)/python bench/matching.py
	$(BIN)/python bench/catalogue.py
	$(BIN)/python bench/target_search.py
	$(BIN)/python bench/api.py

# The browser walk (tests/test_web/test_browser.py) with its screenshots kept in the repository.
screenshots: $(STAMP)
	SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/test_web/test_browser.py -q

clean:
	rm -rf $(VENV) var
