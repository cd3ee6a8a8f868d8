"""Unit conversions of foreign DFT formats, in one place.

ase-hamgnn works in Å, eV and μB (see DESIGN §1).  DFT codes that write atomic units (OpenMX's
``.scfout`` stores Hartree and Bohr) are converted with the constants below, CODATA 2018.
OpenMX itself prints with slightly older constants (27.2113845 eV, 0.529177249 Å); the
difference (below 1e-7 relative) is far below the accuracy of any DFT Hamiltonian.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BOHR_IN_ANGSTROM", "HARTREE_IN_EV", "angstrom_to_bohr", "bohr_to_angstrom",
           "ev_to_hartree", "hartree_to_ev"]

#: One Hartree in eV (CODATA 2018).
HARTREE_IN_EV = 27.211386245988
#: One Bohr radius in Å (CODATA 2018).
BOHR_IN_ANGSTROM = 0.529177210903


def hartree_to_ev(value: Any) -> Any:
    """Energies (scalar or array) from Hartree to eV.

    Examples
    --------
    >>> round(float(hartree_to_ev(1.0)), 6)
    27.211386
    """
    return np.multiply(value, HARTREE_IN_EV)


def ev_to_hartree(value: Any) -> Any:
    """Energies (scalar or array) from eV to Hartree; inverse of :func:`hartree_to_ev`."""
    return np.divide(value, HARTREE_IN_EV)


def bohr_to_angstrom(value: Any) -> Any:
    """Lengths (scalar or array) from Bohr to Å.

    Examples
    --------
    >>> round(float(bohr_to_angstrom(1.0)), 6)
    0.529177
    """
    return np.multiply(value, BOHR_IN_ANGSTROM)


def angstrom_to_bohr(value: Any) -> Any:
    """Lengths (scalar or array) from Å to Bohr; inverse of :func:`bohr_to_angstrom`."""
    return np.divide(value, BOHR_IN_ANGSTROM)
