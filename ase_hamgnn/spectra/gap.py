"""Band gap, valence-band maximum and conduction-band minimum of large Hamiltonians.

At every k the ``n_electrons``-th and ``(n_electrons + 1)``-th states (spinor states, one
electron each) are located without dense diagonalization: the exact number of states below a
trial energy comes from the inertia of one sparse factorization of ``H(k) - sigma S(k)``
(:class:`~ase_hamgnn.spectra.shift_invert.ShiftInvert`).  With ``n_electrons`` known, a coarse KPM
DOS gives the empty stretch around the filling and each edge is found by shift-invert from
a shift at its own end of that stretch (:func:`edge_states`, which also returns any number
of states on each side).  With only a Fermi-level guess, bisection on the count puts
``sigma`` in the gap and shift-invert on the same factorization gives the highest state
below and the lowest above.  Small systems are diagonalized densely.  Energies in eV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ase_hamgnn.errors import HamGNNError
from ase_hamgnn.spectra.dense import dense_eigh, progress_bar
from ase_hamgnn.spectra.shift_invert import ShiftInvert

__all__ = ["EdgeStates", "Gap", "MetallicError", "edge_states", "find_gap"]

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
    from ase_hamgnn.spectra.kpm import kpm_dos, spectral_bounds

    dim = int(ham.n_spin_orbitals)
    if ne is not None and guess is None:  # one shift next to each edge (see edge_states)
        es = edge_states(ham, ne, k, 1, 1, vectors=states)
        vecs = (es.states[:, 0], es.states[:, 1]) if states else (None, None)
        return es.vbm, es.cbm, vecs, ne, 0.5 * (es.vbm + es.cbm)
    lo_e, hi_e = spectral_bounds(ham, k, rng=0)
    if guess is None:  # a coarse KPM filling saves most bisection steps
        coarse = kpm_dos(ham, np.zeros(1), kpts=[k], n_moments=256, n_vectors=4,
                         bounds=(lo_e, hi_e), rng=0, progress=False)
        guess = _plateau_centre(coarse, coarse.fermi_level(ne, tol=1e-3), dim / (hi_e - lo_e),
                                ne)
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


@dataclass(frozen=True, eq=False)
class EdgeStates:
    """States around the gap at one k (see :func:`edge_states`).

    Attributes
    ----------
    energies : (n_below + n_above,) float64
        Ascending, eV: the ``n_below`` highest occupied states, then the ``n_above`` lowest
        empty ones.
    indices : (n_below + n_above,) int64
        Their positions in the whole spectrum at this k (0-based; the VBM is
        ``n_electrons - 1``), exact from the inertia counts.
    states : (dim, n_below + n_above) complex128 or None
        S-orthonormal columns when asked for.
    k : (3,) float64
        The fractional k-point.
    n_electrons : int
    shifts : tuple of float
        The two factorized shifts (eV), next to the valence and the conduction edge.
    """

    energies: np.ndarray
    indices: np.ndarray
    states: np.ndarray | None
    k: np.ndarray
    n_electrons: int
    shifts: tuple[float, float]

    @property
    def vbm(self) -> float:
        return float(self.energies[self.indices == self.n_electrons - 1][0])

    @property
    def cbm(self) -> float:
        return float(self.energies[self.indices == self.n_electrons][0])

    @property
    def gap(self) -> float:
        return self.cbm - self.vbm


def edge_states(ham: Any, n_electrons: int, k: Any = (0.0, 0.0, 0.0), n_below: int = 16,
                n_above: int = 16, *, vectors: bool = False, n_moments: int = 2048,
                rng: np.random.Generator | int | None = 0) -> EdgeStates:
    """The ``n_below`` highest occupied and ``n_above`` lowest empty states at one k.

    Shift-invert is fast only for states close to the shift relative to their spacing; a
    shift at mid-gap puts both band-edge clusters far away and nearly equidistant, and the
    iteration crawls.  So each side gets its own shift next to its edge: a coarse KPM DOS
    (``n_moments`` Chebyshev moments) gives the empty stretch around the filling, its ends
    are the two shifts, and the inertia of each factorization says exactly which states
    (by index in the spectrum) lie on which side, so a shift that lands a little inside a
    band still gives the right states.  Two sparse factorizations in all (more only if the
    KPM estimate is far off).

    Parameters
    ----------
    ham : TBHamiltonian
        Orthogonal or with overlap ``S``.
    n_electrons : int
        Filled spinor states at this k (one electron each).
    k : array_like, shape (3,)
        Fractional k-point.
    n_below, n_above : int
        States on each side of the gap (at least 1 each).
    vectors : bool
        Return the states too.
    n_moments : int
        Chebyshev moments of the coarse DOS (one random vector) that places the shifts:
        its ends of the empty stretch lie a few kernel widths (``pi`` x half the spectral
        width / ``n_moments``) outside the band edges, and the iteration needs fewer solves
        the closer they are (NiBrI, 1200 atoms: shifts 140 meV from the edges with 512
        moments, 40 meV with 2048, which saves 40 % of the solves for 30 % more KPM time).
    rng : Generator, int or None
        Random vector of the KPM estimate.

    Returns
    -------
    EdgeStates

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ref = ReferenceTB("nibri")
    >>> atoms = nibri((4, 4))
    >>> es = edge_states(ref.predict(atoms), ref.n_electrons(atoms), n_below=4, n_above=4)
    >>> es.indices - ref.n_electrons(atoms)
    array([-4, -3, -2, -1,  0,  1,  2,  3])
    """
    return edge_states_and_factors(ham, n_electrons, k, n_below, n_above, vectors, n_moments,
                                   rng)[0]


def edge_states_and_factors(ham: Any, n_electrons: int, k: Any, n_below: int, n_above: int,
                 vectors: bool, n_moments: int, rng: Any) -> tuple[EdgeStates, tuple]:
    """:func:`edge_states` and the two factorizations it used (valence side first)."""
    from ase_hamgnn.spectra.kpm import kpm_dos, spectral_bounds

    dim = int(ham.n_spin_orbitals)
    ne = int(n_electrons)
    if ne != n_electrons or not 0 < ne < dim:
        raise ValueError(f"n_electrons must be an integer in 1..{dim - 1}, got {n_electrons}")
    n_below, n_above = int(n_below), int(n_above)
    if n_below < 1 or n_above < 1 or n_below > ne or n_above > dim - ne:
        raise ValueError(f"need 1 <= n_below <= {ne} and 1 <= n_above <= {dim - ne}, got "
                         f"{n_below} and {n_above}")
    if n_below + n_above + 8 >= dim // 2:
        raise ValueError(f"{n_below + n_above} states of {dim}: diagonalize densely instead "
                         "(spectra.dense_eigh)")
    kk = np.asarray(k, dtype=np.float64).reshape(3)
    lo_e, hi_e = spectral_bounds(ham, kk, rng=rng)
    coarse = kpm_dos(ham, np.zeros(1), kpts=[kk], n_moments=n_moments, n_vectors=1,
                     bounds=(lo_e, hi_e), rng=rng, progress=False)
    low, high = _plateau(coarse, coarse.fermi_level(ne, tol=1e-3), dim / (hi_e - lo_e), ne)
    energies, indices, columns, shifts, factors = [], [], [], [], []
    for sigma, first, last in ((low, ne - n_below, ne - 1), (high, ne, ne + n_above - 1)):
        e, idx, c, si = _indexed_states(ham, kk, sigma, first, last, vectors, (lo_e, hi_e))
        energies.append(e)
        indices.append(idx)
        columns.append(c)
        shifts.append(si.sigma)
        factors.append(si)
    e, idx = np.concatenate(energies), np.concatenate(indices)
    if e[n_below] - e[n_below - 1] <= 0:
        raise MetallicError(f"no gap at k = {kk.tolist()} for {ne} electrons: state {ne} at "
                            f"{e[n_below - 1]:.6f} eV, state {ne + 1} at {e[n_below]:.6f} eV; "
                            "the system is metallic there (check n_electrons)")
    states = np.concatenate(columns, axis=1) if vectors else None
    return (EdgeStates(e, idx, states, kk, ne, (float(shifts[0]), float(shifts[1]))),
            tuple(factors))


def _indexed_states(ham: Any, k: np.ndarray, sigma: float, first: int, last: int,
                    vectors: bool, bounds: tuple[float, float]):
    """Eigenpairs number ``first..last`` (0-based, ascending) of ``H(k)``, from shift-invert
    at ``sigma`` moved (by bisection on the inertia count) until at most a few unwanted
    states lie between it and the wanted ones."""
    n = last - first + 1
    lo, hi = bounds
    for _ in range(60):
        si = ShiftInvert(ham, k, sigma)
        count = si.count_below
        if count is None:  # an exactly zero pivot: a neighbouring shift
            sigma += 1e-6 * (hi - lo)
            continue
        # states count, count+1, ... lie above sigma; count-1, count-2, ... below
        extra_below = max(0, count - 1 - last)  # unwanted states between the window and sigma
        extra_above = max(0, first - count)
        if max(extra_below, extra_above) <= max(n, 8):
            break
        if count - 1 > last:
            hi = si.sigma
        else:
            lo = si.sigma
        sigma = 0.5 * (lo + hi)
    else:
        raise RuntimeError(f"could not place a shift next to states {first}..{last}")
    parts_e, parts_c, parts_i = [], [], []
    n_low = count - first  # wanted-or-between states below sigma (if the window reaches there)
    if n_low > 0:
        e, c = si.nearest(n_low, "below", vectors=vectors)
        parts_e.append(e)
        parts_c.append(c)
        parts_i.append(np.arange(count - n_low, count))
    n_high = last - count + 1
    if n_high > 0:
        e, c = si.nearest(n_high, "above", vectors=vectors)
        parts_e.append(e)
        parts_c.append(c)
        parts_i.append(np.arange(count, count + n_high))
    e, idx = np.concatenate(parts_e), np.concatenate(parts_i)
    keep = (idx >= first) & (idx <= last)
    c = np.concatenate(parts_c, axis=1)[:, keep] if vectors else None
    return e[keep], idx[keep], c, si


def _plateau(coarse: Any, crossing: float, mean_dos: float,
             filling: float | None = None) -> tuple[float, float]:
    """Ends of the near-zero stretch of a coarse KPM DOS around ``crossing`` (eV), where its
    integrated count reaches the filling; ``(crossing, crossing)`` if there is none.

    The stochastic count is off by a few states, which can put ``crossing`` inside a band,
    next to a small empty stretch between two of its levels; with ``filling`` the widest
    stretch whose own count is within a few states of it wins (the gap), and only without
    one the stretch nearest ``crossing``."""
    grid = np.linspace(crossing - 3.0, crossing + 3.0, 1201)
    empty = coarse.evaluate(grid) < 0.02 * mean_dos
    if not empty.any():
        return crossing, crossing
    edges = np.flatnonzero(np.diff(np.concatenate([[0], empty.astype(np.int8), [0]])))
    runs = edges.reshape(-1, 2)  # [start, stop) of each empty stretch
    start, stop = grid[runs[:, 0]], grid[runs[:, 1] - 1]
    if filling is not None and len(runs) > 1:
        counts = np.asarray(coarse.integrated(0.5 * (start + stop)), dtype=np.float64)
        near = np.abs(counts - filling) <= max(20.0, 0.01 * filling)
        if near.any():
            best = int(np.argmax(np.where(near, stop - start, -1.0)))
            return float(start[best]), float(stop[best])
    dist = np.where((start <= crossing) & (crossing <= stop), 0.0,
                    np.minimum(np.abs(start - crossing), np.abs(stop - crossing)))
    best = int(np.argmin(dist))
    return float(start[best]), float(stop[best])


def _plateau_centre(coarse: Any, crossing: float, mean_dos: float,
                    filling: float | None = None) -> float:
    """Centre of the near-zero stretch of a coarse KPM DOS next to ``crossing`` (eV), where
    its integrated count reaches the filling; ``crossing`` itself if there is none.  The
    stochastic count is off by a few states, which puts the crossing near a band edge."""
    return 0.5 * sum(_plateau(coarse, crossing, mean_dos, filling))


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
