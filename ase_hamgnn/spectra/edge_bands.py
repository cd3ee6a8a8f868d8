"""Bands next to the gap along a k-path for large supercells, with factorizations at a few
k-points only.

A supercell of thousands of atoms has a tiny Brillouin zone, and its states next to the gap
change little along a path through it.  :func:`edge_bands` computes them as follows:

1. **Anchors.**  At one k-point (by default the middle of the path; more on request) the
   states next to the gap are computed by shift-invert with
   :func:`~ase_hamgnn.spectra.gap.edge_states` (a coarse KPM DOS places one shift next to each band
   edge).  The inertia of each factorization counts the states below its shift exactly,
   which fixes the band indices there (see :attr:`EdgeBands.index_source`).
2. **Reduced basis.**  The anchors' states, a few more than asked for on each side, and
   their first-order k-derivative directions are made Bloch-adapted: in the lattice gauge
   a state at ``k`` is ``exp(2 pi i k . t_i)`` times a smooth function of ``k`` (``t_i``
   the fractional position of its atom), so the basis vectors with that phase removed, and
   the phase of ``k`` put back, span the states at nearby ``k``.  Every k-point of the
   path gets a Rayleigh-Ritz step of ``H(k)``, ``S(k)`` in that span.  Its small matrices
   (``Q^H H Q``, ``(HQ)^H HQ``, ...) are trigonometric polynomials in ``k`` whose
   frequencies are the bond vectors in units of the cell, so along each straight segment
   of the path they are computed at a few Chebyshev nodes and interpolated in between (to
   about 1e-14; the node count follows from the longest bond): in a supercell of thousands
   of atoms a k-point between nodes costs small dense eigenproblems only.
3. **Check and correct.**  Every state carries its residual ``||H(k) c - E S(k) c||`` (eV,
   ``c`` S-normalized); the energy is within that of an exact eigenvalue (orthogonal basis;
   with an overlap within it over the smallest eigenvalue of ``S``).  Where a residual
   exceeds ``tol`` the worst k-points (up to four, spread along the path) are corrected:
   their states are refined by block iteration with the nearest anchor's factorizations
   as preconditioners (moved to ``k`` by the Bloch phases; no new factorization) and added
   to the basis, and the k-points still above ``tol`` are redone.  A correction that does
   not converge makes the k-point an anchor of its own (two factorizations at shifts next
   to the band edges, warm-started from the basis).

Energies in eV, k-points fractional (of the Hamiltonian's own cell).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from ase_hamgnn._blas import a_b, ah_b
from ase_hamgnn.spectra.dense import Bands, progress_bar
from ase_hamgnn.spectra.gap import MetallicError, edge_states_and_factors
from ase_hamgnn.spectra.kinterp import (
    SegmentInterpolant,
    bond_reach,
    chebyshev_nodes_needed,
    straight_segments,
)
from ase_hamgnn.spectra.shift_invert import ShiftInvert

__all__ = ["EdgeBands", "edge_bands"]

# Steps of block shift-invert refinement at an anchor before it counts as failed.
_MAX_REFINE = 40
# Steps of preconditioned refinement at a corrected k-point before it becomes an anchor.
_MAX_CORRECT = 12


@dataclass(frozen=True, eq=False)
class EdgeBands:
    """Bands next to the gap along a path, by band index (see :func:`edge_bands`).

    Attributes
    ----------
    kpts : (n_k, 3) float64
        Fractional k-points.
    energies : (n_k, n_below + n_above) float64
        eV, ascending at each k: the ``n_below`` highest occupied states, then the
        ``n_above`` lowest empty ones.
    indices : (n_below + n_above,) int64
        Their positions in the spectrum at every k (0-based; the VBM is ``n_electrons - 1``).
    spin : (n_k, n_below + n_above, 3) float64
        ``<sigma>`` of each state.
    residuals : (n_k, n_below + n_above) float64
        ``||H(k) c - E S(k) c||`` of each S-normalized state, eV: the error estimate.
    n_electrons : int
    anchors : tuple of int
        Indices of the k-points that were factorized, in the order they were added.
    counts : tuple of (int, float, int, float, int)
        Per anchor: k index, valence shift (eV), exact number of states below it, conduction
        shift, exact number of states below it.
    index_source : str
        How the band indices were established, in words.
    path : the ``BandPath`` (or ``None`` for plain k arrays).
    states : list of (dim, n_below + n_above) complex128 (or None), or None
        S-normalized states in the lattice gauge at each k (``vectors=True``; with a list of
        k indices, ``None`` at the others).
    timings : dict
        Seconds spent on the anchors (factorizations and their iterations) and on the
        Rayleigh-Ritz sweep.
    """

    kpts: np.ndarray
    energies: np.ndarray
    indices: np.ndarray
    spin: np.ndarray
    residuals: np.ndarray
    n_electrons: int
    anchors: tuple[int, ...]
    counts: tuple[tuple[int, float, int, float, int], ...]
    index_source: str
    path: Any = None
    states: list[np.ndarray] | None = None
    timings: dict = field(default_factory=dict)

    @property
    def n_below(self) -> int:
        return int(np.count_nonzero(self.indices < self.n_electrons))

    @property
    def vbm(self) -> float:
        """Highest occupied energy on the path, eV."""
        return float(self.energies[:, self.n_below - 1].max())

    @property
    def cbm(self) -> float:
        """Lowest empty energy on the path, eV."""
        return float(self.energies[:, self.n_below].min())

    @property
    def gap(self) -> float:
        return self.cbm - self.vbm

    @property
    def midgap(self) -> float:
        return 0.5 * (self.vbm + self.cbm)

    @property
    def max_residual(self) -> float:
        return float(self.residuals.max())

    def bands(self, side: str = "both") -> Bands:
        """The bands as :class:`~ase_hamgnn.spectra.dense.Bands` (drawn as lines: each column is
        one band), ``side`` = ``"both"``, ``"valence"`` or ``"conduction"``."""
        cols = {"both": slice(None), "valence": slice(0, self.n_below),
                "conduction": slice(self.n_below, None)}.get(side)
        if cols is None:
            raise ValueError(f"side must be 'both', 'valence' or 'conduction', got {side!r}")
        return Bands(self.kpts, self.energies[:, cols], self.spin[:, cols], self.path)

    def __str__(self) -> str:
        return (f"{self.energies.shape[1]} bands (indices {self.indices[0]}..{self.indices[-1]})"
                f" at {len(self.kpts)} k-points: VBM {self.vbm:.4f} eV, CBM {self.cbm:.4f} eV,"
                f" gap {self.gap:.4f} eV on the path; {len(self.anchors)} anchors; largest "
                f"residual {self.max_residual:.1e} eV")


def edge_bands(ham: Any, n_electrons: int, path: Any, n_below: int = 16, n_above: int = 16,
               *, anchors: int | Any = 1, max_anchors: int | None = None,
               max_corrections: int = 8, buffer: int = 8,
               tol: float = 1e-3, vectors: bool | Any = False, n_moments: int = 2048,
               rng: np.random.Generator | int | None = 0,
               progress: bool | None = None) -> EdgeBands:
    """The ``n_below`` highest occupied and ``n_above`` lowest empty bands along ``path``.

    Sparse factorizations happen only at the anchors; all other k-points are a Rayleigh-Ritz
    step in the Bloch-adapted span of the anchors' states (module notes).

    Parameters
    ----------
    ham : TBHamiltonian
        Orthogonal or with overlap ``S``.
    n_electrons : int
        Filled spinor states per cell (one electron each); the gap must be open at every k.
    path : BandPath or (n_k, 3) array_like
        Fractional k-points of ``ham``'s cell.
    n_below, n_above : int
        Bands on each side of the gap.
    anchors : int or sequence of int
        Number of anchors spread evenly along the path (default one, in the middle), or
        their k indices.
    max_anchors : int, optional
        Most anchors in all (default: the initial number plus 6); an anchor is added where
        a correction does not converge, or where residuals stay above ``tol`` after
        ``max_corrections`` corrections.
    max_corrections : int
        Most corrected k-points: where a residual exceeds ``tol`` the states are refined
        with the nearest anchor's factorizations as preconditioners (no new factorization)
        and added to the basis.
    buffer : int
        Extra states per side at each anchor, which make the basis better at the ends of
        the window.
    tol : float
        Largest accepted residual, eV (the energies are at least this accurate).
    vectors : bool or sequence of int
        Keep the states (:attr:`EdgeBands.states`, lattice gauge), e.g. for unfolding or
        maps of the band-edge states: ``True`` at every k-point, or at the listed k indices
        only (a 3468-atom cell holds 16 MB of states per k-point).
    n_moments, rng
        KPM moments and random vector that place the two shifts at the first anchor (see
        :func:`~ase_hamgnn.spectra.gap.edge_states`).
    progress : bool or None
        Progress bar over the k-points (``None``: on a terminal for long paths).

    Returns
    -------
    EdgeBands

    Raises
    ------
    MetallicError
        The gap closes somewhere on the path (the bands are then not countable from it).

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ref = ReferenceTB("nibri")
    >>> atoms = nibri((4, 4))
    >>> ham = ref.predict(atoms)
    >>> eb = edge_bands(ham, ref.n_electrons(atoms), [[0, 0, 0], [0.1, 0, 0], [0.2, 0, 0]],
    ...                 n_below=4, n_above=4, anchors=1)
    >>> eb.energies.shape, bool(eb.max_residual <= 1e-3)  # tol, the default
    ((3, 8), True)
    """
    if hasattr(path, "kpts"):
        kpts, bandpath = np.asarray(path.kpts, dtype=np.float64), path
    else:
        kpts, bandpath = np.asarray(path, dtype=np.float64).reshape(-1, 3), None
    n_k = len(kpts)
    if n_k == 0:
        raise ValueError("path has no k-points")
    n_below, n_above, buffer = int(n_below), int(n_above), int(buffer)
    if buffer < 0:
        raise ValueError(f"buffer must be >= 0, got {buffer}")
    if not isinstance(vectors, bool | np.bool_):
        idx = np.atleast_1d(np.asarray(vectors))
        if idx.dtype.kind not in "iu" or np.any(idx < -n_k) or np.any(idx >= n_k):
            raise ValueError(f"vectors must be True, False or k indices in 0..{n_k - 1}, "
                             f"got {vectors!r}")
    if not tol > 0:
        raise ValueError(f"tol must be a positive residual in eV, got {tol}")
    if isinstance(anchors, (int, np.integer)):
        if not 1 <= anchors:
            raise ValueError(f"anchors must be at least 1, got {anchors}")
        count = min(int(anchors), n_k)
        start = [int(round((j + 0.5) * n_k / count - 0.5)) for j in range(count)]
    else:
        start = [int(a) for a in anchors]
        if not start or min(start) < 0 or max(start) >= n_k:
            raise ValueError(f"anchor indices must lie in 0..{n_k - 1}, got {start}")
    limit = len(start) + 6 if max_anchors is None else int(max_anchors)
    max_corrections = int(max_corrections)
    if max_corrections < 0:
        raise ValueError(f"max_corrections must be >= 0, got {max_corrections}")
    solver = _Sweep(ham, int(n_electrons), kpts, n_below, n_above, buffer, tol)
    t0 = time.perf_counter()
    # the anchor nearest the middle of the path first, the others warm-started from it
    start = sorted(dict.fromkeys(start), key=lambda i: abs(i - 0.5 * (n_k - 1)))
    solver.first_anchor(start[0], n_moments, rng)
    for i in start[1:]:
        solver.add_anchor(i)
    t1 = time.perf_counter()
    # outwards from the anchors, so that each k-point takes its target energy (the middle
    # of the gap) from a computed neighbour
    todo = sorted((i for i in range(n_k) if i not in solver.done),
                  key=lambda i: min(abs(i - a) for a in solver.anchors))
    solver.sweep(todo, progress)
    t_fix = 0.0
    for _ in range(max_corrections + limit):
        worst = _worst_spread(solver, n_k, tol)
        if not worst or (len(solver.corrected) >= max_corrections
                         and len(solver.anchors) >= limit):
            break
        ta = time.perf_counter()
        for i in worst:    # corrected together, then one sweep
            if len(solver.corrected) < max_corrections:
                solver.correct(i, limit)
            elif len(solver.anchors) < limit:
                solver.add_anchor(i)
        t_fix += time.perf_counter() - ta
        fixed = set(solver.anchors) | set(solver.corrected)
        solver.sweep([i for i in range(n_k) if solver.residual(i) > tol and i not in fixed],
                     progress)
    t2 = time.perf_counter()
    return solver.result(bandpath, vectors, {"anchors_s": t1 - t0, "corrections_s": t_fix,
                                             "sweep_s": t2 - t1 - t_fix,
                                             "projections": solver.n_projections})


class _Sweep:
    """The state of one :func:`edge_bands` run: basis, anchors and per-k results."""

    def __init__(self, ham: Any, ne: int, kpts: np.ndarray, n_below: int, n_above: int,
                 buffer: int, tol: float, derivatives: bool = True) -> None:
        dim = int(ham.n_spin_orbitals)
        if not 0 < ne < dim:
            raise ValueError(f"n_electrons must be an integer in 1..{dim - 1}, got {ne}")
        if n_below < 1 or n_above < 1 or n_below + buffer > ne or n_above + buffer > dim - ne:
            raise ValueError(f"need 1 <= n_below <= {ne - buffer} and 1 <= n_above <= "
                             f"{dim - ne - buffer} (buffer {buffer}), got {n_below} and "
                             f"{n_above}")
        self.ham, self.ne, self.kpts, self.tol = ham, ne, kpts, tol
        self.derivatives = derivatives
        self.n_below, self.n_above, self.buffer = n_below, n_above, buffer
        offsets = np.asarray(ham.offsets)
        counts = np.diff(offsets)
        self._tau = np.repeat(ham.geometry.scaled_positions, counts, axis=0)
        atom = np.repeat(np.arange(len(counts)), counts)
        local = np.arange(dim) - offsets[atom]
        up = local < (counts // 2)[atom]
        self._up, self._dn = np.flatnonzero(up), np.flatnonzero(~up)
        self.basis = np.zeros((dim, 0), np.complex128)    # Bloch-adapted, orthonormal
        self.anchors: list[int] = []
        self.counts: list[tuple[int, float, int, float, int]] = []
        self.done: dict[int, tuple] = {}                 # k index -> (e, x, spin, residuals)
        self.shifts: tuple[float, float] = (0.0, 0.0)
        self.mid = 0.0
        self._sig: np.ndarray | None = None
        self._coef: dict[int, np.ndarray] = {}          # k index -> coefficients in basis
        self._reach = bond_reach(ham)
        self.n_projections = 0
        self.factors: dict[int, tuple] = {}   # anchor k index -> (valence, conduction) solver
        self.corrected: list[int] = []

    # -- helpers ---------------------------------------------------------------------------
    def _phase(self, k: np.ndarray) -> np.ndarray:
        return np.exp(2j * np.pi * (self._tau @ k))

    def _matrices(self, k: np.ndarray):
        h = self.ham.hk(k).tocsr()
        s = None if self.ham.orthogonal else self.ham.sk(k).tocsr()
        return h, s

    def residual(self, i: int) -> float:
        return float(self.done[i][3].max()) if i in self.done else np.inf

    def _spin(self, x: np.ndarray, sx: np.ndarray) -> np.ndarray:
        cu, cd, su, sd = x[self._up], x[self._dn], sx[self._up], sx[self._dn]
        sxx = np.sum(cu.conj() * sd + cd.conj() * su, axis=0)
        syy = np.sum(-1j * cu.conj() * sd + 1j * cd.conj() * su, axis=0)
        szz = np.sum(cu.conj() * su - cd.conj() * sd, axis=0)
        return np.stack([sxx, syy, szz], axis=1).real

    def _select(self, theta: np.ndarray, extra: int) -> tuple[np.ndarray, np.ndarray]:
        """Ritz indices of the valence (descending from the gap) and conduction (ascending)
        states, ``n + extra`` each where available."""
        below = np.flatnonzero(theta < self.mid)[::-1][: self.n_below + extra]
        above = np.flatnonzero(theta > self.mid)[: self.n_above + extra]
        return below, above

    def _store(self, i: int, k: np.ndarray, e: np.ndarray, x: np.ndarray, sx: np.ndarray,
               res: np.ndarray) -> None:
        if e[self.n_below] <= e[self.n_below - 1]:
            raise MetallicError(
                f"the gap closes at k = {np.round(k, 6).tolist()}: state {self.ne - 1} at "
                f"{e[self.n_below - 1]:.6f} eV, state {self.ne} at {e[self.n_below]:.6f} eV "
                "(check n_electrons)")
        self.done[i] = (e, x, self._spin(x, sx), res)

    def _store_sides(self, i: int, k: np.ndarray, h: Any, s: Any, parts: list):
        """Store the refined valence and conduction states ``parts`` (each nearest the gap
        first) at k-point ``i`` in ascending order; returns the energies and both blocks."""
        (ev, cv), (ec, cc) = parts
        e = np.concatenate([ev[: self.n_below][::-1], ec[: self.n_above]])
        c = np.hstack([cv[:, : self.n_below][:, ::-1], cc[:, : self.n_above]])
        sc = c if s is None else s @ c
        self._store(i, k, e, c, sc, np.linalg.norm(h @ c - sc * e, axis=0))
        return e, cv, cc

    def _extend_basis(self, k: np.ndarray, x: np.ndarray) -> None:
        """Add the states ``x`` (lattice gauge at ``k``) to the basis, Bloch-adapted."""
        w = np.conj(self._phase(k))[:, None] * x
        w = w / np.maximum(np.linalg.norm(w, axis=0), 1e-300)
        self.basis = np.hstack([self.basis, _orthonormal(w, self.basis)])

    # -- anchors ---------------------------------------------------------------------------
    def first_anchor(self, i: int, n_moments: int, rng: Any) -> None:
        k = self.kpts[i]
        es, (fv, fc) = edge_states_and_factors(self.ham, self.ne, k, self.n_below + self.buffer,
                                    self.n_above + self.buffer, True, n_moments, rng)
        self.shifts = es.shifts
        self.mid = 0.5 * (es.vbm + es.cbm)
        h, s = self._matrices(k)
        x = es.states
        sx = x if s is None else s @ x
        res = np.linalg.norm(h @ x - sx * es.energies, axis=0)
        lo, hi = self.buffer, self.buffer + self.n_below + self.n_above
        self._store(i, k, es.energies[lo:hi], x[:, lo:hi], sx[:, lo:hi], res[lo:hi])
        self.anchors.append(i)
        self.counts.append((i, fv.sigma, int(fv.count_below), fc.sigma, int(fc.count_below)))
        self.factors[i] = (fv, fc)
        self._extend_basis(k, x)
        nv = self.n_below + self.buffer
        self._enrich(k, fv, x[:, self.buffer:nv])
        self._enrich(k, fc, x[:, nv:nv + self.n_above])

    def _enrich(self, k: np.ndarray, si: ShiftInvert, x: np.ndarray) -> None:
        """Add ``(H - sigma S)^-1 dH/dk x`` for the two in-plane directions (atomic gauge):
        the first-order change of the states with k, mostly from bands outside the window,
        which the window's own states cannot describe."""
        if not self.derivatives:
            return
        ph = self._phase(k)
        xa = np.conj(ph)[:, None] * x
        cols = []
        step = 1e-4
        for axis in np.flatnonzero(np.asarray(self.ham.geometry.pbc))[:3]:
            dk = np.zeros(3)
            dk[axis] = step
            dh = (self.ham.hk(k + dk, "atomic") - self.ham.hk(k - dk, "atomic")) / (2 * step)
            if not self.ham.orthogonal:
                ds = (self.ham.sk(k + dk, "atomic") - self.ham.sk(k - dk, "atomic")) / (2 * step)
                e = np.real(np.sum(xa.conj() * (self.ham.hk(k, "atomic") @ xa), axis=0))
                rhs = dh @ xa - (ds @ xa) * e
            else:
                rhs = dh @ xa
            cols.append(si.solve(ph[:, None] * rhs))
        if cols:
            self._extend_basis(k, np.hstack(cols))

    def add_anchor(self, i: int) -> None:
        """Factorize at k-point ``i`` and refine its states from the reduced basis."""
        self._local_mid(i)
        k = self.kpts[i]
        h, s = self._matrices(k)
        theta, x = self._rayleigh_ritz(k, h, s)
        below, above = self._select(theta, self.buffer)
        if len(below) < self.n_below or len(above) < self.n_above:
            return self._direct_anchor(i)
        parts, counts, factors = [], [i], []
        for sel, shift, side in ((below, self.shifts[0], "below"),
                                 (above, self.shifts[1], "above")):
            si = ShiftInvert(self.ham, k, shift)
            e, c = self._refine(si, h, s, x[:, sel], side)
            n_wanted = self.n_below if side == "below" else self.n_above
            if side == "below":
                beyond = int(np.count_nonzero(e > si.sigma))
                exact = si.count_below is not None and si.count_below + beyond == self.ne
            else:
                beyond = int(np.count_nonzero(e < si.sigma))
                exact = si.count_below is not None and si.count_below - beyond == self.ne
            if not exact or len(e) < n_wanted:
                return self._direct_anchor(i)
            parts.append((e, c))
            counts += [si.sigma, int(si.count_below)]
            factors.append(si)
        e, cv, cc = self._store_sides(i, k, h, s, parts)
        self.anchors.append(i)
        self.counts.append(tuple(counts))
        self.factors[i] = tuple(factors)
        self.mid = 0.5 * (e[self.n_below - 1] + e[self.n_below])
        self._extend_basis(k, np.hstack([cv, cc]))
        self._enrich(k, factors[0], cv[:, : self.n_below])
        self._enrich(k, factors[1], cc[:, : self.n_above])

    def correct(self, i: int, max_anchors: int) -> None:
        """Refine the states at k-point ``i`` without a factorization there: block
        iteration with the nearest anchor's two factorizations as preconditioners (moved
        to ``k`` by the Bloch phases; in a large supercell ``H(k)`` in the atomic gauge
        differs little across the zone), then add the refined states to the basis.  Band
        indices follow by continuity, as at every k-point that is not an anchor.  Falls
        back to a new anchor when the iteration does not converge in :data:`_MAX_CORRECT`
        steps."""
        self._local_mid(i)
        k = self.kpts[i]
        j = min(self.factors, key=lambda a: float(np.abs(self.kpts[a] - k).sum()))
        ratio = self._phase(self.kpts[j]) * np.conj(self._phase(k))
        moved = [_Moved(f, ratio) for f in self.factors[j]]
        h, s = self._matrices(k)
        p, q, _, _ = self._projections(k, h, s)
        theta, yz, res0, _ = self._small_ritz(p)
        x = a_b(q, yz)
        below, above = self._select(theta, self.buffer)
        parts = []
        for sel, solver, side in ((below, moved[0], "below"), (above, moved[1], "above")):
            n_wanted = self.n_below if side == "below" else self.n_above
            e, c = self._refine(solver, h, s, x[:, sel], side, _MAX_CORRECT, harmonic=True,
                                accuracy=0.5)
            if len(e) < n_wanted or _missed(e[:n_wanted], theta[sel], res0[sel], self.mid,
                                            self.tol):
                self.corrected.append(i)     # counts as tried
                if len(self.anchors) < max_anchors:
                    self.add_anchor(i)
                return
            parts.append((e, c))
        e, cv, cc = self._store_sides(i, k, h, s, parts)
        self.corrected.append(i)
        self._extend_basis(k, np.hstack([cv, cc]))

    def _direct_anchor(self, i: int) -> None:
        """An anchor whose warm start missed states: a fresh :func:`edge_states`."""
        keep = (self.anchors, self.counts, self.shifts, self.mid)
        self.first_anchor(i, 2048, 0)
        self.shifts, self.mid = keep[2], keep[3]

    def _refine(self, si: Any, h: Any, s: Any, x0: np.ndarray, side: str,
                max_steps: int = _MAX_REFINE, harmonic: bool = False, accuracy: float = 0.1):
        """Block shift-invert iteration from the states ``x0`` (one side of the gap):
        Rayleigh-Ritz in a growing basis (``harmonic``: harmonic Ritz vectors for the gap's
        middle, :meth:`_small_ritz`, which keeps spurious values out of the gap when
        ``si`` is only a preconditioner), extended by ``si.solve`` (``(H - sigma S)^-1``,
        exact or approximate) applied to the residuals, until the wanted states (nearest
        the gap) have residuals below ``accuracy * tol``.  Returns their energies (nearest the
        gap first) and states."""
        n_want = self.n_below if side == "below" else self.n_above
        m = n_want + self.buffer
        tol = accuracy * self.tol
        v = _orthonormal(x0, np.zeros((x0.shape[0], 0), np.complex128))
        hv, sv = h @ v, (v if s is None else s @ v)
        with threadpool_limits(limits=1):
            for _ in range(max_steps):
                if harmonic:
                    p = {"a": ah_b(v, hv), "hh": ah_b(hv, hv),
                         "sig": np.zeros((3, v.shape[1], v.shape[1]))}
                    if s is not None:
                        p.update(g=ah_b(v, sv), hs=ah_b(hv, sv), ss=ah_b(sv, sv))
                    theta, y, _, _ = self._small_ritz(p)
                else:
                    a, g = ah_b(v, hv), ah_b(v, sv)
                    theta, y = scipy.linalg.eigh(0.5 * (a + a.conj().T),
                                                 0.5 * (g + g.conj().T))
                pick = (np.flatnonzero(theta < self.mid)[::-1] if side == "below"
                        else np.flatnonzero(theta > self.mid))[:m]
                yp = y[:, pick]
                yp = np.ascontiguousarray(yp)
                r = a_b(hv, yp) - a_b(sv, yp) * theta[pick]
                res = np.linalg.norm(r, axis=0)
                if len(pick) >= n_want and np.all(res[:n_want] <= tol):
                    return theta[pick], a_b(v, yp)
                x = a_b(v, yp)
                if v.shape[1] + len(pick) > 8 * m:  # restart on the Ritz vectors
                    v = _orthonormal(x, np.zeros((x.shape[0], 0), np.complex128))
                    hv, sv = h @ v, (v if s is None else s @ v)
                new = _orthonormal(si.solve(r[:, res > tol] if np.any(res > tol) else r), v)
                if new.shape[1] == 0:
                    break
                v = np.hstack([v, new])
                hv = np.hstack([hv, h @ new])
                sv = v if s is None else np.hstack([sv, s @ new])
        return np.zeros(0), np.zeros((x0.shape[0], 0), np.complex128)

    # -- the sweep -------------------------------------------------------------------------
    def _projections(self, k: np.ndarray, h: Any = None, s: Any = None) -> dict:
        """The basis ``Q = P(k) B`` (``P`` the Bloch phases) and the small matrices of
        ``H(k)``, ``S(k)`` and the spin in it: ``a = Q^H H Q``, ``hh = (HQ)^H HQ`` and, with
        an overlap, ``g = Q^H S Q``, ``hs = (HQ)^H SQ``, ``ss = (SQ)^H SQ``; ``sig`` the
        three ``Q^H sigma_a S Q`` (``Q^H sigma_a Q = B^H sigma_a B`` without one).  Every
        one is an analytic function of ``k`` (module notes), which :class:`_Segment`
        interpolates.  Also returns ``q``, ``hq``, ``sq`` for the caller's use."""
        if h is None:
            h, s = self._matrices(k)
        q = self._phase(k)[:, None] * self.basis
        hq = h @ q
        sq = q if s is None else s @ q
        with threadpool_limits(limits=1):
            p = {"a": ah_b(q, hq), "hh": ah_b(hq, hq)}
            if s is not None:
                p.update(g=ah_b(q, sq), hs=ah_b(hq, sq), ss=ah_b(sq, sq))
                u, d = q[self._up], q[self._dn]
                su, sd = sq[self._up], sq[self._dn]
                usd, dsu = ah_b(u, sd), ah_b(d, su)
                p["sig"] = np.stack([usd + dsu, -1j * usd + 1j * dsu,
                                     ah_b(u, su) - ah_b(d, sd)])
            else:
                p["sig"] = self._basis_spin()
        return p, q, hq, sq

    def _basis_spin(self) -> np.ndarray:
        """``B^H sigma_a B`` (k-independent: the Bloch phases commute with the spin)."""
        if self._sig is None or self._sig.shape[-1] != self.basis.shape[1]:
            u, d = self.basis[self._up], self.basis[self._dn]
            with threadpool_limits(limits=1):
                ud = ah_b(u, d)
                self._sig = np.stack([ud + ud.conj().T, -1j * ud + 1j * ud.conj().T,
                                      ah_b(u, u) - ah_b(d, d)])
        return self._sig

    def _small_ritz(self, p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ritz pairs for the states next to the gap from the projected matrices ``p``:
        harmonic Ritz vectors for the target ``mid`` (the gap's middle) pick the directions
        (a plain Rayleigh-Ritz step for interior states gives spurious values inside the gap
        from mixtures of states far below and far above), then a plain Rayleigh-Ritz step in
        their span gives the energies.  Returns the energies (ascending), their coefficients
        in the basis, the residual norms ``||H x - E S x||`` and ``<sigma>``."""
        tau = self.mid
        a, hh = p["a"], p["hh"]
        m = a.shape[0]
        if "g" in p:
            g, hs, ss = p["g"], p["hs"], p["ss"]
        else:
            g, hs, ss = np.eye(m), a, np.eye(m)
        with threadpool_limits(limits=1):
            # W = (H - tau S) Q: W^H S Q y = mu W^H W y, mu = 1 / (theta - tau); W^H S Q is
            # Hermitian for S = 1 (its Hermitian part with an overlap), so a Hermitian pencil
            ww = hh - tau * (hs + hs.conj().T) + tau**2 * ss
            ws = hs - tau * ss
            mu, y = scipy.linalg.eigh(0.5 * (ws + ws.conj().T), 0.5 * (ww + ww.conj().T))
            below = np.flatnonzero(mu.real < 0)
            above = np.flatnonzero(mu.real > 0)
            below = below[np.argsort(mu.real[below])][: self.n_below + self.buffer]
            above = above[np.argsort(-mu.real[above])][: self.n_above + self.buffer]
            y = y[:, np.concatenate([below, above])]
            # an orthonormal basis of the picked directions, then plain Rayleigh-Ritz
            gy = y.conj().T @ g @ y
            lam, u = np.linalg.eigh(0.5 * (gy + gy.conj().T))
            good = lam > 1e-12 * lam.max()
            y = y @ (u[:, good] / np.sqrt(lam[good]))
            ar, gr = y.conj().T @ a @ y, y.conj().T @ g @ y
            theta, z = scipy.linalg.eigh(0.5 * (ar + ar.conj().T), 0.5 * (gr + gr.conj().T))
            yz = y @ z
            # ||H x - theta S x||^2 = x^H (hh - theta (hs + hs^H) + theta^2 ss) x
            r2 = (np.einsum("im,ij,jm->m", yz.conj(), hh, yz)
                  - theta * np.einsum("im,ij,jm->m", yz.conj(), hs + hs.conj().T, yz)
                  + theta**2 * np.einsum("im,ij,jm->m", yz.conj(), ss, yz)).real
            spin = np.einsum("im,aij,jm->ma", yz.conj(), p["sig"], yz).real
        return theta, yz, np.sqrt(np.maximum(r2, 0.0)), spin

    def _rayleigh_ritz(self, k: np.ndarray, h: Any, s: Any):
        """Ritz pairs of ``H(k)``, ``S(k)`` in the Bloch-adapted basis (:meth:`_small_ritz`):
        energies and states (ascending)."""
        p, q, _, _ = self._projections(k, h, s)
        theta, yz, _, _ = self._small_ritz(p)
        return theta, a_b(q, yz)

    def _local_mid(self, i: int) -> None:
        """The middle of the gap at the computed k-point nearest ``i`` becomes the target."""
        j = min((j for j in self.done if j != i), key=lambda j: (abs(j - i), j), default=None)
        if j is None:
            return
        e = self.done[j][0]
        self.mid = 0.5 * (e[self.n_below - 1] + e[self.n_below])

    def ritz(self, i: int, p: dict | None = None) -> None:
        """The states at k-point ``i`` from the projected matrices ``p`` (interpolated along
        a segment) or, without them, computed at ``k``.  The residuals come from the
        projected matrices too; a state is kept as its coefficients in the basis."""
        self._local_mid(i)
        k = self.kpts[i]
        if p is None:
            p = self._projections(k)[0]
        theta, yz, res, spin = self._small_ritz(p)
        below, above = self._select(theta, 0)
        if len(below) < self.n_below or len(above) < self.n_above:
            raise MetallicError(f"the reduced basis has too few states on one side of the gap "
                                f"at k = {np.round(k, 6).tolist()}; the gap may close there")
        pick = np.concatenate([below[::-1], above])
        e = theta[pick]
        if e[self.n_below] <= e[self.n_below - 1]:
            raise MetallicError(
                f"the gap closes at k = {np.round(k, 6).tolist()}: state {self.ne - 1} at "
                f"{e[self.n_below - 1]:.6f} eV, state {self.ne} at {e[self.n_below]:.6f} eV "
                "(check n_electrons)")
        self.done[i] = (e, None, spin[pick], res[pick])
        self._coef[i] = yz[:, pick]

    def sweep(self, todo: list[int], progress: bool | None) -> None:
        """Ritz steps at the k-points ``todo`` (in that order).  On each straight segment of
        the path with more k-points than interpolation nodes, the projected matrices are
        computed at Chebyshev nodes only and interpolated in between (module notes)."""
        if not todo:
            return
        interp: dict[int, SegmentInterpolant] = {}
        for seg in straight_segments(self.kpts):
            want = [i for i in seg if i in set(todo)]
            if len(want) < 2:
                continue
            ka, kb = self.kpts[seg[0]], self.kpts[seg[-1]]
            n = chebyshev_nodes_needed(2 * np.pi * float(np.abs(kb - ka) @ self._reach))
            if n >= len(want):
                continue
            f = SegmentInterpolant(ka, kb, n, lambda k: self._projections(k)[0])
            self.n_projections += n
            interp.update({i: f for i in want})
        for i in progress_bar(todo, "edge bands", progress):
            f = interp.get(i)
            if f is None:
                self.n_projections += 1
            self.ritz(i, None if f is None else f(self.kpts[i]))

    def _states(self, vectors: bool | Any) -> list | None:
        n_k = len(self.kpts)
        if isinstance(vectors, bool | np.bool_):
            return [self._vectors(i) for i in range(n_k)] if vectors else None
        keep = {int(i) % n_k for i in np.atleast_1d(vectors)}
        return [self._vectors(i) if i in keep else None for i in range(n_k)]

    def _vectors(self, i: int) -> np.ndarray:
        """S-normalized states at k-point ``i`` in the lattice gauge."""
        if self.done[i][1] is not None:               # stored in full (anchors)
            return self.done[i][1]
        c = self._coef[i]
        return self._phase(self.kpts[i])[:, None] * (self.basis[:, : c.shape[0]] @ c)

    def result(self, bandpath: Any, vectors: bool | Any, timings: dict) -> EdgeBands:
        order = range(len(self.kpts))
        e = np.array([self.done[i][0] for i in order])
        gaps = e[:, self.n_below] - e[:, self.n_below - 1]
        where = ", ".join(str(i) for i in self.anchors)
        source = (f"inertia counts at the anchor k-points (indices {where}): the factorization "
                  f"at each shift counts the states below it exactly, and with the states "
                  f"found between the shift and the gap they make state {self.ne - 1} the "
                  f"highest occupied one; elsewhere by continuity, the gap being open at "
                  f"every k of the path (smallest {gaps.min():.4f} eV)")
        return EdgeBands(
            kpts=self.kpts.copy(), energies=e,
            indices=np.arange(self.ne - self.n_below, self.ne + self.n_above),
            spin=np.array([self.done[i][2] for i in order]),
            residuals=np.array([self.done[i][3] for i in order]), n_electrons=self.ne,
            anchors=tuple(self.anchors), counts=tuple(self.counts), index_source=source,
            path=bandpath, states=self._states(vectors),
            timings=timings)


def _missed(found: np.ndarray, ritz: np.ndarray, res: np.ndarray, mid: float,
            tol: float) -> bool:
    """Whether a refinement without inertia counts skipped a state: ``found`` should be all
    eigenvalues between its far end and the gap's middle, and each Ritz pair ``(theta,
    r)`` guarantees an eigenvalue within ``r`` of ``theta`` (Hermitian ``H``), so every such
    interval inside that range must hold one of them."""
    if found.max() < mid:                                  # valence side
        lo, hi = float(found.min()), float(mid)
    else:                                                  # conduction side
        lo, hi = float(mid), float(found.max())
    for t, r in zip(ritz, res, strict=True):
        if lo + tol < t - r and t + r < hi - tol and not np.any(np.abs(found - t) <= r + tol):
            return True
    return False


def _worst_spread(solver: Any, n_k: int, tol: float, most: int = 4) -> list[int]:
    """Up to ``most`` k-points whose residual exceeds ``tol``, worst first, at least
    ``n_k / 8`` apart (corrected together before the next sweep)."""
    order = sorted((i for i in range(n_k) if solver.residual(i) > tol),
                   key=lambda i: -solver.residual(i))
    picked: list[int] = []
    for i in order:
        if all(abs(i - j) >= max(1, n_k // 8) for j in picked):
            picked.append(i)
        if len(picked) == most:
            break
    return picked


class _Moved:
    """An anchor's factorization ``(H(k_a) - sigma S(k_a))^-1`` applied at another ``k``:
    the right-hand side is moved to the anchor's lattice gauge by the ratio of the Bloch
    phases and the solution back; an approximate inverse (a preconditioner) at ``k``."""

    def __init__(self, solver: ShiftInvert, ratio: np.ndarray) -> None:
        self.solver, self.ratio = solver, ratio
        self.sigma = solver.sigma

    def solve(self, b: np.ndarray) -> np.ndarray:
        r = self.ratio[:, None] if b.ndim == 2 else self.ratio
        return np.conj(r) * self.solver.solve(r * b)


def _orthonormal(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Columns of ``w`` orthonormalized against ``v`` (orthonormal) and each other, twice;
    directions that lie in ``span(v)`` to working precision are dropped."""
    ref = max(float(np.linalg.norm(w, axis=0).max(initial=0.0)), 1e-300)
    with threadpool_limits(limits=1):
        for _ in range(2):
            if v.shape[1]:
                w = w - a_b(v, ah_b(v, w))
            if w.shape[1] == 0:
                break
            g = ah_b(w, w)
            lam, u = np.linalg.eigh(0.5 * (g + g.conj().T))
            good = lam > (1e-10 * ref) ** 2
            w = a_b(w, np.ascontiguousarray(u[:, good] / np.sqrt(lam[good])))
            ref = 1.0
    return w
