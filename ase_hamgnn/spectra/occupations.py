"""Occupations of spinor states at a fixed electron count, and the Fermi level.

One rule, used by every analysis that fills states (:func:`ase_hamgnn.spectra.dense.fermi_level`,
:meth:`ase_hamgnn.TBHamiltonian.fermi_level`, :class:`ase_hamgnn.calculator.HamGNNCalc`,
:func:`ase_hamgnn.analysis.magnetism.band_energy`, ``local_moments`` and
``anisotropy_energy``):

* Every state is a spinor and holds 0 to 1 electron; ``weights`` are the normalized k-point
  weights, so the k-sum of weighted occupations is the electron count per cell.
* **0 K.**  The states of all k-points, sorted by energy, are filled in turn until exactly
  ``n_electrons`` per cell are placed.  The states degenerate with the last one filled (within
  :data:`DEGENERACY_RTOL` of the energy scale) share what is left equally, so a partly filled
  level (``n_electrons x n_k`` not ending at a level boundary) keeps the exact count and
  treats degenerate partners, e.g. ``k`` and ``-k``, alike.  The Fermi level is that level's
  energy; when the count ends exactly at a gap it is mid-gap, ``(HOMO + LUMO) / 2``.
* **T > 0.**  Fermi–Dirac occupations ``f = 1 / (1 + exp((E - mu) / kT))`` with ``mu``
  solving ``N(mu) = n_electrons``.  The equation is solved as "electrons above the 0 K filling
  = holes below it (+ the remainder of a partly filled level)" in logarithmic form, which is
  strictly increasing in ``mu`` with no flat stretch and no overflow, so an insulator gets its
  intrinsic chemical potential, mid-gap shifted by about ``kT/2 ln(N_v / N_c)``, at any
  temperature rather than wherever a bisection on the flat count stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
import scipy.special

__all__ = [
    "COUNT_TOL",
    "DEGENERACY_RTOL",
    "K_BOLTZMANN_EV",
    "Occupations",
    "fermi_dirac",
    "fermi_level_from_eigenvalues",
    "occupy",
]

#: Boltzmann constant, eV/K.
K_BOLTZMANN_EV = 8.617333262e-5

#: States closer than this times ``max(1 eV, max |E|)`` are one degenerate level.
DEGENERACY_RTOL = 1e-9

#: Electrons per cell below which a remainder counts as rounding (the count ends at a level).
COUNT_TOL = 1e-9


def fermi_dirac(eig: Any, mu: float, temperature: float) -> np.ndarray:
    """Fermi–Dirac occupations ``1 / (1 + exp((E - mu) / kT))`` of energies ``eig`` (eV) at
    ``temperature`` > 0 K, without overflow."""
    kt = K_BOLTZMANN_EV * float(temperature)
    return scipy.special.expit(-(np.asarray(eig, dtype=np.float64) - mu) / kt)


@dataclass(frozen=True, eq=False)
class Occupations:
    """Occupations of the states at a fixed electron count.

    Attributes
    ----------
    fermi_level : float
        Chemical potential, eV: mid-gap when the 0 K filling ends at a gap, the energy of the
        partly filled level otherwise; at ``T > 0`` the Fermi–Dirac ``mu`` of the count.
    occupations : (n_k, n_states) float64
        Occupation in [0, 1] of every state of the eigenvalues given, not multiplied by the
        k weights; ``sum_k w_k sum_n occupations`` equals ``n_electrons``.
    n_electrons : float
        Electrons per cell.
    temperature : float
        K.
    at_fermi_level : float
        0 K: occupation shared by the states at the Fermi level (within ``tolerance``); 1/2
        when the Fermi level lies in a gap (only states of other k-points can sit there).
    tolerance : float
        Energy window of one degenerate level, eV.
    """

    fermi_level: float
    occupations: np.ndarray
    n_electrons: float
    temperature: float
    at_fermi_level: float
    tolerance: float

    def at(self, eig: Any) -> np.ndarray:
        """Occupations of other eigenvalues (eV, any shape; e.g. along a band path) with this
        Fermi level: Fermi–Dirac at ``T > 0``; at 0 K 1 below the Fermi level, 0 above and
        :attr:`at_fermi_level` at it."""
        e = np.asarray(eig, dtype=np.float64)
        if self.temperature > 0:
            return fermi_dirac(e, self.fermi_level, self.temperature)
        out = (e < self.fermi_level - self.tolerance).astype(np.float64)
        out[np.abs(e - self.fermi_level) <= self.tolerance] = self.at_fermi_level
        return out


def _check(eig: Any, weights: Any, n_electrons: Any, temperature: Any
           ) -> tuple[np.ndarray, np.ndarray, float, float]:
    e = np.asarray(eig, dtype=np.float64)
    if e.ndim != 2 or e.size == 0:
        raise ValueError(f"eigenvalues must be an (n_k, n_states) array, got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("eigenvalues contain NaN or inf; check the Hamiltonian")
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (e.shape[0],) or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be {e.shape[0]} non-negative numbers, one per k-point")
    if abs(w.sum() - 1.0) > 1e-9:
        raise ValueError(f"k weights must sum to 1 (normalize them), got {w.sum()!r}")
    n_states = e.shape[1]
    n = float(n_electrons)
    if not (np.isfinite(n) and 0 < n < n_states):
        raise ValueError(
            f"n_electrons must be between 0 and {n_states} (spin-orbitals per cell), "
            f"got {n_electrons}"
        )
    t = float(temperature)
    if not (np.isfinite(t) and t >= 0):
        raise ValueError(f"temperature must be >= 0 K, got {temperature}")
    return e, w, n, t


def occupy(eig: Any, weights: Any, n_electrons: float, temperature: float = 0.0
           ) -> Occupations:
    """Occupations and Fermi level that put exactly ``n_electrons`` per cell into the states.

    Parameters
    ----------
    eig : (n_k, n_states) array
        Eigenvalues in eV at every k-point.
    weights : (n_k,) array
        k-point weights, summing to 1.
    n_electrons : float
        Electrons per cell, ``0 < n_electrons < n_states``.
    temperature : float
        K; 0 fills states in order of energy (see the module notes).

    Returns
    -------
    Occupations
        ``fermi_level`` (eV) and ``occupations`` (n_k, n_states).

    Raises
    ------
    ValueError
        If the shapes disagree, the weights are not normalized, the electron count does not
        fit into the states or the temperature is negative.

    Examples
    --------
    >>> import numpy as np
    >>> occ = occupy(np.array([[-1.0, -1.0, 3.0, 3.0], [1.0, 1.0, 1.0, 1.0]]), [0.5, 0.5], 2.0)
    >>> occ.fermi_level, occ.occupations[1].tolist()
    (1.0, [0.5, 0.5, 0.5, 0.5])
    """
    e, w, n, t = _check(eig, weights, n_electrons, temperature)
    tol = DEGENERACY_RTOL * max(1.0, float(np.abs(e).max()))
    flat_w = np.repeat(w, e.shape[1])
    keep = flat_w > 0  # states of zero-weight k-points follow the level, they do not set it
    order = np.argsort(e.ravel()[keep], kind="stable")
    e_s, w_s = e.ravel()[keep][order], flat_w[keep][order]
    cum = np.cumsum(w_s)
    if t > 0:
        mu = _chemical_potential(e_s, w_s, cum, n, K_BOLTZMANN_EV * t)
        return Occupations(fermi_level=mu, occupations=fermi_dirac(e, mu, t), n_electrons=n,
                           temperature=t, at_fermi_level=0.5, tolerance=tol)
    # the last state filled, the level it belongs to and the states below that level
    h = min(int(np.searchsorted(cum, n - COUNT_TOL, side="left")), len(e_s) - 1)
    level_s = np.abs(e_s - e_s[h]) <= tol
    w_below = float(w_s[e_s < e_s[h] - tol].sum())
    w_level = float(w_s[level_s].sum())
    rest = n - w_below
    level = np.abs(e - e_s[h]) <= tol
    occ = (e < e_s[h] - tol).astype(np.float64)
    if w_level - rest <= COUNT_TOL:  # the level is full: the count ends at a gap
        occ[level] = 1.0
        homo = float(e_s[level_s].max())
        above = e_s[e_s > e_s[h] + tol]
        mu = homo if above.size == 0 else 0.5 * (homo + float(above.min()))
        return Occupations(fermi_level=mu, occupations=occ, n_electrons=n, temperature=0.0,
                           at_fermi_level=0.5, tolerance=tol)
    share = rest / w_level
    occ[level] = share
    mu = 0.5 * (float(e_s[level_s].min()) + float(e_s[level_s].max()))
    return Occupations(fermi_level=mu, occupations=occ, n_electrons=n, temperature=0.0,
                       at_fermi_level=share, tolerance=tol)


def _chemical_potential(e_s: np.ndarray, w_s: np.ndarray, cum: np.ndarray, n: float,
                        kt: float) -> float:
    """Fermi–Dirac ``mu`` with ``N(mu) = n`` for sorted energies ``e_s`` (eV), positive
    weights ``w_s`` and their cumulative sum.

    With ``B`` the lowest states whose weights add up to at most ``n`` and ``A`` the rest,
    ``N(mu) = n`` reads ``sum_A w f(E - mu) = sum_B w f(mu - E) + delta`` (electrons above =
    holes below + the remainder ``delta = n - W_B``).  Both sides are compared as logarithms
    (``log f(x) = -log(1 + e^x)``): the difference is strictly increasing in ``mu`` everywhere,
    even across a gap where ``N(mu)`` itself is flat to machine precision.
    """
    m = int(np.searchsorted(cum, n + COUNT_TOL, side="right"))
    if m == len(e_s):
        raise ValueError(f"n_electrons = {n} fills every state; give fewer electrons than "
                         "spin-orbitals per cell")
    delta = n - (float(cum[m - 1]) if m > 0 else 0.0)
    log_delta = np.log(delta) if delta > COUNT_TOL else -np.inf
    e_b, log_wb = e_s[:m], np.log(w_s[:m])
    e_a, log_wa = e_s[m:], np.log(w_s[m:])

    def excess(mu: float) -> float:
        electrons = scipy.special.logsumexp(log_wa - np.logaddexp(0.0, (e_a - mu) / kt))
        holes = (scipy.special.logsumexp(log_wb - np.logaddexp(0.0, (mu - e_b) / kt))
                 if m > 0 else -np.inf)
        return float(electrons - np.logaddexp(holes, log_delta))

    step = max(1.0, 40.0 * kt)
    lo, hi = float(e_s[0]) - step, float(e_s[-1]) + step
    for _ in range(200):
        if excess(lo) < 0:
            break
        lo -= step
        step *= 2.0
    step = max(1.0, 40.0 * kt)
    for _ in range(200):
        if excess(hi) > 0:
            break
        hi += step
        step *= 2.0
    return float(scipy.optimize.brentq(excess, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps,
                                       maxiter=500))


def fermi_level_from_eigenvalues(eig: Any, weights: Any, n_electrons: float,
                                 temperature: float = 0.0) -> float:
    """Fermi level (eV) of :func:`occupy` for eigenvalues (n_k, n_states) and normalized k
    weights."""
    return occupy(eig, weights, n_electrons, temperature).fermi_level
