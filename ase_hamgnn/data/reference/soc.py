"""Orbital angular momentum in e3nn's real-orbital basis and the on-site ``zeta L.S`` matrix.

``L_alpha`` (alpha = x, y, z, units of hbar) acts on the coefficient vector of one shell in
e3nn order.  It is obtained from e3nn's Clebsch–Gordan tensor ``C^{l 1 l}``: the coupling
``l x 1 -> l`` is unique and antisymmetric, so ``C^{l 1 l}[:, alpha, :] = A_alpha`` is
proportional to the generator of rotations about Cartesian axis ``alpha`` (e3nn's ``1o``
basis is ``(x, y, z)``).  ``L_alpha = i c A_alpha`` with the real constant ``c`` (sign
included) fixed by ``[L_x, L_y] = i L_z``; then ``D^l(exp(-i theta n.L)) = wigner_d(l,
R_n(theta))`` holds exactly, and the spin-orbit matrix ``(zeta / 2) sum_alpha L_alpha (x)
sigma_alpha`` commutes with ``D^l (x) U`` for every rotation (U from
:func:`ase_hamgnn.symmetry.su2_from_rotation`).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from e3nn import o3

from ase_hamgnn.symmetry import PAULI

__all__ = ["angular_momentum", "soc_matrix"]


@cache
def angular_momentum(l: int) -> np.ndarray:  # noqa: E741
    """``(L_x, L_y, L_z)`` for a shell of angular momentum ``l`` in e3nn's real-orbital order,
    complex128, shape ``(3, 2l + 1, 2l + 1)``, units of hbar; ``L^2 = l (l + 1)``.

    Examples
    --------
    >>> lz = angular_momentum(1)[2]    # p shell, orbitals (x, y, z)
    >>> float(lz[0, 1].imag)           # <x| L_z |y> = -i
    -1.0
    """
    if not isinstance(l, (int, np.integer)) or l < 0:
        raise ValueError(f"l must be a non-negative integer, got {l!r}")
    n = 2 * l + 1
    if l == 0:
        out = np.zeros((3, 1, 1), dtype=np.complex128)
        out.setflags(write=False)
        return out
    a = o3.wigner_3j(l, 1, l, dtype=torch.float64).numpy().transpose(1, 0, 2)  # (3, n, n)
    # [i c A_x, i c A_y] = i (i c A_z)  <=>  c [A_x, A_y] = A_z
    comm = a[0] @ a[1] - a[1] @ a[0]
    c = float(np.sum(a[2] * comm) / np.sum(comm * comm))
    out = 1j * c * a
    casimir = np.einsum("aij,ajk->ik", out, out)
    if not np.allclose(casimir, l * (l + 1) * np.eye(n), atol=1e-12):  # pragma: no cover
        raise RuntimeError(f"angular momentum matrices for l={l} fail L^2 = l(l+1)")
    out.setflags(write=False)
    return out


def soc_matrix(l: int, zeta: float) -> np.ndarray:  # noqa: E741
    """On-site spin-orbit block ``zeta L.S = (zeta / 2) sum_alpha sigma_alpha (x) L_alpha`` of one
    shell, spin-major (``[orbitals up, orbitals down]``), complex128, shape
    ``(2 (2l + 1), 2 (2l + 1))``, eV for ``zeta`` in eV.

    The eigenvalues are ``zeta l / 2`` (``j = l + 1/2``, ``2l + 2`` states) and
    ``-zeta (l + 1) / 2`` (``j = l - 1/2``, ``2l`` states).
    """
    lmat = angular_momentum(l)
    return 0.5 * float(zeta) * sum(np.kron(PAULI[a], lmat[a]) for a in range(3))
