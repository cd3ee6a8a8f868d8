"""Quantum transport through Kwant: a :class:`~ase_hamgnn.TBHamiltonian` becomes a Kwant
system with leads, and the scattering problem gives transmissions and local maps.

- :mod:`~ase_hamgnn.transport.export`: Kwant builders, lattices and leads
  (:func:`to_kwant_system`), with the checks that make a lead match its scattering region;
- :mod:`~ase_hamgnn.transport.orthogonalize`: Löwdin orthogonalization, for consumers that
  need ``S = 1``;
- :mod:`~ase_hamgnn.transport.scattering`: transmission, spin transmission, local density and
  current maps and their plots;
- :mod:`~ase_hamgnn.transport.sweep`: the energy sweep that reuses MUMPS's symbolic analysis
  and the mirror-image lead modes.
"""

from ase_hamgnn.transport.export import (
    OVERLAP_ENERGY,
    KwantExportError,
    LeadDirectionError,
    LeadMismatchError,
    LeadPeriodError,
    SpinConservationError,
    bloch_params,
    hopping_blocks,
    kwant_lattice,
    spin_matrix,
    to_kwant,
    to_kwant_periodic,
    to_kwant_system,
)
from ase_hamgnn.transport.orthogonalize import lowdin_orthogonalize
from ase_hamgnn.transport.scattering import (
    LocalMaps,
    SpinTransmission,
    TransmissionCurve,
    lead_modes,
    local_maps,
    plot_current,
    plot_spin_density,
    plot_transmission,
    spin_transmission,
    transmission,
)

__all__ = [
    "OVERLAP_ENERGY",
    "KwantExportError",
    "LeadDirectionError",
    "LeadMismatchError",
    "LeadPeriodError",
    "LocalMaps",
    "SpinConservationError",
    "SpinTransmission",
    "TransmissionCurve",
    "bloch_params",
    "hopping_blocks",
    "kwant_lattice",
    "lead_modes",
    "local_maps",
    "lowdin_orthogonalize",
    "plot_current",
    "plot_spin_density",
    "plot_transmission",
    "spin_matrix",
    "spin_transmission",
    "to_kwant",
    "to_kwant_periodic",
    "to_kwant_system",
    "transmission",
]
