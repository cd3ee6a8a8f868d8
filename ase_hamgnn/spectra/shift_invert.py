"""Eigenstates near an energy for large Hamiltonians: one sparse factorization of
``H(k) - sigma S(k)``, reused for state counting and a block shift-invert eigensolver.

Factorization (``backend``):

* ``"mumps"`` (the default when python-mumps is installed): the multifrontal solver MUMPS on
  the real symmetric embedding ``[[Re A, Im A], [-Im A, Re A]]`` of the Hermitian
  ``A = H - sigma S``, factorized as ``L D L^T`` with 1x1 and 2x2 pivots (stable for
  indefinite matrices).  Every eigenvalue of ``A`` appears twice in the embedding, so half
  the number of negative pivots is the exact number of states below ``sigma``.  Solves of
  blocks of right-hand sides cost a fraction of single solves (the factors are read once).
* ``"superlu"``: SciPy's SuperLU in symmetric mode (diagonal pivots only) after a nested
  dissection ordering of the atoms, which for a Hermitian matrix is an ``L D L^dagger``
  decomposition; the count is the number of negative entries of ``D`` (Sylvester's law of
  inertia).  Solves switch to one step of iterative refinement if a test solve is
  inaccurate, and to a pivoted LU if the states do not converge.

States: a block Krylov-Schur iteration on ``T = (H - sigma S)^-1 S`` in the ``S`` inner
product, whose eigenvalues ``nu = 1 / (E - sigma)`` are largest for the states nearest
``sigma`` (most negative for those just below, most positive for those just above).  Each
step applies ``T`` to a whole block of vectors (one multi-right-hand-side solve), the
Ritz pairs of ``T`` in the growing subspace pick the wanted states, and the basis restarts
from the best Ritz vectors when it grows large.  The states are accepted on the residual
of ``H c = E S c`` itself, and a final Rayleigh-Ritz step on ``H`` gives the energies.

Energies are in eV, k-points fractional; states are columns normalized to
``C^dagger S C = 1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse import csgraph
from threadpoolctl import threadpool_limits

__all__ = ["ShiftInvert", "BACKENDS", "default_backend"]

BACKENDS = ("mumps", "superlu")

# Relative residual of a test solve above which solves use iterative refinement.
_REFINE_ABOVE = 1e-10
# A shift closer than this (relative to ||H - sigma S||_1) to an eigenvalue is "on" it: the
# inertia of the factors is then decided by rounding (it may count the level or not, and
# differently on another CPU or BLAS), so the shift is moved away by _NUDGE_STEPS times this.
_SINGULAR_BELOW = 1e-9
_NUDGE_STEPS = 100
# Columns per block of the eigensolver: a solve reads all the factors once, so a block of
# 8 costs about as much as 2-3 single solves (both backends), and a block finds up to
# 8-fold degenerate levels (Kramers pairs, folded bands), which a single vector cannot.
_BLOCK = 8


def default_backend() -> str:
    """``"mumps"`` if python-mumps is importable, else ``"superlu"``."""
    try:
        import mumps  # noqa: F401
    except ImportError:
        return "superlu"
    return "mumps"


class _Singular(Exception):
    """The shifted matrix is singular to working precision (sigma on an eigenvalue)."""


class ShiftInvert:
    """Sparse factorization of ``H(k) - sigma S(k)`` for states near ``sigma``.

    Parameters
    ----------
    ham : TBHamiltonian
        The Hamiltonian (orthogonal or with overlap ``S``).
    k : array_like, shape (3,)
        Fractional k-point (any k; ``H(k)`` is complex Hermitian).
    sigma : float
        Shift in eV.  If an eigenvalue lies within rounding of ``sigma`` (closer than
        1e-9 ``||H - sigma S||``, found by inverse iteration on the factors, where the count
        of states below would depend on rounding), the shift is moved up by 100 times that
        (a few μeV to tens of μeV), again if needed; :attr:`sigma` is the shift used.
    gauge : {"lattice", "atomic"}
        Gauge of the Bloch matrices (changes the states' phases, not the energies).
    backend : {"auto", "mumps", "superlu"}
        Sparse factorization (see the module notes); ``"auto"`` is :func:`default_backend`.

    Attributes
    ----------
    sigma : float
        The shift actually factorized, eV.
    dim : int
        Number of spin-orbitals.
    backend : str
        The factorization used.
    n_solves : int
        Right-hand sides solved so far (the cost of the eigensolver).

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ham = ReferenceTB("nibri").predict(nibri((4, 4)))
    >>> si = ShiftInvert(ham, (0, 0, 0), sigma=3.0)
    >>> si.count_below                  # exact number of states below 3 eV at Gamma
    384
    >>> e, c = si.nearest(4)            # the 4 states nearest 3 eV, S-orthonormal columns
    >>> e.shape, c.shape
    ((4,), (448, 4))
    """

    def __init__(self, ham: Any, k: Any, sigma: float, gauge: str = "lattice",
                 backend: str = "auto") -> None:
        self.dim = int(ham.n_spin_orbitals)
        self.k = np.asarray(k, dtype=np.float64).reshape(3)
        shift = float(sigma)
        if not np.isfinite(shift):
            raise ValueError(f"sigma must be a finite energy in eV, got {sigma}")
        if backend == "auto":
            backend = default_backend()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
        if backend == "mumps" and default_backend() != "mumps":
            raise ImportError("backend='mumps' needs python-mumps (pip install python-mumps, "
                              "with the MUMPS library installed); or use backend='superlu'")
        self.backend = backend
        self.n_solves = 0
        self._h = ham.hk(self.k, gauge).tocsc()
        self._s = None if ham.orthogonal else ham.sk(self.k, gauge).tocsc()
        perm = _nested_dissection(self._h, np.asarray(ham.offsets)) if backend == "superlu" \
            else None
        for _ in range(4):
            a = self._shifted(shift)
            tol = _SINGULAR_BELOW * max(1.0, float(abs(a).sum(axis=0).max()))
            try:
                factor = _SuperLU(a, perm) if backend == "superlu" else _Mumps(a)
                if _singular_value_bound(factor, self.dim) < tol:
                    raise _Singular
                break
            except _Singular:
                shift += _NUDGE_STEPS * tol
        else:
            raise RuntimeError(
                f"H(k) - sigma S(k) could not be factorized at sigma = {sigma} eV (singular "
                "to working precision); move sigma a little away from an eigenvalue"
            )
        self.sigma = shift
        self._a = a
        self._factor = factor
        self._refine = False
        probe = np.exp(2j * np.pi * np.random.default_rng(0).random(self.dim))
        resid = np.linalg.norm(a @ self.solve(probe) - probe) / np.linalg.norm(probe)
        self._refine = bool(resid > _REFINE_ABOVE)
        self.n_solves = 0

    def _shifted(self, shift: float) -> sp.csc_matrix:
        eye = sp.identity(self.dim, dtype=np.complex128, format="csc")
        return (self._h - shift * (eye if self._s is None else self._s)).tocsc()

    @property
    def count_below(self) -> int | None:
        """Exact number of eigenvalues below :attr:`sigma` (Sylvester inertia of the
        factors), or ``None`` if the SuperLU factorization had to pivot off the diagonal
        (then no count is available; move ``sigma`` slightly)."""
        return self._factor.count

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``(H - sigma S)^-1 b`` for a vector or a block of columns (complex128)."""
        b = np.asarray(b, dtype=np.complex128)
        self.n_solves += 1 if b.ndim == 1 else b.shape[1]
        x = self._factor.solve(b)
        if self._refine:  # an unlucky small pivot: one step of iterative refinement
            x += self._factor.solve(b - self._a @ x)
        return x

    def nearest(self, n: int, which: str = "nearest", tol: float = 1e-9,
                vectors: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` eigenpairs next to :attr:`sigma` by block shift-invert iteration.

        Parameters
        ----------
        n : int
            Number of states, ``1 <= n < dim - 2``.
        which : {"nearest", "below", "above"}
            The ``n`` states nearest ``sigma`` on either side, or the ``n`` highest states
            below ``sigma`` (e.g. the top valence bands when ``sigma`` is in the gap), or
            the ``n`` lowest above it.
        tol : float
            Accepted residual ``|H c - E S c|`` of each state, in eV (relative to the
            energy for ``|E| > 1`` eV); the energies, from a final Rayleigh-Ritz step, are
            accurate to about its square over the level spacing.
        vectors : bool
            Return the states too (else ``None``).

        Returns
        -------
        energies : (n,) ndarray
            Eigenvalues in eV, ascending.
        states : (dim, n) ndarray or None
            Columns normalized to ``C^dagger S C = 1``; degenerate states come out
            S-orthonormal.
        """
        n = int(n)
        if not 0 < n < self.dim - 2:
            raise ValueError(f"n must be in 1..{self.dim - 3} for shift-invert; got {n} (use "
                             "dense diagonalization for that many states)")
        if which not in ("nearest", "below", "above"):
            raise ValueError(f"which must be 'nearest', 'below' or 'above', got {which!r}")
        if not tol > 0:
            raise ValueError(f"tol must be a positive residual in eV, got {tol}")
        # One BLAS thread in the iteration: its solves and tall-and-skinny products are
        # memory-bound, and two spinning thread pools (NumPy's OpenBLAS and the one MUMPS
        # links) fight over the cores (NiBrI, 1200 atoms, 2 cores: 38 s with two threads
        # each, 19 s with one).  The factorization keeps all threads.
        with threadpool_limits(limits=1):
            try:
                e, c = self._krylov_schur(n, which, tol)
            except _NotConverged:
                # MUMPS pivots (1x1 and 2x2) already; SuperLU can still switch to pivoting
                if not isinstance(self._factor, _SuperLU) or self._factor.pivoted:
                    raise RuntimeError(
                        f"shift-invert did not converge at sigma = {self.sigma:.6g} eV (sigma "
                        "is too close to an eigenvalue); move sigma by a small fraction of "
                        "the level spacing") from None
                self._factor.use_pivoting(self._a)  # sigma next to an eigenvalue
                self._refine = True
                e, c = self._krylov_schur(n, which, tol)
        e, c = self._pick(e, c, n, which)
        return e, (c if vectors else None)

    def _pick(self, e: np.ndarray, c: np.ndarray, n: int, which: str
              ) -> tuple[np.ndarray, np.ndarray]:
        if which == "above":
            pick = np.flatnonzero(e > self.sigma)[:n]
        elif which == "below":
            pick = np.flatnonzero(e < self.sigma)[-n:]
        else:
            pick = np.sort(np.argsort(np.abs(e - self.sigma), kind="stable")[:n])
        if len(pick) < n:
            raise RuntimeError(
                f"shift-invert found only {len(pick)} of {n} states {which} sigma = "
                f"{self.sigma:.6g} eV; ask for fewer states or move sigma"
            )
        return e[pick], c[:, pick]

    def _sdot(self, v: np.ndarray) -> np.ndarray:
        return v if self._s is None else self._s @ v

    def _krylov_schur(self, n: int, which: str, tol: float, max_steps: int = 500
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Block Krylov-Schur on ``T = (H - sigma S)^-1 S`` (S-self-adjoint).

        The basis ``V`` (S-orthonormal) grows by ``T`` applied to its newest block; the
        Ritz pairs ``(nu, y)`` of ``M = V^H S T V`` pick the states; a thick restart keeps
        the best Ritz vectors.  Only the newest block's image leaves ``span(V)``:
        ``T V = V M + F R E_last^H`` with ``F`` the next block, so the residual of a Ritz
        pair is ``F R y_last`` and that of ``H c = E S c`` is ``(H - sigma S) F R y_last /
        nu``, known without forming the Ritz vectors.  Returns the states of a final
        Rayleigh-Ritz step on ``H`` (a dense pencil for matrices too small for a basis).
        """
        block = _BLOCK
        keep = 2 * n + 16
        max_basis = min(keep + max(24 * block, 48), self.dim // 2)
        if keep + 2 * block > max_basis:  # too small for a subspace: the dense pencil
            h = self._h.toarray()
            return scipy.linalg.eigh(h, None if self._s is None else self._s.toarray())
        rng = np.random.default_rng(12345)
        a_norm = float(abs(self._a).sum(axis=0).max())  # 1-norm, bounds the 2-norm
        width = max_basis + block  # preallocated: basis, its images, S times the basis
        vb = np.empty((self.dim, width), np.complex128)
        zb = np.empty((self.dim, width), np.complex128)
        sb = vb if self._s is None else np.empty((self.dim, width), np.complex128)
        used = 0
        m = np.zeros((0, 0), np.complex128)  # V^H S T V
        front = self._orthonormal(rng.standard_normal((self.dim, block))
                                  + 1j * rng.standard_normal((self.dim, block)),
                                  vb[:, :0], sb[:, :0], rng)
        for _ in range(max_steps):
            new = slice(used, used + block)
            vb[:, new] = front
            if self._s is not None:
                sb[:, new] = self._s @ front
            zb[:, new] = self.solve(sb[:, new])
            used += block
            v, z, sv = vb[:, :used], zb[:, :used], sb[:, :used]
            cross = _adjoint_times(sv, zb[:, new])
            old = m.shape[0]
            m = np.block([[m, cross[:old]], [cross[:old].conj().T, cross[old:]]])
            m = 0.5 * (m + m.conj().T)
            nu, y = np.linalg.eigh(m)
            order = _priority(nu, which)
            front = self._orthonormal(zb[:, new], v, sv, rng)
            wanted = order[:n]
            side = {"below": nu[wanted] < 0, "above": nu[wanted] > 0}.get(which, True)
            if np.all(side) and len(wanted) == n:
                coef = (self._sdot(front).conj().T @ zb[:, new]) @ y[-block:, wanted]
                e_ritz = self.sigma + 1.0 / nu[wanted]
                limit = tol * np.maximum(1.0, np.abs(e_ritz))
                # |A F c| <= |A|_1 |c| (A Hermitian): the product only once it may pass
                bound = a_norm * np.linalg.norm(coef, axis=0) / np.abs(nu[wanted])
                if np.all(bound <= 1e3 * limit) and np.all(
                        np.linalg.norm((self._a @ front) @ coef, axis=0)
                        <= limit * np.abs(nu[wanted])):
                    x = v @ y[:, wanted]
                    true = np.linalg.norm(self._h @ x - self._sdot(x) * e_ritz, axis=0)
                    if np.all(true <= 10 * tol * np.maximum(1.0, np.abs(e_ritz))):
                        return self._rayleigh_ritz(x)
            if used + block > max_basis:  # thick restart on the best Ritz vectors
                best = order[:keep]
                vb[:, :keep] = v @ y[:, best]
                zb[:, :keep] = z @ y[:, best]
                if self._s is not None:
                    sb[:, :keep] = sv @ y[:, best]
                used = keep
                m = np.diag(nu[best]).astype(np.complex128)
        raise _NotConverged

    def _orthonormal(self, w: np.ndarray, v: np.ndarray, sv: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
        """The columns of ``w`` made S-orthonormal and S-orthogonal to ``v`` (block
        Gram-Schmidt, twice); directions that lie in ``span(v)`` to working precision are
        replaced by random ones, so the block keeps its size."""
        width = w.shape[1]
        found: list[np.ndarray] = []
        for _ in range(4):
            for _ in range(2):  # "twice is enough"
                ref = float(np.linalg.norm(w, axis=0).max())
                if v.shape[1]:
                    w = w - v @ _adjoint_times(sv, w)
                w = self._s_normalize(w, 1e-10 * ref)
            found.append(w)
            missing = width - sum(f.shape[1] for f in found)
            if missing == 0:
                return np.hstack(found)
            v = np.hstack([v, w])
            sv = v if self._s is None else np.hstack([sv, self._sdot(w)])
            w = rng.standard_normal((self.dim, missing)) \
                + 1j * rng.standard_normal((self.dim, missing))
        raise _NotConverged

    def _s_normalize(self, w: np.ndarray, floor: float) -> np.ndarray:
        """An S-orthonormal basis of span(w), without directions of S-norm below
        ``floor``."""
        g = w.conj().T @ self._sdot(w)
        lam, u = np.linalg.eigh(0.5 * (g + g.conj().T))
        good = lam > floor**2
        return w @ (u[:, good] / np.sqrt(lam[good]))

    def _rayleigh_ritz(self, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact eigenpairs of the pencil projected on span(vecs), S-orthonormal."""
        sv = self._sdot(vecs)
        ss = vecs.conj().T @ sv
        w, u = np.linalg.eigh(0.5 * (ss + ss.conj().T))
        keep = w > 1e-12 * w.max()
        q = vecs @ (u[:, keep] / np.sqrt(w[keep]))
        hq = self._h @ q
        sq = self._sdot(q)
        hs = q.conj().T @ hq
        qs = q.conj().T @ sq
        e, y = scipy.linalg.eigh(0.5 * (hs + hs.conj().T), 0.5 * (qs + qs.conj().T))
        return e, q @ y


def _adjoint_times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^H b`` for a tall ``a`` and a thin ``b`` without copying ``a``'s conjugate."""
    return (b.conj().T @ a).conj().T


class _NotConverged(Exception):
    """The block iteration ran out of steps."""


def _priority(nu: np.ndarray, which: str) -> np.ndarray:
    """Ritz indices, wanted first: largest |nu| (nearest), most negative nu (highest states
    below sigma) or most positive nu (lowest above)."""
    if which == "below":
        return np.argsort(nu, kind="stable")
    if which == "above":
        return np.argsort(-nu, kind="stable")
    return np.argsort(-np.abs(nu), kind="stable")


def _singular_value_bound(factor: _SuperLU | _Mumps, n: int) -> float:
    """An upper bound on the smallest singular value of the factorized matrix ``A``: two
    steps of inverse iteration from a fixed random unit vector ``x`` give ``||A^-1 x||``,
    and ``sigma_min(A) <= 1 / ||A^-1 x||``.  Each step multiplies the component along a
    near-null vector by ``1 / sigma_min``, so a shift within rounding of an eigenvalue shows
    up whatever the start (with probability one)."""
    x = np.exp(2j * np.pi * np.random.default_rng(1).random(n)) / np.sqrt(n)
    growth = 1.0
    for _ in range(2):
        y = factor.solve(x)
        growth = float(np.linalg.norm(y))
        if not np.isfinite(growth) or growth == 0.0:
            return 0.0
        x = y / growth
    return 1.0 / growth


class _SuperLU:
    """Symmetric-mode SuperLU (``L D L^dagger`` for a Hermitian matrix) in a given fill-
    reducing order; a pivoted LU on demand."""

    def __init__(self, a: sp.csc_matrix, perm: np.ndarray) -> None:
        self._perm, self._inv = perm, np.argsort(perm)
        try:
            lu = spla.splu(a[perm][:, perm].tocsc(), permc_spec="NATURAL",
                           diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        except RuntimeError:  # exactly singular
            raise _Singular from None
        d = lu.U.diagonal()
        mag = np.abs(d)
        if not np.all(np.isfinite(mag)) or mag.min() <= 1e-12 * mag.max():
            raise _Singular
        self._lu = lu
        symmetric = np.array_equal(lu.perm_r, lu.perm_c)
        self.count = int(np.count_nonzero(d.real < 0)) if symmetric else None
        self.pivoted = False

    def solve(self, b: np.ndarray) -> np.ndarray:
        if self.pivoted:
            return self._lu.solve(b)
        return self._lu.solve(b[self._perm])[self._inv]

    def use_pivoting(self, a: sp.csc_matrix) -> None:
        """Solves by a partially pivoted LU (stable next to an eigenvalue); the count
        keeps coming from the symmetric factors."""
        self._lu, self.pivoted = spla.splu(a), True


class _Mumps:
    """MUMPS ``L D L^T`` of the real symmetric embedding of a Hermitian matrix."""

    def __init__(self, a: sp.csc_matrix) -> None:
        import mumps

        n = a.shape[0]
        self.n = n
        coo = sp.coo_matrix(a)
        re = sp.coo_matrix((coo.data.real, (coo.row, coo.col)), shape=a.shape)
        im = sp.coo_matrix((coo.data.imag, (coo.row, coo.col)), shape=a.shape)
        # [[Re A, Im A], [-Im A, Re A]]: symmetric because Re A is and Im A is antisymmetric
        # (set_matrix keeps its upper triangle)
        self._ctx = mumps.Context()
        self._ctx.set_matrix(sp.bmat([[re, im], [-im, re]], format="coo"), symmetric=True)
        try:
            self._ctx.factor(ordering="auto", pivot_tol=0.01)
        except mumps.MUMPSError:  # numerically singular
            raise _Singular from None
        negative = int(self._ctx.mumps_instance.infog[12])
        if negative % 2:  # each eigenvalue of A appears twice: a pair split by rounding
            raise _Singular  # means an eigenvalue at sigma to working precision
        self.count = negative // 2

    def solve(self, b: np.ndarray) -> np.ndarray:
        # A (u - i w) = b  <=>  [[Re A, Im A], [-Im A, Re A]] [u; w] = [Re b; -Im b]
        rhs = np.asfortranarray(np.concatenate([b.real, -b.imag], axis=0))
        y = self._ctx.solve(rhs, overwrite_b=True)
        return y[: self.n] - 1j * y[self.n:]


def _nested_dissection(matrix: sp.spmatrix, offsets: np.ndarray, leaf: int = 32) -> np.ndarray:
    """Fill-reducing order of the spin-orbitals: nested dissection of the atom graph (atoms
    coupled by any nonzero block), separators from breadth-first level sets (George's
    automatic nested dissection; no coordinates needed, periodic cells included).  Each
    atom's spin-orbitals stay together."""
    n_atoms = len(offsets) - 1
    owner = np.repeat(np.arange(n_atoms), np.diff(offsets))
    coo = matrix.tocoo()
    graph = sp.csr_matrix((np.ones(coo.nnz), (owner[coo.row], owner[coo.col])),
                          shape=(n_atoms, n_atoms))
    pieces: list[np.ndarray] = []
    # Iterative post-order: each entry is split into (left, right, separator) and the
    # separator is placed after both halves.
    order_stack: list[tuple[str, np.ndarray]] = [("split", np.arange(n_atoms))]
    while order_stack:
        kind, nodes = order_stack.pop()
        if kind == "emit" or len(nodes) <= leaf:
            pieces.append(nodes)
            continue
        sub = graph[nodes][:, nodes]
        n_comp, label = csgraph.connected_components(sub, directed=False)
        if n_comp > 1:
            for c in reversed(range(n_comp)):
                order_stack.append(("split", nodes[label == c]))
            continue
        dist = csgraph.shortest_path(sub, indices=0, unweighted=True, directed=False)
        far = int(np.argmax(dist))
        level = csgraph.shortest_path(sub, indices=far, unweighted=True,
                                      directed=False).astype(np.int64)
        if level.max() < 2:
            pieces.append(nodes)
            continue
        cut = int(np.searchsorted(np.cumsum(np.bincount(level)), len(nodes) / 2))
        cut = min(max(cut, 1), int(level.max()) - 1)
        # popped last-in first-out: left, then right, then the separator
        order_stack.append(("emit", nodes[level == cut]))
        order_stack.append(("split", nodes[level > cut]))
        order_stack.append(("split", nodes[level < cut]))
    atoms = np.concatenate(pieces)
    return np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in atoms])
