"""Cells: supercells with any integer matrix, the primitive reference cell, the 2D layer
frame and minimum-image in-plane distances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

from ._errors import NoLayerError, TextureError

__all__ = [
    "LAYER_TOLERANCE",
    "MIN_VACUUM",
    "PRIMITIVE_CELL_KEY",
    "Layer",
    "find_layer",
    "minimum_image_2d",
    "periodic_images_2d",
    "primitive_cell",
    "reduce_basis_2d",
    "supercell",
]

#: ``atoms.info`` key under which :func:`supercell` records the primitive cell (3x3, Å, rows).
PRIMITIVE_CELL_KEY = "primitive_cell"
#: Magnetic atoms within this height range (Å) along the normal form one layer.
LAYER_TOLERANCE = 1.0
#: An empty slab of at least this thickness (Å) along a cell vector counts as vacuum.
MIN_VACUUM = 5.0


def supercell(atoms: Atoms, reps_or_matrix: ArrayLike) -> Atoms:
    """Build a supercell from repetitions or any integer transformation matrix.

    Parameters
    ----------
    atoms : ase.Atoms
        The primitive (or any) cell. Per-atom arrays such as ``initial_magmoms`` are
        repeated; ``atoms`` is not modified.
    reps_or_matrix : sequence of 3 int or (3, 3) int array_like
        Repetitions ``(n1, n2, n3)`` or a matrix ``P`` whose rows are the new cell vectors
        in units of the old ones: ``new_cell = P @ atoms.cell``. ``P`` may be non-diagonal
        (e.g. ``[[2, 1, 0], [-1, 1, 0], [0, 0, 1]]`` for the √3×√3 cell of a triangular
        lattice with a 120° angle) and must have a non-zero determinant.

    Returns
    -------
    ase.Atoms
        The supercell with ``|det P| * len(atoms)`` atoms wrapped into the new cell. Its
        ``info["primitive_cell"]`` holds the primitive cell (Å) that wave vectors ``q`` refer
        to: the one already recorded in ``atoms.info``, else ``atoms.cell``.

    Examples
    --------
    >>> from ase.build import bulk
    >>> sc = supercell(bulk("Fe", cubic=True), [[1, 1, 0], [-1, 1, 0], [0, 0, 1]])
    >>> len(sc)
    4
    """
    p = np.asarray(reps_or_matrix)
    if p.ndim == 0:
        raise TypeError(
            "supercell needs 3 repetitions or a 3x3 matrix, not one number; "
            "for a layer use e.g. (n, n, 1)"
        )
    if p.shape == (3,):
        p = np.diag(p)
    if p.shape != (3, 3):
        raise TextureError(
            f"supercell needs 3 repetitions or a 3x3 integer matrix, got shape {p.shape}"
        )
    if not np.allclose(p, np.round(p), atol=1e-12):
        raise TextureError(f"supercell matrix must be integer, got {p.tolist()}")
    p = np.round(p).astype(int)
    if round(np.linalg.det(p)) == 0:
        raise TextureError(
            f"supercell matrix {p.tolist()} is singular; its rows must be linearly independent"
        )
    from ase.build import make_supercell  # imports scipy: only when needed

    prim = primitive_cell(atoms)
    out = make_supercell(atoms, p, wrap=True)
    out.info = {key: value for key, value in atoms.info.items()}
    out.info[PRIMITIVE_CELL_KEY] = prim.copy()
    return out


def primitive_cell(atoms: Atoms, cell: ArrayLike | None = None) -> np.ndarray:
    """The cell (3x3, Å, rows) that fractional wave vectors refer to.

    Order of precedence: the explicit ``cell``; ``atoms.info["primitive_cell"]`` (written by
    :func:`supercell`); ``atoms.cell`` itself. The result must tile ``atoms.cell``, i.e.
    ``atoms.cell @ inv(primitive)`` must be an integer matrix.
    """
    if cell is not None:
        prim = np.asarray(cell, dtype=float)
    elif PRIMITIVE_CELL_KEY in atoms.info:
        prim = np.asarray(atoms.info[PRIMITIVE_CELL_KEY], dtype=float).reshape(3, 3)
    else:
        prim = np.array(atoms.cell, dtype=float)
    if prim.shape != (3, 3) or abs(np.linalg.det(prim)) < 1e-12:
        raise TextureError(
            "the reference cell must be a 3x3 matrix with non-zero volume; give the structure "
            "a full 3D cell (add vacuum along non-periodic directions)"
        )
    m = np.array(atoms.cell) @ np.linalg.inv(prim)
    if not np.allclose(m, np.round(m), atol=1e-6):
        raise TextureError(
            "the primitive cell does not tile the cell of the structure "
            f"(cell @ inv(primitive) = {np.round(m, 4).tolist()} is not integer); pass the "
            "primitive cell the structure was built from as primitive_cell=..."
        )
    return prim


def supercell_matrix(atoms: Atoms, prim: np.ndarray) -> np.ndarray:
    """Integer ``P`` with ``atoms.cell = P @ prim``."""
    return np.round(np.array(atoms.cell) @ np.linalg.inv(prim)).astype(int)


def reduce_basis_2d(basis: np.ndarray) -> np.ndarray:
    """Lagrange (Gauss) reduction of a 2D lattice basis (rows, (2, 2)): shortest vectors."""
    b1, b2 = (np.array(v, dtype=float) for v in basis)
    if b1 @ b1 > b2 @ b2:
        b1, b2 = b2, b1
    while True:
        mu = round(float(b1 @ b2) / float(b1 @ b1))
        b2 = b2 - mu * b1
        if b2 @ b2 >= b1 @ b1 - 1e-12:
            break
        b1, b2 = b2, b1
    return np.array([b1, b2])


def periodic_images_2d(
    vectors: np.ndarray, basis: np.ndarray, tol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate periodic images of in-plane vectors and which of them are the shortest.

    Parameters
    ----------
    vectors : numpy.ndarray
        ``(M, 2)`` in-plane vectors (Å).
    basis : numpy.ndarray
        ``(2, 2)`` rows: the in-plane lattice vectors (Å).
    tol : float
        Images whose length is within ``tol`` (Å) of the shortest count as shortest too
        (points on the boundary of the Wigner–Seitz cell have several).

    Returns
    -------
    images : numpy.ndarray
        ``(M, 9, 2)`` images ``vector + lattice vector`` that contain all shortest ones.
    shortest : numpy.ndarray
        ``(M, 9)`` bool, the images of minimum length.
    """
    red = reduce_basis_2d(basis)
    frac = np.asarray(vectors, dtype=float) @ np.linalg.inv(red)
    frac -= np.round(frac)
    shifts = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)
    images = (frac[:, None, :] + shifts[None, :, :]) @ red
    length = np.linalg.norm(images, axis=2)
    return images, length <= length.min(axis=1, keepdims=True) + tol


