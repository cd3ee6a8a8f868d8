"""Magnetism from a :class:`~ase_hamgnn.TBHamiltonian`: magnetic anisotropy by the force
theorem and local moments compared with the input moments.

* **Force theorem.**  The magnetic anisotropy energy is the change of the band energy
  ``E_band = sum_k w_k sum_n f(E_nk - mu) E_nk`` (per cell, eV) at a fixed number of electrons
  when the frozen moments are rigidly rotated, without self-consistency.  Without spin-orbit
  coupling a rigid rotation of all moments is a global SU(2) rotation of the spin, so
  ``E_band`` does not depend on the direction: the anisotropy is a pure SOC effect.
  "Frozen" means the potential: :func:`rotate_exchange` splits ``H`` by time reversal into
  its even part (hoppings, crystal field, spin-orbit coupling), which stays, and its odd part
  (the exchange field of the moments), which is rotated in spin space.  A Hamiltonian
  re-predicted for the rotated moments is the same thing for a model whose Hamiltonian
  follows the moments rigidly (the synthetic reference), but not for one trained on
  self-consistent DFT: there the even part moves with the direction as well (the charge
  responds), and band-energy differences between two self-consistent Hamiltonians are not
  energy differences (a uniform shift of the levels by 1 meV moves the band energy of 24
  electrons by 24 meV).  :func:`anisotropy_energy` takes a predictor and a structure rather
  than a Hamiltonian and does either (``method``).
* **Local moments.**  The Mulliken spin of the occupied states on every atom, ``m_i = sum_k
  w_k sum_n f_nk sum_{mu in i} Re[c_mu^dagger sigma (S c)_mu]`` in μB (spin moment with g = 2,
  majority spin counted positive as in DFT codes), compared with the moments the Hamiltonian
  was predicted for: the angle between them and the ratio of their lengths tell how far the
  frozen texture is from a self-consistent one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ase_hamgnn.spectra.dense import progress_bar
from ase_hamgnn.spectra.kpoints import kpoints_and_weights
from ase_hamgnn.spectra.occupations import occupy
from ase_hamgnn.spectra.projections import mulliken_charge_spin

__all__ = [
    "AnisotropyEnergy",
    "BandEnergy",
    "LocalMoments",
    "anisotropy_energy",
    "band_energy",
    "local_moments",
    "rotate_exchange",
    "rotate_moments",
]


def _check_electrons(n_electrons: Any, temperature: float) -> float:
    n = float(n_electrons)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 K, got {temperature}")
    if not np.isfinite(n) or n <= 0:
        raise ValueError(f"n_electrons must be a positive number per cell, got {n_electrons}")
    return n


@dataclass(frozen=True)
class BandEnergy:
    """Band energy at a fixed electron count.

    Attributes
    ----------
    energy : float
        ``sum_k w_k sum_n f_nk E_nk``, eV per cell.
    fermi_level : float
        Chemical potential that holds ``n_electrons``, eV.
    n_electrons : float
        Electrons per cell.
    temperature : float
        Fermi–Dirac smearing temperature, K.
    """

    energy: float
    fermi_level: float
    n_electrons: float
    temperature: float


def band_energy(ham: Any, n_electrons: float, kpts: Any = (12, 12, 1), *,
                temperature: float = 0.0, progress: bool | None = None) -> BandEnergy:
    """Band energy of ``ham`` with ``n_electrons`` per cell (force-theorem energy).

    Parameters
    ----------
    ham : TBHamiltonian
        The Hamiltonian.
    n_electrons : float
        Electrons per cell (e.g. ``ReferenceTB.n_electrons(atoms)``).
    kpts : (n1, n2, n3) ints, dict or (n_k, 3) array
        ASE's Monkhorst–Pack mesh, any other form of
        :func:`~ase_hamgnn.spectra.kpoints.resolve_kpts`, or fractional k-points.  Use the same
        mesh for every direction: the anisotropy is a small difference of large sums.
    temperature : float
        Fermi–Dirac smearing, K.  At 0 K exactly ``n_electrons x n_k`` states are filled in
        order of energy and the states degenerate at the Fermi level share the remainder
        equally (see :func:`ase_hamgnn.spectra.occupations.occupy`); for metals a finite temperature
        (a few hundred K) smooths the k-convergence of the anisotropy.
    progress : bool, optional
        Progress bar.

    Returns
    -------
    BandEnergy
        Energy (eV per cell) and Fermi level.

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB
    >>> ref = ReferenceTB("nibr2")
    >>> atoms = ref.structure()
    >>> result = band_energy(ref.predict(atoms), ref.n_electrons(atoms), (4, 4, 1))
    >>> result.energy < 0
    True
    """
    n = _check_electrons(n_electrons, temperature)
    k, w = kpoints_and_weights(kpts, None, ham.geometry.cell, ham.geometry.pbc)
    eig = np.array([ham.eigvalsh(kk) for kk in progress_bar(k, "band energy", progress)],
                   dtype=np.float64)
    occ = occupy(eig, w, n, temperature)
    return BandEnergy(energy=float(np.sum(w[:, None] * occ.occupations * eig)),
                      fermi_level=occ.fermi_level,
                      n_electrons=n, temperature=float(temperature))


def _rotation(theta: float, phi: float) -> np.ndarray:
    """R_z(phi) R_y(theta): maps +z to (sin t cos p, sin t sin p, cos t)."""
    ct, st, cp, sp_ = np.cos(theta), np.sin(theta), np.cos(phi), np.sin(phi)
    ry = np.array([[ct, 0.0, st], [0.0, 1.0, 0.0], [-st, 0.0, ct]])
    rz = np.array([[cp, -sp_, 0.0], [sp_, cp, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry


def rotate_moments(atoms: Any, theta: float, phi: float = 0.0):
    """A copy of ``atoms`` with all moments rigidly rotated by ``R_z(phi) R_y(theta)``.

    The rotation takes +z to the direction ``(theta, phi)`` (polar and azimuthal angle,
    radians), so a ferromagnet along +z ends up along ``(theta, phi)`` and a texture whose
    net moment (or background) is along +z is carried along rigidly.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure with ``initial_magmoms`` ((N,) meaning along z, or (N, 3), μB).
    theta, phi : float
        Angles in radians.

    Returns
    -------
    ase.Atoms
        A new structure with (N, 3) ``initial_magmoms``.
    """
    from ase_hamgnn.geometry import read_moments

    out = atoms.copy()
    out.set_initial_magnetic_moments(read_moments(atoms) @ _rotation(theta, phi).T)
    return out


def rotate_exchange(ham: Any, rotation: np.ndarray):
    """The frozen-potential Hamiltonian of rigidly rotated moments.

    Every block ``H_ij(R)`` is split by time reversal, ``H = H_even + H_odd`` with
    ``H_even = (H + Theta H^* Theta^dagger) / 2``: the odd part (the exchange field of the
    moments, and any orbital-current term) is rotated in spin space,
    ``H_odd -> U H_odd U^dagger`` with ``U`` the SU(2) matrix of ``rotation`` on every atom,
    and the even part (hoppings, crystal field, spin-orbit coupling) is kept as it is.
    Positions do not move; the moments of the returned geometry are ``rotation @ M``.
    Without spin-orbit coupling this is a global spin rotation and leaves every eigenvalue
    unchanged.

    Parameters
    ----------
    ham : TBHamiltonian
        Hamiltonian of the moments before the rotation (e.g. a prediction).
    rotation : (3, 3) array
        Proper rotation of the moments (``det = +1``), e.g. the one that takes +z to the new
        direction of a ferromagnet.

    Returns
    -------
    TBHamiltonian
        Same basis, overlap and lattice vectors.

    Raises
    ------
    ValueError
        If ``rotation`` is not a proper rotation matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from ase_hamgnn.data import ReferenceTB
    >>> ref = ReferenceTB("nibr2")                      # synthetic model, not DFT
    >>> atoms = ref.structure()
    >>> quarter = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # z -> x
    >>> frozen = rotate_exchange(ref.predict(atoms), quarter)
    >>> frozen.geometry.moments[0].round(6) + 0.0
    array([2., 0., 0.])
    """
    import scipy.sparse as sp

    from ase_hamgnn.hamiltonian import TBHamiltonian
    from ase_hamgnn.symmetry import check_rotation, su2_from_rotation, time_reversal_operator

    g = check_rotation(rotation)
    if np.linalg.det(g) < 0:
        raise ValueError("rotation must be proper (det = +1): moments are axial vectors, so "
                         "an improper g rotates them as det(g) g; pass that matrix instead")
    u2 = su2_from_rotation(g)
    sizes = [ham.basis.n_orbitals(z) for z in ham.geometry.numbers]
    theta = sp.block_diag([time_reversal_operator(n) for n in sizes], format="csr")
    spin = sp.block_diag([np.kron(u2, np.eye(n)) for n in sizes], format="csr")

    def rotated(mat: sp.csr_matrix) -> sp.csr_matrix:
        even = 0.5 * (mat + theta @ mat.conj() @ theta.T)
        return sp.csr_matrix(even + spin @ (mat - even) @ spin.conj().T)

    atoms = ham.to_atoms()
    atoms.set_initial_magnetic_moments(ham.geometry.moments @ g.T)
    return TBHamiltonian(ham.basis, atoms, {r: rotated(m) for r, m in ham.h_r.items()},
                         None if ham.s_r is None else dict(ham.s_r))


@dataclass(frozen=True, eq=False)
class AnisotropyEnergy:
    """Force-theorem band energy against the magnetization direction.

    Attributes
    ----------
    theta, phi : (n,) float64
        Directions (polar, azimuthal angle in radians) of the rotated +z axis.
    energies : (n,) float64
        Band energies, eV per cell.
    fermi_levels : (n,) float64
        Fermi levels, eV.
    n_electrons : float
        Electrons per cell.
    temperature : float
        Smearing, K.
    """

    theta: np.ndarray
    phi: np.ndarray
    energies: np.ndarray
    fermi_levels: np.ndarray
    n_electrons: float
    temperature: float

    @property
    def relative_mev(self) -> np.ndarray:
        """Energies relative to the lowest direction, meV per cell."""
        return 1e3 * (self.energies - self.energies.min())

    @property
    def easy_axis(self) -> tuple[float, float]:
        """``(theta, phi)`` of the lowest-energy direction sampled, radians."""
        i = int(np.argmin(self.energies))
        return float(self.theta[i]), float(self.phi[i])

    def plot(self, ax: Any = None, label: str | None = None, **kwargs: Any):
        """Polar plot: angle ``theta`` from +z (up), radius ``E(theta) - E_min`` in meV per
        cell.  Returns the (polar) Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 4), subplot_kw={"projection": "polar"},
                                 constrained_layout=True)
        if getattr(ax, "name", "") != "polar":
            raise ValueError("ax must be a polar Axes: plt.subplots(subplot_kw={'projection': "
                             "'polar'})")
        ax.set_theta_zero_location("N")
        ax.set_theta_direction(-1)
        ax.plot(self.theta, self.relative_mev, marker="o", ms=3, label=label, **kwargs)
        ax.set_title("E(θ) − E_min (meV/cell)", fontsize="small")
        return ax


