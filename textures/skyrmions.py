"""Skyrmions, antiskyrmions and skyrmion lattices in a 2D layer.

A (anti)skyrmion centred at ``c`` in the layer (frame ``e_x, e_y, normal`` of the layer,
see :class:`textures._cell.Layer`) is

``m(r) = sin θ(ρ) [cos Φ e_x + sin Φ e_y] − p cos θ(ρ) normal``,  ``Φ = v ϕ + γ``,

where ``ρ`` and ``ϕ`` are the length and polar angle of the minimum-image in-plane vector
from ``c`` to the atom, ``p`` the polarity (direction of the core along the normal; the
background points along ``−p normal``), ``v`` the vorticity (+1 skyrmion, −1 antiskyrmion)
and ``γ`` the helicity (0 Néel with the in-plane moments pointing outwards, π Néel inwards,
±π/2 Bloch). The polar profile goes from θ(0) = π (core) to θ(∞) = 0 (background):

- ``"standard"``: ``θ(ρ) = 2 arctan[sinh(R/w) / sinh(ρ/w)]`` (θ(R) = π/2);
- ``"linear"``: θ falls linearly from π at ``ρ = R − w`` to 0 at ``ρ = R + w``.

``R`` is the radius (Å, where ``m·normal = 0``) and ``w`` the domain-wall width (Å). With
the sign convention of :func:`textures.topological_charge` the charge is ``Q = p v``: a
skyrmion with its core down in an up background has ``Q = −1``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

from ._cell import Layer, find_layer, periodic_images_2d, reduce_basis_2d
from ._common import Magnitude, Species, magnetic_mask, magnitudes, with_moments
from ._errors import CellTooSmallError, TextureError

__all__ = ["antiskyrmion", "profile_angle", "skyrmion", "skyrmion_lattice"]

Profile = Literal["standard", "linear"]
LatticeKind = Literal["triangular", "square"]

#: Largest shape distortion (relative) of a skyrmion lattice that fits the cell.
LATTICE_TOLERANCE = 0.02


def profile_angle(
    rho: ArrayLike, radius: float, width: float, profile: Profile = "standard"
) -> np.ndarray:
    """Polar angle θ (rad) of the moments at in-plane distance ``rho`` (Å) from the core.

    Parameters
    ----------
    rho : array_like
        Distances (Å) from the centre, ``>= 0``.
    radius : float
        Radius ``R`` (Å) where θ = π/2.
    width : float
        Domain-wall width ``w`` (Å).
    profile : {"standard", "linear"}
        ``2 arctan[sinh(R/w)/sinh(ρ/w)]`` or a linear wall from ``R − w`` to ``R + w``.

    Returns
    -------
    numpy.ndarray
        θ in ``[0, π]``, π at the core.

    Examples
    --------
    >>> import numpy as np
    >>> float(profile_angle(5.0, radius=5.0, width=2.0)) == np.pi / 2
    True
    """
    r = np.asarray(rho, dtype=float)
    if profile == "standard":
        a, b = radius / width, r / width
        # sinh(a)/sinh(b) = exp(a - b) (1 - exp(-2a)) / (1 - exp(-2b)), overflow-safe
        num = -np.expm1(-2 * a) * np.exp(np.minimum(a - b, 700.0))
        return 2 * np.arctan2(num, -np.expm1(-2 * b))
    if profile == "linear":
        return np.clip(np.pi / 2 - np.pi / 2 * (r - radius) / width, 0.0, np.pi)
    raise TextureError(f"profile must be 'standard' or 'linear', got {profile!r}")


def _check_shape(
    radius: float, width: float, profile: Profile, polarity: int, vorticity: int
) -> None:
    if not (np.isfinite(radius) and radius > 0 and np.isfinite(width) and width > 0):
        raise TextureError(f"radius and width must be positive (Å), got {radius}, {width}")
    if profile == "linear" and width > radius:
        raise TextureError(
            f"a linear profile needs width <= radius so that the core is fully reversed "
            f"(got width {width} Å > radius {radius} Å)"
        )
    if polarity not in (1, -1):
        raise TextureError(f"polarity must be +1 (core along the normal) or -1, got {polarity}")
    if int(vorticity) != vorticity or vorticity == 0:
        raise TextureError(f"vorticity must be a non-zero integer, got {vorticity}")


def _moments(
    d: np.ndarray,
    layer: Layer,
    radius: float,
    width: float,
    profile: Profile,
    helicity: float,
    polarity: int,
    vorticity: int,
) -> np.ndarray:
    """``(M, 3)`` unit moments from in-plane vectors ``d`` (core → atom, Å)."""
    rho = np.hypot(d[:, 0], d[:, 1])
    theta = profile_angle(rho, radius, width, profile)
    big_phi = vorticity * np.arctan2(d[:, 1], d[:, 0]) + helicity
    inplane = np.sin(theta)[:, None] * (
        np.cos(big_phi)[:, None] * layer.e_x + np.sin(big_phi)[:, None] * layer.e_y
    )
    return inplane - polarity * np.cos(theta)[:, None] * layer.normal


def _texture(
    points: np.ndarray, center: np.ndarray, basis: np.ndarray | None, layer: Layer, **shape
) -> np.ndarray:
    """Moments at in-plane ``points`` of (anti)skyrmions centred on ``center`` + the lattice
    ``basis`` (``None``: one, non-periodic). An atom equidistant from several cores (on the
    boundary of the Wigner–Seitz cell) takes the normalized mean of their fields, so that the
    texture keeps the symmetry of the cell."""
    if basis is None:
        return _moments(points - center, layer, **shape)
    images, shortest = periodic_images_2d(points - center, basis)
    rows, cols = np.nonzero(shortest)
    total = np.zeros((len(points), 3))
    np.add.at(total, rows, _moments(images[rows, cols], layer, **shape))
    norm = np.linalg.norm(total, axis=1, keepdims=True)
    background = -shape["polarity"] * layer.normal
    return np.where(norm > 1e-9, total / np.maximum(norm, 1e-300), background)


def _center_2d(atoms: Atoms, layer: Layer, center: ArrayLike | None) -> np.ndarray:
    if center is None:
        i, j = [k for k in range(3) if k != layer.axis]
        mid = 0.5 * (np.array(atoms.cell[i]) + np.array(atoms.cell[j]))
        return layer.project(mid[None])[0]
    c = np.asarray(center, dtype=float)
    if c.shape != (3,):
        raise TextureError(f"center must be a Cartesian position (3,) in Å, got shape {c.shape}")
    return layer.project(c[None])[0]


def skyrmion(
    atoms: Atoms,
    *,
    center: ArrayLike | None = None,
    radius: float | None = None,
    width: float | None = None,
    profile: Profile = "standard",
    helicity: float = 0.0,
    polarity: int = -1,
    vorticity: int = 1,
    magnetic: Species = None,
    magnitude: Magnitude = None,
) -> Atoms:
    """One skyrmion (or, with ``vorticity=-1``, antiskyrmion) in a 2D layer.

    Parameters
    ----------
    atoms : ase.Atoms
        A layered structure (not modified); in-plane distances use the minimum image.
    center : array_like, optional
        Cartesian position (Å) of the core, projected onto the layer; default the centre of
        the in-plane cell.
    radius : float, optional
        Radius ``R`` (Å) where the moments lie in the plane; default a quarter of the
        shortest in-plane period.
    width : float, optional
        Domain-wall width ``w`` (Å); default ``R / 2``.
    profile : {"standard", "linear"}
        Polar profile θ(ρ), see the module docstring.
    helicity : float
        γ (rad): 0 Néel (outward), π/2 Bloch, any angle.
    polarity : {-1, 1}
        Direction of the core along the layer normal; the background is opposite. Default
        −1: core down in an up background.
    vorticity : int
        ``v``: +1 skyrmion, −1 antiskyrmion, higher winding allowed.
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
    CellTooSmallError
        If ``R + w`` exceeds half the shortest in-plane period of a periodic cell.
    NoLayerError
        If the structure has no 2D layer.

    Examples
    --------
    >>> from ase.build import mx2
    >>> import textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> sk = textures.skyrmion(textures.supercell(prim, (16, 16, 1)), radius=8.0, width=4.0)
    >>> round(textures.topological_charge(sk))
    -1
    """
    mask = magnetic_mask(atoms, magnetic)
    lengths = magnitudes(atoms, mask, magnitude)
    layer = find_layer(atoms, mask)
    r_max = layer.min_period() / 2 if layer.periodic else np.inf
    if radius is None:
        if not layer.periodic:
            raise TextureError("give radius= (Å) for a non-periodic layer")
        radius = r_max / 2
    width = radius / 2 if width is None else width
    _check_shape(radius, width, profile, polarity, vorticity)
    if radius + width > r_max:
        raise CellTooSmallError(
            f"radius + width = {radius + width:.2f} Å does not fit in this cell: a skyrmion "
            f"may reach at most half the shortest in-plane period, {r_max:.2f} Å. Use a "
            f"supercell whose in-plane periods are at least {2 * (radius + width):.1f} Å, "
            "or a smaller radius/width"
        )
    c = _center_2d(atoms, layer, center)
    m = _texture(
        layer.project(atoms.get_positions()),
        c,
        layer.lattice if layer.periodic else None,
        layer,
        radius=radius,
        width=width,
        profile=profile,
        helicity=helicity,
        polarity=polarity,
        vorticity=vorticity,
    )
    return with_moments(atoms, np.where(mask[:, None], m, 0.0), lengths)


def antiskyrmion(
    atoms: Atoms,
    *,
    center: ArrayLike | None = None,
    radius: float | None = None,
    width: float | None = None,
    profile: Profile = "standard",
    helicity: float = 0.0,
    polarity: int = -1,
    magnetic: Species = None,
    magnitude: Magnitude = None,
) -> Atoms:
    """One antiskyrmion: :func:`skyrmion` with vorticity −1 (``Q = −p``, +1 by default).

    Parameters are those of :func:`skyrmion` without ``vorticity``.

    Examples
    --------
    >>> from ase.build import mx2
    >>> import textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> sc = textures.supercell(prim, (16, 16, 1))
    >>> round(textures.topological_charge(textures.antiskyrmion(sc, radius=8.0, width=4.0)))
    1
    """
    return skyrmion(
        atoms,
        center=center,
        radius=radius,
        width=width,
        profile=profile,
        helicity=helicity,
        polarity=polarity,
        vorticity=-1,
        magnetic=magnetic,
        magnitude=magnitude,
    )


def _distortion(basis: np.ndarray, kind: LatticeKind) -> tuple[float, float]:
    """(shape distortion, mean spacing in Å) of a 2D lattice w.r.t. the ideal ``kind``."""
    b1, b2 = reduce_basis_2d(basis)
    l1, l2 = np.linalg.norm(b1), np.linalg.norm(b2)
    cos = abs(b1 @ b2) / (l1 * l2)
    ideal = 0.5 if kind == "triangular" else 0.0
    return max(l2 / l1 - 1.0, abs(cos - ideal)), float(np.sqrt(l1 * l2))


def _superlattices(cell2d: np.ndarray, n: int) -> list[np.ndarray]:
    """All 2D lattices containing ``cell2d``'s lattice with index ``n`` (bases, rows)."""
    out = []
    for a in range(1, n + 1):
        if n % a:
            continue
        d = n // a
        for c in range(d):
            k = np.array([[a, 0], [c, d]], dtype=float)
            out.append(np.linalg.solve(k, cell2d))
    return out


