"""Shared helpers: which atoms are magnetic, how large their moments are, unit vectors.

Default magnetic species
------------------------
When ``magnetic`` is not given, the magnetic atoms are those of the transition metals of
groups 3-11 in periods 4-6 (Sc-Cu, Y-Ag, Hf-Au) and of the rare earths (Sc, Y, La-Lu), i.e.
atomic numbers 21-29, 39-47 and 57-79. Closed-shell group-12 metals (Zn, Cd, Hg), main-group
elements and actinides are non-magnetic by default; name them in ``magnetic`` to include them.

Magnitudes
----------
``magnitude`` (μB) is one number for all magnetic atoms, a ``{symbol: μB}`` dict with one
entry per magnetic species, a per-atom array of length ``len(atoms)`` whose entries on
non-magnetic atoms are ignored, or ``None``: then every magnetic atom keeps the size
``|m|`` of the moment it already carries in ``initial_magmoms`` (only its direction is set),
and a magnetic atom without a moment gets :data:`DEFAULT_MAGNITUDE` (1 μB).  So a texture
built on a structure that carries its moments (e.g. Ni 2 μB) keeps their sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from numpy.typing import ArrayLike

from ._errors import SpeciesError, TextureError

__all__ = [
    "DEFAULT_MAGNETIC_NUMBERS",
    "DEFAULT_MAGNITUDE",
    "Magnitude",
    "Species",
    "as_rng",
    "magnetic_mask",
    "magnitudes",
    "moment_vectors",
    "unit_vector",
    "with_moments",
]

#: Atomic numbers that are magnetic when ``magnetic`` is not given (see module docstring).
DEFAULT_MAGNETIC_NUMBERS: frozenset[int] = frozenset(
    [*range(21, 30), *range(39, 48), *range(57, 80)]
)

#: Moment size (μB) of a magnetic atom when neither ``magnitude`` nor the atom's own
#: ``initial_magmoms`` give one.
DEFAULT_MAGNITUDE = 1.0

Species: TypeAlias = str | Sequence[str] | None
Magnitude: TypeAlias = float | Mapping[str, float] | ArrayLike | None


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from a generator, a seed or ``None`` (fresh)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, int | np.integer):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be a numpy.random.Generator, an int seed or None, not {type(rng).__name__}"
    )


def magnetic_mask(atoms: Atoms, magnetic: Species = None) -> np.ndarray:
    """Boolean mask of the magnetic atoms of ``atoms``.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure.
    magnetic : str or sequence of str, optional
        Chemical symbols of the magnetic species, e.g. ``("Ni",)``. ``None`` selects the
        default magnetic species present (transition metals and rare earths, see the module
        docstring).

    Returns
    -------
    numpy.ndarray
        ``(N,)`` bool.

    Raises
    ------
    SpeciesError
        For an unknown symbol, a species absent from ``atoms``, or no magnetic atom at all.
    """
    symbols = np.array(atoms.get_chemical_symbols(), dtype=object)
    present = sorted(set(symbols.tolist()))
    if magnetic is None:
        mask = np.isin(atoms.numbers, sorted(DEFAULT_MAGNETIC_NUMBERS))
        if not mask.any():
            raise SpeciesError(
                "no default magnetic species (transition metals of groups 3-11, rare earths) "
                f"among {', '.join(present) or 'no atoms'}; name the magnetic species, e.g. "
                "magnetic=('Ni',)"
            )
        return mask
    names = (magnetic,) if isinstance(magnetic, str) else tuple(magnetic)
    if not names:
        raise SpeciesError("magnetic is empty; name at least one species, e.g. ('Ni',)")
    for name in names:
        if not isinstance(name, str) or name not in chemical_symbols[1:]:
            raise SpeciesError(
                f"unknown chemical symbol {name!r} in magnetic; use element symbols such as 'Ni'"
            )
        if name not in present:
            raise SpeciesError(
                f"species {name!r} is not in the structure (present: {', '.join(present)})"
            )
    return np.isin(symbols, names)


def magnitudes(atoms: Atoms, mask: np.ndarray, magnitude: Magnitude = None) -> np.ndarray:
    """Moment length (μB) of every atom; zero on non-magnetic atoms.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure.
    mask : numpy.ndarray
        ``(N,)`` bool, the magnetic atoms (see :func:`magnetic_mask`).
    magnitude : float, dict or array_like, optional
        One value, ``{symbol: μB}`` covering every magnetic species, or an ``(N,)``
        per-atom array (entries on non-magnetic atoms are ignored).  ``None``: the size
        ``|m|`` of each magnetic atom's moment in ``initial_magmoms`` (scalar magmoms count
        by their absolute value), :data:`DEFAULT_MAGNITUDE` where it is zero or absent.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` float64, μB.
    """
    n = len(atoms)
    if magnitude is None:
        present = np.linalg.norm(moment_vectors(atoms), axis=1)
        if not np.all(np.isfinite(present[mask])):
            raise TextureError(
                "the initial_magmoms of the magnetic atoms hold NaN or infinite values; "
                "give the moment size explicitly with magnitude=... (μB)"
            )
        values = np.where(present > 0, present, DEFAULT_MAGNITUDE)
    elif isinstance(magnitude, Mapping):
        symbols = np.array(atoms.get_chemical_symbols(), dtype=object)
        wanted = sorted(set(symbols[mask].tolist()))
        missing = [s for s in wanted if s not in magnitude]
        extra = [s for s in magnitude if s not in wanted]
        if missing or extra:
            raise SpeciesError(
                f"magnitude dict must have one entry per magnetic species {wanted}; "
                f"missing {missing}, not magnetic {extra}"
            )
        values = np.zeros(n)
        for s in wanted:
            values[symbols == s] = float(magnitude[s])
    else:
        arr = np.asarray(magnitude, dtype=float)
        if arr.ndim == 0:
            values = np.full(n, float(arr))
        elif arr.shape == (n,):
            values = arr.copy()
        else:
            raise TextureError(
                f"magnitude must be a number, a {{symbol: μB}} dict or an array of shape ({n},), "
                f"got shape {arr.shape}"
            )
    values = np.where(mask, values, 0.0)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise TextureError("moment magnitudes (μB) must be finite and non-negative")
    return values


def unit_vector(vector: ArrayLike, name: str) -> np.ndarray:
    """Normalize a Cartesian 3-vector, with a clear error for a wrong shape or zero length."""
    v = np.asarray(vector, dtype=float)
    if v.shape != (3,):
        raise TextureError(f"{name} must be a Cartesian 3-vector, got shape {v.shape}")
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm < 1e-12:
        raise TextureError(f"{name} must be a finite, non-zero vector, got {v.tolist()}")
    return v / norm


def with_moments(atoms: Atoms, directions: np.ndarray, lengths: np.ndarray) -> Atoms:
    """A copy of ``atoms`` with ``initial_magmoms = lengths[:, None] * directions`` (μB).

    ``directions`` rows are normalized here; rows with zero length give zero vectors.
    """
    d = np.asarray(directions, dtype=float)
    norms = np.linalg.norm(d, axis=1, keepdims=True)
    unit = np.divide(d, norms, out=np.zeros_like(d), where=norms > 0)
    out = atoms.copy()
    out.set_array("initial_magmoms", None)  # drop scalar (collinear) moments of another shape
    out.set_initial_magnetic_moments(lengths[:, None] * unit)
    return out


def moment_vectors(atoms: Atoms, moments: ArrayLike | None = None) -> np.ndarray:
    """``(N, 3)`` moments (μB) from ``moments`` or ``atoms``' ``initial_magmoms``.

    Scalar (collinear) moments of shape ``(N,)`` are taken along Cartesian z.
    """
    m = atoms.get_initial_magnetic_moments() if moments is None else np.asarray(moments, float)
    n = len(atoms)
    if m.shape == (n,):
        return np.column_stack([np.zeros(n), np.zeros(n), m])
    if m.shape != (n, 3):
        raise TextureError(f"moments must have shape ({n}, 3) or ({n},), got {m.shape}")
    return np.asarray(m, dtype=float)
