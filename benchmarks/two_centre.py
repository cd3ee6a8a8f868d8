"""The two-centre baseline (``ModelConfig.two_centre``) at equal training wall time.

Every variant trains on the same 96 random-moment 2x2 NiBrI configurations of the synthetic
reference model (``ase_hamgnn.data.ReferenceTB``, not DFT; ``data/nibri-2x2-lc``) from the
first demonstration model's configuration (``configs/nibri-demo.toml``), one process and one thread,
for the same wall-clock budget (default 8 minutes): a pilot epoch measures the cost of an
epoch and the run gets as many epochs as fit (its cosine schedule ends there).  Reported per
variant: the held-out validation MAE of all Hamiltonian entries and of the magnetic part
after each epoch against training time (the time of the least-squares fit before the first
epoch included), and, before any training, the MAE of the fitted baselines alone (the
network's heads set to zero: two-centre bonds plus average on-site blocks).

Run: python benchmarks/two_centre.py [--budget 480] [--variants shipped twocentre ...]
                                     [--seeds 0 1 2]
     python benchmarks/two_centre.py --quick     # 60 s per run, the plumbing only
Writes benchmarks/reports/two_centre{,-quick}.json and .md.  Runs are kept in
``runs/two-centre/`` and an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _report import write_report  # noqa: E402
from torch_geometric.loader import DataLoader  # noqa: E402

from ase_hamgnn.data import HamiltonianDataset, make_reference_dataset  # noqa: E402
from ase_hamgnn.model import HamGNNModel, load_model  # noqa: E402
from ase_hamgnn.train.loop import (  # noqa: E402
    TrainConfig,
    _model_config,
    evaluate,
    initial_fit,
    load_train_config,
    train,
)

#: (what it is, ``[model]`` changes) applied to the shipped model's training configuration.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "shipped": ("configs/nibri-demo.toml (the first shipped model)", {}),
    "onsite": ("onsite_bias = true (average on-site blocks fitted first)",
               {"onsite_bias": True}),
    "twocentre": ("two_centre = true, onsite_bias = true (two-centre bonds and average "
                  "on-site blocks fitted first)", {"two_centre": True, "onsite_bias": True}),
    "twocentre-scale": ("as twocentre, and the network's bond h0 scaled per shell pair by the "
                        "RMS residual after the fit (two_centre_scale = true)",
                        {"two_centre": True, "onsite_bias": True, "two_centre_scale": True}),
}

DATASET_SIZE = 480  # configurations written if the dataset is missing (as learning_curve.py)
MARKS_MIN = (0.5, 1.0, 2.0, 4.0, 5.5)  # minutes at which the table reads the curves


def _config(base: TrainConfig, name: str) -> TrainConfig:
    return dataclasses.replace(base, model={**base.model, **VARIANTS[name][1]})


def fitted(cfg: TrainConfig) -> tuple[HamGNNModel, float]:
    """A fresh model of ``cfg`` after the fit that training starts with, and the fit's seconds."""
    train_ds = HamiltonianDataset(cfg.dataset, "train")
    manifest = train_ds.manifest
    if cfg.max_train:
        train_ds = train_ds[: cfg.max_train]
    model = HamGNNModel(_model_config(cfg, manifest), seed=cfg.seed)
    t0 = time.perf_counter()
    initial_fit(model, train_ds)
    return model, time.perf_counter() - t0


def val_loader(cfg: TrainConfig) -> DataLoader:
    val = HamiltonianDataset(cfg.dataset, "val")
    return DataLoader(val[: cfg.max_val] if cfg.max_val else val, batch_size=cfg.batch_size)


def heads_off(model: HamGNNModel, loader: DataLoader) -> dict[str, float]:
    """Validation MAE of ``model`` with the network's heads at zero: what its fitted (or
    trained) baselines give alone.  Changes ``model``."""
    with torch.no_grad():
        for head in (*model.network.edge_heads.values(), *model.network.node_heads.values()):
            head.weight.zero_()
    return evaluate(model, loader)


