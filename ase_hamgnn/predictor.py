"""The predictor protocol: anything that turns ``Atoms`` with moments into a Hamiltonian.

The trained HamGNN++ model and the synthetic reference model
(:class:`ase_hamgnn.data.ReferenceTB`) both satisfy it, so the calculator and every analysis
accept either.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ase import Atoms

from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.hamiltonian import TBHamiltonian

__all__ = ["Predictor"]


@runtime_checkable
class Predictor(Protocol):
    """``predict(atoms) -> TBHamiltonian`` plus the basis and electron count it implies.

    Attributes
    ----------
    basis : OrbitalBasis
        Orbitals of every element the predictor knows.
    """

    basis: OrbitalBasis

    def predict(self, atoms: Atoms) -> TBHamiltonian:
        """Hamiltonian of ``atoms``; moments from ``initial_magmoms`` ((N, 3) μB, or (N,)
        meaning along z)."""
        ...

    def n_electrons(self, atoms: Atoms) -> float:
        """Number of valence electrons the basis holds for ``atoms`` (fills the spin-orbitals
        up to the Fermi level)."""
        ...
