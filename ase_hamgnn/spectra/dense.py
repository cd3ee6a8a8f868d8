"""Spectra of a :class:`~ase_hamgnn.TBHamiltonian`: dense and shift-invert eigensolvers, band
structures with spin, densities of states and the Fermi level.

All functions take the Hamiltonian object and never a model (construction, result and
analysis are separate).  Energies are in eV, k-points fractional.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from tqdm.auto import tqdm

from ase_hamgnn._plotting import energy_axis
from ase_hamgnn.errors import KPointError
from ase_hamgnn.spectra.kpoints import kpoints_and_weights
from ase_hamgnn.spectra.occupations import K_BOLTZMANN_EV, fermi_level_from_eigenvalues
from ase_hamgnn.spectra.projections import axis_vector, mulliken_charge_spin, orbital_axes

__all__ = [
    "Bands",
    "check_temperature",
    "K_BOLTZMANN_EV",
    "all_eigenvalues",
    "bands",
    "broaden",
    "dense_eigh",
    "dos",
    "fermi_level",
    "fermi_level_from_eigenvalues",
    "progress_bar",
    "shift_invert_eigh",
]

# Below this dimension shift-invert falls back to dense diagonalization.
_DENSE_LIMIT = 400


def dense_eigh(ham, k, gauge: str = "lattice", vectors: bool = True):
    """All eigenpairs of ``H(k) c = E S(k) c`` by LAPACK; states S-orthonormal columns."""
    h = ham.hk(k, gauge).toarray()
    s = None if ham.orthogonal else ham.sk(k, gauge).toarray()
    if vectors:
        return scipy.linalg.eigh(h, s)
    return scipy.linalg.eigh(h, s, eigvals_only=True), None


def shift_invert_eigh(ham, k, n: int, sigma: float, gauge: str = "lattice"):
    """The ``n`` eigenpairs nearest ``sigma`` (eV) of ``H(k) c = E S(k) c`` at any k.

    Block shift-invert iteration on one sparse factorization of ``H(k) - sigma S(k)`` (see
    :class:`ase_hamgnn.spectra.shift_invert.ShiftInvert`, which also counts the states below
    ``sigma`` and finds the states on one side of it), refined by a Rayleigh-Ritz step so
    that degenerate (e.g. Kramers) pairs come out S-orthonormal.  Small matrices, or ``n``
    close to the dimension, are diagonalized densely.  Returns energies (n,) ascending and
    states (dim, n) as S-orthonormal columns.

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ham = ReferenceTB("nibri").predict(nibri((4, 4)))
    >>> e, c = shift_invert_eigh(ham, (0, 0, 0), 8, sigma=3.0)
    >>> e.shape, c.shape
    ((8,), (448, 8))
    """
    from ase_hamgnn.spectra.shift_invert import ShiftInvert

    dim = ham.n_spin_orbitals
    n = int(n)
    if not 0 < n <= dim:
        raise ValueError(f"n must be in 1..{dim} (the number of spin-orbitals), got {n}")
    if dim <= _DENSE_LIMIT or n + 8 >= dim // 2:
        e, c = dense_eigh(ham, k, gauge)
        pick = np.sort(np.argsort(np.abs(e - sigma), kind="stable")[:n])
        return e[pick], c[:, pick]
    return ShiftInvert(ham, k, sigma, gauge).nearest(n)


def _check_width(width: Any) -> float:
    """A broadening in eV: finite and positive."""
    w = float(width)
    if not (np.isfinite(w) and w > 0):
        raise KPointError(f"width must be a finite, positive broadening in eV, got {width!r}")
    return w


def check_temperature(temperature: Any) -> float:
    """An electronic temperature in K: finite and >= 0."""
    t = float(temperature)
    if not (np.isfinite(t) and t >= 0):
        raise KPointError(f"temperature must be a finite number of K >= 0, got {temperature!r}")
    return t


def progress_bar(items, desc: str, progress: bool | None):
    """tqdm over ``items``: ``progress=None`` shows a bar on a terminal for long loops only."""
    if progress is None:
        disable = None if len(items) >= 50 else True
    else:
        disable = not progress
    return tqdm(items, desc=desc, unit="k", disable=disable)


def all_eigenvalues(ham, k: np.ndarray, progress: bool | None = None) -> np.ndarray:
    """Eigenvalues (n_k, n_states) in eV at fractional k-points ``k`` (n_k, 3)."""
    return np.array([ham.eigvalsh(kk) for kk in progress_bar(k, "eigenvalues", progress)])


def dos(ham, kpts: Any, energies: np.ndarray, width: float = 0.05, kind: str = "gaussian",
        weights: Any = None, progress: bool | None = None) -> np.ndarray:
    """Total density of states per cell and eV (both spins; integrates to the number of
    spin-orbitals over all energies).

    Parameters
    ----------
    kpts : k-points in any form of :func:`~ase_hamgnn.spectra.kpoints.resolve_kpts`, as the
        calculator takes them: ``(n1, n2, n3)`` is ASE's Monkhorst–Pack mesh,
        ``{"size": (n1, n2, n3), "gamma": True}`` the Γ-centred one, or an ``(n_k, 3)``
        array of fractional k-points.
    energies : energies in eV at which to evaluate.
    width : broadening in eV (Gaussian standard deviation, or Lorentzian half width).
    kind : ``"gaussian"`` or ``"lorentzian"``.
    weights : optional k-point weights (normalized here; their sum must be positive).

    Raises
    ------
    KPointError
        If ``kpts`` or ``weights`` are malformed, or ``width`` is not finite and positive.
    """
    width = _check_width(width)
    k, w = kpoints_and_weights(kpts, weights, ham.geometry.cell, ham.geometry.pbc)
    eig = all_eigenvalues(ham, k, progress)
    return broaden(eig, w, energies, width, kind)


def broaden(eigenvalues: np.ndarray, weights: np.ndarray, energies: np.ndarray, width: float,
            kind: str = "gaussian", projections: np.ndarray | None = None) -> np.ndarray:
    """Broadened spectral sum ``sum_k w_k sum_n p_kn delta(E - e_kn)`` on ``energies``.

    ``eigenvalues`` and optional ``projections`` are (n_k, n_states); weights (n_k,)."""
    e = np.asarray(energies, dtype=np.float64)
    eig = np.asarray(eigenvalues, dtype=np.float64)
    p = np.ones_like(eig) if projections is None else np.asarray(projections, dtype=np.float64)
    wk = (np.asarray(weights)[:, None] * p).ravel()
    flat = eig.ravel()
    out = np.zeros_like(e)
    chunk = max(1, 2_000_000 // max(len(e), 1))
    for start in range(0, len(flat), chunk):
        x = e[:, None] - flat[None, start:start + chunk]
        if kind == "gaussian":
            kern = np.exp(-0.5 * (x / width) ** 2) / (width * np.sqrt(2 * np.pi))
        elif kind == "lorentzian":
            kern = (width / np.pi) / (x**2 + width**2)
        else:
            raise ValueError(f"kind must be 'gaussian' or 'lorentzian', got {kind!r}")
        out += kern @ wk[start:start + chunk]
    return out


def fermi_level(ham, n_electrons: float, kpts: Any = (1, 1, 1), temperature: float = 0.0,
                weights: Any = None) -> float:
    """Fermi level (eV) that puts ``n_electrons`` per cell into the spin-orbitals.

    At ``temperature = 0`` (K) the states are filled in order of energy: the level is
    mid-gap (half-way between the highest occupied and the lowest empty state) when the count
    ends at a gap, and the energy of the partly filled level otherwise.  At
    ``temperature > 0`` it is the Fermi–Dirac chemical potential of the count, near mid-gap
    in an insulator (see :mod:`ase_hamgnn.spectra.occupations`).

    ``kpts`` takes any form of :func:`~ase_hamgnn.spectra.kpoints.resolve_kpts` (``(n1, n2, n3)``:
    ASE's Monkhorst–Pack mesh); :class:`~ase_hamgnn.errors.KPointError`
    for malformed k-points or weights, or a temperature that is not finite and >= 0.
    """
    temperature = check_temperature(temperature)
    k, w = kpoints_and_weights(kpts, weights, ham.geometry.cell, ham.geometry.pbc)
    eig = all_eigenvalues(ham, k, progress=False)
    return fermi_level_from_eigenvalues(eig, w, n_electrons, temperature)


@dataclass(frozen=True, eq=False)
class Bands:
    """A band structure: energies (and spins) of the states along a k-path.

    Attributes
    ----------
    kpts : (n_k, 3) fractional k-points.
    energies : (n_k, n_bands) eV.
    spin : (n_k, n_bands, 3) ``<sigma>`` per state, or ``None``.
    path : the ``ase.dft.kpoints.BandPath`` it was computed on, or ``None``.
    local_spin : (n_k, n_bands) Mulliken spin of each state along each atom's own moment
        (positive = majority), or ``None`` (no spin, or no moments).
    window : ``True`` when only the bands nearest an energy were computed (shift-invert):
        band ``i`` at one k and at the next need not be the same band, so plots draw lines
        only for the bands counted from a gap that every k-point has, points otherwise.
    """

    kpts: np.ndarray
    energies: np.ndarray
    spin: np.ndarray | None = None
    path: Any = None
    local_spin: np.ndarray | None = None
    window: bool = False

    def to_ase(self, reference: float = 0.0):
        """As an ASE ``BandStructure`` (one spin channel: the states are spinors)."""
        from ase.spectrum.band_structure import BandStructure

        if self.path is None:
            raise ValueError("these bands have no BandPath; compute them with ham.bands(path)")
        return BandStructure(self.path, self.energies[None], reference=reference)

    def spin_along(self, axis: Any = "z") -> np.ndarray:
        """``<sigma>`` projected on ``axis`` (``'x'``, ``'y'``, ``'z'``, a 3-vector, or
        ``'local'``: along each atom's own moment, the natural axis of a texture)."""
        if isinstance(axis, str) and axis == "local":
            if self.local_spin is None:
                raise ValueError("these bands carry no local spin: compute them with "
                                 "spin=True for a structure with moments")
            return self.local_spin
        if self.spin is None:
            raise ValueError("these bands carry no spin; compute them with spin=True")
        return self.spin @ axis_vector(axis)

    def plot(self, ax=None, axis: Any = "z", reference: float | None = None,
             emin: float | None = None, emax: float | None = None, cmap: str = "coolwarm",
             size: float = 6.0, colorbar: bool = True, reference_label: str = "E_F",
             lw: float = 1.2):
        """Bands along the path, coloured by ``<sigma>`` along ``axis`` (grey without spin).

        Bands are lines between neighbouring k-points (coloured segment by segment).
        Windowed bands (:attr:`window`) may change index from one k to the next: they are
        lines where they can be counted from a gap that every k-point has (the first, second,
        ... state below and above it), and the states beyond that count, or all of them
        without such a gap, are points of area ``size``.  The x axis is the length along the
        path, with every special point of the path labelled at its own position, however few
        the k-points.

        Parameters
        ----------
        ax : matplotlib Axes, optional (a new figure otherwise).
        axis : ``'x'``, ``'y'``, ``'z'``, a 3-vector or ``'local'`` (see :meth:`spin_along`).
        reference : energy (eV) subtracted from the bands and marked by a dashed line, e.g.
            the Fermi level; ``None`` plots absolute energies.
        emin, emax : energy window (eV, relative to ``reference``); by default the data and
            a 5 % margin on each side.
        cmap : colour map of ``<sigma>`` (limits fixed at -1 and 1, so that figures compare).
        size : marker area (points^2) of windowed bands.
        colorbar : draw the colour bar of ``<sigma>``.
        reference_label : name of the reference in mathtext (``"E_F"``,
            ``r"E_\\mathrm{mid}"``): the y label reads ``E - E_F`` and the line is labelled.
        lw : line width of the bands (points).

        Returns
        -------
        matplotlib Axes

        Examples
        --------
        >>> ax = ham.bands(path).plot(axis="z", reference=e_fermi)       # doctest: +SKIP
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
        x, ticks, labels = self._axis()
        e = self.energies - (0.0 if reference is None else reference)
        colour = None if self.spin is None else self.spin_along(axis)
        lines_at, points = np.broadcast_to(np.arange(e.shape[1]), e.shape), None
        if self.window:   # band i at one k need not be band i at the next
            aligned = _aligned_at_gap(self.energies)
            if aligned is None:
                lines_at, points = None, np.ones(e.shape, dtype=bool)
            else:
                lines_at, points = aligned
        mappable = None
        if lines_at is not None and lines_at.shape[1]:
            ce = None if colour is None else np.take_along_axis(colour, lines_at, axis=1)
            mappable = _band_lines(ax, x, np.take_along_axis(e, lines_at, axis=1), ce, cmap, lw)
        if points is not None and points.any():
            xx = np.broadcast_to(x[:, None], e.shape)[points]
            if colour is None:
                ax.scatter(xx, e[points], s=size, color="0.35", lw=0, zorder=2)
            else:
                mappable = ax.scatter(xx, e[points], c=colour[points], cmap=cmap, vmin=-1,
                                      vmax=1, s=size, lw=0, zorder=2)
        if mappable is not None and colorbar:
            name = axis if isinstance(axis, str) else "n"
            label = (r"$\langle\sigma\rangle$ along the local moment" if name == "local"
                     else rf"$\langle\sigma_{{{name}}}\rangle$")
            ax.figure.colorbar(mappable, ax=ax, label=label)
        for xt in ticks:
            ax.axvline(xt, color="k", lw=0.5, zorder=1)
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels)
        ax.set_xlim(x[0], x[-1] if x[-1] > x[0] else x[0] + 1.0)
        lo, hi = float(e.min()), float(e.max())
        pad = 0.05 * (hi - lo) if hi > lo else 0.1
        ax.set_ylim(lo - pad if emin is None else emin, hi + pad if emax is None else emax)
        energy_axis(ax, reference, reference_label, along="y")
        if self.path is None:
            ax.set_xlabel("k (length along the k-points, fractional units)")
        return ax

    def _axis(self) -> tuple[np.ndarray, list[float], list[str]]:
        """x of every k-point (cumulative Cartesian length along the path, none across a
        break) and the positions and labels of the path's special points."""
        if self.path is not None:
            found = _path_axis(self.path, self.kpts)
            if found is not None:
                return found
        if self.path is not None and len(self.path.cartesian_kpts()) == len(self.kpts):
            k = self.path.cartesian_kpts()
        else:
            k = self.kpts
        x = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(k, axis=0), axis=1))])
        return x, [], []


