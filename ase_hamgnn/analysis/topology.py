"""Band topology of a 2D :class:`~ase_hamgnn.TBHamiltonian`: Berry curvature, Chern numbers
and the intrinsic (anomalous / topological) Hall conductivity.

Conventions
-----------
* **Plane.**  The two reciprocal directions are the periodic in-plane cell vectors
  ``a_1, a_2`` (the two ``True`` entries of ``pbc``, or ``directions=(d1, d2)`` given
  explicitly for a 3D cell).  Fractional wave vectors are ``kappa_1, kappa_2`` in ``[0, 1)``;
  the layer normal is ``n = a_1 x a_2 / |a_1 x a_2|`` and ``x, y`` are a right-handed frame in
  the plane with ``x x y = n`` (for the reference structures, cells in the xy plane with
  ``a_1 x a_2`` along +z, this is the lab frame).
* **Berry curvature.**  ``A_n = i <u_n|grad_k u_n>`` and ``Omega_n = (curl A_n) . n`` in Å^2;
  the Chern number of a band group is ``C = (1/2 pi) int_BZ Omega d^2k``.  With these signs
  the intrinsic Hall conductivity of an insulator is ``sigma_xy = (e^2/h) sum_occ C``.
* **Gauge.**  Eigenvectors are computed in the lattice gauge (periodic in k) and the links are
  taken in the atomic (tight-binding position) gauge by the phase ``exp(-2 pi i q . tau)`` of
  every orbital at fractional position ``tau`` between neighbouring mesh points ``k``,
  ``k + q``: ``U_q(k) = det[u_k^dagger diag(e^{-2 pi i q.tau}) u_{k+q}]``.  Link products
  around a plaquette are invariant under any U(N) rotation of the group at each k (so
  degeneracies inside a group are harmless); the atomic gauge makes the local ``Omega(k)``
  the physical one (position operator diagonal in the orbitals), the Chern number is the
  same in either gauge.
* **Overlap.**  With a non-orthogonal basis the generalized eigenvectors ``c`` (``c^dagger S
  c = 1``) are mapped to the Löwdin-orthonormal representation ``u = S(k)^{1/2} c`` at each
  k before the links are formed, i.e. the Berry curvature of the Löwdin-orthogonalized model
  (orbitals at the atom positions).  The Kubo formula (:func:`hall_conductivity`) needs
  ``dS/dk`` and is implemented for orthogonal bases only.

Units: energies eV, ``Omega`` in Å^2, conductivities in ``e^2/h`` (sheet conductance of the
2D layer; multiply by :data:`E2_OVER_H_SIEMENS` for siemens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from ase_hamgnn.spectra.dense import K_BOLTZMANN_EV, progress_bar

__all__ = [
    "E2_OVER_H_SIEMENS",
    "BandGroup",
    "BerryCurvature",
    "HallConductivity",
    "berry_curvature",
    "chern_numbers",
    "hall_conductivity",
    "plane_directions",
]

#: Conductance quantum e^2/h in siemens.
E2_OVER_H_SIEMENS = 3.874045865e-5


# -- geometry of the plane --------------------------------------------------------------------
def plane_directions(geometry: Any, directions: tuple[int, int] | None = None
                     ) -> tuple[int, int]:
    """The two cell directions spanning the 2D Brillouin zone.

    Parameters
    ----------
    geometry : Geometry
        ``ham.geometry``.
    directions : (int, int), optional
        Explicit choice (e.g. ``(0, 1)`` for a 3D cell); default the two periodic directions.

    Raises
    ------
    ValueError
        If the structure is not periodic in exactly two directions and none are given.
    """
    if directions is not None:
        d = tuple(int(x) for x in directions)
        if len(d) != 2 or d[0] == d[1] or not all(0 <= x < 3 for x in d):
            raise ValueError(f"directions must be two different cell indices in 0..2, got "
                             f"{directions!r}")
        return d  # type: ignore[return-value]
    periodic = np.flatnonzero(np.asarray(geometry.pbc))
    if len(periodic) != 2:
        raise ValueError(
            f"Chern numbers and Hall conductivities need a 2D system; pbc = "
            f"{np.asarray(geometry.pbc).tolist()} has {len(periodic)} periodic directions. "
            "Pass directions=(d1, d2) to choose the plane of a 3D cell")
    return int(periodic[0]), int(periodic[1])


def _plane_frame(geometry: Any, dirs: tuple[int, int]) -> tuple[np.ndarray, float]:
    """(2, 2) in-plane Cartesian components of b_d1, b_d2 (Å^-1, rows) in the frame x, y with
    x x y = n = a1 x a2 / |a1 x a2|, and the cell area |a1 x a2| in Å^2."""
    cell = np.asarray(geometry.cell, dtype=np.float64)
    a1, a2 = cell[dirs[0]], cell[dirs[1]]
    normal = np.cross(a1, a2)
    area = float(np.linalg.norm(normal))
    if area == 0.0:
        raise ValueError("the two in-plane cell vectors are parallel")
    n = normal / area
    ex = a1 / np.linalg.norm(a1)
    ey = np.cross(n, ex)
    # reciprocal vectors within the plane: b_i . a_j = 2 pi delta_ij
    a2d = np.array([[a1 @ ex, a1 @ ey], [a2 @ ex, a2 @ ey]])
    b2d = 2 * np.pi * np.linalg.inv(a2d).T
    return b2d, area


def _kvec(k1: float, k2: float, dirs: tuple[int, int]) -> np.ndarray:
    k = np.zeros(3, dtype=np.float64)
    k[dirs[0]], k[dirs[1]] = k1, k2
    return k


def _orbital_positions(ham: Any) -> np.ndarray:
    """Fractional position of every spin-orbital, shape (n, 3)."""
    tau = np.asarray(ham.geometry.scaled_positions, dtype=np.float64)
    return np.repeat(tau, np.diff(ham.offsets), axis=0)


def _check_mesh(mesh: Any) -> tuple[int, int]:
    m = tuple(int(x) for x in np.atleast_1d(mesh))
    if len(m) != 2 or min(m) < 2:
        raise ValueError(f"mesh must be two integers >= 2 (k-points along a1, a2), got {mesh!r}")
    return m  # type: ignore[return-value]


def _orthonormal_states(ham: Any, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and Löwdin-orthonormal eigenvectors ``S^{1/2} c`` (lattice gauge)."""
    e, c = ham.eigh(k)
    if not ham.orthogonal:
        s = ham.sk(k).toarray()
        w, v = np.linalg.eigh(s)
        c = (v * np.sqrt(w)) @ (v.conj().T @ c)
    return e, c


