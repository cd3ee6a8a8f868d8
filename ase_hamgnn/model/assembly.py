"""Spin assembly of H0 + H_mag blocks, with the magnetic part in its O(edges) form.

Eq. (10) of the HamGNN++ paper sums, over every bond ``<i', j'>`` and every atom ``k'``,
exchange tensors times weight operators ``W``.  Collecting the coefficient of each ``W_k``
gives the exchange field of atom ``k``

    b_k = sum_{j in N(k)} J_kj M_j + (A_k + A_kᵀ) M_k,       (J_jk = J_kjᵀ)

and, since ``W_k`` has blocks ``(k, k) = w_kk`` and ``(k, j) = (j, k)ᵀ = w_kj / 2``,

    H_mag[k, k] = w_kk ⊗ (b_k · σ),     H_mag[i, j] = (w_ij / 2) ⊗ ((b_i + b_j) · σ).

This costs O(edges) instead of O(edges²); ``tests/model`` checks it against a literal
term-by-term evaluation of Eq. (10).

Spin-major blocks of ``h0 ⊗ σ0 + i Σ_α h^α ⊗ σ_α + w ⊗ (b · σ)`` are

    [[h0 + i h^z + w b_z,        h^y + i h^x + w (b_x - i b_y)],
     [-h^y + i h^x + w (b_x + i b_y),  h0 - i h^z - w b_z]].
"""

from __future__ import annotations

import torch

__all__ = [
    "assemble_blocks",
    "exchange_field",
    "flatten_blocks",
    "spin_blocks",
    "time_reversal_odd",
    "time_reversal_partner",
]


def exchange_field(j_edge, a_node, moments, src, dst) -> torch.Tensor:
    """``b_k = Σ_j J_kj M_j + (A_k + A_kᵀ) M_k`` (eV), shape (N, 3)."""
    b = torch.einsum("nab,nb->na", a_node + a_node.transpose(-1, -2), moments)
    return b.index_add(0, src, torch.einsum("eab,eb->ea", j_edge, moments[dst]))


def spin_blocks(h0, soc, w, b) -> torch.Tensor:
    """Complex spin-major blocks from real ``h0`` (..., n, m), ``soc`` (..., 3, n, m), ``w``
    (..., n, m) and exchange field ``b`` (..., 3)."""
    hx, hy, hz = soc.unbind(-3)
    bx, by, bz = (b[..., a, None, None] for a in range(3))
    uu = torch.complex(h0 + w * bz, hz)
    dd = torch.complex(h0 - w * bz, -hz)
    ud = torch.complex(hy + w * bx, hx - w * by)
    du = torch.complex(-hy + w * bx, hx + w * by)
    return torch.cat([torch.cat([uu, ud], -1), torch.cat([du, dd], -1)], -2)


def flatten_blocks(blocks: torch.Tensor, n_row: torch.Tensor, n_col: torch.Tensor, nmax: int
             ) -> torch.Tensor:
    """Cut padded (B, 2 nmax, 2 nmax) blocks to (2 n_row, 2 n_col) and concatenate them
    row-major in order."""
    sizes = 4 * n_row * n_col
    starts = torch.cumsum(sizes, 0) - sizes
    flat = blocks.new_zeros(int(sizes.sum()))
    span = int(n_col.max()) + 1 if len(n_col) else 1
    pair_key = n_row * span + n_col  # 1-D keys: torch.unique(dim=0) is slow on long inputs
    for key in torch.unique(pair_key).tolist():
        a, b = divmod(int(key), span)
        sel = torch.nonzero(pair_key == key).flatten()
        ar = torch.arange(a, device=blocks.device)
        br = torch.arange(b, device=blocks.device)
        rows = torch.cat([ar, nmax + ar])
        cols = torch.cat([br, nmax + br])
        cut = blocks[sel][:, rows][:, :, cols].reshape(len(sel), -1)
        idx = starts[sel, None] + torch.arange(4 * a * b, device=blocks.device)
        flat[idx.reshape(-1)] = cut.reshape(-1)
    return flat


def assemble_blocks(h0_n, soc_n, w_n, a_n, h0_e, soc_e, w_e, j_e, moments, src, dst,
                    n_orb, nmax, magnetic: bool = True) -> dict[str, torch.Tensor]:
    """Full and (``magnetic``) magnetic flattened blocks (on-site in atom order, edges in
    edge order)."""
    b = exchange_field(j_e, a_n, moments, src, dst)
    b_edge = b[src] + b[dst]
    ni, nj = n_orb[src], n_orb[dst]
    out = {
        "onsite": flatten_blocks(spin_blocks(h0_n, soc_n, w_n, b), n_orb, n_orb, nmax),
        "edge": flatten_blocks(spin_blocks(h0_e, soc_e, 0.5 * w_e, b_edge), ni, nj, nmax),
        "exchange_field": b,
        "J": j_e,
        "A": a_n,
        "w_edge": w_e,
        "w_node": w_n,
    }
    if magnetic:
        mag_n = spin_blocks(torch.zeros_like(h0_n), torch.zeros_like(soc_n), w_n, b)
        mag_e = spin_blocks(torch.zeros_like(h0_e), torch.zeros_like(soc_e), 0.5 * w_e, b_edge)
        out["onsite_magnetic"] = flatten_blocks(mag_n, n_orb, n_orb, nmax)
        out["edge_magnetic"] = flatten_blocks(mag_e, ni, nj, nmax)
    return out


def time_reversal_partner(n_row: torch.Tensor, n_col: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Index and sign maps of time reversal on flattened spin-major blocks.

    For a block ``B = [[a, b], [c, d]]`` (spin-major), ``Θ B* Θ† = [[d*, -c*], [-b*, a*]]``
    with ``Θ = 1 ⊗ iσ_y``; entry ``k`` of the transformed flat array is
    ``sign[k] * conj(flat[index[k]])``.  The time-reversal-odd (magnetic) part of blocks
    ``x`` is ``(x - sign * conj(x[index])) / 2``.
    """
    sizes = 4 * n_row * n_col
    starts = torch.cumsum(sizes, 0) - sizes
    block = torch.repeat_interleave(torch.arange(len(sizes), device=sizes.device), sizes)
    within = torch.arange(int(sizes.sum()), device=sizes.device) - starts[block]
    n, m = n_row[block], n_col[block]
    row, col = within // (2 * m), within % (2 * m)
    s_row, s_col = row >= n, col >= m
    partner_row = torch.where(s_row, row - n, row + n)
    partner_col = torch.where(s_col, col - m, col + m)
    index = starts[block] + partner_row * 2 * m + partner_col
    sign = torch.where(s_row == s_col, 1.0, -1.0)
    return index, sign


def time_reversal_odd(flat: torch.Tensor, index: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Magnetic (time-reversal-odd) part ``(H - Θ H* Θ†) / 2`` of flattened blocks."""
    return 0.5 * (flat - sign.to(flat.real.dtype) * flat[index].conj())
