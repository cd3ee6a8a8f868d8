"""A small hand-made magnetic tight-binding predictor for the calculator and analysis tests.

Not a conftest (several test folders without ``__init__`` share the module name
``conftest``); the analysis tests import it by adding this folder to ``sys.path``.

Model (eV, Å, μB): Ni carries s + p orbitals, Br one s orbital.  Two-centre Slater–Koster
hoppings (ssσ, spσ, ppσ, ppπ) decaying as ``exp(-(d - 3) / 0.8)`` within 4 Å, a Rashba-like
spin-orbit hopping ``i λ_R (z × d̂)·σ`` between s orbitals, on-site ``λ L·S`` on the Ni p
shell, exchange ``-J M·σ`` on Ni, and a moment-dependent Ni–Ni hopping factor
``1 + 0.05 M_i·M_j / 4``.  Hermitian by construction (``E(-d) = E(d)^T``).  Optionally a
positive-definite s–s overlap.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from ase_hamgnn import OrbitalBasis, TBHamiltonian
from ase_hamgnn.geometry import read_moments

PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]],
                 dtype=np.complex128)
A_LATTICE = 3.5  # Å
CUTOFF = 4.0  # Å

# [Ni (s, px, py, pz), Br (s)] spatial orbitals; indices into the s+p block
_ORBITALS = {"Ni": [0, 1, 2, 3], "Br": [0]}
_ONSITE = {"Ni": np.diag([-1.0, 2.5, 2.5, 2.5]), "Br": np.diag([-4.0])}
_ELECTRONS = {"Ni": 1.0, "Br": 2.0}
_L = np.zeros((3, 4, 4), dtype=np.complex128)  # L_k in (s, x, y, z); (L_k)_ab = -i eps_kab
for _k, _a, _b, _sgn in [(0, 2, 3, 1), (0, 3, 2, -1), (1, 3, 1, 1), (1, 1, 3, -1),
                         (2, 1, 2, 1), (2, 2, 1, -1)]:
    _L[_k, _a, _b] = -1j * _sgn


def _sk_block(d: np.ndarray) -> np.ndarray:
    """Real 4x4 s+p Slater–Koster block for bond vector ``d`` (Å), eV."""
    r = float(np.linalg.norm(d))
    u = d / r
    f = np.exp(-(r - 3.0) / 0.8)
    v_ss, v_sp, v_pps, v_ppp = -0.5 * f, 0.45 * f, 0.7 * f, -0.2 * f
    out = np.zeros((4, 4))
    out[0, 0] = v_ss
    out[0, 1:] = u * v_sp
    out[1:, 0] = -u * v_sp
    out[1:, 1:] = v_ppp * np.eye(3) + (v_pps - v_ppp) * np.outer(u, u)
    return out


class ToyPredictor:
    """Predictor protocol (``basis``, ``predict``, ``n_electrons``) for the toy model above.

    Parameters
    ----------
    overlap : also return an overlap matrix S (non-orthogonal basis).
    declare_magnetic : expose ``magnetic_elements = ('Ni',)``.
    exchange : J in eV/μB.
    """

    basis = OrbitalBasis({"Ni": ["4s", "4p"], "Br": ["4s"]})

    def __init__(self, overlap: bool = False, declare_magnetic: bool = True,
                 exchange: float = 0.75) -> None:
        self.overlap = overlap
        self.exchange = exchange
        self.calls = 0
        if declare_magnetic:
            self.magnetic_elements = ("Ni",)

    def n_electrons(self, atoms: Atoms) -> float:
        return float(sum(_ELECTRONS[s] for s in atoms.get_chemical_symbols()))

    def predict(self, atoms: Atoms) -> TBHamiltonian:
        self.calls += 1
        symbols = atoms.get_chemical_symbols()
        moments = read_moments(atoms)
        blocks: dict = {}
        overlaps: dict | None = {} if self.overlap else None
        for a, el in enumerate(symbols):
            orb = _ORBITALS[el]
            n = len(orb)
            h = np.kron(np.eye(2), _ONSITE[el]).astype(np.complex128)
            if el == "Ni":
                h += np.kron(-self.exchange * np.einsum("a,aij->ij", moments[a], PAULI),
                             np.eye(n))
                h += 0.2 * 0.5 * sum(np.kron(PAULI[k], _L[k]) for k in range(3))
            blocks[(a, a, (0, 0, 0))] = h
            if overlaps is not None:
                overlaps[(a, a, (0, 0, 0))] = np.eye(2 * n)
        i_idx, j_idx, shifts, vecs = neighbor_list("ijSD", atoms, CUTOFF)
        for i, j, s, d in zip(i_idx, j_idx, shifts, vecs, strict=True):
            oi, oj = _ORBITALS[symbols[i]], _ORBITALS[symbols[j]]
            sk = _sk_block(d)[np.ix_(oi, oj)]
            if symbols[i] == symbols[j] == "Ni":
                sk = sk * (1.0 + 0.05 * float(moments[i] @ moments[j]) / 4.0)
            u = d / np.linalg.norm(d)
            f = np.exp(-(np.linalg.norm(d) - 3.0) / 0.8)
            ss = np.zeros((len(oi), len(oj)))
            ss[0, 0] = 1.0
            rashba = 1j * 0.15 * f * np.einsum("a,aij->ij", np.cross([0, 0, 1], u), PAULI)
            key = (int(i), int(j), tuple(int(x) for x in s))
            blocks[key] = np.kron(np.eye(2), sk) + np.kron(rashba, ss)
            if overlaps is not None:
                overlaps[key] = np.kron(np.eye(2), 0.05 * f * ss)
        return TBHamiltonian.from_blocks(self.basis, atoms, blocks, overlaps)


def triangular(a: float = A_LATTICE, moment=(0.0, 0.0, 2.0)) -> Atoms:
    """One Ni per cell on a triangular lattice, 15 Å vacuum, moment in μB."""
    atoms = Atoms("Ni", cell=[[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 15.0]],
                  scaled_positions=[[0, 0, 0.5]], pbc=(True, True, False))
    atoms.set_initial_magnetic_moments([list(moment)])
    return atoms


def nibr(a: float = A_LATTICE, moment=(0.6, 0.0, 1.9)) -> Atoms:
    """Ni + Br per triangular cell (Br above the hollow site), moment on Ni in μB."""
    c = 15.0
    atoms = Atoms("NiBr", cell=[[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]],
                  scaled_positions=[[0, 0, 0.5], [1 / 3, 2 / 3, 0.5 + 1.5 / c]],
                  pbc=(True, True, False))
    atoms.set_initial_magnetic_moments([list(moment), [0.0, 0.0, 0.0]])
    return atoms
