"""Copy a finished training run's best checkpoint into the package as ``nibri-reference``,
with its description (``ase_hamgnn/models/nibri-reference.json``).

Run: python tools/ship_model.py RUN_FOLDER [--config configs/nibri-reference.toml]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ase_hamgnn._atomic import atomic_write_bytes
from ase_hamgnn.model import load_model
from ase_hamgnn.training import load_train_config

MODELS = Path(__file__).resolve().parent.parent / "ase_hamgnn" / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training output folder (best.pt, history.json)")
    parser.add_argument("--config", default="configs/nibri-reference.toml")
    args = parser.parse_args()
    cfg = load_train_config(args.config)
    model = load_model(args.run / "best.pt")
    history = json.loads((args.run / "history.json").read_text())
    best = min(history, key=lambda h: h["val_mae_meV"])
    model.save(MODELS / "nibri-reference.pt")
    meta = {"name": "nibri-reference",
            "description": "HamGNN++ model trained on the SYNTHETIC reference model "
                           "ReferenceTB('nibri') (not DFT)",
            "reproduce": "tools/train-shipped-model.sh", "config": args.config,
            "training_configurations": cfg.max_train, "validation_configurations": cfg.max_val,
            "epochs": len(history), "best_epoch": best["epoch"],
            "training_seconds": round(sum(h["seconds"] for h in history)),
            "val_mae_meV": round(best["val_mae_meV"], 4),
            "val_mae_magnetic_meV": round(best["val_mae_magnetic_meV"], 4),
            "parameters": sum(p.numel() for p in model.network.parameters())}
    atomic_write_bytes(MODELS / "nibri-reference.json",
                       (json.dumps(meta, indent=1) + "\n").encode())
    print(f"wrote {MODELS / 'nibri-reference.pt'}: {model}")


if __name__ == "__main__":
    main()
