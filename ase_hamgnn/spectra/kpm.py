"""Kernel polynomial method (KPM): densities of states of large Hamiltonians without
diagonalization.

The density of states of ``H c = E S c`` at one k is ``rho(E) = Tr delta(E - X)`` with
``X = S^-1 H`` (similar to the Hermitian ``S^-1/2 H S^-1/2``, so it has the same real
spectrum and trace).  ``X`` is rescaled into ``(-1, 1)`` with spectral bounds (Lanczos
extremes plus a safety margin), expanded in Chebyshev polynomials ``T_n`` whose moments
``mu_n = Tr T_n(X~)`` are estimated stochastically with random-phase vectors ``r``
(``E[r^dagger A r] = Tr A`` for any matrix, Hermitian or not), and the expansion is damped
with the Jackson kernel, which turns it into a positive density broadened by about
``pi a / N`` eV (``a`` the half width of the bounds, ``N`` the number of moments).  Products
with ``S^-1`` use one sparse factorization of ``S(k)`` per k.  For an orthogonal basis the
moments come two per product (``T_2n = 2 T_n^2 - 1``), halving the cost.

The same vectors give the diagonal of ``T_n(X~)`` orbital by orbital, i.e. local (Mulliken)
densities of states per atom at no extra matrix products.

Densities are states per eV and per cell of the Hamiltonian (spinor states: integrated over
all energies the total is the number of spin-orbitals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from tqdm.auto import tqdm

from ase_hamgnn._plotting import energy_axis
from ase_hamgnn.spectra.dense import progress_bar
from ase_hamgnn.spectra.kpoints import kpoints_and_weights

__all__ = ["KPMDOS", "chebyshev_density", "chebyshev_vectors", "jackson_kernel", "kpm_dos",
           "spectral_bounds"]

# Moments growing beyond this multiple of mu_0 mean the spectrum left (-1, 1).
BLOWUP = 10.0


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


class SpectralOperator:
    """``x -> S(k)^-1 H(k) x`` with one factorization of ``S(k)``."""

    def __init__(self, ham: Any, k: np.ndarray) -> None:
        self.h = ham.hk(k).tocsr()
        self.dim = self.h.shape[0]
        self._s = None if ham.orthogonal else ham.sk(k).tocsr()
        self._s_lu = None if self._s is None else spla.splu(self._s.tocsc())

    @property
    def orthogonal(self) -> bool:
        return self._s_lu is None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = self.h @ x
        return y if self._s_lu is None else self._s_lu.solve(y)

    def scaled(self, a: float, b: float):
        """``x -> (X - b) x / a`` with ``(H - b S) / a`` formed once (one sparse product
        per call, no temporaries)."""
        s = sp.identity(self.dim, format="csr") if self._s is None else self._s
        h = ((self.h - b * s) / a).tocsr()
        if self._s_lu is None:
            return h.__matmul__
        return lambda x: self._s_lu.solve(h @ x)


def jackson_kernel(n_moments: int) -> np.ndarray:
    """Jackson damping factors ``g_n``, n = 0..N-1 (float64); ``g_0 = 1``.

    Examples
    --------
    >>> g = jackson_kernel(64)
    >>> g[0], bool(g[-1] < 1e-3)
    (np.float64(1.0), True)
    """
    n_moments = int(n_moments)
    if n_moments < 2:
        raise ValueError(f"n_moments must be at least 2, got {n_moments}")
    n = np.arange(n_moments, dtype=np.float64)
    q = np.pi / (n_moments + 1)
    return ((n_moments - n + 1) * np.cos(q * n) + np.sin(q * n) / np.tan(q)) / (n_moments + 1)


def chebyshev_vectors(operator: Any, start: np.ndarray, bounds: Any):
    """Yield ``T_n(X~) start`` for n = 0, 1, 2, ... (without end), where
    ``X~ = (X - b) / a`` maps the spectral ``bounds = (lo, hi)`` (eV) of ``X`` onto
    ``(-1, 1)`` (``a``, ``b`` the half width and centre).

    One product with ``operator`` (a callable ``x -> X x``, e.g. ``H(k)``; ``start`` a
    vector or a block of column vectors) per vector after the first, by the three-term
    recursion ``T_{n+1} = 2 X~ T_n - T_{n-1}``; only the last two vectors are kept.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.diag([-0.5, 0.25])
    >>> gen = chebyshev_vectors(lambda v: x @ v, np.ones(2), (-1.0, 1.0))
    >>> [float(next(gen)[0]) for _ in range(4)]  # T_n(-0.5) = 1, -0.5, -0.5, 1
    [1.0, -0.5, -0.5, 1.0]
    """
    lo, hi = (float(v) for v in bounds)
    a, b = 0.5 * (hi - lo), 0.5 * (hi + lo)
    xt = operator.scaled(a, b) if hasattr(operator, "scaled") else (
        lambda v: (operator(v) - b * v) / a)
    a0, a1 = start, xt(start)
    yield a0
    yield a1
    while True:
        y = xt(a1)               # a new array: the vectors handed out are never changed
        if y.dtype == np.result_type(y, a0):
            y *= 2
            y -= a0
        else:
            y = 2 * y - a0
        a0, a1 = a1, y
        yield a1


def chebyshev_density(moments: Any, bounds: Any, energies: Any,
                      weight: float = 1.0) -> np.ndarray:
    """The Jackson-damped Chebyshev series of a density at ``energies`` (eV), per eV.

    ``moments`` ``mu_n = Tr[A T_n(X~)]`` (shape (N,), or (r, N) for r densities at once)
    belong to the spectral ``bounds = (lo, hi)`` in eV; the density is
    ``weight * (g_0 mu_0 + 2 sum_n g_n mu_n T_n(x)) / (pi a sqrt(1 - x^2))`` with
    ``x = (E - b) / a`` and the :func:`jackson_kernel` ``g``, zero outside the bounds.
    Returns an array of shape ``energies.shape`` (or (r, *energies.shape)).

    Examples
    --------
    >>> import numpy as np
    >>> mu = np.cos(np.arange(256) * np.arccos(0.2))   # one state at x = 0.2
    >>> e = np.linspace(-0.999, 0.999, 4001)
    >>> rho = chebyshev_density(mu, (-1.0, 1.0), e)
    >>> round(float(e[np.argmax(rho)]), 2), round(float(np.sum(rho) * (e[1] - e[0])), 3)
    (0.2, 1.0)
    """
    m = np.asarray(moments, dtype=np.float64)
    e = np.asarray(energies, dtype=np.float64)
    lo, hi = (float(v) for v in bounds)
    n_moments = m.shape[-1]
    g = jackson_kernel(n_moments)
    a, b = 0.5 * (hi - lo), 0.5 * (hi + lo)
    x = (e - b) / a
    inside = np.abs(x) < 1
    theta = np.arccos(x[inside])
    c = g * m
    c[..., 1:] *= 2
    series = np.cos(np.outer(theta, np.arange(n_moments))) @ c.T
    out = np.zeros(m.shape[:-1] + e.shape, dtype=np.float64)
    if m.ndim == 1:
        out[inside] = weight * series / (np.pi * np.sqrt(1 - x[inside] ** 2) * a)
    else:
        out[..., inside] = (weight * series
                            / (np.pi * np.sqrt(1 - x[inside] ** 2) * a)[:, None]).T
    return out


def spectral_bounds(ham: Any, k: Any = (0.0, 0.0, 0.0), *, margin: float = 0.05,
                    n_steps: int = 60, rng: np.random.Generator | int | None = None
                    ) -> tuple[float, float]:
    """Lower and upper bounds (eV) of the spectrum of ``H(k) c = E S(k) c``.

    Extreme Ritz values of ``n_steps`` Lanczos steps (in the S inner product, so the
    generalized problem is handled), widened on each side by ``margin`` times the width
    (the Ritz values converge to the extremes from inside).

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ham = ReferenceTB("nibri").predict(nibri((2, 2)))
    >>> lo, hi = spectral_bounds(ham, rng=0)
    >>> e = ham.eigvalsh((0, 0, 0))
    >>> bool(lo < e[0] and e[-1] < hi)
    True
    """
    op = SpectralOperator(ham, np.asarray(k, dtype=np.float64).reshape(3))
    return operator_bounds(op, ham, k, margin, n_steps, as_generator(rng))


def operator_bounds(op: SpectralOperator, ham: Any, k: Any, margin: float, n_steps: int,
            rng: np.random.Generator) -> tuple[float, float]:
    if not margin > 0:
        raise ValueError(f"margin must be positive (a fraction of the spectral width), got "
                         f"{margin}")
    dim = op.dim
    if dim <= 64:  # tiny: exact
        e = ham.eigvalsh(k)
        lo, hi = float(e[0]), float(e[-1])
    else:
        s = None if op.orthogonal else ham.sk(k).tocsr()
        q = np.exp(2j * np.pi * rng.random(dim))
        q /= np.sqrt(np.vdot(q, q if s is None else s @ q).real)
        q_prev = np.zeros_like(q)
        alphas, betas = [], []
        beta = 0.0
        for _ in range(min(int(n_steps), dim - 1)):
            w = op(q)
            # q^H S (S^-1 H q); with S = 1 that is q^H w (no second product)
            alpha = np.vdot(q, w if s is None else op.h @ q).real
            w = w - alpha * q - beta * q_prev
            beta = np.sqrt(max(np.vdot(w, w if s is None else s @ w).real, 0.0))
            alphas.append(alpha)
            if beta < 1e-12 * max(1.0, abs(alpha)):
                break
            betas.append(beta)
            q_prev, q = q, w / beta
        m = len(alphas)
        theta = scipy.linalg.eigh_tridiagonal(np.array(alphas), np.array(betas[:m - 1]),
                                              eigvals_only=True)
        lo, hi = float(theta[0]), float(theta[-1])
    width = max(hi - lo, 1e-3)
    return lo - margin * width, hi + margin * width


@dataclass(frozen=True, eq=False)
class KPMDOS:
    """Chebyshev moments of a density of states, with the Jackson kernel applied on
    evaluation.

    Attributes
    ----------
    moments : (n_k, N) float64
        ``mu_n = Tr T_n(X~)`` per k (stochastic estimates; ``mu_0`` = number of states).
    bounds : (n_k, 2) float64
        Spectral bounds (eV) used to rescale each k.
    weights : (n_k,) float64
        Normalized k-point weights.
    kpts : (n_k, 3) float64
        Fractional k-points.
    n_vectors : int or None
        Random vectors per k (``None``: exact trace over all basis vectors).
    atom_moments : (n_k, n_atoms, N) float64 or None
        Mulliken-local moments per atom (they sum to :attr:`moments` over atoms).
    energies : (n_E,) float64
        The default energy grid, eV; dos : (n_E,) the total DOS on it, states/eV/cell.
    """

    moments: np.ndarray
    bounds: np.ndarray
    weights: np.ndarray
    kpts: np.ndarray
    n_vectors: int | None
    atom_moments: np.ndarray | None
    energies: np.ndarray
    dos: np.ndarray

    @property
    def n_moments(self) -> int:
        """Number of Chebyshev moments ``N``."""
        return int(self.moments.shape[1])

    @property
    def resolution(self) -> float:
        """Energy resolution of the Jackson kernel, ``pi a / N`` eV (Gaussian-like width at
        the centre of the spectrum; ``a`` is the largest half width of the bounds)."""
        half = 0.5 * np.max(self.bounds[:, 1] - self.bounds[:, 0])
        return float(np.pi * half / self.n_moments)

    def evaluate(self, energies: Any, atoms: Any = None) -> np.ndarray:
        """DOS (states/eV/cell) at ``energies`` (eV); with ``atoms`` (indices or a boolean
        mask) the local DOS summed over those atoms (needs ``per_atom=True``)."""
        mu = self._select(atoms)
        e = np.asarray(energies, dtype=np.float64)
        out = np.zeros(e.shape, dtype=np.float64)
        for w, bounds, m in zip(self.weights, self.bounds, mu):
            out += chebyshev_density(m, bounds, e, weight=w)
        return out

    def integrated(self, energies: Any, atoms: Any = None) -> np.ndarray:
        """Number of states below ``energies`` (eV) per cell, from the damped series
        integrated analytically (exact to the expansion; noisy as the moments are)."""
        mu = self._select(atoms)
        e = np.asarray(energies, dtype=np.float64)
        g = jackson_kernel(self.n_moments)
        n = np.arange(1, self.n_moments)
        out = np.zeros(e.shape, dtype=np.float64)
        for w, (lo, hi), m in zip(self.weights, self.bounds, mu):
            a, b = 0.5 * (hi - lo), 0.5 * (hi + lo)
            theta = np.arccos(np.clip((e - b) / a, -1.0, 1.0))
            part = g[0] * m[0] * (1 - theta / np.pi)
            part -= (2 / np.pi) * (np.sin(np.outer(theta, n)) @ (g[1:] * m[1:] / n))
            out += w * part.reshape(e.shape)
        return out

    def fermi_level(self, n_electrons: float, tol: float = 1e-6) -> float:
        """Energy (eV) where :meth:`integrated` reaches ``n_electrons`` per cell (bisection).
        In a gap the count is flat, so this lands somewhere inside it; use
        :func:`ase_hamgnn.spectra.gap.find_gap` for exact band edges."""
        lo, hi = float(self.bounds[:, 0].min()), float(self.bounds[:, 1].max())
        total = float(self.integrated(np.array([hi]))[0])
        if not 0 < n_electrons < total:
            raise ValueError(f"n_electrons must be between 0 and {total:.0f} (states per "
                             f"cell), got {n_electrons}")
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.integrated(np.array([mid]))[0] < n_electrons else (lo, mid)
        return 0.5 * (lo + hi)

    def plot(self, ax=None, reference: float | None = None, atoms: Any = None,
             reference_label: str = "E_F", **kwargs: Any):
        r"""Draw the DOS on :attr:`energies` (or the local DOS of ``atoms``); returns the
        matplotlib Axes.

        ``reference`` (eV, e.g. the Fermi level) is subtracted from the energies and marked
        by a dashed line named ``reference_label`` (mathtext: ``"E_F"``,
        ``r"E_\mathrm{mid}"``); ``None`` plots absolute energies."""
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(5, 3.5), layout="constrained").add_subplot()
        y = self.dos if atoms is None else self.evaluate(self.energies, atoms)
        ax.plot(self.energies - (0.0 if reference is None else reference), y, **kwargs)
        energy_axis(ax, reference, reference_label)
        ax.set_ylabel("DOS (states/eV/cell)")
        return ax

    def _select(self, atoms: Any) -> np.ndarray:
        if atoms is None:
            return self.moments
        if self.atom_moments is None:
            raise ValueError("this KPM DOS has no local moments; compute it with per_atom=True")
        idx = np.asarray(atoms)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self.atom_moments[:, idx].sum(axis=1)


def kpm_dos(ham: Any, energies: Any = None, *, kpts: Any = None, weights: Any = None,
            n_moments: int = 512, n_vectors: int | None = 8, bounds: Any = None,
            margin: float = 0.05, per_atom: bool = False,
            rng: np.random.Generator | int | None = None,
            progress: bool | None = None) -> KPMDOS:
    """Density of states by the kernel polynomial method (stochastic trace, Jackson kernel).

    Parameters
    ----------
    ham : TBHamiltonian
        Orthogonal or with overlap ``S`` (moments of ``S^-1 H``).
    energies : array_like, optional
        Energy grid in eV for :attr:`KPMDOS.dos`; default ``4 N`` points over the bounds.
        Other grids: :meth:`KPMDOS.evaluate`.
    kpts : array_like, optional
        Fractional k-points (n_k, 3) or a mesh size (3 ints); default Γ only (the usual
        choice for a large supercell).
    weights : array_like, optional
        k-point weights (normalized here).
    n_moments : int
        Chebyshev moments ``N``; the resolution is about ``pi a / N`` eV (``a`` the half
        width of the spectrum), see :attr:`KPMDOS.resolution`.
    n_vectors : int or None
        Random-phase vectors per k for the stochastic trace (relative error about
        ``1 / sqrt(n_vectors * dim)``); ``None`` uses all ``dim`` unit vectors, exact but
        only sensible for small systems.
    bounds : (float, float), optional
        Spectral bounds in eV to use at every k; default per k from :func:`spectral_bounds`
        with ``margin``.  Bounds that miss part of the spectrum raise ``ValueError``.
    margin : float
        Safety margin of the estimated bounds, a fraction of the spectral width.
    per_atom : bool
        Also keep Mulliken-local moments per atom (:meth:`KPMDOS.evaluate` with ``atoms=``).
    rng : numpy.random.Generator, int or None
        Source of the random vectors (and the Lanczos start vector).
    progress : bool or None
        Progress bar over moments (``None``: on a terminal for large systems only).

    Returns
    -------
    KPMDOS

    Examples
    --------
    >>> import numpy as np
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ham = ReferenceTB("nibri").predict(nibri((4, 4)))
    >>> res = kpm_dos(ham, np.linspace(-10, 8, 200), n_moments=256, rng=0)
    >>> res.dos.shape
    (200,)
    >>> round(float(res.integrated(np.array([100.0]))[0]))  # all states
    448
    """
    k, w = kpoints_and_weights(kpts, weights, ham.geometry.cell, ham.geometry.pbc)
    n_moments = int(n_moments)
    if n_moments < 2:
        raise ValueError(f"n_moments must be at least 2, got {n_moments}")
    if n_vectors is not None and int(n_vectors) < 1:
        raise ValueError(f"n_vectors must be a positive integer or None, got {n_vectors}")
    gen = as_generator(rng)
    dim = int(ham.n_spin_orbitals)
    offsets = np.asarray(ham.offsets)
    moments = np.zeros((len(k), n_moments))
    atom_mu = np.zeros((len(k), len(offsets) - 1, n_moments)) if per_atom else None
    all_bounds = np.zeros((len(k), 2))
    loop = progress_bar(k, "KPM", progress) if len(k) > 1 else k
    for ik, kk in enumerate(loop):
        op = SpectralOperator(ham, kk)
        if bounds is None:
            lo, hi = operator_bounds(op, ham, kk, margin, 60, gen)
        else:
            lo, hi = (float(x) for x in bounds)
            if not hi > lo:
                raise ValueError(f"bounds must be (low, high) in eV with low < high, got "
                                 f"{bounds}")
        all_bounds[ik] = lo, hi
        mu, amu = _moments(op, lo, hi, n_moments, n_vectors, gen, offsets if per_atom else None,
                           progress)
        moments[ik] = mu
        if per_atom:
            atom_mu[ik] = amu
        if np.abs(mu).max() > BLOWUP * dim:
            raise ValueError(
                f"KPM moments diverge at k = {kk}: the spectrum reaches outside the bounds "
                f"({lo:.4g}, {hi:.4g}) eV; pass wider bounds= or a larger margin="
            )
    if energies is None:
        energies = np.linspace(all_bounds[:, 0].min(), all_bounds[:, 1].max(), 4 * n_moments)
    res = KPMDOS(moments, all_bounds, w, k, None if n_vectors is None else int(n_vectors),
                 atom_mu, np.asarray(energies, dtype=np.float64), np.zeros(0))
    object.__setattr__(res, "dos", res.evaluate(res.energies))
    return res


def _moments(op: SpectralOperator, lo: float, hi: float, n_moments: int, n_vectors: int | None,
             rng: np.random.Generator, offsets: np.ndarray | None, progress: bool | None
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """Stochastic (or exact) ``Tr T_n`` and optional per-atom diagonals, n < N."""
    dim = op.dim
    if n_vectors is None:
        blocks = [np.arange(s, min(s + 64, dim)) for s in range(0, dim, 64)]
        scale = 1.0
    else:
        blocks = [None] * int(np.ceil(n_vectors / 16))
        sizes = [min(16, n_vectors - 16 * i) for i in range(len(blocks))]
        scale = 1.0 / n_vectors
    doubling = op.orthogonal
    n_products = (n_moments + 1) // 2 if doubling else n_moments - 1
    mu = np.zeros(n_moments)
    local = None if offsets is None else np.zeros((len(offsets) - 1, n_moments))
    disable = (dim * len(blocks) < 20000) if progress is None else not progress
    bar = tqdm(total=n_products * len(blocks), desc="KPM moments", unit="product",
               disable=disable, leave=False)

    def record(n: int, diag: np.ndarray) -> None:  # diag: estimate of diag(T_n), (dim,)
        mu[n] += diag.sum()
        if local is not None:
            local[:, n] += np.add.reduceat(diag, offsets[:-1])

    def dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.real(np.conj(u) * v).sum(axis=1)

    for ib, blk in enumerate(blocks):
        if n_vectors is None:
            r = np.zeros((dim, len(blk)), dtype=np.complex128)
            r[blk, np.arange(len(blk))] = 1.0
        else:
            r = np.exp(2j * np.pi * rng.random((dim, sizes[ib])))
        vectors = chebyshev_vectors(op, r, (lo, hi))
        a0, a1 = next(vectors), next(vectors)
        bar.update(1)
        d0, d1 = dot(a0, a0), dot(a0, a1)
        record(0, d0)
        record(1, d1)
        if doubling:
            # T_{2n} = 2 T_n^2 - T_0 and T_{2n+1} = 2 T_{n+1} T_n - T_1 (X~ Hermitian)
            if n_moments > 2:
                record(2, 2 * dot(a1, a1) - d0)
            n = 1
            while 2 * n + 1 < n_moments:
                a0, a1 = a1, next(vectors)
                bar.update(1)
                record(2 * n + 1, 2 * dot(a1, a0) - d1)
                if 2 * n + 2 < n_moments:
                    record(2 * n + 2, 2 * dot(a1, a1) - d0)
                n += 1
        else:
            for n in range(2, n_moments):
                a1 = next(vectors)
                bar.update(1)
                record(n, dot(r, a1))
    bar.close()
    mu *= scale
    return mu, (None if local is None else local * scale)
