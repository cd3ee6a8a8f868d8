"""Ablations of HamGNN++ side by side, trained on the same data with the same budget.

Three variants (``configs/ablation-*.toml``, identical except for one model flag):

* ``physics``: H0 + Heisenberg-type H_mag (DESIGN.md §2, the default);
* ``coupled``: the physics form with H0 also depending on ``M_i·M_j`` (``moment_coupling``);
* ``general``: the general eight-block form of the paper's Eq. (7) (``form="general"``).

Each is trained (or its finished run resumed: ``ase-hamgnn train configs/ablation-NAME.toml``
trains one variant on its own) on the first training configurations of the 2x2 NiBrI
reference set ``data/nibri-2x2``; its best checkpoint is evaluated with
:func:`accuracy.compare` on held-out configurations (the test split of that set, then the
held-out set of the accuracy benchmark) and on out-of-distribution NiBrI textures (120°
AFM by default; ``--ood afm120 skyrmion`` adds the 6x6 skyrmion).  Reported per variant:
parameters, training wall time, held-out and OOD MAE (meV) of all Hamiltonian entries and
of the magnetic part.  The reference data are synthetic (``ase_hamgnn.data.ReferenceTB``),
not DFT.

Run: python benchmarks/ablation.py [--quick]
Writes benchmarks/reports/ablation.json and ablation.md (``--quick``: a smoke test with a
few configurations and one epoch, written to ablation-quick.*).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import write_report
from accuracy import TARGETS, compare

from ase_hamgnn.data import (
    HamiltonianDataset,
    ReferenceTB,
    make_reference_dataset,
    ood_configurations,
    record_to_hamiltonian,
)
from ase_hamgnn.model import load_model
from ase_hamgnn.train import TrainConfig, load_train_config, train

VARIANTS = {
    "physics": "physics form (default)",
    "coupled": "physics + M_i·M_j in H0",
    "general": "general Eq. (7) baseline",
}


def ensure_datasets(train_root: Path, heldout_root: Path) -> None:
    """Write the reference sets if missing: 240 random-moment 2x2 NiBrI configurations (seed
    0, the shipped model's set) and 24 held-out ones (seed 12345, the accuracy benchmark's)."""
    if not (train_root / "manifest.json").exists():
        make_reference_dataset(train_root, "nibri", "2x2", 240, seed=0)
    if not (heldout_root / "manifest.json").exists():
        make_reference_dataset(heldout_root, "nibri", "2x2", 24, seed=12345,
                               split=(0.0, 0.0, 1.0))


def quick_config(cfg: TrainConfig, runs: Path, name: str) -> TrainConfig:
    """A smoke-test version of ``cfg``: 8 training and 4 validation configurations, one
    epoch, its own run folder."""
    return dataclasses.replace(cfg, out=str(runs / f"ablation-quick-{name}"), epochs=1,
                               max_train=8, max_val=4)


def evaluate_variant(best: Path, test_paths: list[Path], ood: list[str], n_ood: int
                     ) -> dict[str, float]:
    """Mean :func:`accuracy.compare` metrics of a checkpoint on the held-out records and on
    each out-of-distribution set (NiBrI, seeded as in the accuracy benchmark)."""
    model = load_model(best)
    held = [compare(model, record_to_hamiltonian(p)) for p in test_paths]
    row = {k: float(np.mean([r[k] for r in held])) for k in ("mae_meV", "mae_magnetic_meV")}
    for kind in ood:
        configs = ood_configurations(kind, n_ood, np.random.default_rng(1))
        res = [compare(model, ReferenceTB("nibri").predict(c)) for c in configs]
        row[f"{kind}_mae_meV"] = float(np.mean([r["mae_meV"] for r in res]))
        row[f"{kind}_mae_magnetic_meV"] = float(np.mean([r["mae_magnetic_meV"] for r in res]))
    return row


def coupling_floor(test_paths: list[Path]) -> float:
    """MAE (meV, all entries) between the held-out reference Hamiltonians and the same
    reference model without its ``M_i·M_j`` hopping scaling (``beta``).

    For isotropic random moments the best H0 that ignores ``M_i·M_j`` is the one with
    ``beta = 0`` (the angle average), so this is the error a model without ``M_i·M_j`` in H0
    cannot go below on these configurations."""
    ref = ReferenceTB("nibri")
    params = ref.parameters
    pairs = {k: dataclasses.replace(v, moment_coupling=0.0) for k, v in params.pairs.items()}
    plain = ReferenceTB("nibri", parameters=dataclasses.replace(params, pairs=pairs))
    return float(np.mean([compare(plain, record_to_hamiltonian(p))["mae_meV"]
                          for p in test_paths]))


def run_variant(cfg: TrainConfig, progress: bool) -> dict[str, Any]:
    """Train (or finish) one variant; parameters, wall time (s, summed over the epochs of
    the run, so a resumed run counts every epoch once) and best validation MAEs."""
    result = train(cfg, progress=progress)
    history = result["history"]
    best = min(history, key=lambda h: h["val_mae_meV"])
    model = load_model(result["best"])
    return {"parameters": sum(p.numel() for p in model.network.parameters()),
            "train_s": float(sum(h["seconds"] for h in history)),
            "epochs": len(history), "best_epoch": int(best["epoch"]),
            "val_mae_meV": float(best["val_mae_meV"]),
            "val_mae_magnetic_meV": float(best["val_mae_magnetic_meV"]),
            "best": os.path.relpath(result["best"])}  # no machine paths in reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="configs", help="folder of ablation-*.toml")
    parser.add_argument("--heldout", default="data/nibri-2x2-heldout",
                        help="extra held-out set (generated, seed 12345, if missing)")
    parser.add_argument("--n-test", type=int, default=24, help="held-out configurations")
    parser.add_argument("--ood", nargs="+", choices=("afm120", "skyrmion"), default=["afm120"],
                        help="out-of-distribution NiBrI sets (default afm120)")
    parser.add_argument("--n-ood", type=int, default=3, help="configurations per OOD set")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny budget")
    parser.add_argument("--out", default="benchmarks/reports")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()

    cfgs = {name: load_train_config(Path(args.configs) / f"ablation-{name}.toml")
            for name in VARIANTS}
    train_root = Path(cfgs["physics"].dataset)
    if any(Path(c.dataset) != train_root for c in cfgs.values()):
        raise ValueError("the ablation configs must share one dataset")
    heldout = Path(args.heldout)
    if args.quick:
        runs = Path(cfgs["physics"].out).parent
        cfgs = {name: quick_config(c, runs, name) for name, c in cfgs.items()}
        args.n_test, args.n_ood = 4, 1
    ensure_datasets(train_root, heldout)
    test_paths = (HamiltonianDataset(train_root, "test").paths
                  + HamiltonianDataset(heldout, "test").paths)[: args.n_test]

    rows, details = [], {}
    for name, cfg in cfgs.items():
        run = run_variant(cfg, progress=not args.no_progress)
        t0 = time.perf_counter()
        metrics = evaluate_variant(Path(run["best"]), test_paths, args.ood, args.n_ood)
        details[name] = {**run, **metrics, "eval_s": time.perf_counter() - t0,
                         "model": cfg.model}
        rows.append({"variant": f"{name}: {VARIANTS[name]}", "parameters": run["parameters"],
                     "train_min": run["train_s"] / 60, "held_mae_meV": metrics["mae_meV"],
                     "held_mag_meV": metrics["mae_magnetic_meV"],
                     **{f"{k}_{m}_meV": metrics[f"{k}_mae{p}_meV"] for k in args.ood
                        for m, p in (("mae", ""), ("mag", "_magnetic"))}})
        print(rows[-1], flush=True)

    base = cfgs["physics"]
    n_val = min(base.max_val or 10**9, len(HamiltonianDataset(train_root, "val")))
    n_train = min(base.max_train or 10**9, len(HamiltonianDataset(train_root, "train")))
    budget = {"train_configurations": n_train, "val_configurations": n_val,
              "test_configurations": len(test_paths), "ood_sets": args.ood,
              "ood_configurations": args.n_ood,
              "epochs": base.epochs, "batch_size": base.batch_size, "dtype": base.dtype,
              "device": base.device, "quick": args.quick}
    name = "ablation-quick" if args.quick else "ablation"
    floor = coupling_floor(test_paths)
    notes = _notes(budget, details, floor, Path(args.out) / "accuracy.json")
    md = write_report(name, {"budget": budget, "targets_meV": TARGETS, "variants": details,
                             "mimj_floor_meV": floor}, rows, args.out, notes)
    print(md.read_text())


def _notes(budget: dict[str, Any], details: dict[str, dict[str, Any]], floor: float,
           accuracy_json: Path) -> str:
    """The budget, the gap to the issue's targets and where it comes from, in words."""
    phys = details["physics"]
    best_total = min(details, key=lambda k: details[k]["mae_meV"])
    best_mag = min(details, key=lambda k: details[k]["mae_magnetic_meV"])
    lo = min(d["mae_meV"] for d in details.values())
    hi = max(d["mae_meV"] for d in details.values())
    lines = [
        f"Reduced-budget comparison, not the 800-configuration benchmark of the issue: "
        f"{budget['train_configurations']} training and {budget['val_configurations']} "
        f"validation configurations of 2x2 NiBrI, {budget['epochs']} epochs (batch "
        f"{budget['batch_size']}, {budget['dtype']}, {budget['device']}, one thread), "
        f"{budget['test_configurations']} held-out configurations, "
        f"{budget['ood_configurations']} per OOD set ({', '.join(budget['ood_sets'])}, NiBrI). "
        "Every variant sees the same data, order and schedule; only the model flag differs "
        "(configs/ablation-*.toml). train_min is the wall time of the training epochs "
        "(validation included) on a 2-core machine shared with other jobs (and with the "
        "other variants, when they run at the same time), so it is only a rough measure "
        "of cost. Reference data: synthetic ReferenceTB, not DFT.",
        "",
        f"Lowest held-out total MAE: {best_total}; lowest magnetic-part MAE: {best_mag} "
        f"(general / physics magnetic MAE: "
        f"{details['general']['mae_magnetic_meV'] / phys['mae_magnetic_meV']:.1f}x). "
        f"At this budget no variant is near convergence (held-out MAE {lo:.0f} to "
        f"{hi:.0f} meV, against 3.0 meV for the shipped model): the table compares early "
        f"training, where the M_i·M_j term (worth {floor:.2f} meV, see below) cannot show, "
        "and need not predict the converged ranking.",
        "",
        f"Targets of the issue: total ≤ {TARGETS['mae_meV']} meV and magnetic ≤ "
        f"{TARGETS['mae_magnetic_meV']} meV held out, ≤ {TARGETS['ood_mae_meV']} meV OOD. "
        f"The default physics form misses them by a factor "
        f"{phys['mae_meV'] / TARGETS['mae_meV']:.0f} (total, {phys['mae_meV']:.2f} meV) and "
        f"{phys['mae_magnetic_meV'] / TARGETS['mae_magnetic_meV']:.0f} (magnetic, "
        f"{phys['mae_magnetic_meV']:.3f} meV) here.",
    ]
    if accuracy_json.exists():
        import json

        acc = json.loads(accuracy_json.read_text())
        held = acc["rows"][0]
        lines[-1] += (
            f" The shipped model (accuracy.md: {acc['parameters']} parameters, 192 "
            f"configurations, 18 epochs) reaches {held['mae_meV']:.2f} / "
            f"{held['mae_magnetic_meV']:.3f} meV, still a factor "
            f"{held['mae_meV'] / TARGETS['mae_meV']:.0f} / "
            f"{held['mae_magnetic_meV'] / TARGETS['mae_magnetic_meV']:.1f} above the targets.")
    lines += [
        "",
        "Why: (1) the reference model scales Ni-Ni hoppings by 1 + beta cos(M_i, M_j) "
        "(beta 0.15), a beyond-Heisenberg term that the default physics form cannot "
        "represent (its H0 sees only |M|): on these held-out configurations that term alone "
        f"is {floor:.3f} meV MAE, {floor / TARGETS['mae_meV']:.1f}x the total target, so the "
        "default form cannot go below about this error at any budget; "
        "`moment_coupling=True` removes this floor. (2) Budget: small models (about 47k "
        "parameters, half the default widths) trained on at most a few hundred "
        "configurations for a few epochs on 2 CPU cores, instead of 800 configurations "
        "trained to convergence; the shipped model's validation error had flattened (2.98 "
        "to 2.90 meV over its last 4 epochs, at the end of its cosine schedule), so more "
        "epochs alone would not close a factor of 15; more data, wider models and longer "
        "schedules were not affordable here. (3) The magnetic part is fitted through the "
        "same (weighted) loss and its error falls with the total error (shipped model: 1.58 "
        "to 0.22 meV while the total fell from 42 to 2.9 meV), so the same budget limits it.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
