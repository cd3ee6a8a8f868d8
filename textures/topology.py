"""Topological charge of a 2D texture (Berg–Lüscher lattice definition).

Convention
----------
``Q = (1/4π) ∫ m · (∂x m × ∂y m) dx dy`` with ``(x, y, normal)`` the right-handed frame of
the layer (:class:`textures._cell.Layer`; for a layer in the xy plane, Cartesian x, y and
+z). On the lattice, the magnetic sites projected onto the plane are triangulated (periodic
Delaunay triangulation of the torus for a periodic layer), and each counter-clockwise
triangle ``(i, j, k)`` contributes the signed solid angle (Berg and Lüscher, Nucl. Phys. B
190, 412 (1981))

``Ω = 2 atan2(m_i · (m_j × m_k), 1 + m_i·m_j + m_j·m_k + m_k·m_i)``,

so that ``Q = Σ Ω / 4π``, an integer for a periodic layer. A skyrmion with its core down in
an up background (polarity −1, vorticity +1) has ``Q = −1``; an antiskyrmion with the same
polarity ``Q = +1``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

from ._cell import Layer, find_layer, reduce_basis_2d
from ._common import Species, magnetic_mask, moment_vectors
from ._errors import TextureError

__all__ = ["solid_angles", "topological_charge", "triangulate"]

_JITTER = 1e-7  # relative, breaks co-circular ties of ideal lattices identically in all images


def solid_angles(m1: np.ndarray, m2: np.ndarray, m3: np.ndarray) -> np.ndarray:
    """Signed solid angles (sr) of the spherical triangles ``(m1, m2, m3)`` (unit rows)."""
    num = np.einsum("ij,ij->i", m1, np.cross(m2, m3))
    den = 1.0 + (m1 * m2).sum(1) + (m2 * m3).sum(1) + (m3 * m1).sum(1)
    return 2.0 * np.arctan2(num, den)


def _delaunay(points: np.ndarray) -> np.ndarray:
    from matplotlib.tri import Triangulation  # matplotlib's bundled qhull Delaunay

    tri = Triangulation(points[:, 0], points[:, 1]).triangles
    a, b, c = points[tri[:, 0]], points[tri[:, 1]], points[tri[:, 2]]
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    tri = tri.copy()
    flip = cross < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    return tri


def triangulate(points: np.ndarray, lattice: np.ndarray | None) -> np.ndarray:
    """Counter-clockwise triangles of in-plane sites, periodic if ``lattice`` is given.

    Parameters
    ----------
    points : numpy.ndarray
        ``(M, 2)`` in-plane positions (Å).
    lattice : numpy.ndarray or None
        ``(2, 2)`` rows: in-plane periods (Å); ``None`` for a finite flake.

    Returns
    -------
    numpy.ndarray
        ``(T, 3)`` int site indices; for a periodic layer the triangles tile the torus once.
    """
    if len(points) < 3 and lattice is None:
        raise TextureError("a finite flake needs at least 3 magnetic sites to triangulate")
    scale = (
        np.sqrt(abs(np.linalg.det(lattice)) / len(points))
        if lattice is not None
        else (np.ptp(points, axis=0).max() / np.sqrt(len(points)))
    )
    jitter = np.random.default_rng(0).normal(size=points.shape) * _JITTER * scale
    pts = points + jitter
    if lattice is None:
        return _delaunay(pts)
    red = reduce_basis_2d(lattice)
    inv = np.linalg.inv(red)
    frac = pts @ inv
    pts = (frac - np.floor(frac)) @ red  # wrap into the cell
    m = len(pts)
    for reach in (1, 2, 3):
        span = range(-reach, reach + 1)
        shifts = np.array([[i, j] for i in span for j in span])
        tiled = (pts[None, :, :] + (shifts @ red)[:, None, :]).reshape(-1, 2)
        tri = _delaunay(tiled)
        centroid = tiled[tri].mean(axis=1) @ inv
        keep = np.all((centroid >= 0) & (centroid < 1), axis=1)
        tri = tri[keep]
        a, b, c = tiled[tri[:, 0]], tiled[tri[:, 1]], tiled[tri[:, 2]]
        area = 0.5 * ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]).sum()
        if np.isclose(area, abs(np.linalg.det(red)), rtol=1e-8):
            return tri % m
    raise TextureError(
        "could not build a periodic triangulation of the magnetic sites; check that the "
        "magnetic atoms are not on top of each other"
    )


def _directions(atoms: Atoms, mask: np.ndarray, moments: ArrayLike | None) -> np.ndarray:
    m = moment_vectors(atoms, moments)[mask]
    norms = np.linalg.norm(m, axis=1)
    if np.any(norms < 1e-10):
        raise TextureError(
            f"{int((norms < 1e-10).sum())} magnetic atoms have zero moment, so the texture is "
            "undefined there; give them moments or exclude their species with magnetic=(...)"
        )
    return m / norms[:, None]


def topological_charge(
    atoms: Atoms,
    *,
    magnetic: Species = None,
    moments: ArrayLike | None = None,
) -> float:
    """Topological charge (skyrmion number) of the texture of one magnetic layer.

    Parameters
    ----------
    atoms : ase.Atoms
        A layered structure with one magnetic layer.
    magnetic : str or sequence of str, optional
        Magnetic species; default: transition metals and rare earths present.
    moments : array_like, optional
        ``(N, 3)`` moments (μB) to analyse instead of ``atoms``' ``initial_magmoms``;
        ``(N,)`` scalars are taken along Cartesian z.

    Returns
    -------
    float
        ``Q`` with the sign convention of the module docstring; an integer (to rounding)
        when the layer is periodic in-plane, 0 for coplanar textures.

    Raises
    ------
    NoLayerError
        If the structure has no 2D layer (e.g. a bulk 3D supercell) or its magnetic atoms
        span several layers.
    TextureError
        If a magnetic atom has zero moment, or a triangle is exceptional (antipodal or
        coplanar-through-the-centre spins in a non-coplanar texture), where the lattice
        charge is undefined.

    Examples
    --------
    >>> from ase.build import mx2
    >>> import textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> sk = textures.skyrmion(textures.supercell(prim, (16, 16, 1)), radius=8.0, polarity=1)
    >>> round(textures.topological_charge(sk))
    1
    """
    mask = magnetic_mask(atoms, magnetic)
    layer: Layer = find_layer(atoms, mask, single=True)
    m = _directions(atoms, mask, moments)
    # coplanar textures (collinear, flat spirals, 120° order) cover zero solid angle; their
    # lattice triangles can be exceptional (±2π ambiguity), so answer exactly
    centred = np.linalg.svd(m, compute_uv=False)
    if len(m) < 3 or centred[-1] <= 1e-10 * np.sqrt(len(m)):
        return 0.0
    points = layer.project(atoms.get_positions()[mask])
    tri = triangulate(points, layer.lattice if layer.periodic else None)
    m1, m2, m3 = m[tri[:, 0]], m[tri[:, 1]], m[tri[:, 2]]
    num = np.einsum("ij,ij->i", m1, np.cross(m2, m3))
    den = 1.0 + (m1 * m2).sum(1) + (m2 * m3).sum(1) + (m3 * m1).sum(1)
    bad = (np.abs(num) < 1e-12) & (den <= 1e-12)
    if np.any(bad):
        raise TextureError(
            f"{int(bad.sum())} triangles have exceptional spin configurations (antiparallel "
            "or coplanar-through-the-centre spins), where the lattice topological charge is "
            "undefined; perturb the moments slightly or use a smoother texture"
        )
    return float(solid_angles(m1, m2, m3).sum() / (4 * np.pi))
