# ase-hamgnn: the two commands are `make demo` and `make test`.
# Each creates .venv and installs what is missing (a second run takes seconds).

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ase-hamgnn-installed
PYTEST_ARGS ?= -m "not slow" -n 2
OUT    ?= out

.PHONY: all install demo test test-all bench lint clean pyscf-data peers

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

# Ab initio Fe3 cluster dataset (constrained non-collinear GKS with PySCF): about 30-60 s
# per configuration on one core; resumable. PYSCF_ARGS e.g. "--n 300 --shard 0/2".
PYSCF_ARGS ?=
pyscf-data: install
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check "pyscf>=2.6"
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) benchmarks/pyscf_dataset.py $(PYSCF_ARGS)

# DeePTB, the peer of benchmarks/peers.py, in its own environment (it pins an older torch):
# benchmarks/peers/.venv; then the side-by-side benchmark.  PEERS_ARGS e.g. "--quick".
PEERS_ARGS ?=
peers: install
	bash benchmarks/peers/setup.sh benchmarks/peers/.venv
	MPLBACKEND=Agg $(PY) benchmarks/peers.py $(PEERS_ARGS)

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
