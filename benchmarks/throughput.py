"""Benchmark: throughput of the HamGNN++ network, fused evaluation against e3nn's modules.

The network evaluates its tensor products and linear maps either with the fused plans of
:mod:`ase_hamgnn.model.fused` (the default) or, with ``network.fused = False``, with e3nn's
modules (the code path before the fused plans; the same parameters and, to float rounding,
the same results).  Both are measured in the same process, alternating, and the median of
the repeats is reported; CPU times are ``time.process_time()`` (all threads of the process).

* training: configurations per CPU-second of full training steps (forward, loss of the
  training loop with the magnetic weight 100, backward, Adam step) of the shipped model's
  architecture on 2x2 NiBrI configurations of the SYNTHETIC reference model, batch 1, 4
  and 16, with one torch thread and with two (two threads: also configurations per wall
  second);
* prediction: ``model.predict`` of the shipped model ``nibri-reference`` on an
  antiskyrmion in n x n NiBrI (300, 1200, 3468 atoms), with environment sharing (the ideal
  supercell: the network runs once per class of equal environments) and without (positions
  rattled by 0.01 Å with a seeded generator: every atom has its own environment), against
  the floor: the assembly of the same Hamiltonian by the synthetic reference model
  ``ReferenceTB("nibri").predict``.

Targets: >= 20 training configurations per CPU-second (batch 4, one thread) and a
prediction without sharing at 3468 atoms within 5x the floor.

Run::

    python benchmarks/throughput.py            # everything (a few minutes)
    python benchmarks/throughput.py --quick    # batch 4, 300 and 1200 atoms, one repeat

Writes ``benchmarks/reports/throughput.json`` and ``throughput.md`` atomically.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPORT_DIR = Path(__file__).resolve().parent / "reports"
TARGETS = {"train_configs_per_cpu_s": 20.0, "predict_3468_over_floor": 5.0}
MAGNETIC_WEIGHT = 100.0


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="torch threads of the training measurements")
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 34],
                   help="n x n NiBrI supercells of the prediction (3 atoms per cell)")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats per case")
    p.add_argument("--configs", type=int, default=16,
                   help="training configurations per timed run")
    p.add_argument("--quick", action="store_true", help="batch 4, sizes 10 and 20, 1 repeat")
    p.add_argument("--out", type=Path, default=REPORT_DIR, help="report folder")
    p.add_argument("--name", default="throughput", help="report name")
    return p.parse_args(argv)


# -- training ----------------------------------------------------------------------------
def _training_steps(model, batches, partners, optimizer) -> tuple[float, float, int]:
    """CPU and wall seconds of one training step per batch, and the configurations."""
    from ase_hamgnn.train import block_errors

    net = model.network
    cpu, wall, n = time.process_time(), time.perf_counter(), 0
    for batch in batches:
        err = block_errors(net(batch), batch, partners(batch))
        loss = (err["sq_sum"] + MAGNETIC_WEIGHT * err["sq_sum_magnetic"]) / err["count"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n += batch.num_graphs
    return time.process_time() - cpu, time.perf_counter() - wall, n


def measure_training(args, root: Path) -> list[dict]:
    from torch_geometric.loader import DataLoader

    from ase_hamgnn.data import HamiltonianDataset, make_reference_dataset
    from ase_hamgnn.model import load_model
    from ase_hamgnn.train.loop import _Partners

    if not (root / "manifest.json").exists():
        make_reference_dataset(root, "nibri", "2x2", 2 * max(args.configs, max(args.batches)),
                               seed=0, progress=False)
    dataset = HamiltonianDataset(root, "train")
    model = load_model("nibri-reference")  # the shipped architecture, float32
    model.network.train()
    # a tiny learning rate: the weights barely move, so both paths see the same model
    optimizer = torch.optim.Adam(model.network.parameters(), lr=1e-7)
    partners = _Partners(model)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for bs in args.batches:
            loader = list(DataLoader(dataset, batch_size=bs))
            batches = loader[: max(1, args.configs // bs)]
            result: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            # several threads on a loaded machine are slow and noisy: one repeat
            for _ in range(args.repeats if threads == 1 else 1):
                for fused in (False, True):
                    model.network.fused = fused
                    _training_steps(model, batches[:1], partners, optimizer)  # warm-up
                    cpu, wall, n = _training_steps(model, batches, partners, optimizer)
                    result[fused].append((n / cpu, n / wall))
            model.network.fused = True
            old = statistics.median(r[0] for r in result[False])
            new = statistics.median(r[0] for r in result[True])
            row = {"case": f"training, batch {bs}, {threads} thread(s)",
                   "unit": "configs per CPU-s", "e3nn": old, "fused": new,
                   "speedup": new / old, "floor_s": "-", "fused_over_floor": "-"}
            rows.append(row)
            print(row, flush=True)
            if threads > 1:
                old_w = statistics.median(r[1] for r in result[False])
                new_w = statistics.median(r[1] for r in result[True])
                row = {**row, "unit": "configs per wall-s", "e3nn": old_w, "fused": new_w,
                       "speedup": new_w / old_w}
                rows.append(row)
                print(row, flush=True)
    torch.set_num_threads(1)
    return rows


# -- prediction ----------------------------------------------------------------------------
def structure(n: int, rattle: float):
    """Antiskyrmion (radius 10 Å, or a quarter of the cell) in n x n NiBrI; positions
    rattled by ``rattle`` Å (normal, seed 0) when positive."""
    import textures
    from ase_hamgnn.data.structures import nibri

    cells = textures.supercell(nibri(), (n, n, 1))
    radius = min(10.0, 0.25 * float(min(cells.cell.lengths()[:2])))
    atoms = textures.antiskyrmion(cells, radius=radius, magnetic=("Ni",), magnitude=2.0)
    if rattle > 0:
        gen = np.random.default_rng(0)
        atoms.positions += gen.normal(scale=rattle, size=atoms.positions.shape)
    return atoms


def _cpu(fn, *args) -> float:
    t0 = time.process_time()
    fn(*args)
    return time.process_time() - t0


def measure_prediction(args) -> list[dict]:
    from ase_hamgnn.data import ReferenceTB
    from ase_hamgnn.model import load_model

    torch.set_num_threads(1)
    model = load_model("nibri-reference")
    reference = ReferenceTB("nibri")
    rows = []
    for n in args.sizes:
        for sharing, rattle in ((True, 0.0), (False, 0.01)):
            atoms = structure(n, rattle)
            model.predict(atoms[:3])  # first-call overheads
            times: dict[str, list[float]] = {"floor": [], "e3nn": [], "fused": []}
            for _ in range(args.repeats):  # the floor and both paths, alternating
                times["floor"].append(_cpu(reference.predict, atoms))
                for fused in (False, True):
                    model.network.fused = fused
                    times["fused" if fused else "e3nn"].append(_cpu(model.predict, atoms))
            model.network.fused = True
            old, new, floor = (statistics.median(times[k]) for k in ("e3nn", "fused", "floor"))
            what = "sharing" if sharing else "no sharing (rattled 0.01 Å)"
            row = {"case": f"predict {len(atoms)} atoms, {what}", "unit": "CPU-s",
                   "e3nn": old, "fused": new, "speedup": old / new, "floor_s": floor,
                   "fused_over_floor": new / floor}
            rows.append(row)
            print(row, flush=True)
    return rows


def _verdicts(rows) -> list[str]:
    lines = []
    train = [r for r in rows if r["case"] == "training, batch 4, 1 thread(s)"]
    if train:
        v = train[0]["fused"]
        ok = v >= TARGETS["train_configs_per_cpu_s"]
        lines.append(f"- training: {v:.1f} configurations per CPU-second at batch 4, one thread "
                     f"({'met' if ok else 'MISSED'}, target "
                     f">= {TARGETS['train_configs_per_cpu_s']:g}; e3nn path "
                     f"{train[0]['e3nn']:.1f})")
    big = [r for r in rows if r["case"].startswith("predict 3468 atoms, no sharing")]
    if big:
        v = big[0]["fused_over_floor"]
        ok = v <= TARGETS["predict_3468_over_floor"]
        lines.append(f"- prediction without sharing at 3468 atoms: {big[0]['fused']:.2f} s, "
                     f"{v:.1f}x the floor of {big[0]['floor_s']:.2f} s "
                     f"({'met' if ok else 'MISSED'}, target <= "
                     f"{TARGETS['predict_3468_over_floor']:g}x; e3nn path "
                     f"{big[0]['e3nn']:.2f} s, {big[0]['e3nn'] / big[0]['floor_s']:.1f}x)")
    return lines


def main(argv=None) -> int:
    args = _parse(argv)
    if args.quick:
        args.batches, args.sizes, args.repeats = [4], [10, 20], 1
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _report import write_report

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure_training(args, Path(tmp) / "nibri-2x2")
    rows += measure_prediction(args)
    load = [round(max(a, b), 1) for a, b in zip(load_before, os.getloadavg())]
    verdicts = _verdicts(rows)
    notes = "\n".join([
        "e3nn: tensor products and linear maps evaluated by e3nn's modules "
        "(`network.fused = False`, the code path before the fused plans); fused: "
        "`ase_hamgnn.model.fused` (the default).  Both in the same process, alternating, "
        f"median of {args.repeats} repeat(s) (training with several threads: one).  "
        f"Load average of the machine (1, 5, 15 min) up to {load} on {os.cpu_count()} "
        "CPUs: other work shared it, which makes several threads per process spin "
        "(their CPU-second rates are far below one thread's).  CPU seconds are "
        "`time.process_time()` (all threads).  Training: the shipped model's "
        "architecture on 2x2 NiBrI configurations of the SYNTHETIC reference model.  "
        "Prediction: shipped model `nibri-reference`, one thread; floor = "
        "`ReferenceTB(\"nibri\").predict` (the synthetic reference model's assembly of "
        "the same Hamiltonian).  Single timings are noisy; compare ratios within one run.",
        "", *verdicts])
    md = write_report(args.name, {"targets": TARGETS, "repeats": args.repeats,
                                  "load_average": load}, rows,
                      out=args.out, notes=notes)
    print("\n".join(verdicts))
    print(f"wrote {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
