"""An antiskyrmion in a large NiBrI supercell: texture, predicted Hamiltonian, gap, bands
near the gap, KPM DOS and the real-space picture of the band-edge states.

This is the workflow of the HamGNN++ paper's Fig. 3 (an antiskyrmion of radius ~10 Å in a
34 x 34 NiBrI supercell, 3468 atoms), run with the shipped demonstration model
``nibri-reference``.  That model was trained on the SYNTHETIC reference tight-binding model
of NiBrI, not on DFT: gaps and band shapes are those of the synthetic model (its gap is about
1.45 eV, not the paper's DFT value), and nothing here is a DFT result.

Run::

    python examples/nibri_antiskyrmion.py --band-points 3  # 34 x 34 cells, 3468 atoms
    python examples/nibri_antiskyrmion.py --size 12 --out out/anti   # 432 atoms, quick

At full size this is long on a small machine: about 22 minutes on 2 cores (prediction 12 s,
gap search 10 min, three band k-points 11 min, KPM 28 s); ``--size 12`` takes about a minute.

Figures (PNG) go to ``--out``: the texture next to the VBM and CBM densities per atom,
bands near the gap along M-Γ-K of the supercell, and the KPM DOS.  A short summary is
printed (and returned by :func:`run` as a dict).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import textures  # noqa: E402
from ase_hamgnn.analysis.states import atom_weights, plot_state_on_texture  # noqa: E402
from ase_hamgnn.data.structures import nibri  # noqa: E402
from ase_hamgnn.gap import find_gap  # noqa: E402
from ase_hamgnn.kpm import kpm_dos  # noqa: E402
from ase_hamgnn.model import load_model  # noqa: E402
from ase_hamgnn.spectra import bands as spectra_bands  # noqa: E402

NI_MOMENT = 2.0  # μB, the nominal Ni moment the model was trained with


def build_texture(size: int, radius: float = 10.0):
    """``size x size`` NiBrI with one antiskyrmion (radius in Å, at most a quarter of the
    cell) in a +z ferromagnetic background; returns the atoms and the topological charge."""
    cells = textures.supercell(nibri(), (size, size, 1))
    radius = min(radius, 0.25 * float(min(cells.cell.lengths()[:2])))
    atoms = textures.antiskyrmion(cells, radius=radius, magnetic=("Ni",), magnitude=NI_MOMENT)
    charge = float(textures.topological_charge(atoms, magnetic=("Ni",)))
    if abs(abs(charge) - 1.0) > 0.1:
        raise RuntimeError(f"the antiskyrmion has Q = {charge:.3f}, not ±1: enlarge the cell")
    return atoms, radius, charge


def _core_distances(atoms) -> np.ndarray:
    """In-plane minimum-image distance (Å) of every atom from the texture's core (the Ni
    atom whose moment points most against the background)."""
    from ase.geometry import get_distances

    ni = np.flatnonzero(atoms.numbers == 28)
    core = ni[np.argmin(atoms.get_initial_magnetic_moments()[ni, 2])]
    pos = atoms.positions.copy()
    pos[:, 2] = atoms.positions[core, 2]
    return get_distances(pos, pos[core], cell=atoms.cell, pbc=atoms.pbc)[1][:, 0]


def _weight_near_core(atoms, weights: np.ndarray, radius: float) -> float:
    """Fraction of a state's weight on atoms within ``radius`` Å of the core."""
    return float(weights[_core_distances(atoms) <= radius].sum() / weights.sum())


def _core_area_fraction(atoms, radius: float) -> float:
    """Fraction of atoms within ``radius`` of the core (the weight of a uniform state)."""
    return float(np.mean(_core_distances(atoms) <= radius))