def _skyrmion_basis(
    cell2d: np.ndarray, n: int | None, spacing: float | None, kind: LatticeKind
) -> np.ndarray:
    if kind not in ("triangular", "square"):
        raise TextureError(f"kind must be 'triangular' or 'square', got {kind!r}")
    if (n is None) == (spacing is None):
        raise TypeError("give exactly one of n= (number of skyrmions) or spacing= (Å)")
    area = abs(np.linalg.det(cell2d))
    if n is not None:
        if int(n) != n or n < 1:
            raise TextureError(f"n must be a positive integer, got {n}")
        counts = [int(n)]
    else:
        if not spacing > 0:
            raise TextureError(f"spacing must be positive (Å), got {spacing}")
        ideal = spacing**2 * (np.sqrt(3) / 2 if kind == "triangular" else 1.0)
        n0 = area / ideal
        counts = list(range(max(1, int(n0 / 2)), int(2 * n0) + 2))
    best, best_score, best_dist = None, np.inf, np.inf
    for count in counts:
        for basis in _superlattices(cell2d, count):
            dist, s = _distortion(basis, kind)
            score = dist + (0.0 if spacing is None else abs(s / spacing - 1.0))
            best_dist = min(best_dist, dist)
            if dist <= LATTICE_TOLERANCE and score < best_score:
                best, best_score = basis, score
    if best is None:
        what = f"{n} skyrmions" if n is not None else f"skyrmions {spacing} Å apart"
        raise CellTooSmallError(
            f"no {kind} lattice of {what} fits this cell within {LATTICE_TOLERANCE:.0%} "
            f"distortion (best {best_dist:.0%}); choose a cell of matching shape (a "
            "hexagonal supercell for a triangular lattice, a square one for a square "
            "lattice) or another n"
        )
    return reduce_basis_2d(best)


