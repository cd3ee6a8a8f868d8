"""Atoms with moments -> graph: periodic neighbour list with cell shifts, and the block layout
that maps Hamiltonian blocks onto atoms and edges.

Neighbour search is vesin's cell-list algorithm (linear in the number of atoms).  Edges are
directed, ``i -> j`` for every pair closer than the cutoff including periodic images
(``j`` in the image ``R``), without self-pairs at ``R = 0``; they are sorted by
``(i, j, R)`` so a graph is a deterministic function of the structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import vesin

from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.errors import OverlappingAtomsError, StructureError
from ase_hamgnn.geometry import Geometry

__all__ = ["MIN_DISTANCE", "BlockLayout", "NeighborGraph", "block_coordinates", "check_structure",
           "neighbor_graph"]

#: Smallest interatomic distance (Å, periodic images included) a prediction accepts: closer
#: atoms are duplicates or a broken structure, and give a meaningless (or NaN) Hamiltonian.
MIN_DISTANCE = 0.5


def check_structure(geometry: Geometry, min_distance: float = MIN_DISTANCE) -> None:
    """Check that a structure can be predicted; every predictor calls this first.

    Checks that there is at least one atom and that no two atoms (periodic images
    included, an atom and its own images too) are closer than ``min_distance`` Å
    (``min_distance <= 0`` skips the distances).  Finite positions, a proper periodic cell
    and sane moments are checked when the :class:`~ase_hamgnn.geometry.Geometry` is made.

    Raises
    ------
    StructureError
        If there are no atoms.
    OverlappingAtomsError
        If two atoms are closer than ``min_distance``; the message names them.
    """
    if len(geometry) == 0:
        raise StructureError("the structure has no atoms; give at least one atom")
    min_distance = float(min_distance)
    if not min_distance > 0:
        return
    cell, pbc = geometry.cell, geometry.pbc
    for d in range(3):
        if pbc[d] and np.linalg.norm(cell[d]) < min_distance:
            raise OverlappingAtomsError(
                f"lattice vector {d} has length {np.linalg.norm(cell[d]):.3f} Å < "
                f"{min_distance} Å: every atom overlaps its own periodic image; check the cell"
            )
    i, j, shifts, dist = _vesin_pairs(geometry, min_distance, "ijSd")
    if len(i):
        worst = int(np.argmin(dist))
        image = "" if not shifts[worst].any() else f" (image R={shifts[worst].tolist()})"
        raise OverlappingAtomsError(
            f"atoms {int(i[worst])} and {int(j[worst])}{image} are {dist[worst]:.3f} Å apart "
            f"(periodic images included), closer than min_distance = {min_distance} Å; "
            "remove duplicate atoms or fix the positions"
        )


def _vesin_pairs(geometry: Geometry, cutoff: float, quantities: str):
    """vesin's full neighbour list of ``geometry``.  Its periodic lattice vectors were
    checked by ``Geometry`` (a singular periodic cell crashes vesin); the non-periodic cell
    vectors do not matter (zero, or any length)."""
    cell = np.array(geometry.cell, dtype=np.float64)
    pbc = np.array(geometry.pbc, dtype=bool)
    if not pbc.any():
        cell = np.zeros((3, 3))
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    return nl.compute(np.array(geometry.positions, dtype=np.float64), cell, pbc,
                      quantities=quantities)


@dataclass(frozen=True, eq=False)
class NeighborGraph:
    """Directed periodic neighbour graph.

    Attributes
    ----------
    edge_index : (2, E) int64, source ``i`` and target ``j``.
    cell_shifts : (E, 3) int64, the lattice vector ``R`` of ``j``'s image.
    vectors : (E, 3) float64, ``r_j + R.cell - r_i`` in Å.
    reverse : (E,) int64, index of the edge ``(j, i, -R)``.
    cutoff : float, Å.
    """

    edge_index: np.ndarray
    cell_shifts: np.ndarray
    vectors: np.ndarray
    reverse: np.ndarray
    cutoff: float

    @property
    def n_edges(self) -> int:
        return self.edge_index.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        """Edge lengths in Å, (E,)."""
        return np.linalg.norm(self.vectors, axis=1)


def neighbor_graph(geometry: Geometry, cutoff: float) -> NeighborGraph:
    """All directed pairs closer than ``cutoff`` (Å), periodic along ``geometry.pbc``.

    Raises
    ------
    ValueError
        If the cutoff is not positive and finite.  (A singular periodic cell is refused
        earlier, by :class:`~ase_hamgnn.geometry.Geometry`.)
    """
    if not 0 < cutoff < np.inf:
        raise ValueError(f"cutoff must be positive and finite (Å), got {cutoff}")
    if len(geometry) == 0:
        empty = np.zeros((0, 3))
        return NeighborGraph(np.zeros((2, 0), np.int64), empty.astype(np.int64), empty,
                             np.zeros(0, np.int64), float(cutoff))
    i, j, shifts, vec = _vesin_pairs(geometry, cutoff, "ijSD")
    i, j = i.astype(np.int64), j.astype(np.int64)
    shifts = shifts.astype(np.int64)
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], j, i))
    i, j, shifts, vec = i[order], j[order], shifts[order], vec[order]
    keep = ~((i == j) & (shifts == 0).all(axis=1))
    i, j, shifts, vec = i[keep], j[keep], shifts[keep], vec[keep]
    reverse = _reverse_edges(i, j, shifts)
    return NeighborGraph(np.stack([i, j]), shifts, np.asarray(vec, dtype=np.float64), reverse,
                         float(cutoff))


def _edge_keys(i, j, shifts, n, span):
    s = shifts + span
    w = 2 * span + 1
    return ((i * n + j) * w + s[:, 0]) * w * w + s[:, 1] * w + s[:, 2]


def _reverse_edges(i: np.ndarray, j: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    if len(i) == 0:
        return np.zeros(0, np.int64)
    n = int(max(i.max(), j.max())) + 1
    span = int(np.abs(shifts).max()) if len(shifts) else 0
    keys = _edge_keys(i, j, shifts, n, span)
    rkeys = _edge_keys(j, i, -shifts, n, span)
    order = np.argsort(keys)
    pos = np.searchsorted(keys[order], rkeys)
    rev = order[np.minimum(pos, len(order) - 1)]
    if not np.array_equal(keys[rev], rkeys):
        raise RuntimeError("neighbour list is not symmetric; report this structure")
    return rev


def block_coordinates(sizes: np.ndarray, offsets: np.ndarray, rows_atoms: np.ndarray,
                      cols_atoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices (into the full matrix) of every entry of the blocks of the
    atom pairs ``(rows_atoms[k], cols_atoms[k])``, flattened in block order and row-major
    inside each block: the order of the flattened training targets.

    ``sizes[a]`` is atom ``a``'s block size, ``offsets[a]`` its first row.

    Examples
    --------
    >>> r, c = block_coordinates(np.array([1, 2]), np.array([0, 1]), np.array([0, 1]),
    ...                          np.array([1, 1]))
    >>> r.tolist(), c.tolist()
    ([0, 0, 1, 1, 2, 2], [1, 2, 1, 2, 1, 2])
    """
    rows_atoms, cols_atoms = np.asarray(rows_atoms), np.asarray(cols_atoms)
    si, sj = sizes[rows_atoms], sizes[cols_atoms]
    lens = si * sj
    total = int(lens.sum())
    block_id = np.repeat(np.arange(len(rows_atoms)), lens)
    within = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    r = within // sj[block_id]
    c = within % sj[block_id]
    return offsets[rows_atoms][block_id] + r, offsets[cols_atoms][block_id] + c