def _band_lines(ax, x: np.ndarray, e: np.ndarray, colour: np.ndarray | None, cmap: str,
                lw: float):
    """Bands ``e`` (n_k, n) as lines, one segment per band between neighbouring k-points
    (none across a break of the path), coloured by the mean ``colour`` of its two ends.
    Returns the colour-mapped collection (``None`` without colour)."""
    from matplotlib.collections import LineCollection

    keep = np.diff(x) > 0
    if len(x) == 1 or not keep.any():                               # a single k-point
        ax.plot(np.broadcast_to(x[:, None], e.shape).ravel(), e.ravel(), "_", color="0.35",
                ms=8)
        return None
    x0, x1 = x[:-1][keep], x[1:][keep]
    e0, e1 = e[:-1][keep], e[1:][keep]                              # (n_segments_k, n)
    segments = np.stack([np.stack([np.broadcast_to(x0[:, None], e0.shape), e0], -1),
                         np.stack([np.broadcast_to(x1[:, None], e1.shape), e1], -1)],
                        axis=-2).reshape(-1, 2, 2)
    if colour is None:
        ax.add_collection(LineCollection(segments, colors="0.35", linewidths=lw, zorder=2))
        return None
    mid = 0.5 * (colour[:-1][keep] + colour[1:][keep])
    lines = LineCollection(segments, array=mid.ravel(), cmap=cmap, linewidths=lw, zorder=2,
                           capstyle="round")
    lines.set_clim(-1, 1)
    ax.add_collection(lines)
    return lines


