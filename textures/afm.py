"""Non-collinear antiferromagnetic orders of triangular magnetic lattices.

The magnetic sites must form a triangular Bravais lattice in the layer (e.g. Ni in NiBr2;
kagome and honeycomb lattices are not covered). Let ``p1`` be a nearest-neighbour vector
and ``p2`` the one 60° counter-clockwise from it (frame of the layer).

- ``"120"``: the coplanar 120° (√3×√3) state, a spiral with ``q = ±K`` (the Brillouin-zone
  corner, ``K·p1 = 1/3``, ``K·p2 = −1/3``). The spins of every elementary triangle sum to
  zero; going counter-clockwise around an up-triangle they turn by +120° about the spin
  plane normal for ``chirality=+1`` and by −120° for ``chirality=-1`` (``q = −K``). It fits
  the √3×√3 supercell (matrix ``[[2, 1, 0], [-1, 1, 0], [0, 0, 1]]`` of a 120° primitive
  cell) and any 3n×3n supercell.
- ``"tetrahedral"``: the non-coplanar triple-q (3Q) state built from the three M points,
  four sublattices pointing to the corners of a regular tetrahedron; it fits 2n×2n
  supercells, has zero net moment and a uniform scalar chirality (topological charge ±2 per
  2×2 magnetic cell).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

from ._cell import Layer, find_layer, minimum_image_2d, primitive_cell
from ._common import Magnitude, Species, magnetic_mask, magnitudes, unit_vector, with_moments
from ._errors import TextureError
from ._wavevector import check_commensurate

__all__ = ["noncollinear_afm", "triangular_lattice_vectors"]

AfmKind = Literal["120", "tetrahedral"]
_ANGLE_TOLERANCE = np.deg2rad(3.0)


def triangular_lattice_vectors(layer: Layer, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour vectors ``(p1, p2)`` (in-plane, Å) of a triangular site lattice.

    ``p1`` is the neighbour vector closest to ``e_x`` in angle, ``p2`` is 60°
    counter-clockwise from it.

    Raises
    ------
    TextureError
        If the sites do not form a triangular Bravais lattice.
    """
    origin = points[0]
    if layer.periodic:
        shifts = np.array([[i, j] for i in range(-2, 3) for j in range(-2, 3)]) @ layer.lattice
        d = (minimum_image_2d(points - origin, layer.lattice)[:, None, :] + shifts).reshape(-1, 2)
    else:
        d = points - origin
    dist = np.linalg.norm(d, axis=1)
    d, dist = d[dist > 1e-6], dist[dist > 1e-6]
    if len(d) == 0:
        raise TextureError("need at least two magnetic sites to find the triangular lattice")
    nn = d[dist <= dist.min() * 1.03]
    ang = np.sort(np.mod(np.arctan2(nn[:, 1], nn[:, 0]), 2 * np.pi))
    steps = np.diff(np.append(ang, ang[0] + 2 * np.pi))
    if layer.periodic and (len(nn) != 6 or np.any(np.abs(steps - np.pi / 3) > _ANGLE_TOLERANCE)):
        raise TextureError(
            f"the magnetic sites do not form a triangular lattice (found {len(nn)} nearest "
            "neighbours instead of 6 at 60°); this order needs a triangular magnetic lattice"
        )
    angles = np.arctan2(nn[:, 1], nn[:, 0])
    p1 = nn[np.argmin(np.abs(np.angle(np.exp(1j * angles))))]
    rot = np.array([[0.5, -np.sqrt(3) / 2], [np.sqrt(3) / 2, 0.5]])
    p2 = rot @ p1
    coords = (points - origin) @ np.linalg.inv(np.array([p1, p2]))
    if np.any(np.abs(coords - np.round(coords)) > 0.05):
        raise TextureError(
            "the magnetic sites are not one triangular Bravais lattice (some sites are not "
            "integer combinations of the nearest-neighbour vectors); this order needs one "
            "magnetic atom per triangular lattice point"
        )
    return p1, p2


