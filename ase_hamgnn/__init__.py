"""ase-hamgnn: equivariant graph networks for non-collinear, spin-orbit-coupled tight-binding
Hamiltonians of magnetic textures, with an ASE calculator and analyses.

The public surface is re-exported here; see ``DESIGN`` conventions in :mod:`ase_hamgnn.basis`
(orbital order, spin-major layout) and :mod:`ase_hamgnn.hamiltonian` (gauge, storage).
"""

from ase_hamgnn.basis import OrbitalBasis, Shell
from ase_hamgnn.errors import BasisError, BlockShapeError, HamGNNError, HermiticityError
from ase_hamgnn.geometry import Geometry, read_moments
from ase_hamgnn.hamiltonian import TBHamiltonian
from ase_hamgnn.spectra import Bands

__all__ = [
    "Bands",
    "BasisError",
    "BlockShapeError",
    "Geometry",
    "HamGNNError",
    "HermiticityError",
    "OrbitalBasis",
    "Shell",
    "TBHamiltonian",
    "read_moments",
]

__version__ = "0.1.0"
