r"""Unfolded spectral function of a large supercell by the kernel polynomial method: the
effective band structure that ARPES sees, without diagonalizing the supercell.

For a primitive k-point ``k`` (folded to ``K = M k`` in the supercell zone, the convention of
:func:`~ase_hamgnn.analysis.unfold`) and the normalized primitive Bloch orbitals ``|k, n>``
embedded in the supercell (:meth:`~ase_hamgnn.analysis.UnfoldingMap.bloch_projector`), the
unfolded spectral function and its spin resolution are

    A(k, E)   = sum_n <k, n| delta(E - H(K)) |k, n>           = sum_J W_J(k) delta(E - E_J),
    A_a(k, E) = sum_n <k, n| sigma_a delta(E - H(K)) |k, n>,  a = x, y, z,

with ``W_J(k)`` the Ku-Berlijn-Lee weights of the supercell states (``sigma_a`` acts on the
spin index only and commutes with the projector on the ``|k, n>``, so ``A_a`` is real).
``A`` is in states per eV and primitive cell; integrated over all energies it is the number
of primitive spin-orbitals, and ``A_z = A_up - A_down`` with ``A_up`` the part started from
the spin-up orbitals.  For an undistorted ferromagnetic supercell it is the primitive bands
(each broadened by the kernel) and ``A_a`` their ``<sigma_a>``; a texture spreads weight over
shadow bands.

Each density is a Chebyshev expansion (:mod:`ase_hamgnn.spectra.kpm`) with the Jackson kernel, over
the spectral bounds of ``H(K)``: the resolution is about ``pi a / N`` eV (``a`` half the
bandwidth, ``N`` the number of moments), the same at every energy of the window, so a narrow
window near the gap costs as much as the whole band.  The recursion starts from spin pairs
``(|r_up>, |r_down>)``, ``r_s = sum_o xi_o |k, o s>`` over the spatial orbitals ``o``: all
pairs ``xi = e_o`` (exact) or random phases ``|xi_o| = 1`` (stochastic; unbiased, the
spin structure exact, the noise from the mixing of orbitals).  The 2 x 2 overlaps of a pair
give the total and the three spin components from one recursion, two moments per product
(``T_2n = 2 T_n^2 - 1``) for an orthogonal basis.

With an overlap ``S`` the expansion is of ``X = S^-1 H`` and the result is the Mulliken form
``Re <k, n| sigma_a delta(E - X) |k, n>`` of :func:`~ase_hamgnn.analysis.unfold`'s weights
(one moment per product).
"""

from __future__ import annotations

import builtins
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ase_hamgnn._blas import a_b, ah_b
from ase_hamgnn._plotting import energy_axis
from ase_hamgnn.analysis.unfolding import UnfoldingMap
from ase_hamgnn.errors import KPointError
from ase_hamgnn.spectra.dense import Bands, progress_bar
from ase_hamgnn.spectra.kpm import (
    BLOWUP,
    SpectralOperator,
    as_generator,
    chebyshev_density,
    chebyshev_vectors,
    operator_bounds,
)

__all__ = ["COMPONENTS", "SpectralFunction", "plot_unfolded_vs_reference",
           "unfolded_spectral_function"]

COMPONENTS = ("total", "x", "y", "z")
_PAIRS_PER_BLOCK = 16  # spin pairs (two vectors each) per recursion block


