"""Wave vectors: fractional reciprocal units of the primitive cell, and commensurability.

Convention
----------
A wave vector ``q = (q1, q2, q3)`` is given in fractional reciprocal units of the
*primitive* cell: the phase of the modulation at Cartesian position ``r`` (Å) is
``2π q · s`` with ``s = r @ inv(primitive)`` the fractional coordinates of ``r`` in the
primitive cell. The primitive cell is the one recorded by :func:`textures.supercell` in
``atoms.info["primitive_cell"]`` (or given explicitly); without either, the cell of the
structure itself is the reference. Hence ``q = (1/8, 0, 0)`` means a period of 8 primitive
vectors whatever supercell it is put on, and it fits every supercell whose periodic vectors
``T`` satisfy ``q · (T in primitive units) ∈ Z`` (e.g. 8×1×1, 16×2×1).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from ase import Atoms

from ._cell import supercell_matrix
from ._errors import IncommensurateError, TextureError

__all__ = ["COMMENSURATE_TOLERANCE", "check_commensurate", "q_cartesian"]

#: ``q · T`` may deviate from an integer by this much (cycles) and still count as periodic.
COMMENSURATE_TOLERANCE = 1e-6
_MAX_DENOMINATOR = 64


def q_cartesian(q: np.ndarray | tuple[float, ...], prim: np.ndarray) -> np.ndarray:
    """Cartesian wave vector in cycles/Å (no 2π): phase / 2π = ``q_cart · r``."""
    qf = np.asarray(q, dtype=float)
    if qf.shape != (3,) or not np.all(np.isfinite(qf)):
        raise TextureError(
            f"q must be 3 finite fractional reciprocal coordinates, got {np.asarray(q).tolist()}"
        )
    return np.linalg.inv(prim) @ qf


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{0.0 if abs(x) < 1e-12 else x:.6g}" for x in v) + ")"


def _clean(v: np.ndarray) -> np.ndarray:
    return np.where(np.abs(v) < 1e-12, 0.0, v)


def check_commensurate(atoms: Atoms, q_cart: np.ndarray, prim: np.ndarray) -> None:
    """Raise :class:`IncommensurateError` unless ``q`` is periodic over ``atoms.cell``.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure; only its periodic cell vectors are checked.
    q_cart : numpy.ndarray
        ``(3,)`` wave vector in cycles/Å (see :func:`q_cartesian`).
    prim : numpy.ndarray
        ``(3, 3)`` primitive cell (Å, rows) the user's fractional ``q`` refers to.
    """
    cell = np.array(atoms.cell, dtype=float)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    t = cell @ q_cart
    if np.all(np.abs(t - np.round(t))[pbc] <= COMMENSURATE_TOLERANCE):
        return
    q = _clean(prim @ q_cart)
    t_near = np.where(pbc, np.round(t), t)
    nearest = _clean(prim @ np.linalg.solve(cell, t_near))
    fracs = [Fraction(float(x)).limit_denominator(_MAX_DENOMINATOR) for x in q]
    reps = [f.denominator for f in fracs]
    approx = "(" + ", ".join(str(f) for f in fracs) + ")"
    p = supercell_matrix(atoms, prim)
    shape = (
        f"{tuple(int(x) for x in np.diag(p))}"
        if np.count_nonzero(p - np.diag(np.diag(p))) == 0
        else f"{p.tolist()}"
    )
    raise IncommensurateError(
        f"q = {_fmt(q)} (fractional reciprocal units of the primitive cell) is not "
        f"commensurate with this supercell {shape} of the primitive cell: q·T = {_fmt(t)} "
        f"cycles must be integer along every periodic cell vector T. The nearest commensurate "
        f"q for this cell is {_fmt(nearest)}; q ≈ {approx} fits "
        f"textures.supercell(primitive, {tuple(reps)}).",
        q=q,
        nearest_q=nearest,
        reps=reps,
    )