def _aligned_at_gap(energies: np.ndarray):
    """Band indices of windowed bands (the states nearest an energy at each k, a contiguous
    run of the spectrum whose first index may change with k), counted from a gap.

    If an energy range holds no state at any k, every k has states on both sides of it (so
    that, the window being contiguous, none of its states can lie inside) and it is wider
    than five mean level spacings of the window, it is a gap at every k, after the same
    number of bands everywhere, and the states are numbered down and up from it: the
    ``j``-th state below it is one band at every k, and so is the ``j``-th above, as far as
    every k has one.  Returns
    ``(columns, leftover)``: (n_k, m) column indices of those bands in each row, ascending
    in energy, and an (n_k, n) mask of the states outside them (drawn as points); ``None``
    without such a gap."""
    nk, n = energies.shape
    flat = np.sort(energies.ravel())
    if nk < 2 or n < 2 or flat[-1] <= flat[0]:
        return None
    spacing = np.diff(flat)
    j = int(np.argmax(spacing))
    if spacing[j] <= 5.0 * (flat[-1] - flat[0]) / (len(flat) - 1):
        return None
    split = 0.5 * (flat[j] + flat[j + 1])
    order = np.argsort(energies, axis=1, kind="stable")
    below = (energies < split).sum(axis=1)                          # (n_k,)
    n_below, n_above = int(below.min()), int((n - below).min())
    if n_below == 0 or n_above == 0:    # a k-point without states on one side: the gap
        return None                     # may hold states that its window left out
    cols = [below - m for m in range(n_below, 0, -1)] + [below + m for m in range(n_above)]
    rows = np.arange(nk)[:, None]
    columns = order[rows, np.stack(cols, axis=1)]
    leftover = np.ones((nk, n), dtype=bool)
    leftover[rows, columns] = False
    return columns, leftover


