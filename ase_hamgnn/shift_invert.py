"""Eigenstates near an energy for large Hamiltonians: one sparse factorization of
``H(k) - sigma S(k)``, reused for state counting and shift-invert Lanczos (ARPACK).

The factorization is a symmetric-pivoting sparse LU (SuperLU in symmetric mode, diagonal
pivots only, after a nested-dissection ordering of the atoms computed from the sparsity
graph: far less fill than minimum degree for a periodic 2D layer), which for a Hermitian
matrix is an ``L D L^dagger`` decomposition.  By Sylvester's law of inertia the number of
negative entries of ``D`` is the exact number of eigenvalues of ``H c = E S c`` below
``sigma`` (``S`` positive definite), so the same object counts states
(:attr:`ShiftInvert.count_below`) and solves ``(H - sigma S) x = b`` for the shift-invert
iteration.  Solves switch to one step of iterative refinement if a test solve is
inaccurate, and to a pivoted LU if the states do not converge, so the lack of off-diagonal
pivoting does not cost accuracy.

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

__all__ = ["ShiftInvert"]

# Relative residual of a test solve above which solves use iterative refinement.
_REFINE_ABOVE = 1e-10


class ShiftInvert:
    """Sparse factorization of ``H(k) - sigma S(k)`` for states near ``sigma``.

    Parameters
    ----------
    ham : TBHamiltonian
        The Hamiltonian (orthogonal or with overlap ``S``).
    k : array_like, shape (3,)
        Fractional k-point (any k; ``H(k)`` is complex Hermitian).
    sigma : float
        Shift in eV.  If ``H(k) - sigma S(k)`` is singular to working precision (``sigma``
        is an eigenvalue) the shift is nudged by ~1e-7 eV; :attr:`sigma` is the shift used.
    gauge : {"lattice", "atomic"}
        Gauge of the Bloch matrices (changes the states' phases, not the energies).

    Attributes
    ----------
    sigma : float
        The shift actually factorized, eV.
    dim : int
        Number of spin-orbitals.

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

    def __init__(self, ham: Any, k: Any, sigma: float, gauge: str = "lattice") -> None:
        self.dim = int(ham.n_spin_orbitals)
        self.k = np.asarray(k, dtype=np.float64).reshape(3)
        self._h = ham.hk(self.k, gauge).tocsc()
        self._s = None if ham.orthogonal else ham.sk(self.k, gauge).tocsc()
        shift = float(sigma)
        if not np.isfinite(shift):
            raise ValueError(f"sigma must be a finite energy in eV, got {sigma}")
        self._perm = _nested_dissection(self._h, np.asarray(ham.offsets))
        self._inv = np.argsort(self._perm)
        for _ in range(4):
            a = self._shifted(shift)
            try:
                lu = spla.splu(a[self._perm][:, self._perm].tocsc(), permc_spec="NATURAL",
                               diag_pivot_thresh=0.0, options={"SymmetricMode": True})
                d = np.abs(lu.U.diagonal())
                if np.all(np.isfinite(d)) and d.min() > 1e-12 * d.max():
                    break  # else sigma sits on an eigenvalue to working precision
            except RuntimeError:  # exactly singular: sigma is an eigenvalue
                pass
            shift += 1e-7 * max(1.0, abs(shift))
        else:
            raise RuntimeError(
                f"H(k) - sigma S(k) could not be factorized at sigma = {sigma} eV (singular "
                "to working precision); move sigma a little away from an eigenvalue"
            )
        self.sigma = shift
        self._a = a
        self._lu = lu
        self._refine = False
        probe = np.exp(2j * np.pi * np.random.default_rng(0).random(self.dim))
        resid = np.linalg.norm(a @ self.solve(probe) - probe) / np.linalg.norm(probe)
        self._refine = bool(resid > _REFINE_ABOVE)

    def _shifted(self, shift: float) -> sp.csc_matrix:
        eye = sp.identity(self.dim, dtype=np.complex128, format="csc")
        return (self._h - shift * (eye if self._s is None else self._s)).tocsc()

    @property
    def count_below(self) -> int | None:
        """Exact number of eigenvalues below :attr:`sigma` (Sylvester inertia of the
        ``L D L^dagger`` factors), or ``None`` if the factorization had to pivot off the
        diagonal (then no count is available; move ``sigma`` slightly)."""
        lu = getattr(self, "_lu_count", self._lu)
        if not np.array_equal(lu.perm_r, lu.perm_c):
            return None
        d = lu.U.diagonal()
        return int(np.count_nonzero(d.real < 0))

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``(H - sigma S)^-1 b`` for a vector or a block of columns (complex128)."""
        b = np.asarray(b, dtype=np.complex128)
        x = self._solve_once(b)
        if self._refine:  # an unlucky small pivot: one step of iterative refinement
            x += self._solve_once(b - self._a @ x)
        return x

    def _solve_once(self, b: np.ndarray) -> np.ndarray:
        if getattr(self, "_pivoted", False):
            return self._lu.solve(b)
        return self._lu.solve(b[self._perm])[self._inv]

    def _use_pivoting(self) -> None:
        """Switch solves to a partially pivoted LU (stable next to an eigenvalue); the
        inertia count keeps using the symmetric factors."""
        if getattr(self, "_pivoted", False):
            return
        lu = spla.splu(self._a)
        self._lu_count, self._lu, self._refine, self._pivoted = self._lu, lu, True, True

    def nearest(self, n: int, which: str = "nearest", tol: float = 1e-10,
                vectors: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` eigenpairs next to :attr:`sigma` by shift-invert ARPACK.

        Parameters
        ----------
        n : int
            Number of states, ``1 <= n < dim - 2``.
        which : {"nearest", "below", "above"}
            The ``n`` states nearest ``sigma`` on either side, or the ``n`` highest states
            below ``sigma`` (e.g. the top valence bands when ``sigma`` is in the gap), or
            the ``n`` lowest above it.
        tol : float
            ARPACK relative tolerance of the Ritz vectors (0: machine precision); the
            energies, from a Rayleigh-Ritz step, are accurate to about its square.
        vectors : bool
            Return the states too (else ``None``).

        Returns
        -------
        energies : (n,) ndarray
            Eigenvalues in eV, ascending.
        states : (dim, n) ndarray or None
            Columns normalized to ``C^dagger S C = 1``; degenerate pairs come out
            S-orthonormal (a Rayleigh-Ritz step in the converged subspace).
        """
        n = int(n)
        if not 0 < n < self.dim - 2:
            raise ValueError(f"n must be in 1..{self.dim - 3} for shift-invert; got {n} (use "
                             "dense diagonalization for that many states)")
        arpack_which = {"nearest": "LM", "below": "SR", "above": "LR"}.get(which)
        if arpack_which is None:
            raise ValueError(f"which must be 'nearest', 'below' or 'above', got {which!r}")
        nev = min(n + 4, self.dim - 2)
        ncv = min(self.dim - 1, max(2 * nev + 1, nev + 32))
        e, c = self._pick(*self._arpack(nev, ncv, arpack_which, which, tol), n, which)
        scale = max(1.0, float(np.abs(e).max()))
        if self._residual(e, c) > 1e-8 * scale:  # sigma next to an eigenvalue: pivot
            self._use_pivoting()
            e, c = self._pick(*self._arpack(nev, ncv, arpack_which, which, tol), n, which)
            if self._residual(e, c) > 1e-6 * scale:
                raise RuntimeError(
                    f"shift-invert did not converge at sigma = {self.sigma:.6g} eV (sigma "
                    "is too close to an eigenvalue); move sigma by a small fraction of the "
                    "level spacing"
                )
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

    def _residual(self, e: np.ndarray, c: np.ndarray) -> float:
        sc = c if self._s is None else self._s @ c
        return float(np.abs(self._h @ c - sc * e).max()) if len(e) else 0.0

    def _arpack(self, nev: int, ncv: int, arpack_which: str, which: str, tol: float
                ) -> tuple[np.ndarray, np.ndarray]:
        s = self._s
        op = spla.LinearOperator((self.dim, self.dim), matvec=self.solve, dtype=np.complex128)
        # OP = (H - sigma S)^-1 S has eigenvalues nu = 1 / (E - sigma): LM is nearest, LR the
        # lowest states above sigma, SR the highest below.
        if s is None:
            opm = op
        else:
            opm = spla.LinearOperator((self.dim, self.dim), dtype=np.complex128,
                                      matvec=lambda v: self.solve(s @ v))
        nu, vecs = spla.eigs(opm, k=nev, which=arpack_which, ncv=ncv, tol=tol)
        if which == "above":
            vecs = vecs[:, nu.real > 0]
        elif which == "below":
            vecs = vecs[:, nu.real < 0]
        return self._rayleigh_ritz(vecs)

    def _rayleigh_ritz(self, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact eigenpairs of the pencil projected on span(vecs), S-orthonormal."""
        sv = vecs if self._s is None else self._s @ vecs
        ss = vecs.conj().T @ sv
        # Orthonormalize the basis first: ARPACK vectors of a non-Hermitian OP may be
        # nearly parallel for degenerate pairs.
        w, u = np.linalg.eigh(0.5 * (ss + ss.conj().T))
        keep = w > 1e-12 * w.max()
        q = vecs @ (u[:, keep] / np.sqrt(w[keep]))
        hq = self._h @ q
        sq = q if self._s is None else self._s @ q
        hs = q.conj().T @ hq
        qs = q.conj().T @ sq
        e, y = scipy.linalg.eigh(0.5 * (hs + hs.conj().T), 0.5 * (qs + qs.conj().T))
        return e, q @ y


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
