"""Bands, DOS and unfolded bands of monolayer NiBrI, ferromagnetic and as a spin spiral.

The Hamiltonians come from the SYNTHETIC reference tight-binding model
(:class:`ase_hamgnn.data.ReferenceTB`, a stand-in for spin-constrained DFT, not DFT) through
the ASE calculator; swap in a trained model with ``HamGNNCalc(model="model.pt")``.

1. Ferromagnet (moments along z): Fermi level and gap with ASE's own ``bandgap``, bands
   coloured by <sigma_z>, DOS projected on shells and split into spin up / down.
2. Cycloidal spin spiral in a 6 x 1 supercell: its bands unfolded onto the primitive
   Brillouin zone (Ku–Berlijn–Lee weights) next to the ferromagnet's, coloured by the spin
   along the local moments, and the PDOS per element split into majority / minority.

Run: python examples/bands_and_dos.py [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _output import output_folder  # examples/ is on sys.path
from ase.dft.bandgap import bandgap

import textures
from ase_hamgnn.analysis import UnfoldingMap, projected_dos, unfold
from ase_hamgnn.calculator import HamGNNCalc
from ase_hamgnn.data import ReferenceTB, nibri

N_SPIRAL = 6  # supercell length along a1; the spiral's period
N_PATH = 120  # k-points along the primitive path G-M-K-G


def ferromagnet(ref: ReferenceTB, out: Path) -> tuple[float, object]:
    prim = nibri()
    prim.calc = HamGNNCalc(model=ref, kpts=(12, 12, 1))
    ef = prim.calc.get_fermi_level()
    gap, (_, k_vbm, _), (_, k_cbm, _) = bandgap(prim.calc)  # ASE's own gap finder
    kpts = prim.calc.get_ibz_k_points()
    print(f"ferromagnet: {len(prim)} atoms, {prim.calc.get_number_of_bands()} bands, "
          f"E_F = {ef:.3f} eV, gap = {gap:.3f} eV (VBM at k = {np.round(kpts[k_vbm], 3)}, "
          f"CBM at k = {np.round(kpts[k_cbm], 3)})")
    ham = prim.calc.get_hamiltonian()
    path = prim.cell.bandpath("GMKG", npoints=N_PATH, pbc=prim.pbc)
    bands = ham.bands(path)  # spin expectation per state

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1, 1.3]})
    bands.plot(ax=axes[0], axis="z", reference=ef, emin=-4, emax=3)
    axes[0].set_title(r"NiBrI ferromagnet, bands coloured by $\langle\sigma_z\rangle$")
    grid = np.linspace(ef - 4, ef + 3, 700)
    pdos = projected_dos(ham, (18, 18, 1), grid, by="shell", spin_axis="z", width=0.06)
    pdos.plot(ax=axes[1], reference=ef, emin=-4, emax=3, fill=False)
    axes[1].set_title("projected DOS (up > 0, down < 0)")
    path_png = out / "nibri_fm_bands_pdos.png"
    fig.savefig(path_png, dpi=150)
    plt.close(fig)
    print(f"wrote {path_png}")
    return ef, bands


def spiral(ref: ReferenceTB, fm_bands, fm_ef: float, out: Path) -> None:
    prim = nibri()
    sc = textures.supercell(prim, (N_SPIRAL, 1, 1))
    sc = textures.spin_spiral(sc, q=(1 / N_SPIRAL, 0, 0), magnetic=("Ni",), magnitude=2.0)
    sc.calc = HamGNNCalc(model=ref, kpts=(2, 12, 1))
    ef = sc.calc.get_fermi_level()
    gap, _, _ = bandgap(sc.calc)
    ham = sc.calc.get_hamiltonian()
    print(f"spin spiral q = (1/{N_SPIRAL}, 0, 0): {len(sc)} atoms, "
          f"{ham.n_spin_orbitals} spin-orbitals, E_F = {ef:.3f} eV, gap = {gap:.3f} eV")

    umap = UnfoldingMap.from_structures(prim, sc)
    path = prim.cell.bandpath("GMKG", npoints=N_PATH, pbc=prim.pbc)
    unfolded = unfold(ham, umap, path)
    print(f"unfolded {unfolded.energies.shape[1]} states at {len(path.kpts)} k; weights sum "
          f"per k = {unfolded.weights.sum(axis=1).mean():.6f} (primitive spin-orbitals "
          f"{ref.basis.spin_orbital_offsets(prim.numbers)[-1]})")

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3), constrained_layout=True)
    fm = fm_bands.energies - fm_ef
    x = path.get_linear_kpoint_axis()[0]
    axes[0].plot(x, fm, color="0.6", lw=0.8)
    unfolded.plot(ax=axes[0], reference=ef, emin=-4, emax=3, size=10, color="C3")
    axes[0].set_title("spiral unfolded (red) vs ferromagnet (grey),\n"
                      "each from its own midgap $E_F$", fontsize="medium")
    unfolded.plot(ax=axes[1], reference=ef, emin=-4, emax=3, size=10, axis="local")
    axes[1].set_title("unfolded, coloured by the spin\nalong the local moment",
                      fontsize="medium")
    unfolded.plot(ax=axes[2], mode="image", reference=ef, emin=-4, emax=3, width=0.05)
    axes[2].set_title("spectral function A(k, E),\n50 meV Gaussian", fontsize="medium")
    for ax in axes:
        ax.set_ylabel(r"$E - E_F$ (eV)")
        ax.axhline(0.0, color="k", lw=0.8, ls="--")
        ax.annotate(r"$E_F$", (1.0, 0.0), xycoords=("axes fraction", "data"), xytext=(-3, 2),
                    textcoords="offset points", ha="right", va="bottom", fontsize="small")
    path_png = out / "nibri_spiral_unfolded.png"
    fig.savefig(path_png, dpi=150)
    plt.close(fig)
    print(f"wrote {path_png}")

    grid = np.linspace(ef - 4, ef + 3, 700)
    pdos = projected_dos(ham, (2, 12, 1), grid, by="element", spin_axis="local", width=0.08)
    ax = pdos.plot(reference=ef, emin=-4, emax=3)
    ax.set_title(f"NiBrI spin spiral ({N_SPIRAL} x 1): PDOS, majority / minority")
    path_png = out / "nibri_spiral_pdos.png"
    ax.figure.savefig(path_png, dpi=150)
    plt.close(ax.figure)
    print(f"wrote {path_png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="folder for the figures")
    args = parser.parse_args()
    out = output_folder(args.out)
    ref = ReferenceTB("nibri")
    print(ref)
    ef, bands = ferromagnet(ref, out)
    spiral(ref, bands, ef, out)


if __name__ == "__main__":
    main()