# -- Berry curvature ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BerryCurvature:
    """Berry curvature of one band group on a 2D k-mesh (Fukui–Hatsugai–Suzuki).

    Attributes
    ----------
    bands : tuple of int
        Band indices (ascending energy order at every k) of the group.
    kpts : (n1, n2, 3) float64
        Fractional lower-left corner of every plaquette.
    flux : (n1, n2) float64
        Berry phase through every plaquette, rad, in ``(-pi, pi]``.
    curvature : (n1, n2) float64
        ``Omega = flux / plaquette area``, Å^2, along the layer normal.
    bvecs : (2, 2) float64
        In-plane reciprocal vectors (rows) in the frame x, y of the layer, Å^-1.
    directions : (int, int)
        Cell directions of the plane.
    """

    bands: tuple[int, ...]
    kpts: np.ndarray
    flux: np.ndarray
    curvature: np.ndarray
    bvecs: np.ndarray
    directions: tuple[int, int]

    @property
    def chern(self) -> float:
        """Chern number ``sum(flux) / 2 pi``; an integer up to rounding (~1e-12) whenever the
        group is isolated by a gap from the other bands on the mesh."""
        return float(self.flux.sum() / (2 * np.pi))

    def plot(self, ax: Any = None, cmap: str = "RdBu_r", colorbar: bool = True):
        """``Omega(k)`` (Å^2) over the Brillouin-zone parallelogram in the layer frame
        (kx, ky in Å^-1).  Returns the matplotlib Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4), constrained_layout=True)
        n1, n2 = self.flux.shape
        g1, g2 = np.meshgrid(np.arange(n1 + 1) / n1, np.arange(n2 + 1) / n2, indexing="ij")
        kx = g1 * self.bvecs[0, 0] + g2 * self.bvecs[1, 0]
        ky = g1 * self.bvecs[0, 1] + g2 * self.bvecs[1, 1]
        vmax = float(np.abs(self.curvature).max()) or 1.0
        mesh = ax.pcolormesh(kx, ky, self.curvature, cmap=cmap, vmin=-vmax, vmax=vmax,
                             shading="flat")
        ax.set_aspect("equal")
        ax.set_xlabel(r"$k_x$ (Å$^{-1}$)")
        ax.set_ylabel(r"$k_y$ (Å$^{-1}$)")
        ax.set_title(f"bands {self.bands[0]}-{self.bands[-1]}: C = {self.chern:+.3f}",
                     fontsize="small")
        if colorbar:
            ax.figure.colorbar(mesh, ax=ax, label=r"$\Omega$ (Å$^2$)")
        return ax


def _grid_states(ham: Any, mesh: tuple[int, int], dirs: tuple[int, int], keep: np.ndarray,
                 progress: bool | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energies (n1, n2, n) and orthonormal states (n1, n2, dim, len(keep)) on the mesh."""
    n1, n2 = mesh
    grid = [(i, j) for i in range(n1) for j in range(n2)]
    dim = ham.n_spin_orbitals
    energies = np.empty((n1, n2, dim), dtype=np.float64)
    states = np.empty((n1, n2, dim, len(keep)), dtype=np.complex128)
    kpts = np.empty((n1, n2, 3), dtype=np.float64)
    for i, j in progress_bar(grid, "Berry curvature", progress):
        k = _kvec(i / n1, j / n2, dirs)
        e, u = _orthonormal_states(ham, k)
        energies[i, j], states[i, j], kpts[i, j] = e, u[:, keep], k
    return kpts, energies, states


