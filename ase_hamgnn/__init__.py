"""ase-hamgnn: equivariant graph networks for non-collinear, spin-orbit-coupled tight-binding
Hamiltonians of magnetic textures, with an ASE calculator and analyses.

The public surface is re-exported here; conventions (orbital order, spin-major layout) are in
:mod:`ase_hamgnn.basis`, the gauge and storage in :mod:`ase_hamgnn.hamiltonian`.  The
network (``load_model``, ``list_models``) is imported on first use, so ``import ase_hamgnn``
stays light.
"""

from typing import Any

from ase_hamgnn import _moved
from ase_hamgnn.basis import OrbitalBasis, Shell
from ase_hamgnn.errors import (
    BasisError,
    BlockShapeError,
    CellError,
    CheckpointError,
    ConfigError,
    DatasetChangedError,
    DatasetError,
    DenseSizeError,
    HamGNNError,
    HamiltonianFileError,
    HermiticityError,
    IntegerValueError,
    KPointError,
    MissingMomentsError,
    MomentError,
    MomentRangeWarning,
    NonFiniteError,
    OverlappingAtomsError,
    StructureError,
    TrainingDivergedError,
)
from ase_hamgnn.geometry import Geometry, read_moments
from ase_hamgnn.hamiltonian import TBHamiltonian
from ase_hamgnn.predictor import Predictor
from ase_hamgnn.spectra.dense import Bands
from ase_hamgnn.spectra.edge_bands import EdgeBands, edge_bands
from ase_hamgnn.spectra.gap import EdgeStates, Gap, MetallicError, edge_states, find_gap
from ase_hamgnn.spectra.kpm import KPMDOS, kpm_dos
from ase_hamgnn.spectra.shift_invert import ShiftInvert

__all__ = [
    "KPMDOS",
    "Bands",
    "EdgeBands",
    "EdgeStates",
    "Gap",
    "MetallicError",
    "ShiftInvert",
    "edge_bands",
    "edge_states",
    "find_gap",
    "kpm_dos",
    "BasisError",
    "BlockShapeError",
    "CellError",
    "CheckpointError",
    "ConfigError",
    "DatasetChangedError",
    "DatasetError",
    "DenseSizeError",
    "Geometry",
    "HamGNNCalc",
    "HamGNNError",
    "HamiltonianFileError",
    "HermiticityError",
    "IntegerValueError",
    "KPointError",
    "MissingMomentsError",
    "MomentError",
    "MomentRangeWarning",
    "NonFiniteError",
    "OrbitalBasis",
    "OverlappingAtomsError",
    "Predictor",
    "Shell",
    "StructureError",
    "TBHamiltonian",
    "TrainingDivergedError",
    "list_models",
    "load_model",
    "read_moments",
]

__version__ = "0.1.0"

_moved.install()  # old module paths (before the folder layout) still import, with a warning

_LAZY = {
    "HamGNNCalc": ("ase_hamgnn.calculator", "HamGNNCalc"),
    "load_model": ("ase_hamgnn.model", "load_model"),
    "list_models": ("ase_hamgnn.model", "list_models"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ase_hamgnn' has no attribute {name!r}")
