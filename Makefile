# ase-hamgnn: the two commands are `make demo` and `make test`.
# Each creates .venv and installs what is missing (a second run takes seconds).

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ase-hamgnn-installed
PYTEST_ARGS ?= -m "not slow" -n 2
OUT    ?= out

.PHONY: all install demo test test-all bench lint clean

all: test

install: $(STAMP)

$(STAMP): pyproject.toml tools/setup.sh tools/install-kwant.sh
	bash tools/setup.sh $(VENV)
	@touch $@

demo: install
	MPLBACKEND=Agg $(PY) examples/demo.py --out $(OUT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -n 2

bench: install
	@for script in benchmarks/[!_]*.py; do \
		echo "== $$script"; MPLBACKEND=Agg $(PY) $$script || exit 1; \
	done

lint: install
	$(VENV)/bin/ruff check ase_hamgnn textures tests examples benchmarks

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