def _special_label(name: str) -> str:
    return r"$\Gamma$" if name == "G" else name


def _path_axis(path: Any, kpts: np.ndarray):
    """Axis of an ASE ``BandPath``: x per k-point (Cartesian length along the path, 1/Å,
    without 2 pi), and the positions and labels of the special points.

    The special points are looked up in the k-points in the order of ``path.path``, so each
    gets its own tick even when two of them are neighbouring k-points (ASE's
    ``get_linear_kpoint_axis`` puts a short path's neighbouring special points at one x,
    taking them for a break).  Only the step between the last point of a ``,``-separated
    part and the first of the next has no length; labels that meet there read ``M|K``.
    ``None`` if a special point is not among the k-points (then the caller falls back)."""
    from ase.dft.kpoints import parse_path_string

    kpts = np.asarray(kpts, dtype=np.float64)
    if len(kpts) != len(path.kpts) or not np.allclose(kpts, path.kpts):
        return None
    found: list[tuple[int, str]] = []
    breaks: list[int] = []
    start = 0
    for part in parse_path_string(path.path):
        for name in part:
            target = np.asarray(path.special_points[name], dtype=np.float64)
            hits = np.flatnonzero(np.abs(kpts[start:] - target).max(axis=1) < 1e-8)
            if hits.size == 0:
                return None
            found.append((start + int(hits[0]), name))
            start = found[-1][0] + 1
        breaks.append(found[-1][0])
    step = np.linalg.norm(np.diff(path.cartesian_kpts(), axis=0), axis=1)
    for b in breaks[:-1]:
        if b < len(step):
            step[b] = 0.0
    x = np.concatenate([[0.0], np.cumsum(step)])
    ticks: list[float] = []
    labels: list[str] = []
    for index, name in found:
        if ticks and np.isclose(x[index], ticks[-1]) and labels[-1] != _special_label(name):
            labels[-1] += "|" + _special_label(name)
        elif not ticks or not np.isclose(x[index], ticks[-1]):
            ticks.append(float(x[index]))
            labels.append(_special_label(name))
    return x, ticks, labels


