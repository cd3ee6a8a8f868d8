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

from ase_hamgnn.occupations import K_BOLTZMANN_EV, fermi_level_from_eigenvalues

__all__ = [
    "Bands",
    "K_BOLTZMANN_EV",
    "all_eigenvalues",
    "axis_vector",
    "bands",
    "broaden",
    "dense_eigh",
    "dos",
    "fermi_level",
    "fermi_level_from_eigenvalues",
    "kmesh",
    "kpoints_and_weights",
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
    :class:`ase_hamgnn.shift_invert.ShiftInvert`, which also counts the states below
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
    from ase_hamgnn.shift_invert import ShiftInvert

    dim = ham.n_spin_orbitals
    n = int(n)
    if not 0 < n <= dim:
        raise ValueError(f"n must be in 1..{dim} (the number of spin-orbitals), got {n}")
    if dim <= _DENSE_LIMIT or n + 8 >= dim // 2:
        e, c = dense_eigh(ham, k, gauge)
        pick = np.sort(np.argsort(np.abs(e - sigma), kind="stable")[:n])
        return e[pick], c[:, pick]
    return ShiftInvert(ham, k, sigma, gauge).nearest(n)


def kmesh(size, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Γ-centred Monkhorst–Pack mesh of ``size = (n1, n2, n3)`` as fractional k, shape
    ``(n1 n2 n3, 3)``, optionally shifted by ``shift`` (in units of the mesh spacing)."""
    size = np.array([int(x) for x in size])
    if size.shape != (3,) or (size < 1).any():
        raise ValueError(f"k-mesh size must be three positive integers, got {size!r}")
    grids = [(np.arange(m) + sh) / m for m, sh in zip(size, shift)]
    mesh = np.array(np.meshgrid(*grids, indexing="ij")).reshape(3, -1).T
    return mesh - np.round(mesh)  # into (-1/2, 1/2]


def kpoints_and_weights(kpts: Any, weights: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Fractional k-points and normalized weights from a mesh size (3 ints) or an array."""
    arr = np.asarray(kpts)
    if arr.shape == (3,) and np.issubdtype(arr.dtype, np.integer):
        k = kmesh(arr)
    else:
        k = np.asarray(kpts, dtype=np.float64).reshape(-1, 3)
    if weights is None:
        w = np.full(len(k), 1.0 / len(k))
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape != (len(k),) or (w < 0).any():
            raise ValueError("weights must be one non-negative number per k-point")
        w = w / w.sum()
    return k, w


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
    kpts : (n1, n2, n3) ints for a Γ-centred mesh, or an array of fractional k-points.
    energies : energies in eV at which to evaluate.
    width : broadening in eV (Gaussian standard deviation, or Lorentzian half width).
    kind : ``"gaussian"`` or ``"lorentzian"``.
    weights : optional k-point weights (normalized here).
    """
    if width <= 0:
        raise ValueError(f"width must be positive (eV), got {width}")
    k, w = kpoints_and_weights(kpts, weights)
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
    in an insulator (see :mod:`ase_hamgnn.occupations`).
    """
    k, w = kpoints_and_weights(kpts, weights)
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
        band ``i`` at one k and at the next need not be the same band, so plots draw
        points, not lines.
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

    def plot(self, ax=None, axis: Any = "z", reference: float = 0.0,
             emin: float | None = None, emax: float | None = None, cmap: str = "coolwarm",
             size: float = 6.0, colorbar: bool = True):
        """Bands along the path, each state coloured by ``<sigma>`` along ``axis``
        (grey lines without spin).  Returns the matplotlib Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
        if self.path is not None:
            x, xlabels, labels = self.path.get_linear_kpoint_axis()
        else:
            x = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(self.kpts, axis=0), axis=1))])
            xlabels, labels = [], []
        e = self.energies - reference
        if not self.window:
            ax.plot(x, e, color="0.7", lw=0.8, zorder=1)
        if self.spin is None and self.window:
            ax.plot(x, e, ".", color="0.4", ms=size**0.5, zorder=1)
        if self.spin is not None:
            colour = self.spin_along(axis)
            xx = np.repeat(x[:, None], e.shape[1], axis=1)
            sc = ax.scatter(xx.ravel(), e.ravel(), c=colour.ravel(), cmap=cmap, vmin=-1, vmax=1,
                            s=size, lw=0, zorder=2)
            if colorbar:
                label = axis if isinstance(axis, str) else "axis"
                ax.figure.colorbar(sc, ax=ax, label=rf"$\langle\sigma_{{{label}}}\rangle$")
        for xl in xlabels:
            ax.axvline(xl, color="k", lw=0.5)
        ax.set_xticks(xlabels)
        ax.set_xticklabels([lbl.replace("G", r"$\Gamma$") for lbl in labels])
        ax.set_xlim(x[0], x[-1])
        lo = e.min() if emin is None else emin
        hi = e.max() if emax is None else emax
        ax.set_ylim(lo, hi)
        ax.set_ylabel("E - E_ref (eV)" if reference else "E (eV)")
        return ax


def axis_vector(axis: Any) -> np.ndarray:
    """Unit vector of ``'x'``, ``'y'``, ``'z'`` or a 3-vector."""
    if isinstance(axis, str):
        try:
            return np.eye(3)["xyz".index(axis)]
        except ValueError:
            raise ValueError(f"axis must be 'x', 'y', 'z' or a 3-vector, got {axis!r}") from None
    v = np.asarray(axis, dtype=np.float64).reshape(3)
    norm = np.linalg.norm(v)
    if norm == 0:
        raise ValueError("axis vector must be non-zero")
    return v / norm


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
        from ase_hamgnn.analysis.dos import local_axes, mulliken_charge_spin

        axes = np.repeat(local_axes(ham.geometry), np.diff(ham.offsets) // 2, axis=0)
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
