"""Pictures of 2D spin textures: in-plane arrows coloured by the out-of-plane component."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

from ._cell import find_layer
from ._common import Species, magnetic_mask, moment_vectors

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_texture"]


def plot_texture(
    atoms: Atoms,
    ax: Axes | None = None,
    *,
    magnetic: Species = None,
    moments: ArrayLike | None = None,
    cmap: str = "coolwarm",
    colorbar: bool = True,
    show_cell: bool = True,
    title: str | None = None,
) -> Axes:
    """Draw the texture of a layer: arrows of the in-plane moment components, coloured by
    the component along the layer normal, with the periodic cell outlined.

    The picture uses the layer frame (``e_x``, ``e_y``; Cartesian x, y for a layer in the xy
    plane). Arrows show the unit direction ``m/|m|`` (length ∝ in-plane part); the dots
    under them show ``m_z = m·normal/|m|`` from −1 (blue) to +1 (red) with ``coolwarm``.

    Parameters
    ----------
    atoms : ase.Atoms
        A layered structure with ``initial_magmoms``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; default a new figure (pyplot is not used).
    magnetic : str or sequence of str, optional
        Magnetic species to draw; default: transition metals and rare earths present.
    moments : array_like, optional
        ``(N, 3)`` moments (μB) to draw instead of ``initial_magmoms``.
    cmap : str
        Matplotlib colormap for ``m_z``.
    colorbar : bool
        Add a colour bar for ``m_z``.
    show_cell : bool
        Outline the in-plane periodic cell.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into; the figure is ``ax.figure``.

    Examples
    --------
    >>> from ase.build import mx2
    >>> import textures
    >>> prim = mx2("NiBr2", kind="1T", a=3.71, thickness=2.8, vacuum=10)
    >>> sk = textures.skyrmion(textures.supercell(prim, (12, 12, 1)), radius=6.0)
    >>> ax = textures.plot_texture(sk)
    >>> ax.figure.savefig("skyrmion.png")  # doctest: +SKIP
    """
    from matplotlib.collections import EllipseCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Polygon

    mask = magnetic_mask(atoms, magnetic)
    layer = find_layer(atoms, mask)
    m = moment_vectors(atoms, moments)[mask]
    norms = np.linalg.norm(m, axis=1)
    u = np.divide(m, norms[:, None], out=np.zeros_like(m), where=norms[:, None] > 0)
    xy = layer.project(atoms.get_positions()[mask])
    if layer.periodic:
        frac = xy @ np.linalg.inv(layer.lattice)
        xy = (frac - np.floor(frac + 1e-9)) @ layer.lattice  # wrap into the drawn cell
    mx, my, mz = u @ layer.e_x, u @ layer.e_y, u @ layer.normal
    if ax is None:
        fig = Figure(figsize=(6, 5), layout="constrained")
        ax = fig.add_subplot()
    spacing = _spacing(xy, layer.lattice if layer.periodic else None)
    size = np.full(len(xy), 0.45 * spacing)
    dots = EllipseCollection(
        size,
        size,
        np.zeros(len(xy)),
        units="xy",
        offsets=xy,
        offset_transform=ax.transData,
        cmap=cmap,
        edgecolors="none",
        zorder=1,
    )
    dots.set_array(mz)
    dots.set_clim(-1, 1)
    ax.add_collection(dots)
    length = 0.85 * spacing
    ax.quiver(
        xy[:, 0] - 0.5 * length * mx,
        xy[:, 1] - 0.5 * length * my,
        length * mx,
        length * my,
        mz,
        cmap=cmap,
        clim=(-1, 1),
        angles="xy",
        scale_units="xy",
        scale=1.0,
        units="xy",
        width=0.08 * spacing,
        headwidth=3.5,
        headlength=3.5,
        headaxislength=3.0,
        pivot="tail",
        edgecolor="k",
        linewidth=0.4,
        zorder=2,
    )
    extent = xy
    if show_cell and layer.periodic:
        a1, a2 = layer.lattice
        corners = np.array([[0, 0], a1, a1 + a2, a2])
        ax.add_patch(Polygon(corners, closed=True, fill=False, lw=1.2, ec="k", zorder=3))
        extent = np.vstack([xy, corners])
    pad = 0.6 * spacing
    ax.set_xlim(extent[:, 0].min() - pad, extent[:, 0].max() + pad)
    ax.set_ylim(extent[:, 1].min() - pad, extent[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    if title is not None:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(dots, ax=ax, label=r"$m_z$", shrink=0.8)
    return ax


def _spacing(xy: np.ndarray, lattice: np.ndarray | None) -> float:
    """Typical nearest-neighbour distance (Å) of the drawn sites."""
    if lattice is not None:
        return float(np.sqrt(abs(np.linalg.det(lattice)) / len(xy)) * 1.07)
    if len(xy) < 2:
        return 1.0
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    d[d == 0] = np.inf
    return float(np.median(d.min(axis=1)))
