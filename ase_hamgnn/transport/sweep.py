"""Speed-ups of Kwant's scattering solve used by :mod:`ase_hamgnn.transport.scattering`.

MUMPS over an energy sweep keeps its symbolic analysis while the sparsity pattern is the
same, checking the backward error of every reused solve.

Lead modes of mirror leads come from one eigendecomposition.

The two leads of one direction of :func:`~ase_hamgnn.transport.export.to_kwant_system` are the
same unit cell run to ``-d`` and ``+d``: the modes of one follow from the Schur form of the
other with the translation eigenvalues inverted, which halves the dense work per energy.
The result is handed to Kwant through its precalculated-lead mechanism; anything that is not
a clean mirror pair falls back to Kwant's own ``lead.modes``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["all_lead_modes", "mirror_pairs", "mumps_sweep_solver", "precalculated"]

_REUSE_BACKWARD_ERROR = 1e-10


def mumps_sweep_solver():
    """Kwant's MUMPS solver for one energy sweep: the symbolic analysis (fill-reducing
    ordering, 10-25 % of a solve for a 1000-atom region) of the first linear system is
    reused for the next energies while the sparsity pattern of the linear system is the
    same (it is, for a fixed system: the lead blocks always have ``n_cell`` columns).

    The numerical factorization is redone at every energy with MUMPS' threshold pivoting,
    so the results are those of a fresh solve; as a guard, the backward error of every
    solve with a reused analysis is checked (``|A x - b| <= 1e-10 (|A| |x| + |b|)``,
    max-norms per column) and the system is analysed afresh if it is exceeded.  A new
    instance per sweep keeps one factorization alive at a time; options are those of
    ``kwant.solvers.mumps.options``.  Raises ``ImportError`` without MUMPS.
    """
    import kwant.solvers.mumps as kmumps
    from kwant.linalg.mumps import MUMPSContext

    class MumpsSweep(kmumps.Solver):
        def __init__(self) -> None:
            super().__init__()
            self._ctx = None
            self._pattern: tuple | None = None
            self._lhs = None
            self._reused = False

        def _factorized(self, a):
            a = a.tocoo()
            same = (self._ctx is not None and self._pattern[0] == a.shape
                    and np.array_equal(self._pattern[1], a.row)
                    and np.array_equal(self._pattern[2], a.col))
            if same:
                self._ctx.factor(a, ordering=self.ordering, reuse_analysis=True)
            else:
                self._ctx = MUMPSContext()
                self._ctx.factor(a, ordering=self.ordering)
                self._pattern = (a.shape, a.row.copy(), a.col.copy())
            self._lhs, self._reused = a, same
            return self._ctx

        def _solve_linear_sys(self, factorized_a, b, kept_vars):
            if not self._reused or b.shape[1] == 0:
                return super()._solve_linear_sys(factorized_a, b, kept_vars)
            lhs = self._lhs.tocsr()
            rhs = b.toarray() if hasattr(b, "toarray") else np.asarray(b)
            x = np.concatenate([factorized_a.solve(rhs[:, j:j + self.nrhs])
                                for j in range(0, rhs.shape[1], self.nrhs)], axis=1)
            resid = np.abs(lhs @ x - rhs).max(axis=0)
            scale = (np.abs(lhs.data).max() * np.abs(x).max(axis=0)
                     + np.abs(rhs).max(axis=0))
            if (resid <= _REUSE_BACKWARD_ERROR * scale).all():
                return x[kept_vars]
            self._ctx = None                             # stale analysis: start afresh
            return super()._solve_linear_sys(self._factorized(self._lhs), b, kept_vars)

    solver = MumpsSweep()
    default = kmumps.default_solver                      # honour kwant.solvers.mumps.options
    solver.options(nrhs=default.nrhs, ordering=default.ordering,
                   sparse_rhs=default.sparse_rhs)
    return solver


#: Largest accepted bound on the condition number of the map that turns one lead's invariant
#: subspaces into its mirror lead's (:func:`_mirror_block_modes`); beyond it both leads are
#: solved separately.
_MIRROR_KAPPA_MAX = 1e4


def _mirror_perm(lead_a, lead_b) -> np.ndarray | None:
    """Orbitals of ``lead_a``'s unit cell in the order of ``lead_b``'s, if ``lead_b`` is the
    mirror image of ``lead_a`` (opposite period, the same unit cell up to a translation);
    else ``None``.  Only the geometry is matched; the Hamiltonians are compared later."""
    try:
        per_a = np.asarray(lead_a.symmetry.periods, dtype=np.float64)
        per_b = np.asarray(lead_b.symmetry.periods, dtype=np.float64)
        if per_a.shape[0] != 1 or per_a.shape != per_b.shape or not np.allclose(per_a, -per_b):
            return None
        cell_a = list(lead_a.sites[:lead_a.cell_size])
        cell_b = list(lead_b.sites[:lead_b.cell_size])
        if len(cell_a) != len(cell_b):
            return None
        index = {site: n for n, site in enumerate(cell_a)}
        order = [index.get(lead_a.symmetry.to_fd(site)) for site in cell_b]
        norbs = [site.family.norbs for site in cell_a]
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
    if None in order or len(set(order)) != len(order) or None in norbs:
        return None
    offsets = np.concatenate([[0], np.cumsum(norbs)])
    return np.concatenate([np.arange(offsets[k], offsets[k + 1]) for k in order]
                          ).astype(np.int64)


def mirror_pairs(fsyst) -> list[tuple[int, int, np.ndarray]]:
    """``(i, j, perm)`` for every pair of mirror leads (see :func:`_mirror_perm`)."""
    leads = list(getattr(fsyst, "leads", ()))
    pairs, used = [], set()
    for i in range(len(leads)):
        for j in range(i + 1, len(leads)):
            if i in used or j in used:
                continue
            perm = _mirror_perm(leads[i], leads[j])
            if perm is not None:
                pairs.append((i, j, perm))
                used.update((i, j))
    return pairs


def _assemble_modes(lmbdainv: np.ndarray, prop_vecs: np.ndarray, evan_vecs: np.ndarray,
                    extract: Callable, sqrt_hop: np.ndarray, tol: float) -> tuple:
    """``(PropagatingModes, StabilizedModes)`` from the eigenvectors of one lead, as
    ``kwant.physics.modes`` assembles them for a lead without symmetries."""
    from kwant.physics import leads as kl

    n = len(prop_vecs) // 2
    psi, real = kl.make_proper_modes(lmbdainv, prop_vecs, extract, tol, None, None, None)
    nmodes = len(real.velocities) // 2
    prop = kl.PropagatingModes(real.wave_functions, real.velocities, real.momenta)
    prop.block_nmodes = [nmodes]
    stab = kl.StabilizedModes(np.c_[psi[n:], evan_vecs[n:]], np.c_[psi[:n], evan_vecs[:n]],
                              nmodes, sqrt_hop)
    return prop, stab


def _mirror_block_modes(h_cell: np.ndarray, h_hop: np.ndarray, tol: float = 1e6
                        ) -> tuple[tuple, tuple] | None:
    """Modes of the lead ``(h_cell, h_hop)`` and of its mirror ``(h_cell, h_hop^dagger)``
    from one Schur decomposition, or ``None`` where Kwant's general algorithm is needed.

    ``h_cell`` already has the energy subtracted.  The first lead is solved exactly as
    ``kwant.physics.modes`` does for an invertible hopping (same linear system, Schur form,
    ordering and mode normalization).  With Kwant's pencil ``M = [[-V^-1 h, -B^2 V^-1],
    [V^dagger / B^2, 0]]`` (``B^2 = ||V||_F``, eigenvector ``(x, y)`` for ``1 / lambda``), the
    mirror lead has ``M' = S M^-1 S`` with the involution ``S = [[1, 0], [-h / B^2, -1]]``:
    its eigenvectors are ``S (x, y)`` for ``lambda``, so its decaying modes span ``S`` times
    the first lead's growing subspace (taken from the same Schur form, reordered) and its
    propagating modes are ``S`` times the first lead's.  ``S`` is applied exactly; its
    condition number ``<= (1 + ||h|| / B^2)^2`` bounds how much it can amplify the
    eigensolver's round-off, and above :data:`_MIRROR_KAPPA_MAX` ``None`` is returned.
    """
    import kwant.linalg as kla
    import scipy.linalg as la
    from kwant.physics import leads as kl

    n = h_cell.shape[0]
    if h_hop.shape != (n, n) or not np.any(h_hop):
        return None
    (pencil, rhs), sqrt_hop, extract = kl.setup_linsys(h_cell, h_hop, tol, None)
    if rhs is not None or sqrt_hop.shape != (n, n):
        return None                                     # singular hopping: Kwant's SVD path
    b_sq = float(np.real(sqrt_hop[0, 0])) ** 2
    if np.iscomplexobj(pencil):
        h = np.asarray(h_cell, dtype=np.complex128)
    else:
        h = np.real(h_cell)
    h_norm = float(np.sqrt(np.abs(h).sum(axis=0).max() * np.abs(h).sum(axis=1).max()))
    if (1.0 + h_norm / b_sq) ** 2 > _MIRROR_KAPPA_MAX:
        return None

    eps = np.finfo(pencil.dtype).eps * tol
    t, z, ev = kla.schur(pencil)
    decay_a = np.abs(ev) > 1 + eps                      # as kwant.physics.leads
    prop = np.abs(np.abs(ev) - 1) < eps
    nevan = n - int(prop.sum()) // 2
    if prop.sum() % 2 or decay_a.sum() != nevan or (~(decay_a | prop)).sum() != nevan:
        return None
    ev_prop = ev[prop]
    prop_a = kla.evecs_from_schur(t, z, prop)
    t, z, ev = kla.order_schur(decay_a, t, z)           # Kwant's order for the first lead
    evan_a = z[:, :nevan]

    # Growing subspace of the first lead (|1 / lambda| < 1): move it to the bottom of the
    # Schur form (usually no or few swaps) and solve T11 X - X T22 = -T12 for its basis
    # Z [X; 1]; a full reordering to the top would cost O(n^3) Givens swaps.
    top = np.abs(ev) > 1 - eps
    if top.sum() != 2 * n - nevan:
        return None
    if top[: 2 * n - nevan].sum() != 2 * n - nevan:
        t, z, ev = kla.order_schur(top, t, z)
        if (np.abs(ev[2 * n - nevan:]) > 1 - eps).any():
            return None
    k = 2 * n - nevan
    if nevan:
        trsyl = la.lapack.ztrsyl if np.iscomplexobj(t) else la.lapack.dtrsyl
        x, scale, info = trsyl(t[:k, :k], t[k:, k:], -t[:k, k:], isgn=-1)
        if info != 0 or not scale > 0:
            return None
        growing_a = z[:, :k] @ (x / scale) + z[:, k:]
    else:
        growing_a = z[:, k:]

    def mirror(vecs: np.ndarray) -> np.ndarray:
        x = vecs[:n]
        return np.concatenate([x, -(h @ x) / b_sq - vecs[n:]])

    prop_b = mirror(prop_a)
    evan_b = la.qr(mirror(growing_a), mode="economic")[0]   # orthonormal, like Schur vectors
    modes_a = _assemble_modes(ev_prop, prop_a, evan_a, extract, sqrt_hop, tol)
    modes_b = _assemble_modes(1.0 / ev_prop, prop_b, evan_b, extract, sqrt_hop, tol)
    return modes_a, modes_b


def _mirror_modes(lead_a, lead_b, perm: np.ndarray, energy: float,
                  params: Mapping[str, Any]) -> tuple[tuple, tuple] | None:
    """Modes of two mirror leads from one eigendecomposition, after checking that their
    Hamiltonians really are mirror images (``None`` otherwise)."""
    from kwant.physics import leads as kl

    for lead in (lead_a, lead_b):
        sym = lead.discrete_symmetry(params=params)
        if any(getattr(sym, name) is not None
               for name in ("projectors", "time_reversal", "particle_hole", "chiral")):
            return None                                 # conservation laws, symmetries
    h_a = lead_a.cell_hamiltonian(params=params)
    hop_a = lead_a.inter_cell_hopping(params=params)
    h_b = lead_b.cell_hamiltonian(params=params)
    hop_b = lead_b.inter_cell_hopping(params=params)
    n = len(perm)
    if not (h_a.shape == h_b.shape == hop_a.shape == hop_b.shape == (n, n)):
        return None
    ix = np.ix_(perm, perm)
    tol = 1e-13 * max(float(np.abs(h_a).max(initial=0.0)),
                      float(np.abs(hop_a).max(initial=0.0)), 1e-300)
    if (np.abs(h_b - h_a[ix]).max(initial=0.0) > tol
            or np.abs(hop_b - hop_a.conj().T[ix]).max(initial=0.0) > tol):
        return None
    h_a = np.array(h_a, copy=True)
    h_a.flat[:: n + 1] -= energy
    got = _mirror_block_modes(h_a, hop_a)
    if got is None:
        return None
    modes_a, (prop, stab) = got
    prop_b = kl.PropagatingModes(prop.wave_functions[perm], prop.velocities, prop.momenta)
    prop_b.block_nmodes = prop.block_nmodes
    stab_b = kl.StabilizedModes(stab.vecs[perm], stab.vecslmbdainv[perm], stab.nmodes,
                                stab.sqrt_hop)
    return modes_a, (prop_b, stab_b)


def all_lead_modes(fsyst, energy: float, kw_params: Mapping[str, Any],
                pairs: Sequence[tuple[int, int, np.ndarray]]) -> list:
    """Modes of every lead (``None`` for leads defined by a self-energy only)."""
    leads = fsyst.leads
    out: list = [None] * len(leads)
    for i, j, perm in pairs:
        got = _mirror_modes(leads[i], leads[j], perm, energy, kw_params)
        if got is not None:
            out[i], out[j] = got
    for n, lead in enumerate(leads):
        if out[n] is None and hasattr(lead, "modes"):
            out[n] = lead.modes(energy, params=kw_params)
    return out


def precalculated(fsyst, modes: Sequence):
    """Copy of ``fsyst`` whose leads return ``modes`` (Kwant's ``precalculate`` mechanism)."""
    from copy import copy

    from kwant.system import PrecalculatedLead

    out = copy(fsyst)
    out.leads = [lead if m is None else PrecalculatedLead(modes=m)
                 for lead, m in zip(fsyst.leads, modes, strict=True)]
    return out


