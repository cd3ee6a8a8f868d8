"""Copy a finished training run's best checkpoint into the package as a shipped model
(``ase_hamgnn/models/<name>.pt``) with its description (``<name>.json``); the name is the
config's file name (``configs/nibr2-reference.toml`` ships ``nibr2-reference``).

Run: python tools/ship_model.py RUN_FOLDER [--config configs/nibri-reference.toml]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ase_hamgnn._atomic import atomic_write_bytes
from ase_hamgnn.data import read_manifest
from ase_hamgnn.model import load_model
from ase_hamgnn.train import load_train_config

MODELS = Path(__file__).resolve().parent.parent / "ase_hamgnn" / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training output folder (best.pt, history.json)")
    parser.add_argument("--config", default="configs/nibri-reference.toml")
    args = parser.parse_args()
    name = Path(args.config).stem
    cfg = load_train_config(args.config)
    system = read_manifest(cfg.dataset).get("system", "nibri")
    model = load_model(args.run / "best.pt")
    history = json.loads((args.run / "history.json").read_text())
    best = min(history, key=lambda h: h["val_mae_meV"])
    model.save(MODELS / f"{name}.pt")
    meta = {"name": name,
            "description": "HamGNN++ model trained on the SYNTHETIC reference model "
                           f"ReferenceTB({system!r}) (not DFT)",
            "reproduce": f"tools/train-shipped-model.sh {system}", "config": args.config,
            "training_configurations": cfg.max_train, "validation_configurations": cfg.max_val,
            "epochs": len(history), "best_epoch": best["epoch"],
            "training_seconds": round(sum(h["seconds"] for h in history)),
            "val_mae_meV": round(best["val_mae_meV"], 4),
            "val_mae_magnetic_meV": round(best["val_mae_magnetic_meV"], 4),
            "parameters": sum(p.numel() for p in model.network.parameters())}
    atomic_write_bytes(MODELS / f"{name}.json", (json.dumps(meta, indent=1) + "\n").encode())
    print(f"wrote {MODELS / f'{name}.pt'}: {model}")


if __name__ == "__main__":
    main()
