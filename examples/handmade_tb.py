"""A magnetic tight-binding Hamiltonian written by hand, and its spin-coloured bands.

A triangular lattice with one s orbital per site, nearest-neighbour hopping t, Rashba
spin-orbit hopping i*lambda_R (z x d).sigma and an exchange field -Delta m.sigma along a tilted
moment m: the smallest model with every ingredient of the project's Hamiltonians (spin-major
blocks, complex spin-mixing hoppings, lattice-vector gauge).

Run: python examples/handmade_tb.py [--out DIR]
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _output import output_folder  # examples/ is on sys.path
from ase import Atoms

from ase_hamgnn import OrbitalBasis, TBHamiltonian
from ase_hamgnn.symmetry import PAULI


def triangular_rashba_ferromagnet(t=1.0, rashba=0.3, delta=0.8, moment=(0.0, 0.6, 0.8), a=3.0):
    """Hamiltonian (eV) of the model above; ``moment`` is the direction of m (normalized)."""
    atoms = Atoms("Fe", cell=[[a, 0, 0], [-a / 2, a * 3**0.5 / 2, 0], [0, 0, 15]],
                  pbc=[True, True, False])
    m = np.asarray(moment, float) / np.linalg.norm(moment)
    atoms.set_initial_magnetic_moments([2.0 * m])
    blocks = {(0, 0, (0, 0, 0)): -delta * np.einsum("a,aij->ij", m, PAULI)}
    for r in [(1, 0, 0), (0, 1, 0), (-1, -1, 0)]:
        d = np.asarray(r) @ atoms.cell.array
        d /= np.linalg.norm(d)
        zxd = np.cross([0, 0, 1], d)
        hop = -t * np.eye(2) + 1j * rashba * np.einsum("a,aij->ij", zxd, PAULI)
        blocks[(0, 0, r)] = hop
        blocks[(0, 0, tuple(-x for x in r))] = hop.conj().T
    return TBHamiltonian.from_blocks(OrbitalBasis({"Fe": ["4s"]}), atoms, blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="folder for the figure")
    args = parser.parse_args()
    out = output_folder(args.out)
    ham = triangular_rashba_ferromagnet()
    path = ham.to_atoms().cell.bandpath("GMKG", npoints=150, pbc=ham.geometry.pbc)
    bands = ham.bands(path)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), constrained_layout=True)
    bands.plot(ax=axes[0], axis="z")
    bands.plot(ax=axes[1], axis="x")
    axes[0].set_title(r"spin $\langle\sigma_z\rangle$")
    axes[1].set_title(r"spin $\langle\sigma_x\rangle$")
    fig.savefig(out / "handmade_bands.png", dpi=150)
    print(f"{ham}\nbands at Gamma (eV): {np.round(bands.energies[0], 3)}")
    print(f"wrote {out / 'handmade_bands.png'}")


if __name__ == "__main__":
    main()