class BlockLayout:
    """Where each atom's and each edge's Hamiltonian block sits: in the flattened training
    targets and in the sparse ``H(R)`` matrices.

    Blocks are ``(2 n_i, 2 n_j)`` spin-major; flattened row-major and concatenated, on-site
    blocks in atom order and edge blocks in edge order.
    """

    def __init__(self, basis: OrbitalBasis, numbers: np.ndarray, graph: NeighborGraph) -> None:
        self.basis = basis
        self.numbers = np.asarray(numbers, dtype=np.int64)
        self.graph = graph
        self.offsets = basis.spin_orbital_offsets(self.numbers)
        self.sizes = np.diff(self.offsets)
        self.n = int(self.offsets[-1])
        src, dst = graph.edge_index
        self.onsite_len = self.sizes**2
        self.edge_len = self.sizes[src] * self.sizes[dst]
        self.onsite_start = np.concatenate([[0], np.cumsum(self.onsite_len)[:-1]]).astype(np.int64)
        self.edge_start = np.concatenate([[0], np.cumsum(self.edge_len)[:-1]]).astype(np.int64)

    def _coords(self, rows_atoms, cols_atoms):
        return block_coordinates(self.sizes, self.offsets, rows_atoms, cols_atoms)

    def to_matrices(self, onsite: np.ndarray, edge: np.ndarray) -> dict[tuple, sp.csr_matrix]:
        """Flattened on-site and edge blocks -> ``{R: H(R)}`` sparse matrices.

        Each ``H(R)`` is written straight in canonical CSR form (sorted column indices, no
        duplicates): blocks sorted by (row atom, column atom) fill every row of their row
        atom left to right, so the position of each entry follows from the row widths, with
        no coordinate sort."""
        n_atoms = len(self.numbers)
        atoms = np.arange(n_atoms)
        src, dst = self.graph.edge_index
        groups = {(0, 0, 0): [(atoms, atoms, self.onsite_start, onsite)]}
        shifts = self.graph.cell_shifts
        if len(shifts):
            keys, inv = np.unique(shifts, axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            order = np.argsort(inv, kind="stable")  # edges grouped by cell shift, O(edges)
            bounds = np.searchsorted(inv[order], np.arange(len(keys) + 1))
            for n, key in enumerate(keys):
                e = order[bounds[n] : bounds[n + 1]]
                groups.setdefault(tuple(int(x) for x in key), []).append(
                    (src[e], dst[e], self.edge_start[e], edge))
        return {key: self._csr(parts) for key, parts in groups.items()}

    def _csr(self, parts) -> sp.csr_matrix:
        """One CSR matrix from lists of (row atoms, column atoms, flat starts, flat values)
        of distinct blocks."""
        rows = np.concatenate([p[0] for p in parts])
        cols = np.concatenate([p[1] for p in parts])
        starts = np.concatenate([p[2] for p in parts])
        source = np.concatenate([np.full(len(p[0]), k) for k, p in enumerate(parts)])
        order = np.lexsort((cols, rows))
        rows, cols, starts, source = rows[order], cols[order], starts[order], source[order]
        si, sj = self.sizes[rows], self.sizes[cols]
        width = np.bincount(rows, weights=sj, minlength=len(self.sizes)).astype(np.int64)
        before = np.cumsum(sj) - sj  # columns of earlier blocks, over all rows
        first = np.searchsorted(rows, rows, side="left")  # first block of the same row atom
        col_start = before - before[first]
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.repeat(width, self.sizes), out=indptr[1:])
        nnz = int(indptr[-1])
        dtype = np.result_type(*(p[3].dtype for p in parts))
        data = np.empty(nnz, dtype=dtype)
        indices = np.empty(nnz, dtype=np.int64)
        # blocks of one (rows, cols) size and one source at a time: regular 3-D index grids
        size_key = (si * (int(sj.max()) + 1) + sj) * len(parts) + source
        for key in np.unique(size_key):
            sel = np.nonzero(size_key == key)[0]
            a, b, k = int(si[sel[0]]), int(sj[sel[0]]), int(source[sel[0]])
            r = np.arange(a)[None, :, None]
            c = np.arange(b)[None, None, :]
            first_pos = indptr[self.offsets[rows[sel]]] + col_start[sel]
            dest = first_pos[:, None, None] + r * width[rows[sel]][:, None, None] + c
            values = parts[k][3]
            data[dest] = values[starts[sel][:, None] + np.arange(a * b)].reshape(-1, a, b)
            indices[dest] = self.offsets[cols[sel]][:, None, None] + c
        if nnz and self.n < np.iinfo(np.int32).max and nnz < np.iinfo(np.int32).max:
            indices, indptr = indices.astype(np.int32), indptr.astype(np.int32)
        mat = sp.csr_matrix((data, indices, indptr), shape=(self.n, self.n))
        mat.has_sorted_indices = True
        mat.has_canonical_format = True
        return mat

    def _shift_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct cell shifts of the edges and, per edge-block entry, which one it has."""
        shifts = self.graph.cell_shifts
        if len(shifts) == 0:
            return np.zeros((0, 3), np.int64), np.zeros(0, np.int64)
        keys, inv = np.unique(shifts, axis=0, return_inverse=True)  # per edge, not per entry
        return keys, np.repeat(inv.reshape(-1), self.edge_len)

    def from_matrices(self, matrices) -> tuple[np.ndarray, np.ndarray]:
        """``{R: H(R)}`` -> flattened on-site and edge blocks (entries outside the graph are
        dropped; use :meth:`coverage` to check nothing was lost)."""
        atoms = np.arange(len(self.numbers))
        ro, co = self._coords(atoms, atoms)
        h0 = matrices.get((0, 0, 0))
        onsite = np.asarray(h0[ro, co]).ravel() if h0 is not None else np.zeros(len(ro), complex)
        src, dst = self.graph.edge_index
        re, ce = self._coords(src, dst)
        edge = np.zeros(len(re), dtype=np.complex128)
        keys, inv = self._shift_groups()
        if len(keys):
            for n, key in enumerate(keys):
                mat = matrices.get(tuple(int(x) for x in key))
                if mat is None:
                    continue
                sel = inv == n
                edge[sel] = np.asarray(sp.csr_matrix(mat)[re[sel], ce[sel]]).ravel()
        return onsite.astype(np.complex128), edge

    def coverage(self, matrices) -> float:
        """Largest |entry| of ``matrices`` that the graph's blocks do not hold (eV)."""
        onsite, edge = self.from_matrices(matrices)
        back = self.to_matrices(onsite, edge)
        worst = 0.0
        for r, m in matrices.items():
            diff = sp.csr_matrix(m) - back.get(r, sp.csr_matrix(m.shape))
            if diff.nnz:
                worst = max(worst, float(np.abs(diff.data).max()))
        return worst