def anisotropy_energy(predictor: Any, atoms: Any, theta: Any, phi: Any = 0.0, *,
                      n_electrons: float | None = None, kpts: Any = (12, 12, 1),
                      temperature: float = 0.0, method: str = "frozen",
                      progress: bool | None = None) -> AnisotropyEnergy:
    """Magnetic anisotropy by the force theorem: band energy against the direction.

    For every direction ``(theta, phi)`` the moments of ``atoms`` are rigidly rotated by
    ``R_z(phi) R_y(theta)`` (see :func:`rotate_moments`) and the band energy at fixed
    ``n_electrons`` is computed on the same k-points (see :func:`band_energy`), of

    * ``method="frozen"`` (default, the force theorem proper): the Hamiltonian predicted once
      for ``atoms``, its exchange field rotated with :func:`rotate_exchange` (spin-orbit
      coupling and everything else even under time reversal kept);
    * ``method="repredict"``: the Hamiltonian re-predicted for the rotated moments.  The
      same for a predictor whose Hamiltonian follows the moments rigidly (the synthetic
      reference model); for a model of self-consistent DFT Hamiltonians it also carries the
      self-consistent change of the even part, whose band energy is not an energy.

    Parameters
    ----------
    predictor : object with ``predict(atoms) -> TBHamiltonian``
        E.g. :class:`~ase_hamgnn.data.ReferenceTB` or a trained model's predictor.
    atoms : ase.Atoms
        Structure whose moments define the texture at ``theta = 0`` (+z).
    theta, phi : float or array_like
        Angles in radians (broadcast against each other).
    n_electrons : float, optional
        Electrons per cell; default ``predictor.n_electrons(atoms)``.
    kpts, temperature, progress
        As in :func:`band_energy`.
    method : {"frozen", "repredict"}
        One prediction and rigid rotations of its exchange field, or one prediction per
        direction.

    Returns
    -------
    AnisotropyEnergy
        Energies per direction; ``.relative_mev`` and ``.plot()``.

    Raises
    ------
    TypeError
        If ``predictor`` has no ``predict`` method, or ``n_electrons`` is missing and the
        predictor cannot count electrons.
    ValueError
        If ``method`` is neither ``"frozen"`` nor ``"repredict"``.

    Examples
    --------
    >>> import numpy as np
    >>> from ase_hamgnn.data import ReferenceTB
    >>> ref = ReferenceTB("nibr2")
    >>> mae = anisotropy_energy(ref, ref.structure(), [0.0, np.pi / 2], kpts=(4, 4, 1))
    >>> mae.relative_mev.shape
    (2,)
    """
    if not callable(getattr(predictor, "predict", None)):
        raise TypeError(f"predictor must have a predict(atoms) -> TBHamiltonian method, got "
                        f"{type(predictor).__name__}")
    if method not in ("frozen", "repredict"):
        raise ValueError(f"method must be 'frozen' or 'repredict', got {method!r}")
    if n_electrons is None:
        count = getattr(predictor, "n_electrons", None)
        if not callable(count):
            raise TypeError("pass n_electrons= (electrons per cell): this predictor has no "
                            "n_electrons(atoms) method")
        n_electrons = float(count(atoms))
    t, p = np.broadcast_arrays(np.atleast_1d(np.asarray(theta, dtype=np.float64)),
                               np.atleast_1d(np.asarray(phi, dtype=np.float64)))
    reference = predictor.predict(atoms) if method == "frozen" else None
    energies, levels = [], []
    for tt, pp in progress_bar(list(zip(t, p)), "anisotropy", progress):
        if reference is not None:
            ham = rotate_exchange(reference, _rotation(float(tt), float(pp)))
        else:
            ham = predictor.predict(rotate_moments(atoms, float(tt), float(pp)))
        res = band_energy(ham, n_electrons, kpts, temperature=temperature, progress=False)
        energies.append(res.energy)
        levels.append(res.fermi_level)
    return AnisotropyEnergy(theta=t.copy(), phi=p.copy(),
                            energies=np.array(energies, dtype=np.float64),
                            fermi_levels=np.array(levels, dtype=np.float64),
                            n_electrons=float(n_electrons), temperature=float(temperature))


