"""Accuracy of a trained HamGNN++ model against the SYNTHETIC reference model.

Held-out random-moment configurations and out-of-distribution textures (NiBr2 8x1x1 spin
spirals, NiBrI 120° AFM, a NiBrI skyrmion): MAE of all Hamiltonian entries and of the
magnetic (time-reversal-odd) part in meV, and the error of eigenvalues within 2 eV of the
gap at Γ.  The reference data are synthetic (``ase_hamgnn.data.ReferenceTB``), not DFT.

Run: python benchmarks/accuracy.py [--model nibri-reference] [--dataset DIR]
Writes benchmarks/reports/accuracy.json and accuracy.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _report import entry_errors, write_report

from ase_hamgnn.data import (
    HamiltonianDataset,
    ReferenceTB,
    make_reference_dataset,
    ood_configurations,
    record_to_hamiltonian,
)
from ase_hamgnn.model import load_model

TARGETS = {"mae_meV": 0.2, "mae_magnetic_meV": 0.05, "ood_mae_meV": 0.5}


def compare(model, reference_ham) -> dict[str, float]:
    """MAEs (meV) of all entries and magnetic parts, and near-gap eigenvalue error at Γ."""
    atoms = reference_ham.to_atoms()
    pred = model.predict(atoms)
    diff, mag = entry_errors(pred, reference_ham, model.basis, model.cutoff)
    e_ref = reference_ham.eigvalsh([0, 0, 0])
    e_pred = pred.eigvalsh([0, 0, 0])
    n_el = int(round(ReferenceTB("nibri").n_electrons(atoms)))
    mid = 0.5 * (e_ref[n_el - 1] + e_ref[n_el])
    near = np.abs(e_ref - mid) < 2.0
    return {
        "mae_meV": 1e3 * float(np.mean(np.abs(np.concatenate([diff.real, diff.imag])))),
        "mae_magnetic_meV": 1e3 * float(np.mean(np.abs(np.concatenate([mag.real, mag.imag])))),
        "band_mae_meV": 1e3 * float(np.mean(np.abs(e_pred - e_ref)[near])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nibri-reference")
    parser.add_argument("--dataset", default="data/nibri-2x2-heldout",
                        help="held-out set; generated (seed 12345, all test) if missing")
    parser.add_argument("--n-test", type=int, default=24)
    parser.add_argument("--n-ood", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/reports")
    args = parser.parse_args()

    model = load_model(args.model)
    params = sum(p.numel() for p in model.network.parameters())
    rows = []
    if not Path(args.dataset, "manifest.json").exists():
        make_reference_dataset(args.dataset, "nibri", "2x2", args.n_test, seed=12345,
                               split=(0.0, 0.0, 1.0))
    test = HamiltonianDataset(args.dataset, "test")
    t0 = time.perf_counter()
    results = [compare(model, record_to_hamiltonian(p)) for p in test.paths[: args.n_test]]
    rows.append({"set": f"held-out NiBrI 2x2 ({len(results)})",
                 **{k: float(np.mean([r[k] for r in results])) for k in results[0]}})
    for kind in ("spirals", "afm120", "skyrmion"):
        configs = ood_configurations(kind, args.n_ood, np.random.default_rng(1))
        refs = [ReferenceTB(_system(c)).predict(c) for c in configs]
        res = [compare(model, r) for r in refs]
        rows.append({"set": f"OOD {kind} ({len(res)})",
                     **{k: float(np.mean([r[k] for r in res])) for k in res[0]}})
    held, ood = rows[0], rows[1:]
    verdict = {
        "held_out_total": held["mae_meV"] <= TARGETS["mae_meV"],
        "held_out_magnetic": held["mae_magnetic_meV"] <= TARGETS["mae_magnetic_meV"],
        "ood_total": all(r["mae_meV"] <= TARGETS["ood_mae_meV"] for r in ood),
    }
    notes = (f"Model `{args.model}` ({params} parameters), targets {TARGETS} "
             f"(meV); met: {verdict}. Reference data: synthetic ReferenceTB, not DFT. "
             f"Evaluation took {time.perf_counter() - t0:.0f} s.")
    md = write_report("accuracy", {"model": args.model, "parameters": params,
                                   "targets_meV": TARGETS, "met": verdict}, rows, args.out,
                      notes)
    print(md.read_text())


def _system(atoms) -> str:
    symbols = set(atoms.get_chemical_symbols())
    return "nibri" if "I" in symbols else "nibr2"


if __name__ == "__main__":
    main()
