"""Hand-made magnetic tight-binding Hamiltonians shared by the tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from ase import Atoms

from ase_hamgnn import OrbitalBasis, TBHamiltonian

#: The smallest HamGNN++ network worth training in a test: a ``[model]`` table for TOML configs.
TINY_MODEL_TOML = """
[model]
node_irreps = "8x0e+2x0o+4x1o+4x1e+2x2e+2x2o+1x3o+1x3e"
pair_multiplicity = 1
n_layers = 1
lmax_sh = 3
n_radial = 4
radial_hidden = 8
"""


def spin_major_indices(basis: OrbitalBasis, numbers) -> tuple[np.ndarray, np.ndarray]:
    """Global spin-up and spin-down indices of every spatial orbital, in orbital order."""
    counts = basis.orbital_counts(numbers)
    so_off = basis.spin_orbital_offsets(numbers)
    up = np.concatenate([so_off[a] + np.arange(n) for a, n in enumerate(counts)])
    dn = np.concatenate([so_off[a] + n + np.arange(n) for a, n in enumerate(counts)])
    return up, dn


def random_tb(
    rng: np.random.Generator,
    atoms: Atoms,
    basis: OrbitalBasis,
    overlap: bool = False,
    scale: float = 1.0,
) -> TBHamiltonian:
    """A random Hermitian Hamiltonian with nearest-image hoppings (R in {-1,0,1} along the
    periodic directions) and, optionally, a positive-definite spin-diagonal overlap."""
    n = int(basis.spin_orbital_offsets(atoms.numbers)[-1])
    n_orb = n // 2
    ranges = [range(-1, 2) if p else range(1) for p in atoms.pbc]
    vectors = [(a, b, c) for a in ranges[0] for b in ranges[1] for c in ranges[2]]
    half = [r for r in vectors if r > (0, 0, 0)]
    h: dict = {}
    for r in half:
        a = scale * (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) * 0.3
        h[r] = a
        h[tuple(-x for x in r)] = a.conj().T
    a0 = scale * (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))
    h[(0, 0, 0)] = 0.5 * (a0 + a0.conj().T)
    s = None
    if overlap:
        up, dn = spin_major_indices(basis, atoms.numbers)
        s = {}
        for r in half:
            b = 0.03 * rng.normal(size=(n_orb, n_orb))
            s[r], s[tuple(-x for x in r)] = _embed(b, up, dn, n), _embed(b.T, up, dn, n)
        b0 = 0.03 * rng.normal(size=(n_orb, n_orb))
        s[(0, 0, 0)] = _embed(np.eye(n_orb) + 0.5 * (b0 + b0.T), up, dn, n)
    return TBHamiltonian(basis, atoms, h, s)


def _embed(orb: np.ndarray, up: np.ndarray, dn: np.ndarray, n: int) -> sp.csr_matrix:
    out = np.zeros((n, n), dtype=np.complex128)
    out[np.ix_(up, up)] = orb
    out[np.ix_(dn, dn)] = orb
    return sp.csr_matrix(out)