@dataclass(frozen=True, eq=False)
class LocalMoments:
    """Mulliken spin moments of the occupied states against the input moments.

    Attributes
    ----------
    moments : (N, 3) float64
        Output spin moment per atom, μB.
    charges : (N,) float64
        Mulliken electron count per atom.
    input_moments : (N, 3) float64
        Moments the Hamiltonian was predicted for, μB.
    fermi_level : float
        eV.
    """

    moments: np.ndarray
    charges: np.ndarray
    input_moments: np.ndarray
    fermi_level: float

    @property
    def magnetic(self) -> np.ndarray:
        """Atoms with an input moment (|M| > 1e-6 μB), boolean (N,)."""
        return np.linalg.norm(self.input_moments, axis=1) > 1e-6

    @property
    def angles(self) -> np.ndarray:
        """Angle between output and input moment per atom, degrees (NaN without input)."""
        mi = np.linalg.norm(self.input_moments, axis=1)
        mo = np.linalg.norm(self.moments, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.sum(self.moments * self.input_moments, axis=1) / (mi * mo)
        out = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        return np.where(self.magnetic & (mo > 0), out, np.nan)

    @property
    def ratios(self) -> np.ndarray:
        """``|m_out| / |M_in|`` per atom (NaN without input moment)."""
        mi = np.linalg.norm(self.input_moments, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.linalg.norm(self.moments, axis=1) / mi
        return np.where(self.magnetic, r, np.nan)

    def summary(self) -> dict[str, float]:
        """How far from self-consistent: over atoms with an input moment, the largest and
        root-mean-square angle (degrees), the mean and extreme length ratios, and the RMS
        of ``|m_out - M_in|`` (μB)."""
        sel = self.magnetic
        if not sel.any():
            raise ValueError("no atom has an input moment; nothing to compare")
        ang, rat = self.angles[sel], self.ratios[sel]
        diff = np.linalg.norm(self.moments[sel] - self.input_moments[sel], axis=1)
        return {"max_angle_deg": float(np.nanmax(ang)),
                "rms_angle_deg": float(np.sqrt(np.nanmean(ang**2))),
                "mean_ratio": float(np.mean(rat)), "min_ratio": float(np.min(rat)),
                "max_ratio": float(np.max(rat)), "rms_deviation_muB": float(np.sqrt(np.mean(
                    diff**2)))}

    def report(self) -> str:
        """One line per magnetic atom and the summary, as text."""
        lines = [" atom   |M_in| μB  |m_out| μB   angle °"]
        for i in np.flatnonzero(self.magnetic):
            lines.append(f"{i:5d} {np.linalg.norm(self.input_moments[i]):10.3f} "
                         f"{np.linalg.norm(self.moments[i]):11.3f} {self.angles[i]:9.2f}")
        s = self.summary()
        lines.append(f"max angle {s['max_angle_deg']:.2f}°, rms angle {s['rms_angle_deg']:.2f}°,"
                     f" |m_out|/|M_in| {s['min_ratio']:.3f}..{s['max_ratio']:.3f}, rms "
                     f"deviation {s['rms_deviation_muB']:.3f} μB")
        return "\n".join(lines)


def local_moments(ham: Any, n_electrons: float, kpts: Any = (12, 12, 1), *,
                  temperature: float = 0.0, progress: bool | None = None) -> LocalMoments:
    """Mulliken spin moments of the occupied states per atom, with the Fermi level from the
    electron count, compared with the moments ``ham`` was predicted for.

    Parameters
    ----------
    ham : TBHamiltonian
        The Hamiltonian (orthogonal or with overlap: Mulliken with ``S(k)``).
    n_electrons : float
        Electrons per cell.
    kpts : (n1, n2, n3) ints, dict or (n_k, 3) array
        ASE's Monkhorst–Pack mesh, any other form of
        :func:`~ase_hamgnn.spectra.kpoints.resolve_kpts`, or fractional k-points.
    temperature : float
        Fermi–Dirac smearing, K; at 0 K the occupations of :func:`band_energy` (exact count,
        degenerate states at the Fermi level sharing the remainder equally).
    progress : bool, optional
        Progress bar.

    Returns
    -------
    LocalMoments
        Output moments (μB), charges, input moments; ``.angles``, ``.ratios``,
        ``.summary()``, ``.report()``.

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB
    >>> ref = ReferenceTB("nibr2")
    >>> atoms = ref.structure()
    >>> lm = local_moments(ref.predict(atoms), ref.n_electrons(atoms), (4, 4, 1))
    >>> bool(lm.angles[0] < 1.0)
    True
    """
    n = _check_electrons(n_electrons, temperature)
    k, w = kpoints_and_weights(kpts, None, ham.geometry.cell, ham.geometry.pbc)
    counts = np.diff(ham.offsets) // 2
    owner = np.repeat(np.arange(len(counts)), counts)
    unit = np.eye(3)
    eig, states = [], []
    for kk in progress_bar(k, "local moments", progress):
        e, c = ham.eigh(kk)
        eig.append(e)
        states.append(c)
    eig_a = np.array(eig, dtype=np.float64)
    filled = occupy(eig_a, w, n, temperature)
    occ = filled.occupations * w[:, None]
    spin = np.zeros((len(counts), 3), dtype=np.float64)
    charge = np.zeros(len(counts), dtype=np.float64)
    for kk, c, f in zip(k, states, occ):
        pick = f > 1e-14
        if not pick.any():
            continue
        cc, ff = c[:, pick], f[pick]
        for a in range(3):
            axes = np.broadcast_to(unit[a], (len(owner), 3))
            q, m = mulliken_charge_spin(ham, kk, cc, axes)
            np.add.at(spin[:, a], owner, m @ ff)
        np.add.at(charge, owner, q @ ff)
    return LocalMoments(moments=spin, charges=charge,
                        input_moments=np.array(ham.geometry.moments, dtype=np.float64),
                        fermi_level=filled.fermi_level)
