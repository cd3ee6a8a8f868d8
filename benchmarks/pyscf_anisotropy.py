"""Magnetic anisotropy of the ab initio Fe3 spin-orbit set: DFT against HamGNN++.

The ferromagnetic Fe3 triangle (Fe-Fe 2.4 Å, undisplaced) is computed with constrained
non-collinear GKS and X2C1e spin-orbit coupling (PySCF, the settings of the SOC dataset) with
all moments along a set of directions: the normal z, in-plane x and y, and tilts in the xz
plane.  With spin-orbit coupling the energy depends on the direction; in the paper's form of
the Hamiltonian that is the single-ion anisotropy (plus the anisotropic part of the
exchange), and a model without spin-orbit terms gives exactly none.

Measured per direction d, relative to z, with N the valence electrons in the data set's
shells and the eigenvalues those of ``H c = E S c``:

* ``dE_total``: the SCF total energy without the penalty energy (the DFT anisotropy; a
  Hamiltonian alone does not give it);
* ``dE_frozen``: the force theorem, the change of the sum of the N lowest eigenvalues when the
  exchange field of H(z) is rigidly rotated to d (:func:`ase_hamgnn.analysis.rotate_exchange`,
  spin-orbit coupling and the rest of H kept), from the DFT H(z) and from the model's
  prediction for the z state: does the model hold the spin-orbit coupling and exchange that
  make the anisotropy?
* ``dE_shifted``: the sum of the N lowest eigenvalues of the self-consistent H(d), measured
  from the mean of all its eigenvalues, of DFT and of the model's prediction for d: does the
  model follow how H changes with the direction?  Measured from the mean because the
  self-consistent H(x) of DFT sits 0.9 meV lower as a whole than H(z), which moves the plain
  sum of 24 levels by 21 meV (``dE_band``, kept in the JSON) without being an anisotropy.

Target: the model within 10 % of DFT in both measures for the most anisotropic direction.

Run: python benchmarks/pyscf_anisotropy.py --raw data/fe3-soc --model runs/fe3-soc/best.pt
     [--dataset data/fe3-soc/dataset-N-4s4p3d]   (PySCF runs are cached in RAW/anisotropy)
Writes benchmarks/reports/pyscf-anisotropy.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.linalg
from _report import write_report

from ase_hamgnn._atomic import atomic_write_bytes
from ase_hamgnn.analysis import anisotropy_energy
from ase_hamgnn.data import read_manifest
from ase_hamgnn.data.pyscf.dataset import fe3_triangle, restrict_shells
from ase_hamgnn.hamiltonian import TBHamiltonian
from ase_hamgnn.model import load_model

#: (name, polar angle from the normal z, azimuth), degrees
DIRECTIONS = (("z", 0.0, 0.0), ("30deg xz", 30.0, 0.0), ("60deg xz", 60.0, 0.0),
              ("x", 90.0, 0.0), ("y", 90.0, 90.0), ("xy", 90.0, 45.0))
TARGET = 0.10  # relative error of the largest anisotropy


def unit(theta: float, phi: float) -> np.ndarray:
    t, p = np.radians(theta), np.radians(phi)
    return np.array([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)])


def references(raw: Path) -> dict[str, tuple[TBHamiltonian, dict]]:
    """The ferromagnetic SCF along every direction, with the SOC dataset's settings (PySCF),
    cached in ``raw/anisotropy``."""
    folder = raw / "anisotropy"
    folder.mkdir(exist_ok=True)
    gen = json.loads((raw / "raw" / "generation.json").read_text())
    if not gen["settings"].get("soc"):
        raise SystemExit(f"{raw} holds data without spin-orbit coupling: no anisotropy")
    out = {}
    runner = None
    for name, theta, phi in DIRECTIONS:
        stem = folder / name.replace(" ", "-")
        if not stem.with_suffix(".npz").exists():
            if runner is None:
                from ase_hamgnn.data.pyscf.gks import ConstrainedGKS, GKSSettings

                runner = ConstrainedGKS(["Fe"], GKSSettings(**gen["settings"]))
            atoms = fe3_triangle(gen["distance"])
            atoms.set_initial_magnetic_moments(np.tile(gen["magnitude"] * unit(theta, phi),
                                                       (3, 1)))
            res = runner.run(atoms)
            res.hamiltonian.save(stem.with_suffix(".npz"))
            atomic_write_bytes(stem.with_suffix(".json"), json.dumps(res.diagnostics()).encode())
            print(name, res.diagnostics()["energy_ev"], flush=True)
        out[name] = (TBHamiltonian.load(stem.with_suffix(".npz")),
                     json.loads(stem.with_suffix(".json").read_text()))
    return out


def _training_states(gen: dict, indices: list[int] | None) -> str:
    """What the moments of the set were (counted over the dataset's configurations
    ``indices`` where known, else as planned), for the notes."""
    k = gen.get("near_collinear", 0)
    if not k:
        return "random moment directions"
    first = gen["n"] - k  # configurations from here on are near-collinear
    if indices is None:
        n_random, n_near, what = first, k, " planned"
    else:
        n_near = sum(i >= first for i in indices)
        n_random, what = len(indices) - n_near, ""
    return (f"{n_random}{what} configurations with random moment directions and {n_near}{what} "
            f"near-collinear ones (every moment within {gen['cone_deg']:g}° of a random axis; "
            "train, validation and test together)")


def levels(h: np.ndarray, s: np.ndarray, n_electrons: int) -> dict[str, float]:
    """Sum of the ``n_electrons`` lowest eigenvalues of ``h c = E s c``, the mean of all
    eigenvalues, and the sum measured from that mean (eV)."""
    e = scipy.linalg.eigh(h, s, eigvals_only=True)
    return {"band": float(e[:n_electrons].sum()), "mean": float(e.mean()),
            "shifted": float(e[:n_electrons].sum() - n_electrons * e.mean())}


class _Fixed:
    """A predictor that returns one Hamiltonian (H(z) for the frozen rotations)."""

    def __init__(self, ham: TBHamiltonian):
        self.ham = ham

    def predict(self, atoms) -> TBHamiltonian:
        return self.ham


PARTS = ("spin-independent", "exchange", "spin-orbit")


def spin_parts(h: np.ndarray, up: np.ndarray, dn: np.ndarray) -> dict[str, np.ndarray]:
    """``h`` as spin-independent (time-reversal even, ``Re h0``), exchange (odd: ``Re h_a``,
    ``Im h0``) and spin-orbit (even: ``Im h_a``) parts of ``h = h0 + sum_a h_a sigma_a``,
    each a full spin-orbital matrix; they add up to ``h``."""
    uu, dd = h[np.ix_(up, up)], h[np.ix_(dn, dn)]
    ud, du = h[np.ix_(up, dn)], h[np.ix_(dn, up)]
    h0 = (uu + dd) / 2
    ha = [(ud + du) / 2, (du - ud) / 2j, (uu - dd) / 2]

    def full(s0, sa):
        out = np.zeros_like(h)
        out[np.ix_(up, up)], out[np.ix_(dn, dn)] = s0 + sa[2], s0 - sa[2]
        out[np.ix_(up, dn)], out[np.ix_(dn, up)] = sa[0] - 1j * sa[1], sa[0] + 1j * sa[1]
        return out

    zero = [np.zeros_like(h0)] * 3
    return {"spin-independent": full(h0.real, zero),
            "exchange": full(1j * h0.imag, [a.real for a in ha]),
            "spin-orbit": full(np.zeros_like(h0), [1j * a.imag for a in ha])}


def frozen(predictor, atoms, n_electrons: int) -> dict[str, float]:
    """Force-theorem band energies (eV) of every direction from ``predictor``'s H(z)."""
    t, p = np.radians([[d[1] for d in DIRECTIONS], [d[2] for d in DIRECTIONS]])
    res = anisotropy_energy(predictor, atoms, t, p, n_electrons=n_electrons, kpts=(1, 1, 1),
                            progress=False)
    return {d[0]: float(e) for d, e in zip(DIRECTIONS, res.energies)}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True, sharey=True)
    x = np.arange(len(rows))
    for ax, key, title in ((axes[0], "frozen", "force theorem: exchange of H(z) rotated"),
                           (axes[1], "shifted", "self-consistent H(d), from the mean level")):
        ax.bar(x - 0.27, [r[f"dE_{key}_dft_meV"] for r in rows], 0.27, label="DFT H")
        ax.bar(x, [r[f"dE_{key}_model_meV"] for r in rows], 0.27, label="model H")
        ax.bar(x + 0.27, [r["dE_total_dft_meV"] for r in rows], 0.27, color="0.6",
               label="DFT total energy")
        ax.set_xticks(x, [r["direction"] for r in rows])
        ax.set_title(title, fontsize=10)
        ax.axhline(0.0, color="k", lw=0.6)
    axes[0].set_ylabel("E(d) - E(z), sum of occupied levels  (meV per Fe3)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Fe3 with X2C spin-orbit coupling (PySCF): anisotropy", fontsize=11)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raw", default="data/fe3-soc")
    p.add_argument("--dataset", default=None, help="the SOC dataset (for its shells)")
    p.add_argument("--model", default="runs/fe3-soc/best.pt")
    p.add_argument("--references-only", action="store_true")
    p.add_argument("--out", default="benchmarks/reports")
    p.add_argument("--report", default="pyscf-anisotropy", help="report file name (no suffix)")
    a = p.parse_args()
    raw = Path(a.raw)
    refs = references(raw)
    if a.references_only:
        return
    shells = indices = None
    if a.dataset is not None:
        generation = read_manifest(a.dataset)["generation"]
        shells, indices = generation.get("shells"), generation.get("indices")
    model = load_model(a.model)
    n_el = int(round(model.n_electrons(fe3_triangle())))
    energies = {}
    for name, (ham, diag) in refs.items():
        if shells is not None:
            ham = restrict_shells(ham, shells)
            refs[name] = (ham, diag)
        h = ham.h_r[(0, 0, 0)].toarray()
        s = ham.s_r[(0, 0, 0)].toarray()
        pred = model.predict(ham.to_atoms()).h_r[(0, 0, 0)].toarray()
        dft, mod = levels(h, s, n_el), levels(pred, s, n_el)
        energies[name] = {**{f"{k}_dft": v for k, v in dft.items()},
                          **{f"{k}_model": v for k, v in mod.items()},
                          "total": diag["energy_ev"] - diag["penalty_energy_ev"],
                          "angle_dev_deg": max(diag["angle_deviation_deg"])}
    hz = refs["z"][0]
    # the model predicts H only: its levels are those of H c = E S c with the DFT overlap
    pz = model.predict(hz.to_atoms())
    pz = TBHamiltonian(pz.basis, hz.to_atoms(), pz.h_r, hz.s_r)
    for who, ham in (("dft", hz), ("model", pz)):
        for name, e in frozen(_Fixed(ham), hz.to_atoms(), n_el).items():
            energies[name][f"frozen_{who}"] = e
    # which part of the model's H(z) moves the force theorem: DFT's H(z) with one part
    # replaced by the model's (x direction, meV)
    up, dn = hz.spin_indices
    dft_parts = spin_parts(hz.h_r[(0, 0, 0)].toarray(), up, dn)
    model_parts = spin_parts(pz.h_r[(0, 0, 0)].toarray(), up, dn)
    swapped = {}
    for part in PARTS:
        mixed = sum(model_parts[k] if k == part else dft_parts[k] for k in PARTS)
        ham = TBHamiltonian(hz.basis, hz.to_atoms(), {(0, 0, 0): mixed}, hz.s_r)
        e = frozen(_Fixed(ham), hz.to_atoms(), n_el)
        swapped[part] = 1e3 * (e["x"] - e["z"])
    z = energies["z"]
    rows = []
    for name, e in energies.items():
        if name == "z":
            continue
        row = {"direction": name, "dE_total_dft_meV": 1e3 * (e["total"] - z["total"])}
        for key in ("frozen", "shifted", "band", "mean"):
            dft = 1e3 * (e[f"{key}_dft"] - z[f"{key}_dft"])
            mod = 1e3 * (e[f"{key}_model"] - z[f"{key}_model"])
            row.update({f"dE_{key}_dft_meV": dft, f"dE_{key}_model_meV": mod})
            if key in ("frozen", "shifted"):
                row[f"{key}_relative_error"] = (mod - dft) / dft if dft else float("nan")
        rows.append({**row, "angle_dev_deg": e["angle_dev_deg"]})
    fm_sizes = [s for _, diag in refs.values() for s in diag["moment_sizes"]]
    trained = (model.moment_range or {}).get("Fe")
    held = []
    if a.dataset is not None:  # accuracy on the held-out configurations
        from pyscf_accuracy import compare

        from ase_hamgnn.data import HamiltonianDataset, record_to_hamiltonian

        for split in ("val", "test"):
            res = [compare(model.predict(h.to_atoms()), h, model.cutoff, n_el)
                   for h in map(record_to_hamiltonian, HamiltonianDataset(a.dataset, split).paths)]
            held.append({"split": split, "configurations": len(res),
                         **{k: float(np.mean([r[k] for r in res])) for k in res[0]}})
    verdicts = {}
    for key in ("frozen", "shifted"):
        largest = max(rows, key=lambda r, k=key: abs(r[f"dE_{k}_dft_meV"]))
        verdicts[key] = {"direction": largest["direction"],
                         "dft_meV": largest[f"dE_{key}_dft_meV"],
                         "model_meV": largest[f"dE_{key}_model_meV"],
                         "relative_error": largest[f"{key}_relative_error"],
                         "met": bool(abs(largest[f"{key}_relative_error"]) <= TARGET)}
    met = all(v["met"] for v in verdicts.values())
    # K sin^2(theta) with the tilts in the xz plane: the uniaxial constant of each source
    tilt = [(r, np.sin(np.radians(t)) ** 2) for r in rows for (n, t, f) in DIRECTIONS
            if n == r["direction"] and f == 0.0]
    keys = ["dE_total_dft_meV"] + [f"dE_{k}_{w}_meV" for k in ("frozen", "shifted", "band")
                                   for w in ("dft", "model")]
    fits = {key: float(sum(r[key] * s2 for r, s2 in tilt) / sum(s2 * s2 for _, s2 in tilt))
            for key in keys}
    data = {"raw": str(raw), "model": a.model, "shells": shells, "n_electrons": n_el,
            "directions": {n: [t, f] for n, t, f in DIRECTIONS}, "energies_eV": energies,
            "uniaxial_K_meV": fits, "target_relative": TARGET, "verdicts": verdicts,
            "frozen_x_with_one_model_part_meV": swapped,
            "met": bool(met), "held_out": held,
            "ferromagnetic_moment_muB": [min(fm_sizes), max(fm_sizes)],
            "trained_moment_range_muB": trained}
    gen = json.loads((raw / "raw" / "generation.json").read_text())
    settings = gen["settings"]
    notes = (
        f"Ferromagnetic Fe3 triangle (Fe-Fe {gen['distance']} Å, undisplaced), "
        f"{settings['basis']}, "
        f"{settings['xc']} non-collinear with X2C1e spin-orbit coupling, grid level "
        f"{settings['grid_level']}, conv_tol {settings['conv_tol']}, penalty "
        f"{settings['strength_ha']} Ha/μB²: every moment along the direction d (polar angle from "
        "the triangle's normal z).  dE_total: SCF total energy without the penalty energy; "
        f"dE_band: sum of the {n_el} lowest eigenvalues of H c = E S c in the shells "
        f"{shells or 'all'}, of the DFT Hamiltonian and of the model's ({a.model}) for the same "
        "configuration (dE_band, in the JSON; dE_shifted measures it from the mean of all "
        "levels), and the force theorem dE_frozen: the exchange field of H(z) (the part of H odd "
        "under time reversal) rotated rigidly to d, spin-orbit coupling and the rest kept.  "
        "The uniform level shift between the self-consistent states (dE_mean) is "
        f"{rows[-1]['dE_mean_dft_meV']:+.2f} meV from z to {rows[-1]['direction']} in DFT and "
        f"{rows[-1]['dE_mean_model_meV']:+.2f} meV in the model: times {n_el} electrons it "
        "would dominate the plain sum.  Uniaxial fits K sin²θ over the xz tilts (meV): total "
        f"{fits['dE_total_dft_meV']:.3f}; frozen DFT {fits['dE_frozen_dft_meV']:.3f}, model "
        f"{fits['dE_frozen_model_meV']:.3f}; shifted DFT {fits['dE_shifted_dft_meV']:.3f}, "
        f"model {fits['dE_shifted_model_meV']:.3f}.  Target: the model within {TARGET:.0%} of "
        "DFT in both measures for the direction where DFT's is largest: " + "; ".join(
            f"{k} ({v['direction']}) {v['model_meV']:.2f} vs {v['dft_meV']:.2f} meV, "
            f"{v['relative_error']:+.0%}, {'met' if v['met'] else 'MISSED'}"
            for k, v in verdicts.items()) + ".  Which part of the model's H(z) decides: the "
        "force theorem z -> x of DFT's H(z) with one part replaced by the model's: " + ", ".join(
            f"{k} {v:+.2f} meV" for k, v in swapped.items()) + " (DFT alone "
        f"{rows[2]['dE_frozen_dft_meV']:+.2f} meV).  Ab initio data "
        "(PySCF), not synthetic.  The model never saw these ferromagnetic configurations: it "
        f"was trained on {_training_states(gen, indices)}" + (
            f", whose moments are {trained[0]:.2f}-{trained[1]:.2f} μB, while the "
            f"ferromagnetic ones are {min(fm_sizes):.2f}-{max(fm_sizes):.2f} μB"
            if trained else "") + "." + "".join(
            f"  Held-out {h['split']} split ({h['configurations']} "
            f"configurations of the set): {h['mae_meV']:.2f} meV over all entries, "
            f"{h['mae_magnetic_meV']:.2f} meV magnetic, {h['eig_mae_meV']:.1f} meV in "
            "eigenvalues." for h in held))
    table = [{k: r[k] for k in ("direction", "dE_total_dft_meV", "dE_frozen_dft_meV",
                                "dE_frozen_model_meV", "dE_shifted_dft_meV",
                                "dE_shifted_model_meV", "dE_mean_dft_meV", "dE_mean_model_meV")}
             for r in rows]
    data["per_direction"] = rows  # every measure, the plain sums (dE_band) included
    md = write_report(a.report, data, table, a.out, notes)
    plot(rows, Path(a.out) / f"{a.report}.png")
    print(md.read_text())


if __name__ == "__main__":
    main()
