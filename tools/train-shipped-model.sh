#!/usr/bin/env bash
# Reproduce the shipped model ase_hamgnn/models/nibri-reference.pt from scratch:
# 240 random-moment 2x2 NiBrI configurations of the SYNTHETIC reference model, then
# training with configs/nibri-reference.toml (CPU, float32; tens of minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
"$py" -m ase_hamgnn.cli dataset --system nibri --size 2x2 -n 240 --seed 0 --out data/nibri-2x2
"$py" -m ase_hamgnn.cli train configs/nibri-reference.toml
"$py" - <<'PY'
from ase_hamgnn.model import load_model
model = load_model("runs/nibri-reference/best.pt")
model.save("ase_hamgnn/models/nibri-reference.pt")
print("wrote ase_hamgnn/models/nibri-reference.pt:", model)
PY
