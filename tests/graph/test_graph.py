"""Neighbour graph and block layout."""

from __future__ import annotations

import numpy as np
from ase.neighborlist import neighbor_list
from tb_helpers import random_tb

from ase_hamgnn.geometry import Geometry
from ase_hamgnn.graph import BlockLayout, neighbor_graph


def test_graph_matches_ase_and_reverse_edges(nibr2_like):
    atoms = nibr2_like.repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    g = neighbor_graph(Geometry.from_atoms(atoms), 6.0)
    i, j, s = neighbor_list("ijS", atoms, 6.0)
    mine = set(zip(g.edge_index[0], g.edge_index[1], map(tuple, g.cell_shifts)))
    theirs = set(zip(i, j, map(tuple, s)))
    assert mine == theirs
    src, dst = g.edge_index
    np.testing.assert_array_equal(src[g.reverse], dst)
    np.testing.assert_array_equal(g.cell_shifts[g.reverse], -g.cell_shifts)
    np.testing.assert_allclose(g.vectors[g.reverse], -g.vectors, atol=1e-12)
    expected = atoms.positions[dst] + g.cell_shifts @ atoms.cell.array - atoms.positions[src]
    np.testing.assert_allclose(g.vectors, expected, atol=1e-10)
    assert (g.cell_shifts[:, 2] == 0).all()  # no images along the non-periodic axis


def test_block_layout_round_trip(rng, basis, nibr2_like):
    ham = random_tb(rng, nibr2_like, basis)
    g = neighbor_graph(ham.geometry, 9.5)  # covers every pair of images R in {-1, 0, 1}
    layout = BlockLayout(basis, ham.geometry.numbers, g)
    onsite, edge = layout.from_matrices(ham.h_r)
    assert len(onsite) == (12**2 + 2 * 8**2) and len(edge) == layout.edge_len.sum()
    # block of edge e sits where the layout says
    e = 5
    i, j = g.edge_index[:, e]
    blk = edge[layout.edge_start[e]:layout.edge_start[e] + layout.edge_len[e]]
    np.testing.assert_array_equal(blk.reshape(layout.sizes[i], layout.sizes[j]),
                                  ham.block(i, j, g.cell_shifts[e]))
    back = layout.to_matrices(onsite, edge)
    assert layout.coverage(ham.h_r) == 0.0
    for r, m in ham.h_r.items():
        assert abs(back[r] - m).max() == 0.0
    # a shorter cutoff drops blocks, and coverage says how much
    short = BlockLayout(basis, ham.geometry.numbers, neighbor_graph(ham.geometry, 3.0))
    assert short.coverage(ham.h_r) > 0.1


def test_to_matrices_equals_a_literal_coordinate_build(rng, basis, nibr2_like):
    """The direct CSR writer puts every flattened entry where a literal (row, col) listing
    says, in canonical form (sorted indices, no duplicates), for real and complex blocks."""
    import scipy.sparse as sp

    atoms = nibr2_like.repeat((2, 2, 1))
    atoms.rattle(0.05, seed=3)
    geometry = Geometry.from_atoms(atoms)
    g = neighbor_graph(geometry, 6.0)
    layout = BlockLayout(basis, geometry.numbers, g)
    src, dst = g.edge_index
    off = layout.offsets
    for dtype in (np.float64, np.complex128):
        onsite = rng.normal(size=int(layout.onsite_len.sum())).astype(dtype)
        edge = rng.normal(size=int(layout.edge_len.sum())).astype(dtype)
        if dtype == np.complex128:
            edge = edge + 1j * rng.normal(size=len(edge))
        literal: dict = {}

        def put(key, i, j, flat, literal=literal):
            rows, cols, vals = literal.setdefault(key, ([], [], []))
            for k, v in enumerate(flat):
                r, c = divmod(k, layout.sizes[j])
                rows.append(off[i] + r)
                cols.append(off[j] + c)
                vals.append(v)

        for i in range(len(atoms)):
            a = layout.onsite_start[i]
            put((0, 0, 0), i, i, onsite[a : a + layout.onsite_len[i]])
        for e in range(len(src)):
            a = layout.edge_start[e]
            put(tuple(int(x) for x in g.cell_shifts[e]), src[e], dst[e],
                edge[a : a + layout.edge_len[e]])
        fast = layout.to_matrices(onsite, edge)
        assert set(fast) == set(literal)
        for key, (rows, cols, vals) in literal.items():
            ref = sp.coo_matrix((vals, (rows, cols)), shape=(layout.n, layout.n)).toarray()
            mat = fast[key]
            assert mat.dtype == dtype and mat.nnz == len(vals)
            np.testing.assert_array_equal(mat.toarray(), ref)
            check = mat.copy()
            check.has_canonical_format = False
            check.sum_duplicates()
            np.testing.assert_array_equal(check.indices, mat.indices)
