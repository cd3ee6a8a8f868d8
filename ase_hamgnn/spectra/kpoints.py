"""The one k-point parser of the package: ``kpts`` means the same everywhere.

Every function that takes ``kpts`` (``HamGNNCalc(kpts=...)``, ``ham.dos``,
``ham.fermi_level``, the projected DOS, KPM, the magnetism analyses) reads it with
:func:`resolve_kpts`, in ASE's meaning:

* ``(n1, n2, n3)``: ASE's Monkhorst–Pack mesh (:func:`ase.dft.kpoints.monkhorst_pack`),
  which is Γ-centred along odd sizes and shifted by half a spacing along even ones: for
  ``(2, 1, 1)`` the points are ``k1 = ±1/4``, not ``{0, 1/2}``.  Floats with integer values
  (``(4.0, 4.0, 1.0)``) are accepted; ``(0, 0, 0)`` is the Γ point alone;
* a dict as ASE calculators take it: ``{"size": (n1, n2, n3), "gamma": True}`` (the
  Γ-centred mesh), ``{"density": 5.0, "gamma": True}`` (points per Å⁻¹), ``{"kpts": array}``,
  or a band path ``{"path": "GMKG", "npoints": 100}``; the forms that need the cell take it
  from ``cell``;
* an ``(n_k, 3)`` array of fractional k-points, one per row, or an ASE ``BandPath``;
* ``None``: the Γ point.

:func:`kmesh` is the explicit Γ-centred mesh for code that wants exactly that.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ase_hamgnn.errors import KPointError

__all__ = ["DICT_KEYS", "kmesh", "kpoints_and_weights", "parse_kpts", "resolve_kpts"]

#: Keys a ``kpts`` dict may hold (those of ASE's calculators).
DICT_KEYS = frozenset({"path", "npoints", "special_points", "density", "eps", "size", "gamma",
                       "even", "kpts"})

_FORMS = ("a mesh size (n1, n2, n3) of integers >= 1 (ASE's Monkhorst-Pack mesh), a dict "
          "({'size': (4, 4, 1), 'gamma': True}, {'density': 5.0}, {'path': 'GMKG', "
          "'npoints': 100}), fractional k-points as an (n_k, 3) array (one k-point per row) "
          "or a BandPath")


def kmesh(size: Any, shift: Any = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Γ-centred mesh of ``size = (n1, n2, n3)`` as fractional k, shape ``(n1 n2 n3, 3)``,
    optionally shifted by ``shift`` (in units of the mesh spacing), folded into
    ``(-1/2, 1/2]``.  (A ``kpts=(n1, n2, n3)`` argument means ASE's mesh instead, see
    :func:`resolve_kpts`; ``kpts={"size": size, "gamma": True}`` gives this one.)

    Raises
    ------
    KPointError
        If ``size`` is not three integer-valued numbers of at least 1 (``(4.0, 4.0, 1.0)``
        is accepted, ``(2.5, 1, 1)`` is not).

    Examples
    --------
    >>> kmesh((2, 1, 1))[:, 0].tolist()
    [0.0, 0.5]
    """
    size = _mesh_size(size, "k-mesh size")
    if (size < 1).any():
        raise KPointError(f"k-mesh size must be three positive integers, got {size.tolist()}")
    grids = [(np.arange(m) + sh) / m for m, sh in zip(size, shift)]
    mesh = np.array(np.meshgrid(*grids, indexing="ij")).reshape(3, -1).T
    return mesh - np.round(mesh)  # into (-1/2, 1/2]


