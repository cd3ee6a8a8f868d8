"""Eigenvalue term of the training loss: states near the gap at Γ.

A Hamiltonian can be close entry by entry and still misplace the states a user looks at
(band edges, the gap).  With ``eigen_weight > 0`` the loss adds the mean squared error of the
eigenvalues of ``H(Γ) c = E S(Γ) c`` within ``eigen_window`` eV of the reference's mid-gap
(between the highest occupied and lowest empty state, the valence electron count of the
model's table filling the spin-orbitals from below), per structure of the batch.

``H(Γ) = Σ_R H(R)`` sums every periodic image into the home cell (for a cluster it is H
itself); the overlap comes from the records (identity for an orthogonal basis).  The
generalized problem is solved through the Cholesky factor of S, so gradients flow through
``torch.linalg.eigvalsh``, whose backward pass ``V diag(g) V†`` stays finite at degenerate
levels.
"""

from __future__ import annotations

import numpy as np
import torch

from ase_hamgnn import keys as K
from ase_hamgnn.graph import block_coordinates

__all__ = ["GammaEigenvalues"]


class GammaEigenvalues:
    """Eigenvalues at Γ of the predicted and reference Hamiltonians of a batch.

    Parameters
    ----------
    block_sizes : dict
        Spin-orbital block size (``2 n_orbitals``) per atomic number.
    valence : dict
        Valence electrons per atomic number.
    window : float
        Half-width (eV) of the energy window around the reference's mid-gap.

    Examples
    --------
    >>> eig = GammaEigenvalues({28: 2}, {28: 1.0}, window=3.0)
    >>> eig.window
    3.0
    """

    def __init__(self, block_sizes: dict[int, int], valence: dict[int, float],
                 window: float) -> None:
        top = max(max(block_sizes), max(valence)) + 1
        self.sizes = np.zeros(top, dtype=np.int64)
        self.valence = np.zeros(top, dtype=np.float64)
        for z, n in block_sizes.items():
            self.sizes[z] = n
        for z, v in valence.items():
            self.valence[z] = v
        self.window = float(window)

    def errors(self, out: dict[str, torch.Tensor], batch) -> tuple[torch.Tensor, int]:
        """Sum of squared eigenvalue errors (eV²) in the windows of all structures of the
        batch, and how many eigenvalues entered it.

        Raises
        ------
        ValueError
            If a structure's ``Σ_R S(R)`` is not positive definite (the graph's cutoff
            drops overlap that the basis needs at Γ)."""
        z = batch[K.ATOMIC_NUMBERS].detach().cpu().numpy()
        sizes = self.sizes[z]
        src, dst = batch[K.EDGE_INDEX].detach().cpu().numpy()
        ptr = batch.ptr.detach().cpu().numpy() if hasattr(batch, "ptr") else np.array([0, len(z)])
        # structures are contiguous in a batch: their atoms, edges and flattened blocks
        owner = np.searchsorted(ptr, src, side="right") - 1  # structure of each edge
        edge_ptr = np.searchsorted(owner, np.arange(len(ptr)))
        on_len = np.concatenate([[0], np.cumsum(sizes * sizes)])
        ed_len = np.concatenate([[0], np.cumsum(sizes[src] * sizes[dst])])
        has_s = K.S_ONSITE in batch and batch[K.S_ONSITE] is not None
        dtype = out["onsite"].dtype
        total = out["onsite"].real.new_zeros(())
        count = 0
        for g in range(len(ptr) - 1):
            a0, a1, e0, e1 = int(ptr[g]), int(ptr[g + 1]), int(edge_ptr[g]), int(edge_ptr[g + 1])
            local = sizes[a0:a1]
            offsets = np.concatenate([[0], np.cumsum(local)])
            atoms = np.arange(a1 - a0)
            coords = (block_coordinates(local, offsets, atoms, atoms),
                      block_coordinates(local, offsets, src[e0:e1] - a0, dst[e0:e1] - a0),
                      int(offsets[-1]))
            on, ed = slice(on_len[a0], on_len[a1]), slice(ed_len[e0], ed_len[e1])
            hp = _dense(out["onsite"][on], out["edge"][ed], coords)
            hp = 0.5 * (hp + hp.conj().T)
            with torch.no_grad():
                hr = _dense(batch[K.H_ONSITE][on].to(dtype), batch[K.H_EDGE][ed].to(dtype),
                            coords)
                hr = 0.5 * (hr + hr.conj().T)
                chol = None
                if has_s:
                    sg = _dense(batch[K.S_ONSITE][on].to(dtype), batch[K.S_EDGE][ed].to(dtype),
                                coords)
                    chol, info = torch.linalg.cholesky_ex(0.5 * (sg + sg.conj().T))
                    if int(info):
                        raise ValueError(
                            f"the overlap at Γ of structure {g} of this batch is not positive "
                            "definite (the graph's cutoff drops overlap the basis needs); "
                            "train without eigen_weight or with a larger cutoff")
                e_ref = torch.linalg.eigvalsh(_reduce(hr, chol))
            e_pred = torch.linalg.eigvalsh(_reduce(hp, chol))
            n_el = int(round(float(self.valence[z[a0:a1]].sum())))
            if 0 < n_el < len(e_ref):
                mid = 0.5 * (e_ref[n_el - 1] + e_ref[n_el])
            else:
                mid = e_ref.mean()
            sel = (e_ref - mid).abs() <= self.window
            total = total + ((e_pred - e_ref)[sel] ** 2).sum()
            count += int(sel.sum())
        return total, count


def _dense(onsite: torch.Tensor, edge: torch.Tensor, coords) -> torch.Tensor:
    """Dense ``Σ_R`` matrix of one structure from its flattened blocks (images summed)."""
    (ro, co), (re, ce), n = coords
    flat = torch.zeros(n * n, dtype=onsite.dtype, device=onsite.device)
    flat = flat.index_add(0, torch.as_tensor(ro * n + co, device=onsite.device), onsite)
    if len(re):
        flat = flat.index_add(0, torch.as_tensor(re * n + ce, device=onsite.device), edge)
    return flat.view(n, n)


def _reduce(h: torch.Tensor, chol: torch.Tensor | None) -> torch.Tensor:
    """``L⁻¹ H L⁻†`` for ``S = L L†`` (``H`` itself for an orthogonal basis)."""
    if chol is None:
        return h
    y = torch.linalg.solve_triangular(chol, h, upper=False)
    a = torch.linalg.solve_triangular(chol, y.conj().T, upper=False).conj().T
    return 0.5 * (a + a.conj().T)
