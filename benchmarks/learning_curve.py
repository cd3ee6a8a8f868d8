"""Learning curves of HamGNN++ on one fixed budget: accuracy per CPU-hour, measured.

Every variant trains on random-moment 2x2 NiBrI configurations of the synthetic reference
model (``ase_hamgnn.data.ReferenceTB``, not DFT) with the same wall-clock budget (default
two hours, one process, one thread each for torch and BLAS), for several training-set sizes.
A pilot epoch measures the cost per epoch, and the run gets as many epochs as fit the budget
(its cosine schedule ends there).  Reported per (variant, size): epochs, configurations seen
per second, the held-out validation MAE of all Hamiltonian entries and of the magnetic part
after each epoch against training time, and the best checkpoint's MAE on the test split.

Variants are the first demonstration model's configuration (``configs/nibri-demo.toml``) and
changes of one training lever each (:data:`VARIANTS`); a lever that needs new code adds a
variant here, so that every candidate is judged on the same curve.

Run: python benchmarks/learning_curve.py [--budget 7200] [--sizes 48 96 192] [--variants ...]
     python benchmarks/learning_curve.py --quick        # a few minutes: the plumbing only
Writes benchmarks/reports/learning_curve{,-quick}.json, .md and .png.  Runs are kept in
``runs/learning-curve/`` and an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import write_report
from accuracy import TARGETS, compare

from ase_hamgnn.data import HamiltonianDataset, make_reference_dataset, record_to_hamiltonian
from ase_hamgnn.model import load_model
from ase_hamgnn.train import TrainConfig, load_train_config, train

#: One lever each, applied to the shipped model's training configuration: (what it is,
#: top-level changes, ``[model]`` changes).
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "default": ("configs/nibri-demo.toml (batch 4, lr 5e-3)", {}, {}),
    "batch16": ("batch size 16", {"batch_size": 16}, {}),
    "lr1e-2": ("peak learning rate 1e-2", {"lr": 1e-2}, {}),
    "magw10": ("magnetic-part loss weight 10 instead of 100", {"magnetic_weight": 10.0}, {}),
    "coupling": ("moment_coupling = 'normalized' (cos theta_ij and sizes on the pair radial "
                 "input)", {}, {"moment_coupling": "normalized"}),
    "twocentre": ("two_centre, two_centre_scale and onsite_bias (two-centre bonds and average "
                  "on-site blocks least-squares fitted before training)", {},
                  {"two_centre": True, "two_centre_scale": True, "onsite_bias": True}),
    "production": ("twocentre and coupling together (the previous shipped model's levers)",
                   {}, {"two_centre": True, "two_centre_scale": True, "onsite_bias": True,
                        "moment_coupling": "normalized"}),
    "bondterm": ("production plus bond_moment_term (h0 + (M_i.M_j / moment_max^2) h1 on "
                 "every bond, h1 a second fitted two-centre function plus a network output; "
                 "the shipped model's settings)", {}, {"two_centre": True, "two_centre_scale": True,
                                     "onsite_bias": True, "moment_coupling": "normalized",
                                     "bond_moment_term": True}),
}
_SHIPPED = VARIANTS["bondterm"][2]
VARIANTS.update({
    "ema": ("bondterm plus an exponential moving average of the weights (ema_decay 0.999)",
            {"ema_decay": 0.999}, _SHIPPED),
    "lmax3": ("bondterm with spherical harmonics up to l = 3 instead of 4 (cheaper steps)", {},
              {**_SHIPPED, "lmax_sh": 3}),
    "layers3": ("bondterm with three interaction layers instead of two", {},
                {**_SHIPPED, "n_layers": 3}),
    "wide": ("bondterm with twice the node features (32x0e+8x0o+8x1o+8x1e+4x2e+4x2o+4x3o+4x3e)",
             {}, {**_SHIPPED, "node_irreps": "32x0e+8x0o+8x1o+8x1e+4x2e+4x2o+4x3o+4x3e"}),
    "float64": ("bondterm trained in float64", {"dtype": "float64"}, _SHIPPED),
    "batch8": ("bondterm with batch size 8", {"batch_size": 8}, _SHIPPED),
    "envterm": ("bondterm plus onsite_environment (on-site levels in the neighbour distances, "
                "moment angles and sizes, fitted before training)", {},
                {**_SHIPPED, "onsite_environment": True}),
})

DATASET_SIZE = 480  # configurations written (0.8 / 0.1 / 0.1 split)


def budgeted(cfg: TrainConfig, budget_s: float, runs: Path, name: str) -> TrainConfig:
    """``cfg`` with as many epochs as fit ``budget_s`` seconds, measured by a pilot epoch of
    the same configuration in its own folder (kept, so a resumed benchmark reuses it)."""
    pilot = dataclasses.replace(cfg, out=str(runs / f"{name}-pilot"), epochs=1)
    history = train(pilot, progress=False)["history"]
    per_epoch = float(history[0]["seconds"])
    epochs = max(1, int(budget_s // per_epoch))
    return dataclasses.replace(cfg, out=str(runs / name), epochs=epochs)


def test_errors(best: str, test_paths: list[Path]) -> dict[str, float]:
    """Mean MAE (meV) of all entries and of the magnetic part on the test records, as the
    accuracy benchmark measures them."""
    model = load_model(best)
    res = [compare(model, record_to_hamiltonian(p)) for p in test_paths]
    return {f"test_{k}": float(np.mean([r[k] for r in res]))
            for k in ("mae_meV", "mae_magnetic_meV")}


def run(name: str, size: int, base: TrainConfig, budget_s: float, runs: Path,
        test_paths: list[Path]) -> dict[str, Any]:
    """Train one (variant, size) within the budget (or pick up its finished run)."""
    what, top, model = VARIANTS[name]
    cfg = dataclasses.replace(base, max_train=size, model={**base.model, **model}, **top)
    tag = f"{name}-n{size}"
    done = runs / tag / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    cfg = budgeted(cfg, budget_s, runs, tag)
    t0 = time.process_time()
    result = train(cfg, progress=False)
    history = result["history"]
    elapsed = np.cumsum([h["seconds"] for h in history])
    row = {"variant": name, "lever": what, "train_configurations": size,
           "measured": time.strftime("%Y-%m-%d"), "load_average": list(os.getloadavg()),
           "epochs": len(history), "train_s": float(elapsed[-1]),
           "cpu_s": time.process_time() - t0,
           "configurations_per_s": size * len(history) / float(elapsed[-1]),
           "curve_s": elapsed.tolist(),
           "curve_val_mae_meV": [h["val_mae_meV"] for h in history],
           "curve_val_mae_magnetic_meV": [h["val_mae_magnetic_meV"] for h in history],
           **test_errors(result["best"], test_paths)}
    done.write_text(json.dumps(row, indent=1))
    return row


def merged_rows(report: Path, rows: list[dict[str, Any]], budget_s: float
                ) -> list[dict[str, Any]]:
    """``rows`` plus the runs of an earlier report with the same budget that this invocation
    did not repeat: levers measured on other days accumulate in one report (each run's
    row keeps its own machine load notes in the JSON)."""
    if not report.exists():
        return rows
    old = json.loads(report.read_text())
    if float(old.get("budget_s", -1)) != budget_s:
        return rows
    mine = {(r["variant"], r["train_configurations"]) for r in rows}
    kept = [r for r in old.get("runs", [])
            if (r["variant"], r["train_configurations"]) not in mine]
    return kept + rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    names = sorted({r["variant"] for r in rows})
    colours = dict(zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    sizes = sorted({r["train_configurations"] for r in rows})
    styles = dict(zip(sizes, ["-", "--", ":", "-."] * 4, strict=False))
    for r in rows:
        kw = dict(color=colours[r["variant"]], ls=styles[r["train_configurations"]],
                  label=f"{r['variant']}, {r['train_configurations']} configs")
        t_min = np.asarray(r["curve_s"]) / 60
        axes[0].loglog(t_min, r["curve_val_mae_meV"], **kw)
        axes[1].loglog(t_min, r["curve_val_mae_magnetic_meV"], **kw)
    for name in names:
        mine = sorted((r for r in rows if r["variant"] == name),
                      key=lambda r: r["train_configurations"])
        n = [r["train_configurations"] for r in mine]
        axes[2].loglog(n, [r["test_mae_meV"] for r in mine], "o-", color=colours[name],
                       label=f"{name}: all entries")
        axes[2].loglog(n, [r["test_mae_magnetic_meV"] for r in mine], "s--",
                       color=colours[name], label=f"{name}: magnetic part")
    for ax, target, title in ((axes[0], TARGETS["mae_meV"], "all entries of H"),
                              (axes[1], TARGETS["mae_magnetic_meV"], "magnetic part")):
        ax.axhline(target, color="k", lw=0.8, ls=":")
        ax.annotate("target", (1.0, target), xycoords=("axes fraction", "data"),
                    xytext=(-3, 2), textcoords="offset points", ha="right", fontsize="small")
        ax.set(xlabel="training time (min, one thread)", ylabel="validation MAE (meV)",
               title=f"held-out error, {title}")
    for target, ls in ((TARGETS["mae_meV"], ":"), (TARGETS["mae_magnetic_meV"], "-.")):
        axes[2].axhline(target, color="k", lw=0.8, ls=ls)
    axes[2].set(xlabel="training configurations", ylabel="test MAE (meV; targets dotted)",
                title="after the full budget")
    axes[0].legend(fontsize="x-small", frameon=False)
    axes[2].legend(fontsize="x-small", frameon=False)
    fig.suptitle("HamGNN++ learning curves on synthetic NiBrI (ReferenceTB, not DFT)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=7200.0,
                        help="training wall time per run, s (default two hours)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 96, 192, 384],
                        help="training-set sizes")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["default"])
    parser.add_argument("--dataset", default="data/nibri-2x2-lc")
    parser.add_argument("--runs", default="runs/learning-curve")
    parser.add_argument("--quick", action="store_true",
                        help="plumbing check: 60 s per run, sizes 16 and 32, tiny test set")
    parser.add_argument("--out", default="benchmarks/reports")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.quick:
        args.budget, args.sizes = 60.0, [16, 32]
    root = Path(args.dataset)
    if not (root / "manifest.json").exists():
        make_reference_dataset(root, "nibri", "2x2", DATASET_SIZE, seed=7)
    base = dataclasses.replace(load_train_config("configs/nibri-demo.toml"),
                               dataset=str(root), max_val=8 if args.quick else 24)
    runs = Path(args.runs) / (f"quick-{int(args.budget)}s" if args.quick
                              else f"{int(args.budget)}s")
    test_paths = HamiltonianDataset(root, "test").paths[: 4 if args.quick else 24]
    rows = []
    for name in args.variants:
        for size in args.sizes:
            rows.append(run(name, size, base, args.budget, runs, test_paths))
            print({k: v for k, v in rows[-1].items() if not k.startswith("curve")}, flush=True)
    name = "learning_curve-quick" if args.quick else "learning_curve"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = merged_rows(out / f"{name}.json", rows, args.budget)
    plot(rows, out / f"{name}.png")
    table = [{"variant": r["variant"], "configs": r["train_configurations"],
              "epochs": r["epochs"], "train_min": r["train_s"] / 60,
              "configs_per_s": r["configurations_per_s"], "test_mae_meV": r["test_mae_meV"],
              "test_mag_meV": r["test_mae_magnetic_meV"],
              "target_met": (r["test_mae_meV"] <= TARGETS["mae_meV"]
                             and r["test_mae_magnetic_meV"] <= TARGETS["mae_magnetic_meV"])}
             for r in rows]
    notes = (f"Budget {args.budget:.0f} s of training wall time per run, one process, one "
             f"thread; {len(test_paths)} test configurations of 2x2 NiBrI (synthetic reference "
             f"model, not DFT).  Targets (held-out): {TARGETS['mae_meV']} meV on all entries, "
             f"{TARGETS['mae_magnetic_meV']} meV on the magnetic part.  Wall time is measured "
             "on a 2-core machine that may run other jobs: compare variants measured in one "
             "run.  The curves are in the JSON and the PNG.")
    if args.quick:
        notes = "QUICK RUN (plumbing check, not a measurement). " + notes
    md = write_report(name, {"budget_s": args.budget, "sizes": args.sizes,
                             "variants": {r["variant"]: VARIANTS[r["variant"]][0]
                                          for r in rows},
                             "targets_meV": TARGETS, "runs": rows}, table, out, notes)
    print(md.read_text())


if __name__ == "__main__":
    main()