def noncollinear_afm(
    atoms: Atoms,
    kind: AfmKind = "120",
    *,
    chirality: int = 1,
    axis: ArrayLike | None = None,
    phase: float = 0.0,
    magnetic: Species = None,
    magnitude: Magnitude = None,
) -> Atoms:
    """A non-collinear antiferromagnetic order on a triangular magnetic lattice.

    Parameters
    ----------
    atoms : ase.Atoms
        A layered structure whose magnetic sites form a triangular lattice (not modified).
    kind : {"120", "tetrahedral"}
        The coplanar 120° state or the non-coplanar tetrahedral triple-q state (see the
        module docstring).
    chirality : {1, -1}
        ``"120"`` only: the sense of rotation (``q = +K`` or ``−K``).
    axis : array_like, optional
        ``"120"``: normal of the plane the spins lie in (Cartesian; default the layer normal,
        i.e. in-plane spins). ``"tetrahedral"``: ignored unless given, then it is the
        direction of the first sublattice's moment.
    phase : float
        ``"120"``: rotation (rad) of all spins about ``axis``.
    magnetic : str or sequence of str, optional
        Magnetic species; default: transition metals and rare earths present.
    magnitude : float, dict or array_like, optional
        Moment length (μB): one value, ``{symbol: μB}`` or per atom; default: the sizes
        the magnetic atoms already carry in ``initial_magmoms``, else 1 μB.

    Returns
    -------
    ase.Atoms
        A new structure whose ``initial_magmoms`` is ``(N, 3)`` μB.

    Raises
    ------
    IncommensurateError
        If the cell does not fit the order (the message names a supercell that does).

    Examples
    --------
    >>> from ase.build import mx2
    >>> import numpy as np, textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> sc = textures.supercell(prim, [[2, 1, 0], [-1, 1, 0], [0, 0, 1]])
    >>> m = textures.noncollinear_afm(sc, "120").get_initial_magnetic_moments()
    >>> bool(np.allclose(m.sum(axis=0), 0.0))
    True
    """
    if kind not in ("120", "tetrahedral"):
        raise TextureError(f"kind must be '120' or 'tetrahedral', got {kind!r}")
    mask = magnetic_mask(atoms, magnetic)
    lengths = magnitudes(atoms, mask, magnitude)
    layer = find_layer(atoms, mask)
    prim = primitive_cell(atoms)
    points = layer.project(atoms.get_positions())
    p1, p2 = triangular_lattice_vectors(layer, points[mask])
    g = np.linalg.inv(np.array([p1, p2])).T  # rows g_i with g_i · p_j = δ_ij
    rel = points - points[mask][0]
    if kind == "120":
        if chirality not in (1, -1):
            raise TextureError(f"chirality must be +1 or -1, got {chirality}")
        k2 = _simplest(chirality * (g[0] - g[1]) / 3.0, g, layer, prim)
        check_commensurate(atoms, layer.to_cartesian(k2)[0], prim)
        a = layer.normal if axis is None else unit_vector(axis, "axis")
        ref = layer.e_x if abs(layer.e_x @ a) < 0.99 else layer.e_y
        e1 = ref - (ref @ a) * a
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(a, e1)
        phi = 2 * np.pi * (rel @ k2) + float(phase)
        m = np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2
    elif kind == "tetrahedral":
        ms = [_simplest(k, g, layer, prim) for k in (g[0] / 2, g[1] / 2, (g[0] + g[1]) / 2)]
        for k2 in ms:
            check_commensurate(atoms, layer.to_cartesian(k2)[0], prim)
        frame = _tetra_frame(layer, axis)
        c = np.column_stack([np.cos(2 * np.pi * (rel @ k2)) for k2 in ms])
        m = c @ frame / np.sqrt(3.0)
    return with_moments(atoms, np.where(mask[:, None], m, 0.0), lengths)


def _simplest(k2: np.ndarray, g: np.ndarray, layer: Layer, prim: np.ndarray) -> np.ndarray:
    """The copy of ``k2`` (shifted by reciprocal vectors ``g`` of the magnetic lattice, which
    leaves the field on the sites unchanged) that is shortest, with the smallest fractional
    coordinates in the primitive cell, so that messages name e.g. K = (1/3, 1/3, 0)."""
    best, best_key = k2, None
    for n1 in (-1, 0, 1):
        for n2 in (-1, 0, 1):
            cand = k2 + n1 * g[0] + n2 * g[1]
            frac = prim @ layer.to_cartesian(cand)[0]
            key = (round(float(np.linalg.norm(cand)), 9), round(float(np.abs(frac).max()), 9))
            if best_key is None or key < best_key:
                best, best_key = cand, key
    return best


def _tetra_frame(layer: Layer, axis: ArrayLike | None) -> np.ndarray:
    """Orthonormal rows ``(u1, u2, u3)``; site 0 points along ``(u1 + u2 + u3)/√3``."""
    base = np.array([layer.e_x, layer.e_y, layer.normal])
    if axis is None:
        return base
    target = unit_vector(axis, "axis")
    start = base.sum(axis=0) / np.sqrt(3.0)
    v = np.cross(start, target)
    s, c = np.linalg.norm(v), float(start @ target)
    if s < 1e-12:
        return base if c > 0 else -base
    k = v / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + s * kx + (1 - c) * kx @ kx
    return base @ rot.T