def baselines_only(cfg: TrainConfig) -> dict[str, float]:
    """Validation MAE of the fitted baselines alone (the network's heads at zero) and of the
    untrained network on top of them."""
    model, fit_s = fitted(cfg)
    loader = val_loader(cfg)
    with_network = evaluate(model, loader)
    alone = heads_off(model, loader)
    return {"fit_s": fit_s, "baseline_mae_meV": alone["mae_meV"],
            "baseline_mae_magnetic_meV": alone["mae_magnetic_meV"],
            "untrained_mae_meV": with_network["mae_meV"],
            "untrained_mae_magnetic_meV": with_network["mae_magnetic_meV"]}


def _tag(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}-seed{seed}"


def run(name: str, seed: int, base: TrainConfig, budget_s: float, runs: Path
        ) -> dict[str, Any]:
    """Train one variant with one seed (initial weights and shuffling) within the budget, or
    pick up its finished run."""
    tag = _tag(name, seed)
    done = runs / tag / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    cfg = dataclasses.replace(_config(base, name), seed=seed)
    before = baselines_only(cfg)
    pilot = dataclasses.replace(cfg, out=str(runs / f"{tag}-pilot"), epochs=1)
    per_epoch = float(train(pilot, progress=False)["history"][0]["seconds"])
    epochs = max(1, int((budget_s - before["fit_s"]) // per_epoch))
    cfg = dataclasses.replace(cfg, out=str(runs / tag), epochs=epochs)
    load = os.getloadavg()
    history = train(cfg, progress=False)["history"]
    elapsed = before["fit_s"] + np.cumsum([h["seconds"] for h in history])
    row = {"variant": name, "seed": seed, "what": VARIANTS[name][0], "model": VARIANTS[name][1],
           "epochs": len(history), "pilot_epoch_s": per_epoch, **before,
           "train_s": float(elapsed[-1]), "load_average_at_start": load,
           "load_average_at_end": os.getloadavg(),
           "curve_s": [0.0, *elapsed.tolist()],
           "curve_val_mae_meV": [before["untrained_mae_meV"],
                                 *[h["val_mae_meV"] for h in history]],
           "curve_val_mae_magnetic_meV": [before["untrained_mae_magnetic_meV"],
                                          *[h["val_mae_magnetic_meV"] for h in history]]}
    row["trained_baseline_mae_meV"] = heads_off(load_model(runs / tag / "last.pt"),
                                                val_loader(cfg))["mae_meV"]
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(row, indent=1))
    return row


def at(row: dict[str, Any], minutes: float, key: str = "curve_val_mae_meV") -> float:
    """The curve's value after the last epoch finished by ``minutes`` of training."""
    t = np.asarray(row["curve_s"]) / 60
    k = int(np.searchsorted(t, minutes, side="right")) - 1
    return float(row[key][k]) if k >= 0 else float("nan")


def mean_table(table: list[dict[str, Any]]) -> str:
    """Markdown table of the mean over seeds of each variant's numeric columns."""
    names = list(dict.fromkeys(r["variant"] for r in table))
    cols = [c for c in table[0] if c not in ("variant", "seed", "epochs")]
    lines = ["Mean over seeds:", "", "| variant | seeds | " + " | ".join(cols) + " |",
             "|" + "---|" * (len(cols) + 2)]
    for name in names:
        mine = [r for r in table if r["variant"] == name]
        cells = [f"{np.mean([r[c] for r in mine]):.4g}" for c in cols]
        lines.append(f"| {name} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    names = list(dict.fromkeys(r["variant"] for r in rows))
    colours = dict(zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for r in rows:
        seed = r.get("seed", 0)
        kw = dict(color=colours[r["variant"]], lw=1.2, alpha=1.0 if seed == 0 else 0.5,
                  label=r["variant"] if seed == 0 else None)
        t_min = np.asarray(r["curve_s"][1:]) / 60
        axes[0].loglog(t_min, r["curve_val_mae_meV"][1:], **kw)
        axes[1].loglog(t_min, r["curve_val_mae_magnetic_meV"][1:], **kw)
    for ax, title in ((axes[0], "all entries of H"), (axes[1], "magnetic part")):
        ax.set(xlabel="training time (min, one thread)", ylabel="validation MAE (meV)",
               title=f"held-out error, {title}")
    axes[0].legend(fontsize="small", frameon=False)
    fig.suptitle("Two-centre baseline, 96 synthetic 2x2 NiBrI configurations (ReferenceTB, "
                 "not DFT); faint: other seeds")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=480.0,
                        help="training wall time per run, s (default 8 minutes)")
    parser.add_argument("--size", type=int, default=96, help="training configurations")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="seeds (initial weights and shuffling) to run each variant with")
    parser.add_argument("--dataset", default="data/nibri-2x2-lc")
    parser.add_argument("--runs", default="runs/two-centre")
    parser.add_argument("--quick", action="store_true",
                        help="plumbing check: 60 s per run, 16 configurations")
    parser.add_argument("--out", default="benchmarks/reports")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.budget, args.size = 60.0, 16
    root = Path(args.dataset)
    if not (root / "manifest.json").exists():
        make_reference_dataset(root, "nibri", "2x2", DATASET_SIZE, seed=7)
    base = dataclasses.replace(load_train_config("configs/nibri-demo.toml"),
                               dataset=str(root), max_train=args.size,
                               max_val=8 if args.quick else 24)
    runs = Path(args.runs) / (f"quick-{int(args.budget)}s" if args.quick
                              else f"n{args.size}-{int(args.budget)}s")
    for name in args.variants:  # one after another: never two trainings at once
        for seed in args.seeds:
            row = run(name, seed, base, args.budget, runs)
            print({k: v for k, v in row.items() if not k.startswith("curve")}, flush=True)
    # the report holds every finished run of these variants, other seeds' runs included
    rows = [json.loads((runs / _tag(name, seed) / "result.json").read_text())
            for name in args.variants for seed in range(100)
            if (runs / _tag(name, seed) / "result.json").exists()]
    for r in rows:  # runs finished before the trained baselines were measured
        if "trained_baseline_mae_meV" not in r:
            tag = _tag(r["variant"], r.get("seed", 0))
            r["trained_baseline_mae_meV"] = heads_off(load_model(runs / tag / "last.pt"),
                                                      val_loader(base))["mae_meV"]
            (runs / tag / "result.json").write_text(json.dumps(r, indent=1))
    table = []
    for r in rows:
        entry = {"variant": r["variant"], "seed": r.get("seed", 0), "epochs": r["epochs"],
                 "baseline_only_meV": r["baseline_mae_meV"], "t0_meV": r["curve_val_mae_meV"][0]}
        entry.update({f"{m:g}min_meV": at(r, m) for m in MARKS_MIN if m * 60 <= args.budget})
        entry["final_meV"] = r["curve_val_mae_meV"][-1]
        entry["final_magnetic_meV"] = r["curve_val_mae_magnetic_meV"][-1]
        entry["trained_baseline_meV"] = r["trained_baseline_mae_meV"]
        entry["train_min"] = r["train_s"] / 60
        table.append(entry)
    name = "two_centre-quick" if args.quick else "two_centre"
    plot(rows, Path(args.out) / f"{name}.png")
    notes = (f"Held-out validation MAE (meV) of all entries of H ({base.max_val} validation "
             f"configurations) after {args.size} training configurations of 2x2 NiBrI from "
             "the SYNTHETIC reference model (ReferenceTB, not DFT), one process, one thread, "
             f"{args.budget:.0f} s of training wall time per variant (least-squares fit "
             "included), run one after another.  baseline_only: the fitted baselines with the "
             "network's heads at zero (H = 0 for shipped, which fits none); t0: the untrained "
             "network on top of them; Nmin: after the last epoch finished by then (equal wall "
             "time; the runs' lengths differ because each gets the epochs its pilot epoch "
             "predicts); trained_baseline: the baselines alone again after training (the "
             "network's heads at zero), i.e. how far training moved them; seed: of the initial "
             "weights and the shuffling.  The wall times were measured on a 2-core machine "
             "with at least one other long job running on the other core the whole time, at "
             "times more (load averages 1.5-5, in the JSON): compare variants measured in one "
             "run, at the time marks.  The curves are in the JSON and the PNG.")
    notes += "\n\n" + mean_table(table)
    if args.quick:
        notes = "QUICK RUN (plumbing check, not a measurement). " + notes
    md = write_report(name, {"budget_s": args.budget, "train_configurations": args.size,
                             "variants": {k: VARIANTS[k][0] for k in args.variants},
                             "runs": rows}, table, args.out, notes)
    print(md.read_text())


if __name__ == "__main__":
    main()
