#!/usr/bin/env bash
# Reproduce the shipped model ase_hamgnn/models/nibri-reference.pt from scratch:
# 480 random-moment 2x2 NiBrI configurations of the SYNTHETIC reference model (384 for
# training, 24 for validation), then training with configs/nibri-reference.toml (CPU, one
# thread, float32; about 60-80 minutes), then the held-out and out-of-distribution errors
# (benchmarks/accuracy.py).  An interrupted run resumes when the script is started again.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$py" -m ase_hamgnn.cli dataset --system nibri --size 2x2 -n 480 --seed 7 \
    --out data/nibri-2x2-480
"$py" -m ase_hamgnn.cli train configs/nibri-reference.toml
"$py" tools/ship_model.py "$("$py" -c 'from ase_hamgnn.training import load_train_config
print(load_train_config("configs/nibri-reference.toml").out)')"
MPLBACKEND=Agg "$py" benchmarks/accuracy.py
