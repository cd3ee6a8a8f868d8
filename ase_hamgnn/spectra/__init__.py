"""Spectra of a :class:`~ase_hamgnn.TBHamiltonian`: what a Hamiltonian's eigenvalues say.

- :mod:`~ase_hamgnn.spectra.kpoints`: the one k-point parser (``kpts=(n1, n2, n3)`` is ASE's
  Monkhorst–Pack mesh everywhere);
- :mod:`~ase_hamgnn.spectra.dense`: dense eigensolvers, band structures with spin, DOS and
  the Fermi level;
- :mod:`~ase_hamgnn.spectra.occupations`: filling spinor states at a fixed electron count;
- :mod:`~ase_hamgnn.spectra.projections`: spin and orbital projections of states;
- :mod:`~ase_hamgnn.spectra.kpm`: the kernel polynomial method for large Hamiltonians;
- :mod:`~ase_hamgnn.spectra.shift_invert`: sparse factorizations near an energy (SuperLU or
  MUMPS), behind one small interface;
- :mod:`~ase_hamgnn.spectra.gap`, :mod:`~ase_hamgnn.spectra.edge_bands`: gap, band edges and
  bands next to the gap of large supercells, built on shift-invert;
- :mod:`~ase_hamgnn.spectra.kinterp`: interpolation in k along a path.
"""

from ase_hamgnn.spectra.dense import (
    Bands,
    all_eigenvalues,
    bands,
    broaden,
    dense_eigh,
    dos,
    fermi_level,
    progress_bar,
    shift_invert_eigh,
)
from ase_hamgnn.spectra.edge_bands import EdgeBands, edge_bands
from ase_hamgnn.spectra.gap import EdgeStates, Gap, MetallicError, edge_states, find_gap
from ase_hamgnn.spectra.kpm import (
    KPMDOS,
    chebyshev_density,
    chebyshev_vectors,
    jackson_kernel,
    kpm_dos,
    spectral_bounds,
)
from ase_hamgnn.spectra.kpoints import kmesh, kpoints_and_weights, parse_kpts, resolve_kpts
from ase_hamgnn.spectra.occupations import (
    K_BOLTZMANN_EV,
    Occupations,
    fermi_dirac,
    fermi_level_from_eigenvalues,
    occupy,
)
from ase_hamgnn.spectra.projections import axis_vector, local_axes, mulliken_charge_spin
from ase_hamgnn.spectra.shift_invert import BACKENDS, ShiftInvert, default_backend

__all__ = [
    "BACKENDS",
    "K_BOLTZMANN_EV",
    "KPMDOS",
    "Bands",
    "EdgeBands",
    "EdgeStates",
    "Gap",
    "MetallicError",
    "Occupations",
    "ShiftInvert",
    "all_eigenvalues",
    "axis_vector",
    "bands",
    "broaden",
    "chebyshev_density",
    "chebyshev_vectors",
    "default_backend",
    "dense_eigh",
    "dos",
    "edge_bands",
    "edge_states",
    "fermi_dirac",
    "fermi_level",
    "fermi_level_from_eigenvalues",
    "find_gap",
    "jackson_kernel",
    "kmesh",
    "kpm_dos",
    "kpoints_and_weights",
    "local_axes",
    "mulliken_charge_spin",
    "occupy",
    "parse_kpts",
    "progress_bar",
    "resolve_kpts",
    "shift_invert_eigh",
    "spectral_bounds",
]
