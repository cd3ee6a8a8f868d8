"""Uniform and random moments."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

from ._common import (
    Magnitude,
    Species,
    as_rng,
    magnetic_mask,
    magnitudes,
    unit_vector,
    with_moments,
)

__all__ = ["ferromagnet", "random_moments"]


def ferromagnet(
    atoms: Atoms,
    direction: ArrayLike = (0.0, 0.0, 1.0),
    *,
    magnetic: Species = None,
    magnitude: Magnitude = None,
) -> Atoms:
    """All magnetic moments parallel to one Cartesian direction.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure (not modified).
    direction : array_like
        ``(3,)`` Cartesian direction (normalized here); default +z.
    magnetic : str or sequence of str, optional
        Magnetic species; default: transition metals and rare earths present.
    magnitude : float, dict or array_like, optional
        Moment length (μB): one value, ``{symbol: μB}`` or per atom; default: each
        magnetic atom keeps the size of its moment in ``initial_magmoms`` (only the
        direction is set), and 1 μB where it has none.

    Returns
    -------
    ase.Atoms
        A new structure whose ``initial_magmoms`` is ``(N, 3)`` μB, zero on non-magnetic
        atoms.

    Examples
    --------
    >>> from ase.build import mx2
    >>> import textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> textures.ferromagnet(prim, (1, 0, 0), magnitude={"Ni": 1.6}).get_initial_magnetic_moments()
    array([[1.6, 0. , 0. ],
           [0. , 0. , 0. ],
           [0. , 0. , 0. ]])
    """
    mask = magnetic_mask(atoms, magnetic)
    lengths = magnitudes(atoms, mask, magnitude)
    d = unit_vector(direction, "direction")
    return with_moments(atoms, np.tile(d, (len(atoms), 1)), lengths)


def random_moments(
    atoms: Atoms,
    rng: np.random.Generator | int | None = None,
    *,
    magnetic: Species = None,
    magnitude: Magnitude = None,
) -> Atoms:
    """Moments in independent, uniformly random directions on the unit sphere.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure (not modified).
    rng : numpy.random.Generator or int or None
        Random generator or seed; ``None`` draws a fresh, unseeded generator.
    magnetic, magnitude
        As in :func:`ferromagnet`.

    Returns
    -------
    ase.Atoms
        A new structure whose ``initial_magmoms`` is ``(N, 3)`` μB.

    Examples
    --------
    >>> from ase.build import mx2
    >>> import numpy as np, textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> m = textures.random_moments(prim, rng=7).get_initial_magnetic_moments()
    >>> bool(np.isclose(np.linalg.norm(m[0]), 1.0))
    True
    """
    gen = as_rng(rng)
    mask = magnetic_mask(atoms, magnetic)
    lengths = magnitudes(atoms, mask, magnitude)
    v = gen.normal(size=(len(atoms), 3))
    return with_moments(atoms, v, lengths)