def minimum_image_2d(vectors: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Shortest periodic images ``(M, 2)`` of in-plane vectors ``(M, 2)`` (Å) for the
    lattice with rows ``basis`` ``(2, 2)``; ties are broken by a fixed image order."""
    images, shortest = periodic_images_2d(vectors, basis)
    return images[np.arange(len(images)), np.argmax(shortest, axis=1)]


@dataclass(frozen=True)
class Layer:
    """The 2D frame of a layered structure.

    Attributes
    ----------
    axis : int
        Index of the cell vector that is not in the plane (stacking or vacuum direction).
    normal : numpy.ndarray
        ``(3,)`` unit normal, oriented so that its first non-zero component among (z, y, x)
        is positive (for a layer in the xy plane: +z).
    e_x, e_y : numpy.ndarray
        ``(3,)`` in-plane orthonormal axes with ``(e_x, e_y, normal)`` right-handed; ``e_x``
        is Cartesian x projected onto the plane (y if x is normal to it). For a layer in the
        xy plane these are Cartesian x and y.
    lattice : numpy.ndarray
        ``(2, 2)`` rows: the two in-plane cell vectors in ``(e_x, e_y)`` coordinates (Å).
    periodic : bool
        Whether both in-plane directions are periodic.
    """

    axis: int
    normal: np.ndarray
    e_x: np.ndarray
    e_y: np.ndarray
    lattice: np.ndarray
    periodic: bool

    def project(self, positions: np.ndarray) -> np.ndarray:
        """``(N, 2)`` in-plane coordinates (Å) of Cartesian ``(N, 3)`` positions."""
        return np.column_stack([positions @ self.e_x, positions @ self.e_y])

    def to_cartesian(self, vectors_2d: np.ndarray) -> np.ndarray:
        """``(N, 3)`` Cartesian vectors from ``(N, 2)`` in-plane components."""
        v = np.atleast_2d(vectors_2d)
        return v[:, :1] * self.e_x + v[:, 1:2] * self.e_y

    def min_period(self) -> float:
        """Length (Å) of the shortest non-zero in-plane lattice vector."""
        return float(np.linalg.norm(reduce_basis_2d(self.lattice)[0]))


def _circular_gaps(h: np.ndarray, period: float | None) -> tuple[float, float]:
    """(spread, largest gap) of heights ``h``; circular if ``period`` is given."""
    if period is None:
        return float(np.ptp(h)), float(np.inf)
    s = np.sort(np.mod(h, period))
    gaps = np.append(np.diff(s), s[0] + period - s[-1])
    biggest = float(gaps.max())
    return period - biggest, biggest


def _layer_frame(cell: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j = [k for k in range(3) if k != axis]
    n = np.cross(cell[i], cell[j])
    n /= np.linalg.norm(n)
    for comp in (2, 1, 0):
        if abs(n[comp]) > 1e-9:
            n = n if n[comp] > 0 else -n
            break
    ref = np.array([1.0, 0.0, 0.0])
    e_x = ref - (ref @ n) * n
    if np.linalg.norm(e_x) < 1e-6:
        ref = np.array([0.0, 1.0, 0.0])
        e_x = ref - (ref @ n) * n
    e_x /= np.linalg.norm(e_x)
    return n, e_x, np.cross(n, e_x)


def find_layer(atoms: Atoms, mask: np.ndarray, single: bool = False) -> Layer:
    """Find the 2D plane of a layered structure.

    The stacking axis is, in this order: the only non-periodic cell vector; else, among the
    cell vectors along which all magnetic atoms (``mask``) lie within
    :data:`LAYER_TOLERANCE` of one plane, the one with the largest empty gap (ties: the
    last); else the cell vector with the largest vacuum gap of at least :data:`MIN_VACUUM`.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure (needs a 3D cell).
    mask : numpy.ndarray
        ``(N,)`` bool, the magnetic atoms.
    single : bool
        Also require the magnetic atoms to form a single layer (for the topological charge).

    Raises
    ------
    NoLayerError
        If no 2D plane exists, or ``single`` and the magnetic atoms span several layers.
    """
    cell = np.array(atoms.cell, dtype=float)
    if abs(np.linalg.det(cell)) < 1e-9:
        raise NoLayerError(
            "the structure needs a full 3D cell to define its layer; add vacuum along the "
            "non-periodic direction (e.g. atoms.center(vacuum=10, axis=2))"
        )
    pbc = np.asarray(atoms.pbc, dtype=bool)
    pos = atoms.get_positions()
    stats = []
    for k in range(3):
        n, _, _ = _layer_frame(cell, k)
        period = abs(float(cell[k] @ n)) if pbc[k] else None
        spread, _ = _circular_gaps(pos[mask] @ n, period)
        _, gap = _circular_gaps(pos @ n, period)
        stats.append((spread, gap))
    if (~pbc).sum() == 1:
        axis = int(np.flatnonzero(~pbc)[0])
    else:
        flat = [k for k in range(3) if stats[k][0] <= LAYER_TOLERANCE]
        vac = [k for k in range(3) if stats[k][1] >= MIN_VACUUM]
        pool = flat or vac
        if not pool:
            raise NoLayerError(
                "the structure has no 2D layer: its magnetic atoms lie at several heights "
                "along every cell vector and no vacuum gap of at least "
                f"{MIN_VACUUM} Å exists; 2D textures and the topological charge need a "
                "layer (a slab with vacuum, or a single magnetic plane per cell)"
            )
        best = max(stats[k][1] for k in pool)
        axis = max(k for k in pool if stats[k][1] >= best - 1e-9)
    if single and stats[axis][0] > LAYER_TOLERANCE:
        raise NoLayerError(
            f"the magnetic atoms span {stats[axis][0]:.2f} Å along the layer normal, more than "
            f"one layer ({LAYER_TOLERANCE} Å); select one layer with magnetic=(...) or use a "
            "single magnetic layer"
        )
    n, e_x, e_y = _layer_frame(cell, axis)
    i, j = [k for k in range(3) if k != axis]
    lattice = np.array([[cell[i] @ e_x, cell[i] @ e_y], [cell[j] @ e_x, cell[j] @ e_y]])
    periodic = bool(pbc[i] and pbc[j])
    if not periodic and (pbc[i] or pbc[j]):
        raise NoLayerError(
            "the layer is periodic along one in-plane direction only (a ribbon); make both "
            "in-plane directions periodic or both non-periodic"
        )
    return Layer(axis, n, e_x, e_y, lattice, periodic)
