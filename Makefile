# v1nb: `make book` renders the book, `make test` runs the tests. Both create .venv on first use.
# Variables: PYTHON (interpreter for the venv, 3.10+; 3.11 recommended), PIP_FLAGS (extra pip
# options, e.g. --extra-index-url pointing at PyTorch's CPU wheel index), PYTEST_ARGS, TEST_JOBS
# (pytest-xdist workers: `auto` = one per core, 0 = run the tests in this one process).

PYTHON ?= python3
PIP_FLAGS ?=
PYTEST_ARGS ?=
TEST_JOBS ?= auto
# Most tests fit small models on one torch thread: one xdist worker per core. --dist loadfile keeps
# each test file in one worker, so a module-scoped fixture (a fit, the quick book) is built once.
XDIST := -n $(TEST_JOBS) --dist loadfile
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changes. Byte-compiling every installed module is half of a
# fresh install, and pip does it on one core: pip skips it (--no-compile) and compileall does it on
# every core (a fresh .venv on a 2-core Zen 1, in CI: 167 s against 187 s). Compiled ahead, not on first
# import: where PYTHONDONTWRITEBYTECODE is set (as on the project's machines) nothing imported would
# ever be cached, and every kernel would recompile torch (the quick book took 643 s instead of 425 s).
# A module that does not compile (a package's test data) only lacks its .pyc: compileall's status is
# not the install's. The installed packages' own test suites (a quarter of the 15,000 files, never
# imported here) are left out: 53 s -> 44 s on the Zen 1.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: venv test test-slow book book-quick pdf pdf-quick bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-compile $(PIP_FLAGS) -e ".[book,test]"
	-@$(BIN)/python -m compileall -qq -j 0 -x '/tests?/' "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	@rm -f $(VENV)/.installed-*
	@touch $@

test: $(STAMP)
	$(BIN)/pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

# pytest exits 5 when it collects no test: no slow tests is not a failure.
test-slow: $(STAMP)
	@$(BIN)/pytest -m slow $(XDIST) $(PYTEST_ARGS); status=$$?; \
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
