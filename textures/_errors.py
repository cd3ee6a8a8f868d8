"""Exception classes of the spin-texture toolkit.

Every input check of :mod:`textures` raises one of these classes (or a plain ``TypeError``
for arguments of the wrong kind). All derive from :class:`TextureError`, itself a
``ValueError``, so callers may catch either.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "CellTooSmallError",
    "IncommensurateError",
    "NoLayerError",
    "SpeciesError",
    "TextureError",
]


class TextureError(ValueError):
    """Base class of every error raised by :mod:`textures`."""


class SpeciesError(TextureError):
    """An unknown chemical symbol, a species absent from the structure, or no magnetic
    species at all."""


class NoLayerError(TextureError):
    """The structure has no 2D layer in which the texture (or its topological charge) can be
    defined, e.g. a bulk 3D supercell whose magnetic atoms sit at many heights."""


class CellTooSmallError(TextureError):
    """The requested object (skyrmion radius, skyrmion lattice) does not fit in the cell."""


class IncommensurateError(TextureError):
    """A wave vector is not commensurate with the periodic cell.

    Attributes
    ----------
    q : numpy.ndarray
        The requested wave vector, fractional reciprocal units of the primitive cell.
    nearest_q : numpy.ndarray
        The closest wave vector that the present cell accommodates (same units).
    reps : tuple of int
        Diagonal repetitions of the primitive cell that accommodate (a rational
        approximation of) ``q``.
    """

    def __init__(
        self, message: str, q: Sequence[float], nearest_q: Sequence[float], reps: Sequence[int]
    ) -> None:
        super().__init__(message)
        self.q = np.asarray(q, dtype=float)
        self.nearest_q = np.asarray(nearest_q, dtype=float)
        self.reps = tuple(int(r) for r in reps)
