"""Equivariant change of basis from network irreps to orbital blocks and Cartesian tensors.

Each decoder is a constant matrix ``C`` of shape ``(irreps_dim, block_size)`` such that
``block = x @ C`` maps a feature vector ``x`` of the stated irreps to a flattened block that
transforms as the block should.  They are built from e3nn's Clebsch–Gordan tensors
(``wigner_3j``), scaled to orthonormal rows, so they are complete bases of the block spaces:

* ``h0`` block of shells ``(l_a, l_b)``: ``l_a ⊗ l_b``, parity ``(-1)^(l_a + l_b)``;
* SOC block ``h^α`` of shells ``(l_a, l_b)``: ``(l_a ⊗ l_b) ⊗ 1e``, flattened ``[α, m_a, m_b]``;
* rank-2 Cartesian tensor (J, A): ``1e ⊗ 1e = 0e + 1e + 2e`` in e3nn's ``(x, y, z)`` order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from e3nn import o3

from ase_hamgnn.basis import OrbitalBasis

__all__ = ["Decoder", "pair_decoders", "tensor_decoder"]


def _p(l: int) -> int:  # noqa: E741
    return -1 if l % 2 else 1


@cache
def _w3j(l1: int, l2: int, l3: int) -> np.ndarray:
    return o3.wigner_3j(l1, l2, l3, dtype=torch.float64).numpy() * np.sqrt(2 * l3 + 1)


@dataclass(frozen=True)
class Decoder:
    """``block = x @ matrix`` with ``x`` of ``irreps``; ``shape`` is the block's shape."""

    irreps: o3.Irreps
    matrix: np.ndarray
    shape: tuple[int, ...]


def _shell_pair_h0(la: int, lb: int) -> list[tuple[o3.Irrep, np.ndarray]]:
    parity = _p(la) * _p(lb)
    out = []
    for L in range(abs(la - lb), la + lb + 1):
        c = _w3j(la, lb, L)  # [ma, mb, M]
        out.append((o3.Irrep(L, parity), np.transpose(c, (2, 0, 1))))  # [M, ma, mb]
    return out


def _shell_pair_soc(la: int, lb: int) -> list[tuple[o3.Irrep, np.ndarray]]:
    parity = _p(la) * _p(lb)
    out = []
    for lp in range(abs(la - lb), la + lb + 1):
        c1 = _w3j(la, lb, lp)  # [ma, mb, M']
        for L in range(abs(lp - 1), lp + 2):
            c2 = _w3j(lp, 1, L)  # [M', alpha, N]
            t = np.einsum("abm,mxn->nxab", c1, c2)  # [N, alpha, ma, mb]
            out.append((o3.Irrep(L, parity), t))
    return out


def _assemble(basis: OrbitalBasis, zi: int, zj: int, per_pair, spin_axis: bool) -> Decoder:
    shells_i, shells_j = basis.shells(zi), basis.shells(zj)
    ni, nj = basis.n_orbitals(zi), basis.n_orbitals(zj)
    slices_i, slices_j = basis.shell_slices(zi), basis.shell_slices(zj)
    shape = (3, ni, nj) if spin_axis else (ni, nj)
    rows, irreps = [], []
    for sa, si in zip(shells_i, slices_i):
        for sb, sj in zip(shells_j, slices_j):
            for irrep, tensor in per_pair(sa.l, sb.l):
                for m in range(irrep.dim):
                    full = np.zeros(shape)
                    if spin_axis:
                        full[:, si, sj] = tensor[m]
                    else:
                        full[si, sj] = tensor[m]
                    rows.append(full.ravel())
                irreps.append((1, irrep))
    return Decoder(o3.Irreps(irreps), np.array(rows), shape)


def pair_decoders(basis: OrbitalBasis, zi: int, zj: int) -> tuple[Decoder, Decoder]:
    """Decoders of the spin-independent block ``h0_ij`` (shape ``(n_i, n_j)``) and of the SOC
    block ``h^α_ij`` (shape ``(3, n_i, n_j)``) for elements ``zi``, ``zj``."""
    return (_assemble(basis, zi, zj, _shell_pair_h0, False),
            _assemble(basis, zi, zj, _shell_pair_soc, True))


def tensor_decoder(symmetric_only: bool = False) -> Decoder:
    """Decoder of a 3x3 Cartesian tensor from ``0e + 1e + 2e`` (``0e + 2e`` if symmetric)."""
    ls = (0, 2) if symmetric_only else (0, 1, 2)
    rows, irreps = [], []
    for L in ls:
        c = np.transpose(_w3j(1, 1, L), (2, 0, 1))
        rows.extend(c[m].ravel() for m in range(2 * L + 1))
        irreps.append((1, (L, 1)))
    return Decoder(o3.Irreps(irreps), np.array(rows), (3, 3))
