"""Analyses of a :class:`~ase_hamgnn.TBHamiltonian`: projected densities of states and band
unfolding.  They take the Hamiltonian object, never the calculator or the model.

Band structures with spin colouring and the total DOS live on the Hamiltonian itself
(:meth:`~ase_hamgnn.TBHamiltonian.bands`, :meth:`~ase_hamgnn.TBHamiltonian.dos`).
"""

from ase_hamgnn.analysis.dos import (
    GROUPINGS,
    PDOS,
    local_axes,
    mulliken_charge_spin,
    projected_dos,
    state_projections,
)
from ase_hamgnn.analysis.unfolding import UnfoldedBands, UnfoldingMap, unfold

__all__ = [
    "GROUPINGS",
    "PDOS",
    "UnfoldedBands",
    "UnfoldingMap",
    "local_axes",
    "mulliken_charge_spin",
    "projected_dos",
    "state_projections",
    "unfold",
]
