#!/usr/bin/env bash
# Reproduce a shipped model from scratch: `tools/train-shipped-model.sh [nibri|nibr2|feir]`
# (default nibri) writes ase_hamgnn/models/<system>-reference.pt.
# 480 random-moment 2x2 configurations of the SYNTHETIC reference model (384 for training,
# 24 for validation), then training with configs/<system>-reference.toml (CPU, one thread,
# float32; about 65-95 minutes), then the held-out and out-of-distribution errors
# (benchmarks/accuracy.py).  An interrupted run resumes when the script is started again.
set -euo pipefail
cd "$(dirname "$0")/.."
system=${1:-nibri}
case "$system" in nibri|nibr2|feir) ;; *) echo "system must be nibri, nibr2 or feir" >&2; exit 2;; esac
py=${PYTHON:-.venv/bin/python}
config=configs/$system-reference.toml
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$py" -m ase_hamgnn.cli dataset --system "$system" --size 2x2 -n 480 --seed 7 \
    --out "data/$system-2x2-480"
"$py" -m ase_hamgnn.cli train "$config"
"$py" tools/ship_model.py "$("$py" -c "from ase_hamgnn.train import load_train_config
print(load_train_config('$config').out)")" --config "$config"
MPLBACKEND=Agg "$py" benchmarks/accuracy.py