def _fluxes(ham: Any, mesh: tuple[int, int], dirs: tuple[int, int], states: np.ndarray,
            groups: list[np.ndarray]) -> list[np.ndarray]:
    """Plaquette Berry phases (n1, n2) of every group (column indices into ``states``)."""
    n1, n2 = mesh
    tau = _orbital_positions(ham)
    ph1 = np.exp(-2j * np.pi * tau[:, dirs[0]] / n1)[:, None]
    ph2 = np.exp(-2j * np.pi * tau[:, dirs[1]] / n2)[:, None]
    links = [np.empty((2, n1, n2), dtype=np.complex128) for _ in groups]
    for i in range(n1):
        for j in range(n2):
            u = states[i, j]
            m1 = u.conj().T @ (ph1 * states[(i + 1) % n1, j])
            m2 = u.conj().T @ (ph2 * states[i, (j + 1) % n2])
            for g, idx in enumerate(groups):
                links[g][0, i, j] = np.linalg.det(m1[np.ix_(idx, idx)])
                links[g][1, i, j] = np.linalg.det(m2[np.ix_(idx, idx)])
    out = []
    for lk in links:
        if np.abs(lk).min() < 1e-10:
            raise ValueError("a link variable vanishes: the band group is not isolated on this "
                             "mesh (or the mesh is too coarse); use a finer mesh or a group "
                             "separated by a gap from the other bands")
        u1, u2 = lk / np.abs(lk)
        loop = u1 * np.roll(u2, -1, axis=0) * np.roll(u1, -1, axis=1).conj() * u2.conj()
        out.append(-np.angle(loop))  # Omega flux = -arg(loop) for A = i<u|du>
    return out


def berry_curvature(ham: Any, bands: Any, mesh: Any = (24, 24), *,
                    directions: tuple[int, int] | None = None,
                    progress: bool | None = None) -> BerryCurvature:
    """Berry curvature of a group of bands on a 2D k-mesh (lattice method of Fukui,
    Hatsugai and Suzuki, J. Phys. Soc. Jpn. 74, 1674 (2005)).

    Parameters
    ----------
    ham : TBHamiltonian
        A 2D Hamiltonian (orthogonal, or with overlap: Löwdin representation, see the module
        docstring).
    bands : int, slice or sequence of int
        Band indices of the group (0 = lowest state at every k).  The group may contain
        degeneracies; it should be separated by a gap from the bands outside it for the
        Chern number to be an integer.
    mesh : (int, int)
        k-points along ``a_1`` and ``a_2`` (Γ-centred, periodic).
    directions : (int, int), optional
        Cell directions of the plane; default the periodic ones.
    progress : bool, optional
        Progress bar (``None``: only for long loops on a terminal).

    Returns
    -------
    BerryCurvature
        Plaquette fluxes, ``Omega(k)`` in Å^2 and the Chern number (``.chern``).

    Raises
    ------
    ValueError
        If the system is not 2D, the mesh or band indices are invalid, or a link vanishes.

    Examples
    --------
    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> sx, sy, sz = np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1, -1])
    >>> blocks = {(0, 0, (0, 0, 0)): 1.0 * sz,   # Qi-Wu-Zhang model, u = 1
    ...           (0, 0, (1, 0, 0)): (sz + sx / 1j) / 2, (0, 0, (-1, 0, 0)): (sz - sx / 1j) / 2,
    ...           (0, 0, (0, 1, 0)): (sz + sy / 1j) / 2, (0, 0, (0, -1, 0)): (sz - sy / 1j) / 2}
    >>> atoms = Atoms("H", cell=[1, 1, 10], pbc=[True, True, False])
    >>> ham = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), atoms, blocks)
    >>> round(berry_curvature(ham, [0], (12, 12)).chern, 6)
    -1.0
    """
    dirs = plane_directions(ham.geometry, directions)
    m = _check_mesh(mesh)
    dim = ham.n_spin_orbitals
    idx = np.arange(dim)[bands] if isinstance(bands, slice) else np.atleast_1d(bands)
    idx = np.unique(np.asarray(idx, dtype=np.int64))
    if len(idx) == 0 or idx.min() < 0 or idx.max() >= dim:
        raise ValueError(f"bands must be indices in 0..{dim - 1}, got {bands!r}")
    kpts, _, states = _grid_states(ham, m, dirs, idx, progress)
    flux = _fluxes(ham, m, dirs, states, [np.arange(len(idx))])[0]
    bvecs, _ = _plane_frame(ham.geometry, dirs)
    plaquette = abs(float(np.linalg.det(bvecs))) / (m[0] * m[1])  # Å^-2
    return BerryCurvature(bands=tuple(int(x) for x in idx), kpts=kpts, flux=flux,
                          curvature=flux / plaquette, bvecs=bvecs, directions=dirs)


