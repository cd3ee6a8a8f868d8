"""Magnetic space group of a texture, from spglib's magnetic symmetry search."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import spglib
from ase import Atoms
from numpy.typing import ArrayLike

from ._common import moment_vectors
from ._errors import TextureError

__all__ = ["MagneticSymmetry", "magnetic_symmetry"]

_SPGLIB_ERRORS: tuple[type[Exception], ...] = tuple(
    e for e in [getattr(getattr(spglib, "error", None), "SpglibError", None)] if e is not None
)


@dataclass(frozen=True)
class MagneticSymmetry:
    """The magnetic space group of a structure with (non-collinear) moments.

    Attributes
    ----------
    rotations : numpy.ndarray
        ``(n_operations, 3, 3)`` int, rotation parts in fractional coordinates of the cell.
    translations : numpy.ndarray
        ``(n_operations, 3)`` float, fractional translations.
    time_reversals : numpy.ndarray
        ``(n_operations,)`` bool, whether each operation is combined with time reversal.
    uni_number : int or None
        UNI number (1-1651) of the magnetic space-group type; ``None`` when spglib cannot
        identify the type from the operations (it fails for some non-standard settings).
    bns_number : str or None
        Belov–Neronova–Smirnova number, e.g. ``"164.89"``.
    og_number : str or None
        Opechowski–Guccione number.
    """

    rotations: np.ndarray
    translations: np.ndarray
    time_reversals: np.ndarray
    uni_number: int | None = None
    bns_number: str | None = None
    og_number: str | None = None

    @property
    def n_operations(self) -> int:
        """Number of operations in the cell given (pure translations included)."""
        return len(self.rotations)

    @property
    def n_point_operations(self) -> int:
        """Number of distinct (rotation, time reversal) pairs: the magnetic point group order."""
        ops = zip(self.rotations, self.time_reversals, strict=True)
        return len({(r.tobytes(), bool(t)) for r, t in ops})

    @property
    def msg_type(self) -> int:
        """Type of the magnetic space group: 1 (no time reversal), 2 (grey: time reversal
        alone), 3 (time reversal only with rotations) or 4 (with anti-translations)."""
        identity = np.all(self.rotations == np.eye(3, dtype=int), axis=(1, 2))
        anti = identity & self.time_reversals
        if not self.time_reversals.any():
            return 1
        if not anti.any():
            return 3
        t = self.translations[anti]
        return 2 if np.any(np.all(np.abs(t - np.round(t)) < 1e-6, axis=1)) else 4


def magnetic_symmetry(
    atoms: Atoms,
    *,
    moments: ArrayLike | None = None,
    symprec: float = 1e-5,
    mag_symprec: float = 1e-4,
) -> MagneticSymmetry:
    """The magnetic space group of ``atoms`` with its non-collinear moments.

    Moments are treated as axial vectors in Cartesian coordinates (even under inversion,
    odd under time reversal), as spin-orbit-coupled physics requires; collinear ``(N,)``
    moments are taken along Cartesian z. Species are distinguished by atomic number. The
    operations are those of the periodic structure that are integer matrices in the basis of
    the cell given (a supercell whose lattice has lower symmetry than the crystal lists
    fewer rotations).

    Parameters
    ----------
    atoms : ase.Atoms
        The structure with ``initial_magmoms``.
    moments : array_like, optional
        ``(N, 3)`` moments (μB) to use instead of ``initial_magmoms``.
    symprec : float
        Position tolerance (Å).
    mag_symprec : float
        Moment tolerance (μB).

    Returns
    -------
    MagneticSymmetry
        Operations and, when spglib identifies it, the group type.

    Examples
    --------
    >>> from ase.build import mx2
    >>> import textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> sym = textures.magnetic_symmetry(textures.ferromagnet(prim, (0, 0, 1)))
    >>> sym.n_operations, sym.bns_number, sym.msg_type
    (12, '164.89', 3)
    """
    m = moment_vectors(atoms, moments)
    lattice = np.array(atoms.cell, dtype=float)
    cell = (lattice, atoms.get_scaled_positions(wrap=True), atoms.numbers, m)
    reason = ""
    with warnings.catch_warnings():
        # spglib >= 2.7 warns about its legacy error reporting; errors are handled here
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            ops = spglib.get_magnetic_symmetry(
                cell, symprec=symprec, mag_symprec=mag_symprec, is_axial=True
            )
        except _SPGLIB_ERRORS as exc:
            ops, reason = None, str(exc)
        if ops is None:
            reason = reason or str(spglib.get_error_message())
            raise TextureError(
                f"spglib found no magnetic symmetry ({reason}); check that atoms do not "
                "overlap, or pass a larger symprec (Å)"
            )
        try:
            kind = spglib.get_magnetic_spacegroup_type_from_symmetry(
                ops["rotations"], ops["translations"], ops["time_reversals"], lattice, symprec
            )
        except _SPGLIB_ERRORS:
            kind = None
    return MagneticSymmetry(
        rotations=np.array(ops["rotations"], dtype=int),
        translations=np.array(ops["translations"], dtype=float),
        time_reversals=np.array(ops["time_reversals"], dtype=bool),
        uni_number=None if kind is None else int(kind.uni_number),
        bns_number=None if kind is None else str(kind.bns_number),
        og_number=None if kind is None else str(kind.og_number),
    )