@dataclass(frozen=True, eq=False)
class SpectralFunction:
    """Unfolded spectral function ``A(k, E)`` on primitive k-points, with spin resolution.

    Attributes
    ----------
    kpts : (n_k, 3) float64
        Fractional k-points of the **primitive** reciprocal cell.
    energies : (n_E,) float64
        Energy grid, eV.
    total : (n_k, n_E) float64
        ``A(k, E)``, states per eV and primitive cell.
    spin : (n_k, n_E, 3) float64 or None
        ``A_x, A_y, A_z`` (same units; ``A_z = A_up - A_down``), or ``None`` (``spin=False``).
    moments : (n_k, 4, N) or (n_k, 1, N) float64
        Chebyshev moments ``Re sum_n <k, n| sigma_a T_m(H~) |k, n>`` for
        ``a = 0`` (identity), x, y, z; ``moments[:, 0, 0]`` is the number of primitive
        spin-orbitals.
    bounds : (n_k, 2) float64
        Spectral bounds (eV) of ``H(K)`` used at each k.
    n_vectors : int or None
        Random spin pairs per k (``None``: exact).
    path : ase BandPath or None
        The primitive path, for labelled plots.
    shared : (n_k,) bool or None
        Which k-points came from a recursion shared with other k-points of the same folded
        ``K``; ``None`` when none did.
    shared_vectors : int or None
        Random spin pairs of the shared recursions.
    """

    kpts: np.ndarray
    energies: np.ndarray
    total: np.ndarray
    spin: np.ndarray | None
    moments: np.ndarray
    bounds: np.ndarray
    n_vectors: int | None
    path: Any = None
    shared: np.ndarray | None = None
    shared_vectors: int | None = None

    @property
    def n_moments(self) -> int:
        """Number of Chebyshev moments ``N``."""
        return int(self.moments.shape[-1])

    @property
    def resolution(self) -> float:
        """Energy resolution of the Jackson kernel, ``pi a / N`` eV (``a`` the largest half
        width of the bounds): features closer than this merge."""
        half = 0.5 * np.max(self.bounds[:, 1] - self.bounds[:, 0])
        return float(np.pi * half / self.n_moments)

    def evaluate(self, energies: Any, component: str = "total") -> np.ndarray:
        """``A`` (``component='total'``) or ``A_x``, ``A_y``, ``A_z`` (``'x'``, ``'y'``,
        ``'z'``) at other ``energies`` (eV) from the stored moments; shape (n_k, n_E)."""
        row = _component_row(component, self.moments.shape[1])
        e = np.asarray(energies, dtype=np.float64).reshape(-1)
        return np.array([chebyshev_density(m[row], b, e)
                         for m, b in zip(self.moments, self.bounds)])

    def on_grid(self, energies: Any) -> SpectralFunction:
        """The same spectral function on another energy grid (eV), from the stored moments
        (no new products with ``H``)."""
        e = _energy_grid(energies)
        dens = np.array([chebyshev_density(m, b, e) for m, b in zip(self.moments, self.bounds)])
        return replace(self, energies=e, total=dens[:, 0],
                       spin=np.moveaxis(dens[:, 1:], 1, 2) if self.spin is not None else None)

    def component(self, component: str = "total") -> np.ndarray:
        """``A`` or one spin component on :attr:`energies`, (n_k, n_E)."""
        row = _component_row(component, self.moments.shape[1])
        return self.total if row == 0 else self.spin[:, :, row - 1]

    def plot(self, ax=None, component: str = "total", reference: float | None = None,
             reference_label: str = "E_F", emin: float | None = None,
             emax: float | None = None, bands: Any = None, gap: Any = None,
             gamma: float = 0.5, vmax: float | None = None, cmap: str | None = None,
             colorbar: bool = True, band_color: str = "C2"):
        r"""Draw ``A(k, E)`` (or a spin component) as an image along the k-path; returns the
        matplotlib Axes.

        Parameters
        ----------
        ax : matplotlib Axes, optional (a new figure otherwise).
        component : ``'total'``, ``'x'``, ``'y'`` or ``'z'``.
        reference : energy (eV) subtracted from the axis and marked (e.g. midgap or
            ``E_F``); ``None`` plots absolute energies.  ``reference_label`` names it
            (mathtext, e.g. ``r"E_\mathrm{mid}"``).
        emin, emax : energy window, eV relative to ``reference`` (default: all energies).
        bands : reference bands drawn over the image as thin lines: a
            :class:`~ase_hamgnn.spectra.dense.Bands` (e.g. the ferromagnet's primitive bands on
            the same path) or an (n_k, n_bands) array of energies in eV.
        gap : ``(vbm, cbm)`` in eV: both edges marked by dotted lines.
        gamma : power-law colour scale ``(A / vmax)^gamma`` (signed for spin components):
            0.5 shows shadow bands of a few percent weight next to the main bands.
        vmax : top of the colour scale, 1/eV (default: the 99.5th percentile of ``|A|`` in
            the window).
        cmap : colour map (default ``'magma'``; ``'RdBu_r'`` for spin components).
        colorbar : draw the colour bar.
        band_color : colour of the reference bands.
        """
        import matplotlib.pyplot as plt
        from matplotlib.colors import FuncNorm, PowerNorm

        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        data = self.component(component)
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
        ref = 0.0 if reference is None else float(reference)
        x, ticks, labels = self._axis()
        e = self.energies - ref
        lo = e[0] if emin is None else float(emin)
        hi = e[-1] if emax is None else float(emax)
        window = (e >= lo) & (e <= hi)
        shown = np.abs(data[:, window]) if window.any() else np.abs(data)
        top = float(vmax) if vmax is not None else float(np.percentile(shown, 99.5))
        top = top if top > 0 else 1.0
        if component == "total":
            norm = PowerNorm(gamma, vmin=0.0, vmax=top)
            image, cmap = np.clip(data, 0.0, None), cmap or "magma"
            label = "A(k, E) (1/eV)"
            marks = "0.85" if cmap == "magma" else "0.3"   # visible on the background
        else:
            norm = FuncNorm((lambda v: np.sign(v) * np.abs(v) ** gamma,
                             lambda v: np.sign(v) * np.abs(v) ** (1.0 / gamma)),
                            vmin=-top, vmax=top)
            image, cmap = data, cmap or "RdBu_r"
            label = rf"$A_{component}(k, E)$ (1/eV)"
            marks = "0.3"
        mesh = ax.pcolormesh(x, e, image.T, shading="gouraud", cmap=cmap, norm=norm,
                             rasterized=True)
        if colorbar:
            ax.figure.colorbar(mesh, ax=ax, label=label)
        if bands is not None:
            energies = np.asarray(bands.energies if hasattr(bands, "energies") else bands,
                                  dtype=np.float64)
            if energies.ndim != 2 or len(energies) != len(self.kpts):
                raise ValueError(
                    f"bands must be given on the same {len(self.kpts)} k-points as the "
                    f"spectral function (n_k, n_bands), got shape {energies.shape}"
                )
            if hasattr(bands, "kpts") and not np.allclose(bands.kpts, self.kpts, atol=1e-8):
                raise ValueError("bands were computed on other k-points than the spectral "
                                 "function; compute both on the same primitive path")
            xs, es = _broken(x, energies - ref)
            ax.plot(xs, es, color=band_color, lw=0.7, ls=(0, (4, 2)), zorder=3)
        if gap is not None:
            vbm, cbm = (float(v) - ref for v in gap)
            for edge, name, va in ((vbm, "VBM", "top"), (cbm, "CBM", "bottom")):
                ax.axhline(edge, color=marks, lw=0.8, ls=":", zorder=3)
                ax.annotate(name, (0.0, edge), xycoords=("axes fraction", "data"),
                            xytext=(3, -2 if va == "top" else 2), textcoords="offset points",
                            ha="left", va=va, fontsize="x-small", color=marks)
        for xt in ticks:
            ax.axvline(xt, color="0.6", lw=0.5, zorder=2)
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels)
        ax.set_xlim(x[0], x[-1] if x[-1] > x[0] else x[0] + 1.0)
        ax.set_ylim(lo, hi)
        energy_axis(ax, reference, reference_label, along="y")
        if reference is not None:  # its line and name in a colour the image leaves visible
            ax.lines[-1].set_color(marks)
            ax.texts[-1].set_color(marks)
        if self.path is None:
            ax.set_xlabel("k (length along the k-points, fractional units)")
        return ax

    def _axis(self):
        return Bands(self.kpts, np.zeros((len(self.kpts), 0)), path=self.path)._axis()