def skyrmion_lattice(
    atoms: Atoms,
    n: int | None = None,
    *,
    spacing: float | None = None,
    kind: LatticeKind = "triangular",
    center: ArrayLike | None = None,
    radius: float | None = None,
    width: float | None = None,
    profile: Profile = "standard",
    helicity: float = 0.0,
    polarity: int = -1,
    vorticity: int = 1,
    magnetic: Species = None,
    magnitude: Magnitude = None,
) -> Atoms:
    """A periodic triangular or square lattice of (anti)skyrmions in a periodic layer.

    The skyrmion lattice is the superlattice of the in-plane cell lattice of the requested
    ``kind`` with ``n`` points per cell (or spacing closest to ``spacing``); every atom takes
    the texture of its nearest skyrmion (minimum image), so the total charge is
    ``Q = n p v``.

    Parameters
    ----------
    atoms : ase.Atoms
        A layered structure, periodic in-plane (not modified).
    n : int, optional
        Number of skyrmions in the cell; exclusive with ``spacing``.
    spacing : float, optional
        Target distance (Å) between neighbouring skyrmions.
    kind : {"triangular", "square"}
        Shape of the skyrmion lattice; it must fit the cell within 2 % distortion.
    center : array_like, optional
        Cartesian position (Å) of one core; default the centre of the in-plane cell.
    radius : float, optional
        Radius ``R`` (Å); default a quarter of the skyrmion spacing.
    width : float, optional
        Domain-wall width (Å); default ``R / 2``.
    profile, helicity, polarity, vorticity, magnetic, magnitude
        As in :func:`skyrmion`.

    Returns
    -------
    ase.Atoms
        A new structure whose ``initial_magmoms`` is ``(N, 3)`` μB.

    Raises
    ------
    CellTooSmallError
        If no lattice of the requested kind fits, or ``R + w`` exceeds half the spacing.

    Examples
    --------
    >>> from ase.build import mx2
    >>> import textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> sc = textures.skyrmion_lattice(textures.supercell(prim, (16, 16, 1)), n=4)
    >>> round(textures.topological_charge(sc))
    -4
    """
    mask = magnetic_mask(atoms, magnetic)
    lengths = magnitudes(atoms, mask, magnitude)
    layer = find_layer(atoms, mask)
    if not layer.periodic:
        raise TextureError("a skyrmion lattice needs a layer periodic in both in-plane directions")
    basis = _skyrmion_basis(layer.lattice, n, spacing, kind)
    r_max = float(np.linalg.norm(basis[0])) / 2
    radius = r_max / 2 if radius is None else radius
    width = radius / 2 if width is None else width
    _check_shape(radius, width, profile, polarity, vorticity)
    if radius + width > r_max:
        raise CellTooSmallError(
            f"radius + width = {radius + width:.2f} Å exceeds half the skyrmion spacing "
            f"({r_max:.2f} Å); use fewer skyrmions, a larger spacing or a smaller radius"
        )
    c = _center_2d(atoms, layer, center)
    m = _texture(
        layer.project(atoms.get_positions()),
        c,
        basis,
        layer,
        radius=radius,
        width=width,
        profile=profile,
        helicity=helicity,
        polarity=polarity,
        vorticity=vorticity,
    )
    return with_moments(atoms, np.where(mask[:, None], m, 0.0), lengths)