def _mesh_size(values: Any, name: str) -> np.ndarray:
    """Three integer-valued numbers as an int64 array; :class:`KPointError` otherwise."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise KPointError(f"{name} must be three integers, got {values!r}") from None
    if arr.shape != (3,) or not np.isfinite(arr).all() or (arr != np.round(arr)).any():
        raise KPointError(f"{name} must be three integers, got {values!r}")
    return arr.astype(np.int64)


def parse_kpts(kpts: Any, name: str = "kpts") -> tuple[np.ndarray | None, np.ndarray | None]:
    """Read a mesh size or explicit k-points (not a dict): ``(size, None)`` or
    ``(None, kpoints)``; :func:`resolve_kpts` turns a size into ASE's mesh.

    * A mesh size: three integer-valued numbers of at least 1, ints or floats
      (``(4, 4, 1)`` and ``(4.0, 4.0, 1.0)`` alike), returned as int64 ``(3,)``.
      ``(0, 0, 0)`` means the Γ point alone.
    * Explicit fractional k-points: an array of shape ``(n_k, 3)``, ``n_k >= 1``, one
      k-point per row (so a 3 x 3 array is three k-points), returned as float64.

    Raises
    ------
    KPointError
        For anything else, with the accepted forms: a flat triple that is not integer-valued
        (a single k-point is ``[[0.5, 0, 0]]``), mesh sizes below 1, an array of another
        shape (e.g. ``(3, n_k)``: transpose it), no k-points, NaN or inf.
    """
    try:
        arr = np.asarray(kpts, dtype=np.float64)
    except (TypeError, ValueError):
        raise KPointError(f"{name} must be {_FORMS}; got {kpts!r}") from None
    if arr.ndim == 1 and arr.shape == (3,):
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise KPointError(
                f"{name} = {kpts!r}: three numbers are a mesh size and must be integers; "
                f"give a single k-point as a (1, 3) array, e.g. [{arr.tolist()}]")
        if (arr == 0).all():
            return None, np.zeros((1, 3))
        if (arr < 1).any():
            raise KPointError(
                f"{name} = {kpts!r}: mesh sizes must be integers >= 1 (use 1 along a "
                "direction without k-points; (0, 0, 0) is the Γ point alone)")
        return arr.astype(np.int64), None
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        hint = ("; it looks transposed: give one k-point per row (kpts.T)"
                if arr.ndim == 2 and arr.shape[0] == 3 and arr.shape[1] != 3 else "")
        raise KPointError(f"{name} must be {_FORMS}; got an array of shape {arr.shape}{hint}")
    if not np.isfinite(arr).all():
        raise KPointError(f"{name} contain NaN or inf; give finite fractional k-points")
    return None, arr


def resolve_kpts(kpts: Any, cell: Any = None, pbc: Any = None, name: str = "kpts") -> np.ndarray:
    """Fractional k-points ``(n_k, 3)`` of any form of ``kpts`` (see the module docstring).

    Parameters
    ----------
    kpts : tuple, dict, array, BandPath or None
        The k-points.
    cell, pbc : optional
        The cell (Å) and periodicity, for the dict forms that need them (``density``,
        ``path``) and to reject a mesh that samples a non-periodic direction.
    name : str
        Argument name used in error messages.

    Raises
    ------
    KPointError
        A malformed ``kpts``, with the accepted forms; a dict with unknown keys or one that
        needs the cell when none is given; a mesh with more than one point along a
        non-periodic direction.

    Examples
    --------
    >>> resolve_kpts((2, 1, 1))[:, 0].tolist()  # ASE's mesh: shifted along even sizes
    [-0.25, 0.25]
    >>> resolve_kpts({"size": (2, 1, 1), "gamma": True})[:, 0].tolist()
    [0.0, 0.5]
    """
    from ase import Atoms
    from ase.calculators.calculator import kpts2ndarray, kpts2sizeandoffsets
    from ase.dft.kpoints import monkhorst_pack

    def atoms() -> Atoms:
        if cell is None:
            raise KPointError(f"{name} = {kpts!r} needs the cell; give explicit k-points or "
                              "a mesh size instead")
        return Atoms(cell=np.asarray(cell, dtype=np.float64),
                     pbc=True if pbc is None else np.asarray(pbc, dtype=bool))

    if kpts is None:
        k = np.zeros((1, 3))
    elif hasattr(kpts, "kpts") and not isinstance(kpts, dict):  # BandPath, KPoints
        k = np.asarray(kpts.kpts, dtype=np.float64)
    elif isinstance(kpts, dict):
        unknown = set(kpts) - DICT_KEYS
        if unknown:
            raise KPointError(f"{name}: unknown keys {sorted(unknown)} in {kpts!r}; "
                              f"known: {sorted(DICT_KEYS)}")
        try:
            if "kpts" in kpts:
                k = np.asarray(kpts["kpts"], dtype=np.float64)
            elif "path" in kpts:
                k = kpts2ndarray(kpts, atoms=atoms())
            else:
                needs_cell = "density" in kpts
                size, offsets = kpts2sizeandoffsets(atoms=atoms() if needs_cell else None,
                                                    **kpts)
                k = monkhorst_pack(size) + offsets
        except KPointError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise KPointError(f"{name} = {kpts!r}: {exc}") from None
    else:
        size, k = parse_kpts(kpts, name)
        if size is not None:
            if pbc is not None:
                for d in range(3):
                    if size[d] > 1 and not np.asarray(pbc, dtype=bool)[d]:
                        raise KPointError(
                            f"{name} = {tuple(int(x) for x in size)} samples the non-periodic "
                            f"direction {d}; use 1 there")
            k = monkhorst_pack(size)
    k = np.array(k, dtype=np.float64).reshape(-1, 3)
    if len(k) == 0 or not np.isfinite(k).all():
        raise KPointError(f"{name} gives no finite k-points: {kpts!r}")
    return k


def kpoints_and_weights(kpts: Any, weights: Any = None, cell: Any = None, pbc: Any = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Fractional k-points (:func:`resolve_kpts`) and normalized weights (equal by default).

    Raises
    ------
    KPointError
        If ``kpts`` is malformed (see :func:`resolve_kpts`), or ``weights`` is not one finite,
        non-negative number per k-point with a positive sum.
    """
    k = resolve_kpts(kpts, cell, pbc)
    if weights is None:
        return k, np.full(len(k), 1.0 / len(k))
    try:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        w = np.full(0, np.nan)
    if w.shape != (len(k),) or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
        raise KPointError(
            f"weights must be {len(k)} finite, non-negative numbers (one per k-point) with a "
            f"positive sum; got {weights!r}")
    return k, w / w.sum()
