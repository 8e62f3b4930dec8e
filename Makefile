# v1nb: `make book` renders the book, `make test` runs the tests. Both create .venv on first use.
# Variables: PYTHON (interpreter for the venv, 3.10+; 3.11 recommended), PIP_FLAGS (extra pip
# options, e.g. --extra-index-url pointing at PyTorch's CPU wheel index), PYTEST_ARGS, TEST_JOBS
# (pytest-xdist workers: `auto` = one per core, 0 = run the tests in this one process).

PYTHON ?= python3
PIP_FLAGS ?=
PYTEST_ARGS ?=
TEST_JOBS ?= auto
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changes. --no-compile: pip would byte-compile every module of
# every package (torch, sphinx, ...), half of a fresh install (218 s -> 107 s on a 2-core Zen 1);
# Python compiles the modules that are imported, once, on first import instead.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: venv test test-slow book book-quick pdf pdf-quick bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-compile $(PIP_FLAGS) -e ".[book,test]"
	@rm -f $(VENV)/.installed-*
	@touch $@

# Most tests fit small models on one torch thread: one xdist worker per core. --dist loadfile keeps
# each test file in one worker, so a module-scoped fixture (a fit, the quick book) is built once.
test: $(STAMP)
	$(BIN)/pytest -m "not slow" -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

# pytest exits 5 when it collects no test: no slow tests is not a failure.
test-slow: $(STAMP)
	@$(BIN)/pytest -m slow -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "no slow tests"; exit 0; fi; exit $$status

book: $(STAMP)
	$(BIN)/v1nb book --profile default

book-quick: $(STAMP)
	$(BIN)/v1nb book --profile quick

# The PDF (_build/latex/v1nb-book.pdf) beside the HTML; needs pdflatex and latexmk (Debian:
# apt-get install latexmk texlive-latex-extra texlive-fonts-recommended tex-gyre).
pdf: $(STAMP)
	$(BIN)/v1nb book --profile default --pdf

pdf-quick: $(STAMP)
	$(BIN)/v1nb book --profile quick --pdf

bench: $(STAMP)
	@for script in bench/*.py; do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

clean:
	rm -rf _build runs sweeps .pytest_cache
