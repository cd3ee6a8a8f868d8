"""Spin assembly of H0 + H_mag blocks, with the magnetic part in its O(edges) form.

Eq. (10) of the HamGNN++ paper sums, over every bond ``<i', j'>`` and every atom ``k'``,
exchange tensors times weight operators ``W``.  Collecting the coefficient of each ``W_k``
gives the exchange field of atom ``k``

    b_k = sum_{j in N(k)} J_kj M_j + (A_k + A_kᵀ) M_k,       (J_jk = J_kjᵀ)

and, since ``W_k`` has blocks ``(k, k) = w_kk`` and ``(k, j) = (j, k)ᵀ = w_kj / 2``,

    H_mag[k, k] = w_kk ⊗ (b_k · σ),     H_mag[i, j] = (w_ij / 2) ⊗ ((b_i + b_j) · σ).

This costs O(edges) instead of O(edges²); ``tests/model`` checks it against a literal
term-by-term evaluation of Eq. (10).

Exchange channels (``ModelConfig.exchange_channels = C``, beyond the paper): H_mag is a sum of
C copies of Eq. (10), each with its own weight operator and tensors,
``H_mag = Σ_c W^c ⊗ (b^c · σ)``.  With one channel every orbital block of atom k couples to
the moments through the same matrix ``w_kk``; ab initio exchange is not that rigid (the field
of a neighbour's moment polarizes other orbitals than the atom's own moment does), and C
channels let C such patterns add up.  Every symmetry stays exact channel by channel.  The
channel axis sits before the matrix axes: ``w`` (..., C, n, m), ``J``/``A`` (..., C, 3, 3),
``b`` (..., C, 3); inputs without it are one channel.

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
    """``b^c_k = Σ_j J^c_kj M_j + (A^c_k + A^cᵀ_k) M_k`` (eV), shape (N, C, 3) for tensors
    (E, C, 3, 3) and (N, C, 3, 3), or (N, 3) without the channel axis."""
    b = torch.einsum("n...ab,nb->n...a", a_node + a_node.transpose(-1, -2), moments)
    return b.index_add(0, src, torch.einsum("e...ab,eb->e...a", j_edge, moments[dst]))


def _along(w, b, axis: int) -> torch.Tensor:
    """``Σ_c w^c b^c_axis``: weights (..., C, n, m), field (..., C, 3) -> (..., n, m)."""
    return torch.einsum("...cij,...c->...ij", w, b[..., axis])


def spin_blocks(h0, soc, w, b) -> torch.Tensor:
    """Complex spin-major blocks from real ``h0`` (..., n, m), ``soc`` (..., 3, n, m), channel
    weights ``w`` (..., C, n, m) and exchange fields ``b`` (..., C, 3)."""
    hx, hy, hz = soc.unbind(-3)
    wx, wy, wz = (_along(w, b, a) for a in range(3))
    if torch.is_grad_enabled() and any(t.requires_grad for t in (h0, soc, w, b)):
        uu = torch.complex(h0 + wz, hz)
        dd = torch.complex(h0 - wz, -hz)
        ud = torch.complex(hy + wx, hx - wy)
        du = torch.complex(wx - hy, hx + wy)
        return torch.cat([torch.cat([uu, ud], -1), torch.cat([du, dd], -1)], -2)
    # inference: write real and imaginary parts in place (no complex temporaries, no cat)
    n, m = h0.shape[-2:]
    dtype = torch.complex128 if h0.dtype == torch.float64 else torch.complex64
    out = torch.empty(*h0.shape[:-2], 2 * n, 2 * m, dtype=dtype, device=h0.device)
    parts = torch.view_as_real(out)  # (..., 2n, 2m, 2)
    up, dn, left, right = slice(0, n), slice(n, 2 * n), slice(0, m), slice(m, 2 * m)
    torch.add(h0, wz, out=parts[..., up, left, 0])
    parts[..., up, left, 1] = hz
    torch.sub(h0, wz, out=parts[..., dn, right, 0])
    torch.neg(hz, out=parts[..., dn, right, 1])
    torch.add(hy, wx, out=parts[..., up, right, 0])
    torch.sub(hx, wy, out=parts[..., up, right, 1])
    torch.sub(wx, hy, out=parts[..., dn, left, 0])
    torch.add(hx, wy, out=parts[..., dn, left, 1])
    return out


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
        cut = blocks[sel[:, None, None], rows[None, :, None], cols[None, None, :]]
        idx = starts[sel, None] + torch.arange(4 * a * b, device=blocks.device)
        flat[idx.reshape(-1)] = cut.reshape(-1)
    return flat


def assemble_blocks(h0_n, soc_n, w_n, a_n, h0_e, soc_e, w_e, j_e, moments, src, dst,
                    n_orb, nmax, magnetic: bool = True) -> dict[str, torch.Tensor]:
    """Full and (``magnetic``) magnetic flattened blocks (on-site in atom order, edges in
    edge order).  ``w_n``, ``a_n``, ``w_e``, ``j_e`` carry a channel axis after the first
    (see the module docstring); without it they are one channel."""
    if w_n.dim() == h0_n.dim():  # one channel, no channel axis
        w_n, a_n, w_e, j_e = (t.unsqueeze(1) for t in (w_n, a_n, w_e, j_e))
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
