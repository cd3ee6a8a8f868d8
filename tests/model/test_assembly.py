"""The O(edges) magnetic assembly equals a literal term-by-term evaluation of Eq. (10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ase_hamgnn.model.assembly import assemble_blocks
from ase_hamgnn.symmetry import PAULI


def _literal_eq10(n_orb, edges, J, A, w_node, w_edge, M):
    """H_mag = sum_<i'j'> sum_ab J^ab (M_i'^a W_j' s_b + M_j'^b W_i' s_a)
    + sum_k sum_ab A_k^ab W_k (M_k^a s_b + M_k^b s_a),  dense, spin-major."""
    n_atoms = len(n_orb)
    off = np.concatenate([[0], np.cumsum(n_orb)])
    n = off[-1]

    def weight_operator(k):
        W = np.zeros((n, n))
        W[off[k] : off[k + 1], off[k] : off[k + 1]] = w_node[k][: n_orb[k], : n_orb[k]]
        for e, (i, j) in enumerate(edges):
            blk = w_edge[e][: n_orb[i], : n_orb[j]] / 2
            if i == k or j == k:
                W[off[i] : off[i + 1], off[j] : off[j + 1]] = blk
        return W

    Ws = [weight_operator(k) for k in range(n_atoms)]
    H = np.zeros((2 * n, 2 * n), dtype=complex)

    def add(W, vec):  # W (x) (vec . sigma), spin-major per atom
        spin = np.einsum("a,aij->ij", vec, PAULI)
        for i in range(n_atoms):
            for j in range(n_atoms):
                blk = np.kron(spin, W[off[i] : off[i + 1], off[j] : off[j + 1]])
                H[2 * off[i] : 2 * off[i + 1], 2 * off[j] : 2 * off[j + 1]] += blk

    seen = set()
    for e, (i, j) in enumerate(edges):
        if (j, i) in seen:
            continue
        seen.add((i, j))
        for a in range(3):
            for b in range(3):
                add(Ws[j], J[e][a, b] * M[i][a] * np.eye(3)[b])
                add(Ws[i], J[e][a, b] * M[j][b] * np.eye(3)[a])
    for k in range(n_atoms):
        for a in range(3):
            for b in range(3):
                add(Ws[k], A[k][a, b] * (M[k][a] * np.eye(3)[b] + M[k][b] * np.eye(3)[a]))
    return H, off


def _random_channel(rng, n_orb, edges, reverse, nmax):
    """J (J_ji = J_ijᵀ), A, symmetric w_node and w_edge (w_ji = w_ijᵀ) of one channel."""
    E, n_atoms = len(edges), len(n_orb)
    J = rng.normal(size=(E, 3, 3))
    J = 0.5 * (J + J[reverse].transpose(0, 2, 1))
    w_edge = np.zeros((E, nmax, nmax))
    raw = rng.normal(size=(E, nmax, nmax))
    for e, (i, j) in enumerate(edges):
        w_edge[e, : n_orb[i], : n_orb[j]] = raw[e, : n_orb[i], : n_orb[j]]
    w_edge = 0.5 * (w_edge + w_edge[reverse].transpose(0, 2, 1))
    w_node = np.zeros((n_atoms, nmax, nmax))
    for k in range(n_atoms):
        s = rng.normal(size=(n_orb[k], n_orb[k]))
        w_node[k, : n_orb[k], : n_orb[k]] = s + s.T
    return J, rng.normal(size=(n_atoms, 3, 3)), w_node, w_edge


@pytest.mark.parametrize("n_channels", [None, 1, 3])
def test_fast_assembly_equals_literal_eq10(n_channels):
    """One channel (with or without the channel axis) is the paper's Eq. (10); several
    channels are the sum of one Eq. (10) per channel."""
    rng = np.random.default_rng(7)
    n_orb = np.array([2, 3, 1, 3])
    nmax = 3
    n_atoms = len(n_orb)
    edges = [(i, j) for i in range(n_atoms) for j in range(n_atoms) if i != j]
    index = {e: k for k, e in enumerate(edges)}
    reverse = [index[(j, i)] for i, j in edges]
    E = len(edges)
    channels = [_random_channel(rng, n_orb, edges, reverse, nmax) for _ in range(n_channels or 1)]
    M = rng.normal(size=(n_atoms, 3))
    J, A, w_node, w_edge = (np.stack(parts, axis=1) for parts in zip(*channels))
    if n_channels is None:
        J, A, w_node, w_edge = J[:, 0], A[:, 0], w_node[:, 0], w_edge[:, 0]

    t = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    src = torch.tensor([i for i, _ in edges])
    dst = torch.tensor([j for _, j in edges])
    zeros_n, zeros_e = np.zeros((n_atoms, nmax, nmax)), np.zeros((E, nmax, nmax))
    out = assemble_blocks(
        t(zeros_n),
        t(np.zeros((n_atoms, 3, nmax, nmax))),
        t(w_node),
        t(A),
        t(zeros_e),
        t(np.zeros((E, 3, nmax, nmax))),
        t(w_edge),
        t(J),
        t(M),
        src,
        dst,
        torch.as_tensor(n_orb),
        nmax,
    )
    literal = 0
    for J_c, A_c, wn_c, we_c in channels:
        term, off = _literal_eq10(n_orb, edges, J_c, A_c, wn_c, we_c, M)
        literal = literal + term

    # place the fast flattened blocks into a dense matrix
    fast = np.zeros_like(literal)
    onsite = out["onsite_magnetic"].numpy()
    pos = 0
    for k in range(n_atoms):
        size = 2 * n_orb[k]
        fast[2 * off[k] : 2 * off[k + 1], 2 * off[k] : 2 * off[k + 1]] = onsite[
            pos : pos + size**2
        ].reshape(size, size)
        pos += size**2
    edge = out["edge_magnetic"].numpy()
    pos = 0
    for i, j in edges:
        si, sj = 2 * n_orb[i], 2 * n_orb[j]
        fast[2 * off[i] : 2 * off[i + 1], 2 * off[j] : 2 * off[j + 1]] = edge[
            pos : pos + si * sj
        ].reshape(si, sj)
        pos += si * sj
    assert np.abs(literal).max() > 1.0
    np.testing.assert_allclose(fast, literal, atol=1e-12)
    np.testing.assert_allclose(fast, fast.conj().T, atol=1e-12)
    # with no SOC/h0 the full blocks are the magnetic ones
    np.testing.assert_array_equal(out["edge"].numpy(), edge)
    if n_channels == 3:  # the channels do not collapse to one
        one, _ = _literal_eq10(n_orb, edges, *channels[0], M)
        assert np.abs(fast - one).max() > 0.1 * np.abs(fast).max()


def test_magnetic_output_is_the_time_reversal_odd_part(small_model, nibr2_like):
    """H0 is time-reversal even and H_mag odd: projecting the full prediction onto its odd
    part gives exactly the network's magnetic blocks."""
    from ase_hamgnn.model.assembly import time_reversal_odd, time_reversal_partner
    from ase_hamgnn.model.inputs import graph_inputs

    data, graph = graph_inputs(nibr2_like.repeat((2, 1, 1)), small_model.cutoff)
    with torch.no_grad():
        out = small_model.network(data)
    n_orb = torch.tensor([small_model.basis.n_orbitals(int(z)) for z in data.atomic_numbers])
    src, dst = data.edge_index
    for kind, rows, cols in (("onsite", n_orb, n_orb), ("edge", n_orb[src], n_orb[dst])):
        index, sign = time_reversal_partner(rows, cols)
        odd = time_reversal_odd(out[kind], index, sign)
        torch.testing.assert_close(odd, out[f"{kind}_magnetic"], atol=1e-12, rtol=0)
        assert out[f"{kind}_magnetic"].abs().max() > 1e-3