def run(size: int = 34, out: str | Path = "out/nibri-antiskyrmion", n_bands: int = 16,
        band_points: int = 7, n_moments: int = 768, seed: int = 0) -> dict:
    """The whole story; returns the printed summary as a dict (energies in eV)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}

    t = time.perf_counter()
    atoms, radius, charge = build_texture(size)
    model = load_model("nibri-reference")
    timings["texture_s"] = time.perf_counter() - t

    t = time.perf_counter()
    ham = model.predict(atoms)
    timings["predict_s"] = time.perf_counter() - t

    t = time.perf_counter()
    n_el = int(round(model.n_electrons(atoms)))
    gap = find_gap(ham, n_el, states=True)
    timings["gap_s"] = time.perf_counter() - t
    mid = 0.5 * (gap.vbm + gap.cbm)

    core_weight = {}
    for name, state, k in (("vbm", gap.vbm_state, gap.k_vbm), ("cbm", gap.cbm_state, gap.k_cbm)):
        weights = atom_weights(ham, k, state)
        fig = plot_state_on_texture(atoms, weights, title=f"{name.upper()} density (Γ)",
                                    magnetic=("Ni",))
        fig.savefig(out / f"{name}-density.png", dpi=150)
        plt.close(fig)
        core_weight[name] = _weight_near_core(atoms, weights, radius)

    t = time.perf_counter()
    path = atoms.cell.bandpath("MGK", npoints=band_points, pbc=atoms.pbc)
    bands = spectra_bands(ham, path, n=n_bands, sigma=mid, progress=False)
    timings["bands_s"] = time.perf_counter() - t
    ax = bands.plot(reference=mid, emin=gap.vbm - mid - 0.6, emax=gap.cbm - mid + 0.6)
    ax.set_ylabel("E - E_midgap (eV)")
    ax.set_title(f"{len(atoms)} atoms, {n_bands} bands nearest midgap")
    ax.figure.savefig(out / "bands-near-gap.png", dpi=150)
    plt.close(ax.figure)

    t = time.perf_counter()
    energies = np.linspace(mid - 5.0, mid + 5.0, 801)
    kpm = kpm_dos(ham, energies, n_moments=n_moments, n_vectors=8, rng=seed, progress=False)
    timings["kpm_s"] = time.perf_counter() - t
    ax = kpm.plot(reference=mid)
    ax.axvspan(gap.vbm - mid, gap.cbm - mid, color="0.9", zorder=0)
    ax.set_xlabel("E - E_midgap (eV)")
    ax.set_title(f"KPM DOS ({kpm.n_moments} moments, resolution {kpm.resolution * 1e3:.0f} meV)")
    ax.figure.savefig(out / "kpm-dos.png", dpi=150)
    plt.close(ax.figure)

    summary = {
        "atoms": len(atoms), "spin_orbitals": ham.n_spin_orbitals, "radius_A": radius,
        "Q": charge, "vbm_eV": gap.vbm, "cbm_eV": gap.cbm, "gap_eV": gap.cbm - gap.vbm,
        "vbm_weight_in_core": core_weight["vbm"], "cbm_weight_in_core": core_weight["cbm"],
        "core_area_fraction": _core_area_fraction(atoms, radius),
        "kpm_states_below_midgap": float(kpm.integrated([mid])[0]), "electrons": n_el,
        **timings,
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=34, help="n x n NiBrI cells (3 atoms each)")
    parser.add_argument("--out", default="out/nibri-antiskyrmion", help="folder for the figures")
    parser.add_argument("--bands", type=int, default=16, help="bands nearest the midgap")
    parser.add_argument("--band-points", type=int, default=7, help="k-points along M-Γ-K")
    args = parser.parse_args()
    s = run(args.size, args.out, args.bands, args.band_points)
    print(f"antiskyrmion: {s['atoms']} atoms ({s['spin_orbitals']} spin-orbitals), "
          f"radius {s['radius_A']:.1f} Å, Q = {s['Q']:+.3f}")
    print(f"predicted in {s['predict_s']:.1f} s (shipped model; SYNTHETIC training data)")
    print(f"gap at Γ {s['gap_eV']:.3f} eV (VBM {s['vbm_eV']:.3f}, CBM {s['cbm_eV']:.3f} eV), "
          f"found in {s['gap_s']:.1f} s")
    print(f"weight within the antiskyrmion radius: VBM {s['vbm_weight_in_core']:.2f}, "
          f"CBM {s['cbm_weight_in_core']:.2f} (area fraction {s['core_area_fraction']:.2f})")
    print(f"KPM: {s['kpm_states_below_midgap']:.1f} states below midgap "
          f"({s['electrons']} electrons) in {s['kpm_s']:.1f} s; bands {s['bands_s']:.1f} s")
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
