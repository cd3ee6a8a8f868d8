"""Exception classes of ase-hamgnn.

Every input check raises one of these (or a plain ``ValueError``/``TypeError``); each class
derives from the builtin that fits, so callers may catch either.
"""

from __future__ import annotations

__all__ = [
    "BasisError",
    "BlockShapeError",
    "HamGNNError",
    "HermiticityError",
]


class HamGNNError(Exception):
    """Base class of all ase-hamgnn errors."""


class BasisError(HamGNNError, KeyError, ValueError):
    """An element is missing from an :class:`~ase_hamgnn.basis.OrbitalBasis`, or a shell is
    malformed."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class BlockShapeError(HamGNNError, ValueError):
    """A Hamiltonian or overlap block does not have the shape the basis asks for."""


class HermiticityError(HamGNNError, ValueError):
    """The blocks violate ``H_ji(-R) = H_ij(R)^dagger`` beyond the tolerance."""