@dataclass(frozen=True)
class BandGroup:
    """A group of bands isolated from its neighbours on a k-mesh, with its Chern number.

    Attributes
    ----------
    start, stop : int
        Band indices ``start <= n < stop``.
    emin, emax : float
        Energy range of the group on the mesh, eV.
    gap_below, gap_above : float
        Smallest direct-or-indirect gap to the next band below / above on the mesh, eV
        (``inf`` at the ends of the spectrum).
    chern : float
        Chern number (integer up to rounding for an isolated group).
    max_flux : float
        Largest ``|Berry phase|`` through one plaquette, rad.  Values approaching ``pi``
        mean the mesh does not resolve the curvature (or a gap closes between mesh points):
        refine the mesh until ``chern`` is stable.
    """

    start: int
    stop: int
    emin: float
    emax: float
    gap_below: float
    gap_above: float
    chern: float
    max_flux: float


def chern_numbers(ham: Any, mesh: Any = (24, 24), *, energy_window: tuple[float, float] | None
                  = None, gap_tol: float = 0.01, directions: tuple[int, int] | None = None,
                  progress: bool | None = None) -> list[BandGroup]:
    """Split the spectrum into band groups separated by gaps and compute their Chern numbers.

    Bands ``n`` and ``n + 1`` belong to different groups when ``min_k E_{n+1} - max_k E_n >
    gap_tol`` on the mesh (a global gap between them).  The eigenvectors are diagonalized
    once and shared by all groups.

    Parameters
    ----------
    ham : TBHamiltonian
        A 2D Hamiltonian.
    mesh : (int, int)
        k-points along ``a_1``, ``a_2``.  A gap that closes between mesh points is not seen:
        check convergence with a finer mesh.
    energy_window : (float, float), optional
        Only groups overlapping ``[emin, emax]`` (eV) are returned (cheaper for large
        supercells: only their eigenvectors are kept).
    gap_tol : float
        Smallest gap (eV) that separates two groups.  On a coarse mesh, bands that cross
        between mesh points show spurious small "gaps"; a larger ``gap_tol`` merges them
        (the sum of the Chern numbers over all groups is 0 only when every group is truly
        isolated).
    directions, progress
        As in :func:`berry_curvature`.

    Returns
    -------
    list of BandGroup
        Ascending in energy.  The sum over all groups is 0 (up to rounding).

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB
    >>> ref = ReferenceTB("nibr2")
    >>> groups = chern_numbers(ref.predict(ref.structure()), (6, 6))
    >>> abs(sum(g.chern for g in groups)) < 1e-8
    True
    """
    dirs = plane_directions(ham.geometry, directions)
    m = _check_mesh(mesh)
    dim = ham.n_spin_orbitals
    n1, n2 = m
    energies = np.array([[ham.eigvalsh(_kvec(i / n1, j / n2, dirs)) for j in range(n2)]
                         for i in range(n1)]).reshape(-1, dim)
    top, bottom = energies.max(axis=0), energies.min(axis=0)
    gaps = bottom[1:] - top[:-1]
    cuts = [0, *(np.flatnonzero(gaps > gap_tol) + 1).tolist(), dim]
    spans = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    if energy_window is not None:
        lo, hi = energy_window
        spans = [(a, b) for a, b in spans if top[b - 1] >= lo and bottom[a] <= hi]
    if not spans:
        return []
    keep = np.arange(spans[0][0], spans[-1][1])
    _, _, states = _grid_states(ham, m, dirs, keep, progress)
    groups = [np.arange(a, b) - keep[0] for a, b in spans]
    fluxes = _fluxes(ham, m, dirs, states, groups)
    out = []
    for (a, b), flux in zip(spans, fluxes):
        out.append(BandGroup(
            start=int(a), stop=int(b), emin=float(bottom[a]), emax=float(top[b - 1]),
            gap_below=float(gaps[a - 1]) if a > 0 else float("inf"),
            gap_above=float(gaps[b - 1]) if b < dim else float("inf"),
            chern=float(flux.sum() / (2 * np.pi)), max_flux=float(np.abs(flux).max())))
    return out


