# vbert: two commands to start.
#   make demo   the whole pipeline on SynthCook with the tiny preset, report under runs/demo
#   make test   unit tests + every notebook executed under nbval
#   make book   the course as a website (stored notebooks, README, docs/, API reference) in build/book/html
# A virtual environment (.venv) is created unless one is already active.

PYTHON ?= python3
PRESET ?= tiny
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else ifdef CONDA_PREFIX
VENV := $(CONDA_PREFIX)
else
VENV := .venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vbert-installed
# The notebooks' artifact cache (the unit tests build theirs anew each session: tests/conftest.py).
export VBERT_CACHE ?= $(CURDIR)/runs/cache
PYTEST_NOTEBOOK_FLAGS := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	--nbval-cell-timeout 600

.PHONY: install demo test lint unit notebooks execute-notebooks assignments book clean help

help:
	@echo "make demo    run the pipeline on SynthCook (preset $(PRESET)), report in runs/demo"
	@echo "make test    install, run the unit tests and execute every notebook under nbval"
	@echo "make execute-notebooks   re-execute and store every notebook (lessons, exercises) in place"
	@echo "make assignments   student versions + autograder material of notebooks/exercises/ in release/"
	@echo "make book    the course website from the stored notebooks (not re-executed), README, docs/ and"
	@echo "             the API reference, in build/book/html; any warning fails it (docs/book.md)"
	@echo "make unit    the unit tests only;  make notebooks   the notebooks under nbval only"
	@echo "make lint    ruff check and ruff format --check (part of make test)"
	@echo "make install the environment (.venv unless one is active);  make clean   remove runs/demo, runs/cache, release/, build/book"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (vbert)"
	touch $(STAMP)

install: $(STAMP)

# One thread per process: the tiny models gain nothing from a second thread, and on a busy machine
# it spins waiting for a core (docs/benchmarks.md, `make demo`). Set OMP_NUM_THREADS to override.
demo: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(VENV)/bin/vbert run --preset $(PRESET) --out runs/demo

LINTED := vbert tests benchmarks tools data_scripts conftest.py

lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

test: install lint
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadscope --durations=25 \
		$(PYTEST_NOTEBOOK_FLAGS) tests notebooks

unit: install
	$(PY) -m pytest -n 2 --dist loadscope --durations=15 tests

notebooks: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadscope $(PYTEST_NOTEBOOK_FLAGS) notebooks

# Stored quiet (VBERT_QUIET=1): a progress bar's widget cannot be shown on the web (make book).
execute-notebooks: install
	for nb in notebooks/*.ipynb notebooks/exercises/*.ipynb; do \
		VBERT_QUIET=1 OMP_NUM_THREADS=1 $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=1200 --ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
	done

assignments: install
	$(PY) tools/assignments.py release --out release

book: install
	$(PY) tools/build_book.py --out build/book

clean:
	rm -rf runs/demo runs/cache release build/book .pytest_cache
