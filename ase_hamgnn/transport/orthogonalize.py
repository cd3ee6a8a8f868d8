"""Löwdin orthogonalization of a non-orthogonal :class:`~ase_hamgnn.TBHamiltonian`.

A Hamiltonian-to-Hamiltonian transform used where a consumer needs ``S = 1`` (e.g. Kwant's
periodic export); see the approximation stated in :func:`lowdin_orthogonalize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # a Hamiltonian-to-Hamiltonian transform: the result has the input's type
    from ase_hamgnn.hamiltonian import TBHamiltonian

__all__ = ["lowdin_orthogonalize"]


def lowdin_orthogonalize(ham: TBHamiltonian, kpts: Sequence[int] | None = None,
                         cutoff: float = 1e-8) -> TBHamiltonian:
    """Orthogonal Hamiltonian ``S^-1/2 H S^-1/2`` (Löwdin orbitals) on a Gamma-centred k-mesh.

    Approximation: ``H'(k) = S(k)^-1/2 H(k) S(k)^-1/2`` is computed on an odd ``kpts`` mesh and
    Fourier transformed to the ``R`` of the centred mesh box.  The spectrum is exact at the
    mesh k-points and interpolated between them; the error elsewhere decays with the range of
    ``S^-1/2`` (fast for weak overlap, slow near linear dependence).  Eigenvectors become
    ``S^1/2 c``: spin expectations turn from Mulliken-like ``c^dagger sigma S c`` into Löwdin
    populations.  Meant for primitive cells (one dense diagonalization per mesh point); for
    large scattering regions keep ``S`` and use the exact fixed-energy form of
    :func:`to_kwant_system`.

    Parameters
    ----------
    ham : TBHamiltonian
    kpts : 3 ints, optional
        Mesh; must be 1 along non-periodic axes.  Default per periodic axis
        ``4 max|R_a| + 1`` (H and S), so ``R'`` reaches twice the original range.
    cutoff : float
        Entries of ``H'(R)`` smaller than this (eV) are dropped.

    Returns
    -------
    TBHamiltonian
        Orthogonal (``s_r is None``); ``ham`` itself if it is already orthogonal.

    Raises
    ------
    ValueError
        If ``S(k)`` is not positive definite at a mesh point, or ``kpts`` is invalid.

    Examples
    --------
    >>> orth = lowdin_orthogonalize(ham_with_overlap, kpts=(9, 9, 1))          # doctest: +SKIP
    >>> builder = to_kwant(orth)                                                    # doctest: +SKIP
    """
    if ham.orthogonal:
        return ham
    pbc = ham.geometry.pbc
    rs = np.array(sorted(set(ham.h_r) | set(ham.s_r)), dtype=np.int64).reshape(-1, 3)
    if kpts is None:
        mesh = np.where(pbc, 4 * np.abs(rs).max(axis=0) + 1, 1)
    else:
        mesh = np.array([int(x) for x in kpts], dtype=np.int64)
        if mesh.shape != (3,) or (mesh < 1).any() or (mesh % 2 == 0).any():
            raise ValueError(f"kpts must be three odd positive integers, got {kpts!r}")
        if (mesh[~pbc] != 1).any():
            raise ValueError(f"kpts must be 1 along non-periodic axes (pbc = {pbc.tolist()})")
    grids = [np.arange(n) for n in mesh]
    ks = np.array(np.meshgrid(*grids, indexing="ij")).reshape(3, -1).T / mesh
    half = (mesh - 1) // 2
    rbox = np.array(np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij")
                    ).reshape(3, -1).T
    n = ham.n_spin_orbitals
    acc = np.zeros((len(rbox), n, n), dtype=np.complex128)
    for k in ks:
        h = ham.hk(k).toarray()
        s = ham.sk(k).toarray()
        w, v = np.linalg.eigh(0.5 * (s + s.conj().T))
        if w.min() <= 0:
            raise ValueError(
                f"S(k={k.tolist()}) is not positive definite (smallest eigenvalue {w.min():.3g}); "
                "the overlap is unphysical, Löwdin orthogonalization needs S > 0"
            )
        s_inv_half = (v / np.sqrt(w)) @ v.conj().T
        hk = s_inv_half @ h @ s_inv_half
        phases = np.exp(-2j * np.pi * (rbox @ k))
        acc += phases[:, None, None] * hk[None]
    acc /= len(ks)
    blocks = {}
    for r, mat in zip(rbox.tolist(), acc, strict=True):
        mat = np.where(np.abs(mat) >= cutoff, mat, 0.0)
        if np.any(mat) or r == [0, 0, 0]:
            blocks[tuple(r)] = sp.csr_matrix(mat)
    # Hermitize round-off (the mesh is symmetric, so H'(-R) = H'(R)^dagger up to 1e-15).
    sym_blocks = {}
    for r, mat in blocks.items():
        partner = blocks.get(tuple(-x for x in r))
        sym_blocks[r] = mat if partner is None else 0.5 * (mat + partner.conj().T)
    return type(ham)(ham.basis, ham.geometry, sym_blocks)