# -- Kubo formula ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class HallConductivity:
    """Intrinsic Hall conductivity ``sigma_xy(E_F)`` of a 2D layer.

    Attributes
    ----------
    energies : (n_E,) float64
        Fermi energies, eV.
    sigma_xy : (n_E,) float64
        Sheet Hall conductivity in units of ``e^2/h`` (frame of the layer, see the module
        docstring).
    mesh : (int, int)
        k-mesh used.
    eta : float
        Broadening of the energy denominators, eV.
    temperature : float
        Fermi–Dirac temperature of the occupations, K.
    """

    energies: np.ndarray
    sigma_xy: np.ndarray
    mesh: tuple[int, int]
    eta: float
    temperature: float

    @property
    def siemens(self) -> np.ndarray:
        """``sigma_xy`` in siemens (S)."""
        return self.sigma_xy * E2_OVER_H_SIEMENS

    def plot(self, ax: Any = None, reference: float = 0.0, label: str | None = None,
             **kwargs: Any):
        """``sigma_xy`` (e^2/h) against ``E_F - reference`` (eV).  Returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
        ax.plot(self.energies - reference, self.sigma_xy, label=label, **kwargs)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set_xlabel(r"$E_F - E_{ref}$ (eV)" if reference else r"$E_F$ (eV)")
        ax.set_ylabel(r"$\sigma_{xy}$ ($e^2/h$)")
        return ax


def _velocities(ham: Any, k: np.ndarray, dirs: tuple[int, int], tau: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H(k) and dH/dkappa_a (a = d1, d2) in the atomic gauge, conjugated back to the lattice
    gauge basis: ``dH_lat + 2 pi i [H, T_a]`` (dense, eV per unit fractional k)."""
    dim = ham.n_spin_orbitals
    h = np.zeros((dim, dim), dtype=np.complex128)
    dh = np.zeros((2, dim, dim), dtype=np.complex128)
    for r, mat in ham.h_r.items():
        term = mat.toarray() * np.exp(2j * np.pi * float(np.dot(k, r)))
        h += term
        for a, d in enumerate(dirs):
            if r[d]:
                dh[a] += (2j * np.pi * r[d]) * term
    for a, d in enumerate(dirs):
        t = tau[:, d]
        dh[a] += 2j * np.pi * (h * t[None, :] - t[:, None] * h)
    return h, dh[0], dh[1]