def bands(ham, path: Any, spin: bool = True, n: int | None = None, sigma: float | None = None,
          progress: bool | None = None) -> Bands:
    """Band structure along ``path`` (an ASE ``BandPath``, or an array of fractional k).

    With ``n`` and ``sigma`` only the ``n`` bands nearest ``sigma`` (eV) are computed by
    shift-invert (large supercells); otherwise all bands densely.
    """
    if hasattr(path, "kpts"):
        k = np.asarray(path.kpts, dtype=np.float64)
        bp = path
    else:
        k = np.asarray(path, dtype=np.float64).reshape(-1, 3)
        bp = None
    if (n is None) != (sigma is None):
        raise ValueError("give both n and sigma for shift-invert bands, or neither")
    axes = None
    if spin and np.linalg.norm(ham.geometry.moments, axis=1).max() > 1e-8:
        axes = orbital_axes(ham, "local")
    energies, spins, local = [], [], []
    for kk in progress_bar(k, "bands", progress):
        if n is None:
            e, c = ham.eigh(kk) if spin else (ham.eigvalsh(kk), None)
        else:
            e, c = ham.eigsh(kk, n, sigma)
        energies.append(e)
        if spin:
            spins.append(ham.spin_expectation(kk, c))
        if axes is not None:
            local.append(mulliken_charge_spin(ham, kk, c, axes)[1].sum(axis=0))
    return Bands(k, np.array(energies), np.array(spins) if spin else None, bp,
                 np.array(local) if axes is not None else None, window=n is not None)
