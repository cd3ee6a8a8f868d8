"""Band gap, valence-band maximum and conduction-band minimum of large Hamiltonians.

At every k the ``n_electrons``-th and ``(n_electrons + 1)``-th states (spinor states, one
electron each) are located without dense diagonalization: the exact number of states below a
trial energy comes from the inertia of one sparse factorization of ``H(k) - sigma S(k)``
(:class:`~ase_hamgnn.shift_invert.ShiftInvert`).  Starting from a coarse KPM estimate of the
Fermi level (or the given one), bisection on that count puts ``sigma`` in the gap, and
shift-invert iterations on the same factorization give the highest state below and the
lowest above.  Small systems are diagonalized densely.  Energies in eV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ase_hamgnn.errors import HamGNNError
from ase_hamgnn.shift_invert import ShiftInvert
from ase_hamgnn.spectra import dense_eigh, progress_bar

__all__ = ["Gap", "MetallicError", "find_gap"]

# Up to this many spin-orbitals ``method="auto"`` diagonalizes densely.
_DENSE_GAP_LIMIT = 800
# States asked for on each side of a trial energy whose count is close to n_electrons.
_WINDOW = 16


class MetallicError(HamGNNError, ValueError):
    """No gap at the Fermi level: the highest occupied and lowest empty states touch (at
    one k, or across the k-points)."""


@dataclass(frozen=True, eq=False)
class Gap:
    """Band edges of an insulator on a set of k-points.

    Attributes
    ----------
    vbm, cbm : float
        Valence-band maximum and conduction-band minimum, eV.
    k_vbm, k_cbm : (3,) float64
        Fractional k-points where they lie.
    n_electrons : int
        Occupied spinor states per cell of the Hamiltonian.
    kpts : (n_k, 3) float64
        The k-points searched; vbm_k, cbm_k : (n_k,) highest occupied and lowest empty
        state at each, eV.
    vbm_state, cbm_state : (dim,) complex128 or None
        The edge states (S-normalized) at ``k_vbm`` and ``k_cbm`` when asked for.
    method : str
        ``"dense"`` or ``"sparse"``.
    """

    vbm: float
    cbm: float
    k_vbm: np.ndarray
    k_cbm: np.ndarray
    n_electrons: int
    kpts: np.ndarray
    vbm_k: np.ndarray
    cbm_k: np.ndarray
    vbm_state: np.ndarray | None
    cbm_state: np.ndarray | None
    method: str

    @property
    def gap(self) -> float:
        """``cbm - vbm``, eV."""
        return self.cbm - self.vbm

    @property
    def midgap(self) -> float:
        """``(vbm + cbm) / 2``, eV: a safe shift for states near the gap."""
        return 0.5 * (self.vbm + self.cbm)

    @property
    def direct(self) -> bool:
        """Whether the VBM and the CBM lie at the same k."""
        return bool(np.allclose(self.k_vbm, self.k_cbm))

    def __str__(self) -> str:
        kind = "direct" if self.direct else "indirect"
        return (f"gap {self.gap:.4f} eV ({kind}): VBM {self.vbm:.4f} eV at k = "
                f"{np.round(self.k_vbm, 4).tolist()}, CBM {self.cbm:.4f} eV at k = "
                f"{np.round(self.k_cbm, 4).tolist()}")


def find_gap(ham: Any, n_electrons: int | None = None, kpts: Any = None, *,
             fermi_level: float | None = None, states: bool = False, method: str = "auto",
             tol: float = 1e-6, progress: bool | None = None) -> Gap:
    """Valence-band maximum, conduction-band minimum and gap on the given k-points.

    Parameters
    ----------
    ham : TBHamiltonian
        Orthogonal or with overlap ``S``.
    n_electrons : int, optional
        Electrons per cell of ``ham`` (spinor states: one per state), e.g.
        ``ReferenceTB.n_electrons(atoms)``.  Without it, the number of states below
        ``fermi_level`` at the first k-point is used.
    kpts : array_like, optional
        Fractional k-points (n_k, 3); default Γ only (a large supercell).
    fermi_level : float, optional
        An energy (eV) in or near the gap: a first guess that saves bisection steps, or,
        without ``n_electrons``, what defines the filling.
    states : bool
        Also return the VBM and CBM states (:attr:`Gap.vbm_state`, :attr:`Gap.cbm_state`).
    method : {"auto", "dense", "sparse"}
        ``"auto"`` diagonalizes densely up to 800 spin-orbitals, else sparse.
    tol : float
        Energy (eV) below which the two edge states count as touching (metal).
    progress : bool or None
        Progress bar over k-points (``None``: on a terminal for long lists only).

    Returns
    -------
    Gap

    Raises
    ------
    MetallicError
        The states ``n_electrons`` and ``n_electrons + 1`` touch at some k, or the VBM of one
        k lies above the CBM of another: no gap on these k-points.

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ref = ReferenceTB("nibri")
    >>> atoms = nibri((4, 4))
    >>> ham = ref.predict(atoms)
    >>> g = find_gap(ham, ref.n_electrons(atoms), method="sparse")
    >>> round(g.gap, 3) == round(find_gap(ham, ref.n_electrons(atoms), method="dense").gap, 3)
    True
    """
    if method not in ("auto", "dense", "sparse"):
        raise ValueError(f"method must be 'auto', 'dense' or 'sparse', got {method!r}")
    if n_electrons is None and fermi_level is None:
        raise ValueError("give n_electrons (per cell of the Hamiltonian) or a fermi_level")
    k = np.zeros((1, 3)) if kpts is None else np.asarray(kpts, dtype=np.float64).reshape(-1, 3)
    dim = int(ham.n_spin_orbitals)
    dense = method == "dense" or (method == "auto" and dim <= _DENSE_GAP_LIMIT)
    ne = None if n_electrons is None else int(n_electrons)
    if ne is not None and ne != n_electrons:
        raise ValueError(f"n_electrons must be an integer (filled spinor states), got "
                         f"{n_electrons}")
    if ne is not None and not 0 < ne < dim:
        raise ValueError(f"n_electrons must be between 1 and {dim - 1} (spin-orbitals per "
                         f"cell), got {ne}")
    guess = None if fermi_level is None else float(fermi_level)
    edges, kept = [], []
    for kk in progress_bar(k, "gap", progress):
        if dense:
            e, c = dense_eigh(ham, kk, vectors=states)
            if ne is None:
                ne = int(np.count_nonzero(e < guess))
                _check_filling(ne, dim, guess)
            lo, hi = e[ne - 1], e[ne]
            vecs = (c[:, ne - 1], c[:, ne]) if states else (None, None)
        else:
            lo, hi, vecs, ne, guess = _sparse_edges(ham, kk, ne, guess, states, tol)
        if hi - lo < tol:
            raise MetallicError(
                f"no gap at k = {np.round(kk, 6).tolist()}: states {ne} and {ne + 1} are at "
                f"{lo:.6f} and {hi:.6f} eV; the system is metallic there for {ne} electrons "
                "(check n_electrons, or use a DOS instead of a gap)"
            )
        edges.append((lo, hi))
        kept.append(vecs)
    vbm_k, cbm_k = (np.array(x) for x in zip(*edges))
    iv, ic = int(np.argmax(vbm_k)), int(np.argmin(cbm_k))
    if cbm_k[ic] - vbm_k[iv] < tol:
        raise MetallicError(
            f"no gap on these k-points: the VBM {vbm_k[iv]:.6f} eV at k = {k[iv].tolist()} "
            f"lies above the CBM {cbm_k[ic]:.6f} eV at k = {k[ic].tolist()} (a semimetal "
            f"for {ne} electrons)"
        )
    return Gap(float(vbm_k[iv]), float(cbm_k[ic]), k[iv].copy(), k[ic].copy(), int(ne), k,
               vbm_k, cbm_k, kept[iv][0], kept[ic][1], "dense" if dense else "sparse")


def _check_filling(ne: int, dim: int, energy: float) -> None:
    if not 0 < ne < dim:
        raise ValueError(f"fermi_level = {energy} eV lies outside the spectrum ({ne} of {dim} "
                         "states below it); give n_electrons or an energy inside the bands")


def _sparse_edges(ham: Any, k: np.ndarray, ne: int | None, guess: float | None,
                  states: bool, tol: float):
    """(vbm, cbm, (vbm_state, cbm_state), ne, energy in the gap) at one k, sparse."""
    from ase_hamgnn.kpm import kpm_dos, spectral_bounds

    dim = int(ham.n_spin_orbitals)
    lo_e, hi_e = spectral_bounds(ham, k, rng=0)
    if guess is None:  # a coarse KPM filling saves most bisection steps
        coarse = kpm_dos(ham, np.zeros(1), kpts=[k], n_moments=256, n_vectors=4,
                         bounds=(lo_e, hi_e), rng=0, progress=False)
        guess = _plateau_centre(coarse, coarse.fermi_level(ne, tol=1e-3), dim / (hi_e - lo_e))
    sigma = guess
    lo, hi = lo_e, hi_e  # brackets: fewer than ne states below lo, more than ne below hi
    for _ in range(100):
        si = ShiftInvert(ham, k, sigma)
        count = si.count_below
        if count is None:  # an exactly zero pivot: try a neighbouring shift
            sigma += 1e-6 * max(1.0, hi - lo)
            continue
        if ne is None:
            ne = count
            _check_filling(ne, dim, sigma)
        if count == ne:  # sigma is in the gap
            (vbm, vv), (cbm, cv) = _edges_from_gap(ham, k, si, ne, states)
            return vbm, cbm, (vv, cv), ne, 0.5 * (vbm + cbm)
        if abs(count - ne) < _WINDOW // 2:  # the edges may sit in a window around sigma
            e, c = si.nearest(_WINDOW, vectors=states)
            first = count - int(np.count_nonzero(e < si.sigma))
            if first <= ne - 1 and ne < first + len(e):
                iv, ic = ne - 1 - first, ne - first
                vecs = (c[:, iv], c[:, ic]) if states else (None, None)
                return float(e[iv]), float(e[ic]), vecs, ne, 0.5 * (e[iv] + e[ic])
        if count < ne:
            lo = si.sigma
        else:
            hi = si.sigma
        if hi - lo < tol:
            raise MetallicError(
                f"no gap at k = {np.round(k, 6).tolist()}: {ne} electrons fill up to about "
                f"{lo:.6f} eV where states {ne} and {ne + 1} touch; the system is metallic "
                "there (check n_electrons)"
            )
        sigma = 0.5 * (lo + hi)
    raise RuntimeError(f"gap search did not converge at k = {k.tolist()}")


def _plateau_centre(coarse: Any, crossing: float, mean_dos: float) -> float:
    """Centre of the near-zero stretch of a coarse KPM DOS next to ``crossing`` (eV), where
    its integrated count reaches the filling; ``crossing`` itself if there is none.  The
    stochastic count is off by a few states, which puts the crossing near a band edge."""
    grid = np.linspace(crossing - 3.0, crossing + 3.0, 601)
    empty = coarse.evaluate(grid) < 0.02 * mean_dos
    if not empty.any():
        return crossing
    edges = np.flatnonzero(np.diff(np.concatenate([[0], empty.astype(np.int8), [0]])))
    runs = edges.reshape(-1, 2)  # [start, stop) of each empty stretch
    centres = 0.5 * (grid[runs[:, 0]] + grid[runs[:, 1] - 1])
    dist = np.where((grid[runs[:, 0]] <= crossing) & (crossing <= grid[runs[:, 1] - 1]), 0.0,
                    np.minimum(np.abs(grid[runs[:, 0]] - crossing),
                               np.abs(grid[runs[:, 1] - 1] - crossing)))
    return float(centres[np.argmin(dist)])


def _edges_from_gap(ham: Any, k: np.ndarray, si: ShiftInvert, ne: int, states: bool):
    """((vbm, state), (cbm, state)) from a factorization whose shift lies in the gap.

    The state nearest a shift inside the gap is the edge on its side.  The shift then moves
    across the gap in steps of twice that distance (each new shift still counted, so the
    edge found stays the edge), until the nearest state is on the other side or the count
    shows that the other edge was passed; then the few states in between are the answer.
    Nearest-state solves converge fast, unlike one-sided ones from an off-centre shift.
    """
    found: dict[str, tuple[float, np.ndarray | None]] = {}
    for _ in range(60):
        e, c = si.nearest(1, vectors=states)
        side = "below" if e[0] < si.sigma else "above"
        found.setdefault(side, (float(e[0]), c[:, 0] if states else None))
        if len(found) == 2:
            return found["below"], found["above"]
        step = 2.0 * abs(float(e[0]) - si.sigma)
        target = si.sigma + (step if side == "below" else -step)
        for _ in range(60):
            trial = ShiftInvert(ham, k, target)
            passed = trial.count_below - ne if side == "below" else ne - trial.count_below
            if passed <= _WINDOW:
                break
            target = 0.5 * (si.sigma + target)  # too many states passed: smaller step
        if passed <= 0:  # still in the gap
            si = trial
            continue
        which = "below" if side == "below" else "above"  # states between the two shifts
        e2, c2 = trial.nearest(passed, which, vectors=states)
        i = 0 if side == "below" else -1
        found["above" if side == "below" else "below"] = (
            float(e2[i]), c2[:, i] if states else None)
        return found["below"], found["above"]
    raise RuntimeError(f"could not reach both band edges at k = {k.tolist()}")