def hall_conductivity(ham: Any, energies: Any, mesh: Any = (48, 48), *, eta: float = 1e-3,
                      temperature: float = 0.0, degeneracy_tol: float = 1e-9,
                      directions: tuple[int, int] | None = None,
                      progress: bool | None = None) -> HallConductivity:
    """Intrinsic Hall conductivity of a 2D layer from the Kubo formula on a k-mesh.

    ``sigma_xy(E_F) = (e^2/h) (1/2 pi) (1/N_k) sum_k sum_n f(E_nk - E_F) Omega_n(k)``, with
    the Berry curvature in fractional coordinates

    ``Omega_n = -2 Im sum_{m, |E_m - E_n| > tol} <n|dH/dk1|m><m|dH/dk2|n> / ((E_n - E_m)^2 +
    eta^2)``,

    ``dH/dk_a = sum_R 2 pi i (R + tau_j - tau_i)_a H_ij(R) e^{2 pi i k.(R + tau_j - tau_i)}``
    (atomic gauge, fractional ``R`` and orbital positions ``tau``; the Cartesian ``i R^cart``
    form contracted with the in-plane reciprocal vectors, hence an exact 2D invariant).  For
    an insulator with the Fermi level in the gap this equals ``sum_occ C`` exactly in the
    limit of a fine mesh and ``eta -> 0``.

    Parameters
    ----------
    ham : TBHamiltonian
        A 2D Hamiltonian with an orthogonal basis.
    energies : float or array_like
        Fermi energies, eV.
    mesh : (int, int)
        k-points along ``a_1``, ``a_2``.  Convergence: in a gap ``Delta`` the error falls
        off exponentially with the mesh once the k spacing resolves the band curvature near
        the gap edges (``~ hbar v / Delta``); a few 1e-3 e^2/h needs ~30x30 for a 1 eV gap
        in a primitive cell, and proportionally fewer points per reciprocal-lattice vector
        in a supercell.  In a metal, ``sigma_xy`` converges slowly (Fermi-surface
        contributions): use a fine mesh, ``temperature > 0`` and compare meshes.
    eta : float
        Broadening of the energy denominators, eV; it shifts the quantized value by
        ``O(eta^2 / Delta^2)`` and regularizes avoided crossings in metals.
    temperature : float
        Fermi–Dirac occupations at this temperature, K (0: step function).
    degeneracy_tol : float
        Pairs of states closer than this (eV) are left out (their terms cancel exactly).
    directions, progress
        As in :func:`berry_curvature`.

    Returns
    -------
    HallConductivity
        ``sigma_xy`` in ``e^2/h`` at every energy.

    Raises
    ------
    NotImplementedError
        For a non-orthogonal basis (the Kubo velocity needs ``dS/dk``); use Chern numbers
        (:func:`chern_numbers`, which handle ``S``) or a model with ``overlap=False``.
    ValueError
        If the system is not 2D or an argument is out of range.

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB
    >>> ref = ReferenceTB("nibr2")
    >>> atoms = ref.structure()
    >>> ham = ref.predict(atoms)
    >>> e_f = ham.fermi_level(ref.n_electrons(atoms), (6, 6, 1))
    >>> sigma = hall_conductivity(ham, e_f, (6, 6)).sigma_xy  # e^2/h
    """
    if not ham.orthogonal:
        raise NotImplementedError(
            "hall_conductivity needs an orthogonal basis (the Kubo velocity of H c = E S c "
            "needs dS/dk); predict with overlap=False, or use chern_numbers, which handles S")
    dirs = plane_directions(ham.geometry, directions)
    m = _check_mesh(mesh)
    if eta < 0 or temperature < 0:
        raise ValueError(f"eta (eV) and temperature (K) must be >= 0, got {eta}, {temperature}")
    e_f = np.atleast_1d(np.asarray(energies, dtype=np.float64))
    tau = _orbital_positions(ham)
    n1, n2 = m
    grid = [(i, j) for i in range(n1) for j in range(n2)]
    eig, omega = [], []
    for i, j in progress_bar(grid, "Hall conductivity", progress):
        k = _kvec(i / n1, j / n2, dirs)
        h, d1, d2 = _velocities(ham, k, dirs, tau)
        e, c = scipy.linalg.eigh(h)
        v1 = c.conj().T @ d1 @ c
        v2 = c.conj().T @ d2 @ c
        de = e[:, None] - e[None, :]
        mask = np.abs(de) > degeneracy_tol
        num = np.imag(v1 * v2.T)  # Im <n|v1|m><m|v2|n>
        ratio = np.divide(num, de**2 + eta**2, out=np.zeros_like(num), where=mask)
        omega.append(-2.0 * ratio.sum(axis=1))
        eig.append(e)
    eig_a, om_a = np.array(eig).ravel(), np.array(omega).ravel()
    weight = 1.0 / (2 * np.pi * len(grid))
    if temperature == 0:
        order = np.argsort(eig_a, kind="stable")
        cum = np.concatenate([[0.0], np.cumsum(om_a[order])])
        sigma = cum[np.searchsorted(eig_a[order], e_f, side="right")] * weight
    else:
        kt = K_BOLTZMANN_EV * temperature
        occ = 0.5 * (1 - np.tanh((eig_a[None, :] - e_f[:, None]) / (2 * kt)))
        sigma = occ @ om_a * weight
    return HallConductivity(energies=e_f, sigma_xy=np.asarray(sigma, dtype=np.float64),
                            mesh=m, eta=float(eta), temperature=float(temperature))
