"""Flat, conical and multi-q spin spirals.

Wave vectors ``q`` are in fractional reciprocal units of the primitive cell (see
:mod:`textures._wavevector`): the phase at Cartesian position ``r`` is
``φ(r) = 2π q · s(r) + phase`` with ``s(r)`` the fractional coordinates of ``r`` in the
primitive cell. A spiral rotating about the unit ``axis`` is

``m(r) = cos φ(r) e1 + sin φ(r) e2``, with ``(e1, e2, axis)`` right-handed,

and ``e1`` (the direction at phase 0) is the layer normal made perpendicular to ``axis``
(for a bulk structure: Cartesian z; if parallel to ``axis``: the direction of ``q``, then
Cartesian x).

Kinds: ``"cycloidal"`` (Néel-type; spins turn in the plane spanned by the layer normal and
``q``, ``axis = normal × q̂``) and ``"helical"`` (Bloch-type; spins turn in the plane
perpendicular to ``q``, ``axis = q̂``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

from ._cell import find_layer, primitive_cell
from ._common import Magnitude, Species, magnetic_mask, magnitudes, unit_vector, with_moments
from ._errors import NoLayerError, TextureError
from ._wavevector import check_commensurate, q_cartesian

__all__ = ["conical_spiral", "multi_q_spiral", "spin_spiral"]

SpiralKind = Literal["cycloidal", "helical"]


def _layer_normal(atoms: Atoms, mask: np.ndarray) -> np.ndarray | None:
    try:
        return find_layer(atoms, mask).normal
    except NoLayerError:
        return None


def _perpendicular(axis: np.ndarray, candidates: Sequence[np.ndarray | None]) -> np.ndarray:
    """First candidate made perpendicular to ``axis`` that is not parallel to it."""
    for ref in [*candidates, np.array([1.0, 0, 0]), np.array([0, 1.0, 0])]:
        if ref is None:
            continue
        v = ref - (ref @ axis) * axis
        norm = np.linalg.norm(v)
        if norm > 1e-6:
            return v / norm
    raise TextureError("cannot find a direction perpendicular to the axis")  # x, y never both ∥


def _spiral_axis(
    kind: SpiralKind | None, axis: ArrayLike | None, q_cart: np.ndarray, normal: np.ndarray | None
) -> np.ndarray:
    if axis is not None:
        if kind is not None:
            raise TypeError("give either kind= or axis=, not both")
        return unit_vector(axis, "axis")
    kind = "cycloidal" if kind is None else kind
    if kind not in ("cycloidal", "helical"):
        raise TextureError(f"kind must be 'cycloidal' or 'helical', got {kind!r}")
    if np.linalg.norm(q_cart) < 1e-12:
        raise TextureError(f"a {kind} spiral needs q != 0; for a ferromagnet use ferromagnet()")
    q_hat = q_cart / np.linalg.norm(q_cart)
    if kind == "helical":
        return q_hat
    if normal is None:
        raise NoLayerError(
            "a cycloidal spiral turns in the plane of q and the layer normal, but this "
            "structure has no 2D layer; give the rotation axis explicitly with axis=..."
        )
    a = np.cross(normal, q_hat)
    if np.linalg.norm(a) < 1e-6:
        raise TextureError(
            "a cycloidal spiral needs q with an in-plane component; for q along the layer "
            "normal use kind='helical' or give axis=..."
        )
    return a / np.linalg.norm(a)


def _prepare(
    atoms: Atoms, magnetic: Species, magnitude: Magnitude, primitive: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    mask = magnetic_mask(atoms, magnetic)
    lengths = magnitudes(atoms, mask, magnitude)
    prim = primitive_cell(atoms, primitive)
    return mask, lengths, prim, _layer_normal(atoms, mask)


def _rotating(
    atoms: Atoms,
    q_cart: np.ndarray,
    axis: np.ndarray,
    normal: np.ndarray | None,
    phase: float,
) -> np.ndarray:
    """``(N, 2)`` cos/sin of the phase and ``(2, 3)`` basis, combined to ``(N, 3)``."""
    e1 = _perpendicular(axis, [np.array([0, 0, 1.0]) if normal is None else normal, q_cart])
    e2 = np.cross(axis, e1)
    phi = 2 * np.pi * (atoms.get_positions() @ q_cart) + float(phase)
    return np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2


def spin_spiral(
    atoms: Atoms,
    q: ArrayLike,
    *,
    kind: SpiralKind | None = None,
    axis: ArrayLike | None = None,
    phase: float = 0.0,
    magnetic: Species = None,
    magnitude: Magnitude = None,
    primitive_cell: ArrayLike | None = None,
) -> Atoms:
    """A flat spin spiral (cycloid or helix) with wave vector ``q``.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure (not modified); build supercells with :func:`textures.supercell`.
    q : array_like
        ``(3,)`` wave vector, fractional reciprocal units of the primitive cell.
    kind : {"cycloidal", "helical"}, optional
        Néel-type cycloid (default) or Bloch-type helix; exclusive with ``axis``.
    axis : array_like, optional
        Cartesian rotation axis (normal of the plane the spins turn in).
    phase : float
        Phase offset (rad) added to ``2π q·s``.
    magnetic : str or sequence of str, optional
        Magnetic species; default: transition metals and rare earths present.
    magnitude : float, dict or array_like, optional
        Moment length (μB): one value, ``{symbol: μB}`` or per atom; default: the sizes
        the magnetic atoms already carry in ``initial_magmoms``, else 1 μB.
    primitive_cell : array_like, optional
        ``(3, 3)`` primitive cell (Å) that ``q`` refers to; default
        ``atoms.info["primitive_cell"]`` or ``atoms.cell``.

    Returns
    -------
    ase.Atoms
        A new structure whose ``initial_magmoms`` is ``(N, 3)`` μB.

    Raises
    ------
    IncommensurateError
        If ``q`` is not periodic over the cell; the message names the nearest commensurate
        ``q`` and a supercell that fits ``q``.

    Examples
    --------
    >>> from ase.build import mx2
    >>> import textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> sc = textures.spin_spiral(textures.supercell(prim, (8, 1, 1)), q=(1 / 8, 0, 0))
    >>> sc.get_initial_magnetic_moments().shape
    (24, 3)
    """
    mask, lengths, prim, normal = _prepare(atoms, magnetic, magnitude, primitive_cell)
    q_cart = q_cartesian(q, prim)
    check_commensurate(atoms, q_cart, prim)
    a = _spiral_axis(kind, axis, q_cart, normal)
    return with_moments(atoms, _rotating(atoms, q_cart, a, normal, phase), lengths)


def conical_spiral(
    atoms: Atoms,
    q: ArrayLike,
    cone_angle: float,
    *,
    axis: ArrayLike | None = None,
    phase: float = 0.0,
    magnetic: Species = None,
    magnitude: Magnitude = None,
    primitive_cell: ArrayLike | None = None,
) -> Atoms:
    """A conical spiral: ``m = cos α axis + sin α (cos φ e1 + sin φ e2)``.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure (not modified).
    q : array_like
        ``(3,)`` wave vector, fractional reciprocal units of the primitive cell.
    cone_angle : float
        Opening angle α (rad) between the moments and the cone axis; 0 is a ferromagnet
        along ``axis``, π/2 a flat spiral.
    axis : array_like, optional
        Cartesian cone axis; default the layer normal (required for bulk structures).
    phase : float
        Phase offset (rad).
    magnetic, magnitude, primitive_cell
        As in :func:`spin_spiral`.

    Returns
    -------
    ase.Atoms
        A new structure whose ``initial_magmoms`` is ``(N, 3)`` μB.

    Examples
    --------
    >>> from ase.build import mx2
    >>> import numpy as np, textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> sc = textures.conical_spiral(textures.supercell(prim, (6, 1, 1)), (1 / 6, 0, 0), np.pi / 4)
    >>> bool(np.allclose(sc.get_initial_magnetic_moments()[::3, 2], np.cos(np.pi / 4)))
    True
    """
    mask, lengths, prim, normal = _prepare(atoms, magnetic, magnitude, primitive_cell)
    q_cart = q_cartesian(q, prim)
    check_commensurate(atoms, q_cart, prim)
    if axis is None:
        if normal is None:
            raise NoLayerError("this structure has no 2D layer; give the cone axis with axis=...")
        a = normal
    else:
        a = unit_vector(axis, "axis")
    alpha = float(cone_angle)
    rot = _rotating(atoms, q_cart, a, normal, phase)
    return with_moments(atoms, np.cos(alpha) * a + np.sin(alpha) * rot, lengths)


def multi_q_spiral(
    atoms: Atoms,
    qs: ArrayLike,
    *,
    kind: SpiralKind | None = None,
    axes: ArrayLike | None = None,
    amplitudes: ArrayLike | None = None,
    phases: ArrayLike | None = None,
    uniform: ArrayLike | None = None,
    magnetic: Species = None,
    magnitude: Magnitude = None,
    primitive_cell: ArrayLike | None = None,
) -> Atoms:
    """A multi-q state: the normalized sum of flat spirals and a uniform component.

    ``m(r) ∝ Σ_j A_j [cos φ_j(r) e1_j + sin φ_j(r) e2_j] + u``, normalized on every site.
    Three helical spirals with ``q`` at 120° plus a uniform component along the normal give
    a triple-q skyrmion crystal.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure (not modified).
    qs : array_like
        ``(n_q, 3)`` wave vectors, fractional reciprocal units of the primitive cell.
    kind : {"cycloidal", "helical"}, optional
        Kind of every spiral (default cycloidal); exclusive with ``axes``.
    axes : array_like, optional
        ``(n_q, 3)`` Cartesian rotation axes, one per spiral.
    amplitudes : array_like, optional
        ``(n_q,)`` weights ``A_j`` (default 1).
    phases : array_like, optional
        ``(n_q,)`` phase offsets (rad, default 0).
    uniform : array_like, optional
        ``(3,)`` Cartesian uniform component ``u``, in units of the spiral amplitudes.
    magnetic, magnitude, primitive_cell
        As in :func:`spin_spiral`.

    Returns
    -------
    ase.Atoms
        A new structure whose ``initial_magmoms`` is ``(N, 3)`` μB.

    Raises
    ------
    TextureError
        If the sum vanishes on a magnetic site (change ``phases`` or ``uniform``).

    Examples
    --------
    >>> from ase.build import mx2
    >>> import textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> sc = textures.supercell(prim, (6, 6, 1))
    >>> qs = [(1 / 6, 0, 0), (0, 1 / 6, 0), (-1 / 6, -1 / 6, 0)]
    >>> sk = textures.multi_q_spiral(sc, qs, kind="helical", uniform=(0, 0, 0.8))
    >>> round(textures.topological_charge(sk))
    1
    """
    mask, lengths, prim, normal = _prepare(atoms, magnetic, magnitude, primitive_cell)
    q_list = np.asarray(qs, dtype=float)
    if q_list.ndim != 2 or q_list.shape[1] != 3 or len(q_list) == 0:
        raise TextureError(f"qs must have shape (n_q, 3), got {q_list.shape}")
    n_q = len(q_list)
    amp = np.ones(n_q) if amplitudes is None else np.asarray(amplitudes, dtype=float)
    ph = np.zeros(n_q) if phases is None else np.asarray(phases, dtype=float)
    if amp.shape != (n_q,) or ph.shape != (n_q,):
        raise TextureError(f"amplitudes and phases need shape ({n_q},)")
    if axes is not None:
        if kind is not None:
            raise TypeError("give either kind= or axes=, not both")
        ax = np.asarray(axes, dtype=float)
        if ax.shape != (n_q, 3):
            raise TextureError(f"axes must have shape ({n_q}, 3), got {ax.shape}")
    total = np.zeros((len(atoms), 3))
    for j, q in enumerate(q_list):
        q_cart = q_cartesian(q, prim)
        check_commensurate(atoms, q_cart, prim)
        a = _spiral_axis(kind, None if axes is None else ax[j], q_cart, normal)
        total += amp[j] * _rotating(atoms, q_cart, a, normal, ph[j])
    if uniform is not None:
        u = np.asarray(uniform, dtype=float)
        if u.shape != (3,):
            raise TextureError(f"uniform must be a Cartesian 3-vector, got shape {u.shape}")
        total += u
    norms = np.linalg.norm(total[mask], axis=1)
    if np.any(norms < 1e-8):
        raise TextureError(
            "the multi-q sum vanishes on some magnetic site, so its direction is undefined; "
            "change phases= or add a uniform= component"
        )
    return with_moments(atoms, np.where(mask[:, None], total, 0.0), lengths)
