"""Analyses of a :class:`~ase_hamgnn.TBHamiltonian`: projected densities of states, band
unfolding, Berry curvature, Chern numbers and Hall conductivity, magnetic anisotropy and
local moments, and real-space maps of single states (weight, spin and orbital character
per atom).  They take the Hamiltonian object, never the calculator or the model.

Band structures with spin colouring and the total DOS live on the Hamiltonian itself
(:meth:`~ase_hamgnn.TBHamiltonian.bands`, :meth:`~ase_hamgnn.TBHamiltonian.dos`).
"""

from ase_hamgnn.analysis.dos import (
    GROUPINGS,
    PDOS,
    orbital_groups,
    projected_dos,
    state_projections,
)
from ase_hamgnn.analysis.unfolding import UnfoldedBands, UnfoldingMap, unfold
from ase_hamgnn.spectra.projections import local_axes, mulliken_charge_spin

__all__ = [
    "GROUPINGS",
    "PDOS",
    "UnfoldedBands",
    "UnfoldingMap",
    "local_axes",
    "mulliken_charge_spin",
    "orbital_groups",
    "projected_dos",
    "state_projections",
    "unfold",
]

from ase_hamgnn.analysis.magnetism import (  # noqa: E402
    AnisotropyEnergy,
    BandEnergy,
    LocalMoments,
    anisotropy_energy,
    band_energy,
    local_moments,
    rotate_exchange,
    rotate_moments,
)
from ase_hamgnn.analysis.spectral import (  # noqa: E402
    SpectralFunction,
    plot_unfolded_vs_reference,
    unfolded_spectral_function,
)
from ase_hamgnn.analysis.states import (  # noqa: E402
    OrbitalWeights,
    atom_orbital_weights,
    atom_spin,
    atom_weights,
    plot_edge_state_maps,
    plot_state_density,
    plot_state_on_texture,
    plot_state_spin,
)
from ase_hamgnn.analysis.topology import (  # noqa: E402
    E2_OVER_H_SIEMENS,
    BandGroup,
    BerryCurvature,
    HallConductivity,
    berry_curvature,
    chern_numbers,
    hall_conductivity,
    plane_directions,
)

__all__ += [
    "OrbitalWeights",
    "atom_orbital_weights",
    "atom_spin",
    "atom_weights",
    "plot_edge_state_maps",
    "plot_state_density",
    "plot_state_on_texture",
    "plot_state_spin",
]
__all__ += [
    "E2_OVER_H_SIEMENS",
    "AnisotropyEnergy",
    "BandEnergy",
    "BandGroup",
    "BerryCurvature",
    "HallConductivity",
    "LocalMoments",
    "anisotropy_energy",
    "band_energy",
    "berry_curvature",
    "chern_numbers",
    "hall_conductivity",
    "local_moments",
    "plane_directions",
    "rotate_exchange",
    "rotate_moments",
]
__all__ += [
    "SpectralFunction",
    "plot_unfolded_vs_reference",
    "unfolded_spectral_function",
]