def _broken(x: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lines through ``e`` (n_k, n) with a gap (NaN) at the breaks of a path (steps of zero
    length)."""
    cut = np.flatnonzero(np.diff(x) <= 0) + 1
    return (np.insert(x.astype(np.float64), cut, np.nan),
            np.insert(e, cut, np.nan, axis=0))


def _component_row(component: str, n_rows: int) -> int:
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {COMPONENTS}, got {component!r}")
    row = COMPONENTS.index(component)
    if row >= n_rows:
        raise ValueError("this spectral function carries no spin; compute it with spin=True")
    return row


def unfolded_spectral_function(ham, mapping: UnfoldingMap, kpts: Any, energies: Any, *,
                               n_moments: int = 512, n_vectors: int | None = 2,
                               shared_vectors: int | None = None, spin: bool = True,
                               bounds: Any = None, margin: float = 0.05,
                               rng: np.random.Generator | int | None = 0,
                               progress: bool | None = None,
                               workers: int | None = None) -> SpectralFunction:
    r"""Unfolded, spin-resolved spectral function ``A(k, E)`` of a supercell on primitive
    k-points, by the kernel polynomial method (sparse products with ``H(K)`` only).

    Parameters
    ----------
    ham : TBHamiltonian
        Hamiltonian of the supercell (a texture, or ``prim.tile(reps)``), orthogonal or with
        an overlap (Mulliken form, half the speed).
    mapping : UnfoldingMap
        Supercell atoms -> primitive atoms, e.g.
        ``UnfoldingMap.from_structures(primitive_atoms, atoms)``.
    kpts : BandPath or (n_k, 3) array
        Fractional k-points of the **primitive** reciprocal cell; a ``BandPath`` of the
        primitive cell gives labelled plots.
    energies : (n_E,) array
        Energy grid in eV for :attr:`SpectralFunction.total` (other grids:
        :meth:`SpectralFunction.evaluate`).
    n_moments : int
        Chebyshev moments ``N``; the resolution is about ``pi a / N`` eV with ``a`` half the
        bandwidth (:attr:`SpectralFunction.resolution`; 512 moments give about 75 meV for
        NiBrI, whose bands span 22 eV).  The cost is proportional to ``N``.
    n_vectors : int or None
        Random spin pairs per k (two vectors each): the cost is ``2 n_vectors`` sparse
        products per two moments, and the intensity of a band fluctuates by up to about
        ``1 / sqrt(n_vectors)`` of itself, its position and spin not at all.  ``None`` is
        exact: one pair per spatial orbital of the primitive cell (14 for NiBrI, 7 times
        the cost of the default), noise-free.
    shared_vectors : int or None
        With a number ``R``: the k-points that fold onto the same supercell ``K`` (two or
        more of them, e.g. the points of :meth:`UnfoldingMap.commensurate_path`) share one
        recursion, started from ``R`` random spin pairs spread over the whole supercell and
        projected on each k-point's Bloch orbitals at every moment: ``4 R N`` sparse
        products for the whole group, whatever its size, instead of ``2 n_vectors N`` per
        k-point (no two-moments-per-product trick: the projector does not commute with
        ``H``).  Unbiased, but the noise includes the spread over the supercell: a band's
        intensity fluctuates by about ``1 / sqrt(R)`` of itself and the sum rule holds on
        average only.  A k-point alone in its group keeps the Bloch start (``n_vectors``).
        ``None`` (default): every k-point on its own.
    spin : bool
        Also ``A_x``, ``A_y``, ``A_z`` (free: from the same recursion).
    bounds : (float, float), optional
        Spectral bounds in eV for every k; default per k by Lanczos
        (:func:`~ase_hamgnn.spectra.kpm.spectral_bounds`) widened by ``margin`` of the width.
    rng : numpy.random.Generator, int or None
        Source of the random phases and the Lanczos start vectors.
    progress : bool or None
        Progress bar over the k-points (``None``: on a terminal for 50 k-points or more).
    workers : int or None
        Threads working on different k-points (or groups of them) at once; the sparse
        products run outside the interpreter lock, and the gain is bounded by the memory
        bandwidth (1.0-1.3x for two threads on a 2-core virtual machine).  ``None``: as
        many as the cores this process may use, at most the number of tasks.  The result
        does not depend on it: every task draws from its own stream spawned from ``rng``.

    Returns
    -------
    SpectralFunction

    Raises
    ------
    ValueError
        If the map does not fit the Hamiltonian, an argument is out of range, or the
        spectrum reaches outside ``bounds``.
    KPointError
        If ``kpts`` is not an (n_k, 3) array of finite numbers or a ``BandPath``.

    Examples
    --------
    A ferromagnetic 2 x 2 supercell unfolds to the primitive bands: at Γ the weight sums to
    the 28 spin-orbitals of the NiBrI cell, and the exact spectral function peaks at a
    primitive band.

    >>> import numpy as np
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> from ase_hamgnn.analysis import UnfoldingMap
    >>> prim = nibri()
    >>> big = ReferenceTB("nibri").predict(prim.repeat((2, 2, 1)))
    >>> umap = UnfoldingMap.from_structures(prim, big.geometry)
    >>> e = np.linspace(-20.0, 10.0, 3001)
    >>> a = unfolded_spectral_function(big, umap, [[0, 0, 0]], e, n_vectors=None)
    >>> round(float(a.total[0].sum() * (e[1] - e[0])), 2)
    28.0
    >>> bands = ReferenceTB("nibri").predict(prim).eigvalsh((0, 0, 0))
    >>> bool(np.min(np.abs(bands - e[np.argmax(a.total[0])])) < a.resolution)
    True
    """
    if hasattr(kpts, "kpts"):
        k_all, path = np.asarray(kpts.kpts, dtype=np.float64), kpts
    else:
        k_all, path = np.asarray(kpts, dtype=np.float64), None
    if k_all.ndim == 1 and k_all.size == 3:
        k_all = k_all[None]
    if k_all.ndim != 2 or k_all.shape[1] != 3 or len(k_all) == 0 \
            or not np.all(np.isfinite(k_all)):
        raise KPointError(f"kpts must be a BandPath or an (n_k, 3) array of finite fractional "
                          f"k-points of the primitive cell, got shape {k_all.shape}")
    e = _energy_grid(energies)
    if isinstance(n_moments, bool) or int(n_moments) != n_moments or n_moments < 2:
        raise ValueError(f"n_moments must be an integer of at least 2, got {n_moments}")
    n_moments = int(n_moments)
    if n_vectors is not None and (isinstance(n_vectors, bool) or int(n_vectors) != n_vectors
                                  or n_vectors < 1):
        raise ValueError(f"n_vectors must be a positive integer (random spin pairs) or None "
                         f"(exact), got {n_vectors}")
    if bounds is not None:
        bounds = tuple(float(v) for v in bounds)
        if len(bounds) != 2 or not bounds[1] > bounds[0]:
            raise ValueError(f"bounds must be (low, high) in eV with low < high, got {bounds}")
    if shared_vectors is not None and (isinstance(shared_vectors, bool)
                                       or int(shared_vectors) != shared_vectors
                                       or shared_vectors < 1):
        raise ValueError(f"shared_vectors must be a positive integer (random spin pairs over "
                         f"the supercell) or None, got {shared_vectors}")
    p_off = ham.basis.spin_orbital_offsets(mapping.primitive_numbers)
    orbital, up = _spin_pairs(p_off)
    n_rows = 4 if spin else 1
    big_m = mapping.supercell_matrix.astype(np.float64)
    mapping.bloch_projector(ham, k_all[0])       # checks the map before any work starts
    # tasks: one k-point each, or (shared_vectors) the k-points of one folded K together
    if shared_vectors is None:
        tasks = [[ik] for ik in range(len(k_all))]
    else:
        groups: dict[tuple, list[int]] = {}
        for ik, key in enumerate(map(tuple, mapping.folded(k_all))):
            groups.setdefault(key, []).append(ik)
        tasks = sorted(groups.values(), key=len, reverse=True)
    streams = as_generator(rng).spawn(len(tasks))

    def run(it: int) -> tuple[list[int], np.ndarray, tuple[float, float]]:
        task, gen = tasks[it], streams[it]
        kk = big_m @ k_all[task[0]]
        op = SpectralOperator(ham, kk)
        lo, hi = operator_bounds(op, ham, kk, margin, 60, gen) if bounds is None else bounds
        if len(task) == 1:
            embed = (mapping.bloch_projector(ham, k_all[task[0]]).conj().T
                     / np.sqrt(mapping.n_cells)).tocsr()                # columns |k, n>
            mu = _k_moments(op, embed, orbital, up, (lo, hi), n_moments, n_vectors, gen)[None]
        else:
            mu = _shared_moments(op, ham, mapping, k_all[task], (lo, hi), n_moments,
                                 int(shared_vectors), gen)
        if not np.all(np.isfinite(mu)) or np.abs(mu[:, :n_rows]).max() > BLOWUP * len(orbital):
            raise ValueError(
                f"KPM moments diverge at k = {k_all[task[0]]}: the spectrum of H(K) reaches "
                f"outside the bounds ({lo:.4g}, {hi:.4g}) eV; pass wider bounds= or a larger "
                "margin="
            )
        return task, mu[:, :n_rows], (lo, hi)

    moments = np.zeros((len(k_all), n_rows, n_moments))
    all_bounds = np.zeros((len(k_all), 2))
    shared = np.zeros(len(k_all), dtype=bool)
    bar = progress_bar(range(len(k_all)), "spectral function", progress)
    n_workers = _workers(workers, len(tasks))
    pool = ThreadPoolExecutor(n_workers) if n_workers > 1 else None
    try:
        for task, mu, lohi in (pool or builtins).map(run, range(len(tasks))):
            moments[task], all_bounds[task] = mu, lohi
            shared[task] = len(task) > 1
            bar.update(len(task))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)   # after an error: no further k-points
        bar.close()
    empty = np.zeros((len(k_all), 0))
    return SpectralFunction(
        kpts=k_all, energies=np.zeros(0), total=empty,
        spin=np.zeros((len(k_all), 0, 3)) if spin else None, moments=moments,
        bounds=all_bounds, n_vectors=None if n_vectors is None else int(n_vectors),
        path=path, shared=shared if shared.any() else None,
        shared_vectors=int(shared_vectors) if shared.any() else None).on_grid(e)


def _workers(workers: int | None, n_tasks: int) -> int:
    if workers is None:
        return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else (os.cpu_count() or 1), n_tasks))
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer (threads) or None (one per "
                         f"core), got {workers}")
    return min(int(workers), n_tasks)


def _k_moments(op: SpectralOperator, embed, orbital: np.ndarray, up: np.ndarray,
               bounds: tuple[float, float], n_moments: int, n_vectors: int | None,
               gen: np.random.Generator) -> np.ndarray:
    """(4, N) moments of one k from spin pairs started on the primitive Bloch orbitals
    (the columns of ``embed``): all pairs (``n_vectors=None``) or random phases."""
    n_prim, n_orb = len(orbital), len(orbital) // 2
    if n_vectors is None:
        xi, scale = np.eye(n_orb, dtype=np.complex128), 1.0
    else:
        xi = np.exp(2j * np.pi * gen.random((n_orb, int(n_vectors))))
        scale = 1.0 / int(n_vectors)
    mu = np.zeros((4, n_moments))
    for start in range(0, xi.shape[1], _PAIRS_PER_BLOCK):
        phases = xi[:, start:start + _PAIRS_PER_BLOCK]
        pairs = np.zeros((n_prim, phases.shape[1], 2), dtype=np.complex128)
        pairs[up, :, 0] = phases[orbital[up]]
        pairs[~up, :, 1] = phases[orbital[~up]]
        with np.errstate(over="ignore", invalid="ignore"):  # checked by the caller
            mu += _pair_moments(op, embed @ pairs.reshape(n_prim, -1), bounds, n_moments)
    return scale * mu


def _shared_moments(op: SpectralOperator, ham, mapping: UnfoldingMap, ks: np.ndarray,
                    bounds: tuple[float, float], n_moments: int, n_pairs: int,
                    gen: np.random.Generator) -> np.ndarray:
    """(n_k, 4, N) moments at the primitive k-points ``ks``, which all fold onto the
    supercell ``K`` of ``op``, from ``n_pairs`` random spin pairs over all spatial orbitals of
    the supercell: ``<r_s| P_k^H P_k T_m |r_s'> / n_cells`` averaged over the pairs, whose
    mean over the phases is ``sum_n <k, n s| T_m |k, n s'>``.

    The projections on the Bloch orbitals of every k-point at once are, per primitive
    spin-orbital ``n``, one dense product of the phases (n_k, n_cells) with the copies of
    ``n`` (n_cells, 2 n_pairs)."""
    p_of, atom_of = mapping.spin_orbital_map(ham)
    order = np.lexsort((atom_of, p_of))          # (primitive spin-orbital, copy)
    n_prim, n_c = int(p_of.max()) + 1, mapping.n_cells
    shift = mapping.translations[atom_of[order]].astype(np.float64).reshape(n_prim, n_c, 3)
    phase = np.exp(-2j * np.pi * np.einsum("kx,ncx->nkc", ks, shift))   # rows of P_k
    orbital, up = _spin_pairs(np.asarray(ham.offsets))
    xi = np.exp(2j * np.pi * gen.random((int(orbital.max()) + 1, n_pairs)))
    start = np.zeros((len(orbital), n_pairs, 2), dtype=np.complex128)
    start[up, :, 0] = xi[orbital[up]]
    start[~up, :, 1] = xi[orbital[~up]]
    start = start.reshape(len(orbital), -1)

    def project(v: np.ndarray) -> np.ndarray:                # (n_prim, n_k, pairs, 2)
        copies = v[order].reshape(n_prim, n_c, -1)
        return np.stack([a_b(phase[n], copies[n]) for n in range(n_prim)]).reshape(
            n_prim, len(ks), n_pairs, 2)

    bra = project(start).conj()
    gram = np.zeros((n_moments, len(ks), 2, 2), dtype=np.complex128)
    vectors = chebyshev_vectors(op, start, bounds)
    with np.errstate(over="ignore", invalid="ignore"):  # checked by the caller
        for m in range(n_moments):
            gram[m] = np.einsum("nkps,nkpt->kst", bra, project(next(vectors)))
    gram /= n_pairs * n_c
    g00, g01, g10, g11 = (gram[:, :, i, j] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    return np.stack([(g00 + g11).real, (g01 + g10).real, (g10 - g01).imag,
                     (g00 - g11).real]).transpose(2, 0, 1)


def _energy_grid(energies: Any) -> np.ndarray:
    e = np.asarray(energies, dtype=np.float64)
    if e.ndim != 1 or e.size == 0 or not np.all(np.isfinite(e)):
        raise ValueError(f"energies must be a non-empty 1-d array of finite energies in eV, "
                         f"got shape {e.shape}")
    return e


def _spin_pairs(p_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every primitive spin-orbital (spin-major per atom): its spatial orbital index and
    whether it is spin up."""
    orbital, up = [], []
    for lo, hi in zip(p_off[:-1], p_off[1:]):
        half = (hi - lo) // 2
        orbital.append(lo // 2 + np.tile(np.arange(half), 2))
        up.append(np.repeat([True, False], half))
    return np.concatenate(orbital), np.concatenate(up)


def _pair_moments(op: SpectralOperator, start: np.ndarray, bounds: tuple[float, float],
                  n_moments: int) -> np.ndarray:
    """``Re sum_j Tr[sigma_a G_j(m)]`` for a = 0 (identity), x, y, z and m < N, where
    ``G_j(m) = R_j^dagger T_m(X~) R_j`` is the 2 x 2 block of spin pair ``j`` (columns
    ``2j, 2j + 1`` of ``start``: up, down).  Returns (4, N)."""
    gram = np.zeros((n_moments, 2, 2), dtype=np.complex128)

    def pair_gram(u: np.ndarray, w: np.ndarray) -> np.ndarray:   # sum_j u_j^dagger w_j
        return ah_b(u.reshape(-1, 2), w.reshape(-1, 2))

    vectors = chebyshev_vectors(op, start, bounds)
    a0, a1 = next(vectors), next(vectors)
    gram[0], gram[1] = pair_gram(a0, a0), pair_gram(a0, a1)
    if op.orthogonal:
        # X~ Hermitian: T_2n = 2 T_n T_n - T_0, T_2n+1 = 2 T_n+1 T_n - T_1, two per product
        if n_moments > 2:
            gram[2] = 2 * pair_gram(a1, a1) - gram[0]
        n = 1
        while 2 * n + 1 < n_moments:
            a0, a1 = a1, next(vectors)
            gram[2 * n + 1] = 2 * pair_gram(a1, a0) - gram[1]
            if 2 * n + 2 < n_moments:
                gram[2 * n + 2] = 2 * pair_gram(a1, a1) - gram[0]
            n += 1
    else:
        for m in range(2, n_moments):
            gram[m] = pair_gram(start, next(vectors))
    g00, g01, g10, g11 = gram[:, 0, 0], gram[:, 0, 1], gram[:, 1, 0], gram[:, 1, 1]
    return np.stack([(g00 + g11).real, (g01 + g10).real, (g10 - g01).imag,
                     (g00 - g11).real])


def plot_unfolded_vs_reference(spectral: SpectralFunction, reference_bands: Bands, *,
                               reference: float | None = None,
                               reference_label: str = r"E_\mathrm{mid}", gap: Any = None,
                               emin: float | None = None, emax: float | None = None,
                               components: tuple[str, ...] = ("total", "z"),
                               gamma: float = 0.5, title: str | None = None,
                               reference_title: str = "ferromagnet (primitive cell)",
                               texture_title: str = "texture, unfolded"):
    r"""The texture's unfolded spectral function next to a reference band structure (e.g.
    the ferromagnet's primitive bands on the same path).  Returns the matplotlib Figure.

    Left: ``reference_bands`` coloured by ``<sigma_z>``.  Then one panel per entry of
    ``components`` (``'total'``, ``'x'``, ``'y'``, ``'z'``): ``A(k, E)`` on a power-law
    colour scale with the reference bands drawn over it as dashed lines, so that shadow
    bands and shifts stand out.  ``reference`` (eV, e.g. midgap) is subtracted from all
    energies; ``gap = (vbm, cbm)`` (eV) marks the edges in every panel.

    Examples
    --------
    >>> fig = plot_unfolded_vs_reference(spec, fm_bands, reference=mid,     # doctest: +SKIP
    ...                                  gap=(vbm, cbm), emin=-2.5, emax=2.5)
    """
    from matplotlib.figure import Figure

    if len(reference_bands.kpts) != len(spectral.kpts) \
            or not np.allclose(reference_bands.kpts, spectral.kpts, atol=1e-8):
        raise ValueError("reference_bands must be computed on the spectral function's "
                         "k-points (the same primitive path)")
    for c in components:
        _component_row(c, spectral.moments.shape[1])
    n = 1 + len(components)
    fig = Figure(figsize=(3.3 * n + 0.6, 4.4), layout="constrained")
    axes = fig.subplots(1, n, sharey=True)
    ref = 0.0 if reference is None else float(reference)
    if emin is None or emax is None:
        e = spectral.energies - ref
        emin = e[0] if emin is None else emin
        emax = e[-1] if emax is None else emax
    reference_bands.plot(ax=axes[0], axis="z", reference=reference, emin=emin, emax=emax,
                         reference_label=reference_label, colorbar=True)
    axes[0].set_title(reference_title, fontsize="medium")
    if gap is not None:
        for edge in gap:
            axes[0].axhline(float(edge) - ref, color="0.5", lw=0.8, ls=":", zorder=1)
    for ax, comp in zip(axes[1:], components):
        spectral.plot(ax=ax, component=comp, reference=reference,
                      reference_label=reference_label, emin=emin, emax=emax,
                      bands=reference_bands, gap=gap, gamma=gamma)
        ax.set_ylabel("")
        name = "A(k, E)" if comp == "total" else rf"$A_{comp}(k, E)$"
        ax.set_title(f"{texture_title}: {name}", fontsize="medium")
    pairs = spectral.n_vectors
    noise = ("exact" if pairs is None
             else f"{pairs} random spin pair{'s' if pairs > 1 else ''} per k")
    if spectral.shared is not None:
        alone = int(np.count_nonzero(~spectral.shared))
        noise = (f"{spectral.shared_vectors} random spin pairs over the supercell shared by "
                 f"the k-points of one folded K" + (f"; {alone} alone: {noise}" if alone
                                                      else ""))
    fig.suptitle(title or f"unfolded spectral function (KPM, {spectral.n_moments} moments, "
                 f"resolution {spectral.resolution * 1e3:.0f} meV, {noise})",
                 fontsize="medium")
    return fig
