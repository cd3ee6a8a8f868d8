"""Transport through Kwant systems exported by :mod:`ase_hamgnn.transport.export`.

Functions take a *finalized* Kwant system (construction, result and analysis stay separate)
and return small frozen value types: :class:`TransmissionCurve`, :class:`SpinTransmission`
and :class:`LocalMaps`, with matplotlib plots of each.  Energies are in eV.  If the system was
exported with an overlap (``S != 1``) the Kwant parameter ``overlap_energy`` is set to the
energy of each solve automatically (the exact fixed-energy form ``H - E (S - 1)``).

Spin-resolved transmission
--------------------------
Spin is not conserved inside a textured or spin-orbit-coupled scattering region, so Kwant's
``conservation_law`` blocks cannot be used there.  :func:`spin_transmission` instead projects
the scattering matrix onto the spin of the lead modes: for every propagating mode ``m`` of a
lead it computes ``s_m = <psi_m| n.sigma |psi_m> / <psi_m|psi_m>`` over the lead unit cell and
weights ``|S_mn|^2`` with ``p_up = (1 + s) / 2`` and ``p_down = (1 - s) / 2`` on both sides.
This is exact when the lead modes are spin eigenstates along ``n`` (``|s_m| = 1``): leads
without spin-orbit coupling whose moments are collinear with ``n``, exported with
``to_kwant_system(..., spin_axis=n)`` so that Kwant also separates degenerate modes by spin.
Otherwise it is a diagonal (mode-wise) approximation, and ``SpinTransmission.purity`` (the
smallest ``|s_m|``) says by how much the leads mix spin.

Speed
-----
Per energy the cost is the lead modes (a dense Schur decomposition of the ``2 n x 2 n``
transfer problem of each lead, ``n`` orbitals per lead cell) plus the sparse factorization
of the scattering problem.  Two savings keep the results those of plain ``kwant.smatrix``
(to round-off, ~1e-12): the two leads of one direction of
:func:`~ase_hamgnn.transport.export.to_kwant_system` are mirror images, so one Schur form gives
the modes of both (:func:`lead_modes`), and over an energy sweep the MUMPS symbolic
analysis is reused while the sparsity pattern is unchanged (checked, with a backward-error
guard).  The factorization runs in MUMPS' BLAS: link it to an optimized BLAS (OpenBLAS,
Debian package ``libopenblas0-pthread``); with the reference BLAS it is several times
slower.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ase_hamgnn.transport.export import OVERLAP_ENERGY, spin_matrix
from ase_hamgnn.transport.sweep import (
    all_lead_modes,
    mirror_pairs,
    mumps_sweep_solver,
    precalculated,
)

__all__ = [
    "LocalMaps",
    "SpinTransmission",
    "TransmissionCurve",
    "lead_modes",
    "local_maps",
    "plot_current",
    "plot_spin_density",
    "plot_transmission",
    "spin_transmission",
    "transmission",
]

_SOLVERS = ("default", "mumps", "sparse")


# -- value types ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TransmissionCurve:
    """Transmission ``T(E)`` from one lead to another.

    Attributes
    ----------
    energies : (n_E,) float64, eV.
    transmission : (n_E,) float64, dimensionless; conductance is ``(e^2 / h) T``.
    open_channels : (n_E,) int64, propagating modes of the source lead (the pristine
        plateau values).
    from_lead, to_lead : int
        Kwant lead indices.
    seconds : (n_E,) float64 or None
        Wall time of each energy point (lead modes and solve), s.
    """

    energies: np.ndarray
    transmission: np.ndarray
    open_channels: np.ndarray
    from_lead: int
    to_lead: int
    seconds: np.ndarray | None = None


@dataclass(frozen=True)
class SpinTransmission:
    """Spin-resolved transmission ``T_{s s'}(E)`` (outgoing spin ``s``, incoming ``s'``).

    Attributes
    ----------
    energies : (n_E,) float64, eV.
    transmission : (n_E, 2, 2) float64, ``[E, out, in]`` with spin index 0 = up, 1 = down
        along ``axis``.
    purity : (n_E,) float64, smallest ``|<n.sigma>|`` of the propagating modes of both leads
        (1 = spin-pure modes, projection exact; ``nan`` if no mode is open).
    axis : (3,) float64, unit spin quantization axis.
    from_lead, to_lead : int
    """

    energies: np.ndarray
    transmission: np.ndarray
    purity: np.ndarray
    axis: np.ndarray
    from_lead: int
    to_lead: int

    @property
    def total(self) -> np.ndarray:
        """Total transmission, (n_E,), the sum over both spin indices."""
        return self.transmission.sum(axis=(1, 2))

    @property
    def spin_polarization(self) -> np.ndarray:
        """``(T_up - T_down) / (T_up + T_down)`` of the outgoing spin, (n_E,)."""
        out = self.transmission.sum(axis=2)
        tot = out.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tot > 0, (out[:, 0] - out[:, 1]) / tot, np.nan)


@dataclass(frozen=True)
class LocalMaps:
    """Local densities and bond currents of the scattering states injected from one lead.

    Attributes
    ----------
    energy : float, eV.
    lead : int, the injecting lead.
    positions : (n_sites, 3) float64, Å, Kwant site positions (ideal lattice sites).
    charge : (n_sites,) float64, partial local density of states ``sum_modes |psi|^2 / 2 pi``,
        states per eV and site.
    spin : (n_sites, 3) float64, ``sum_modes psi^dagger sigma psi / 2 pi``, (hbar/2) per eV.
    bonds : (n_bonds, 2) int64, site indices ``(a, b)``, each bond once.
    current : (n_bonds,) float64, particle current from ``b`` to ``a`` summed over the modes
        (unit-current normalized); its flux through a cross-section is the transmission out
        of ``lead``, so ``(e^2/h) V x current`` is the linear-response current (A) at bias V.
    spin_current : (n_bonds, 3) float64, the same for ``sigma_x, sigma_y, sigma_z`` (hbar/2).
    """

    energy: float
    lead: int
    positions: np.ndarray
    charge: np.ndarray
    spin: np.ndarray
    bonds: np.ndarray
    current: np.ndarray
    spin_current: np.ndarray

    def site_current(self, component: str | None = None) -> np.ndarray:
        """Current vector per site, (n_sites, 3): each bond current times the unit bond vector
        (from ``b`` to ``a``), shared half and half by its two sites.  ``component`` is
        ``None`` (charge) or ``'x'``, ``'y'``, ``'z'`` (spin current)."""
        if component is None:
            cur = self.current
        elif component in ("x", "y", "z"):
            cur = self.spin_current[:, "xyz".index(component)]
        else:
            raise ValueError(f"component must be None, 'x', 'y' or 'z', got {component!r}")
        a, b = self.bonds[:, 0], self.bonds[:, 1]
        vec = self.positions[a] - self.positions[b]
        vec = vec / np.linalg.norm(vec, axis=1, keepdims=True)
        contrib = 0.5 * cur[:, None] * vec
        out = np.zeros_like(self.positions)
        np.add.at(out, a, contrib)
        np.add.at(out, b, contrib)
        return out


# -- solving --------------------------------------------------------------------------------
#: Largest accepted backward error of a solve with a reused MUMPS analysis
#: (:func:`mumps_sweep_solver`); above it the system is analysed and factorized afresh.
def _smatrix_function(solver: str | Callable) -> Callable:
    """``kwant.smatrix``-like function for one sweep over energies (see
    :func:`mumps_sweep_solver`); call it once per sweep."""
    if callable(solver):
        return solver
    if solver == "default":
        try:
            return mumps_sweep_solver().smatrix
        except ImportError:                              # Kwant without MUMPS: SuperLU
            import kwant

            return kwant.smatrix
    if solver == "mumps":
        return mumps_sweep_solver().smatrix
    if solver == "sparse":
        import kwant.solvers.sparse

        return kwant.solvers.sparse.smatrix
    raise ValueError(
        f"solver must be one of {_SOLVERS} or a kwant smatrix function, got {solver!r}"
    )


def _system_parameters(fsyst) -> frozenset:
    names = set(getattr(fsyst, "parameters", ()))
    for lead in getattr(fsyst, "leads", ()):
        names |= set(getattr(lead, "parameters", ()))
    return frozenset(names)


def _params(fsyst, energy: float, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """User parameters plus ``overlap_energy = energy`` where the system needs it."""
    out = dict(params or {})
    if OVERLAP_ENERGY in _system_parameters(fsyst):
        if OVERLAP_ENERGY in out and out[OVERLAP_ENERGY] != energy:
            raise ValueError(
                f"params[{OVERLAP_ENERGY!r}] = {out[OVERLAP_ENERGY]} differs from the energy "
                f"{energy} eV; the overlap form H - E(S - 1) is exact only at that energy, so "
                f"leave {OVERLAP_ENERGY!r} out and it is set for you"
            )
        out[OVERLAP_ENERGY] = float(energy)
    return out


def _check_leads(fsyst, *leads: int) -> None:
    n = len(getattr(fsyst, "leads", ()))
    for lead in leads:
        if not 0 <= int(lead) < n:
            raise ValueError(f"lead index {lead} out of range: the system has {n} leads")


def _energies(energies: Iterable[float] | float) -> np.ndarray:
    e = np.atleast_1d(np.asarray(energies, dtype=np.float64))
    if e.ndim != 1 or not np.isfinite(e).all():
        raise ValueError("energies must be a finite 1-d sequence in eV")
    return e


# -- lead modes -----------------------------------------------------------------------------


def lead_modes(fsyst, energy: float, *, params: Mapping[str, Any] | None = None) -> list:
    """Modes of every lead at ``energy``, as ``[lead.modes(energy) for lead in fsyst.leads]``.

    Mirror leads, i.e. the two leads of one direction of
    :func:`~ase_hamgnn.transport.export.to_kwant_system` (the same unit cell and Hamiltonian, run
    to ``-d`` and ``+d``), share one eigendecomposition: the modes of the lead to ``-d`` are
    those of the lead to ``+d`` with the translation eigenvalue inverted, so one Schur
    decomposition of the ``2 n x 2 n`` transfer problem serves both (half the dense work of
    two separate ``lead.modes`` calls).  The first lead of a pair is solved exactly as Kwant
    does; the second is mapped from the same Schur form (see :func:`_mirror_block_modes`).
    Leads with declared conservation laws or symmetries, a singular inter-cell hopping, or
    Hamiltonians that are not exact mirror images are solved by ``lead.modes``.  The
    transport functions of this module use it at every energy.

    Parameters
    ----------
    fsyst : kwant finalized system with leads.
    energy : float, eV.
    params : mapping, optional
        Kwant parameters; ``overlap_energy`` is filled in.

    Returns
    -------
    list of (kwant.physics.PropagatingModes, kwant.physics.StabilizedModes)
        One per lead (``None`` for a lead defined only by a self-energy).

    Examples
    --------
    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> chain = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    >>> t = -1.0 * np.eye(2)                                   # eV, spin-independent
    >>> lead = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
    ...                                  {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    >>> from ase_hamgnn.transport.export import to_kwant_system
    >>> syst = to_kwant_system(lead.tile((4, 1, 1)), lead).finalized()
    >>> [prop.velocities.round(6).tolist() for prop, _ in lead_modes(syst, 0.0)]
    [[-2.0, -2.0, 2.0, 2.0], [-2.0, -2.0, 2.0, 2.0]]
    """
    energy = float(energy)
    return all_lead_modes(fsyst, energy, _params(fsyst, energy, params), mirror_pairs(fsyst))


def _smatrix_at(fsyst, smatrix: Callable, energy: float, params: Mapping[str, Any] | None,
                pairs: Sequence, from_lead: int, to_lead: int):
    """Scattering matrix block ``to_lead <- from_lead`` at one energy, with the lead modes
    from :func:`lead_modes` (mirror leads share one eigendecomposition)."""
    kw_params = _params(fsyst, energy, params)
    solved = precalculated(fsyst, all_lead_modes(fsyst, energy, kw_params, pairs))
    return smatrix(solved, energy, params=kw_params, in_leads=[from_lead], out_leads=[to_lead])


def transmission(fsyst, energies: Iterable[float] | float, *, from_lead: int = 0,
                 to_lead: int = 1, params: Mapping[str, Any] | None = None,
                 solver: str | Callable = "default", progress: bool = True
                 ) -> TransmissionCurve:
    """Transmission from ``from_lead`` to ``to_lead`` at each energy.

    Parameters
    ----------
    fsyst : kwant finalized system with leads (e.g. ``to_kwant_system(...).finalized()``).
    energies : float or sequence of float, eV.
    from_lead, to_lead : int
        Kwant lead indices (``to_kwant_system`` attaches -d as 0 and +d as 1).
    params : mapping, optional
        Kwant parameters of value functions; ``overlap_energy`` is filled in.
    solver : {'default', 'mumps', 'sparse'} or callable
        ``'default'`` is Kwant's choice (MUMPS when installed), ``'sparse'`` is SciPy's
        SuperLU, or any function with the signature of ``kwant.smatrix``.  With MUMPS the
        symbolic analysis of the first energy is reused for the others (see the module
        notes).  Lead modes come from :func:`lead_modes` in every case.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    TransmissionCurve
        With the wall time of each energy point in ``seconds``.

    Examples
    --------
    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> chain = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    >>> t = -1.0 * np.eye(2)                                   # eV, spin-independent
    >>> lead = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
    ...                                  {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    >>> from ase_hamgnn.transport.export import to_kwant_system
    >>> syst = to_kwant_system(lead.tile((4, 1, 1)), lead).finalized()
    >>> curve = transmission(syst, [-1.0, 0.5, 2.5], progress=False)
    >>> curve.transmission.round(8), curve.open_channels
    (array([2., 2., 0.]), array([2, 2, 0]))
    """
    _check_leads(fsyst, from_lead, to_lead)
    smatrix = _smatrix_function(solver)
    pairs = mirror_pairs(fsyst)
    es = _energies(energies)
    t = np.zeros(len(es), dtype=np.float64)
    nopen = np.zeros(len(es), dtype=np.int64)
    seconds = np.zeros(len(es), dtype=np.float64)
    for n, energy in enumerate(tqdm(es, desc="transmission", unit="E", disable=not progress)):
        start = time.perf_counter()
        smat = _smatrix_at(fsyst, smatrix, float(energy), params, pairs, from_lead, to_lead)
        t[n] = smat.transmission(to_lead, from_lead)
        nopen[n] = smat.num_propagating(from_lead)
        seconds[n] = time.perf_counter() - start
    return TransmissionCurve(es, t, nopen, int(from_lead), int(to_lead), seconds)


def _lead_spin(fsyst, lead: int, axis: np.ndarray) -> np.ndarray:
    """Block-diagonal ``n.sigma`` over the orbitals of one unit cell of a finalized lead."""
    import scipy.linalg

    lead_syst = fsyst.leads[lead]
    cell = lead_syst.sites[:lead_syst.cell_size]
    return scipy.linalg.block_diag(*[spin_matrix(s.family.norbs // 2, axis) for s in cell])


def _mode_spin(wave_functions: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    num = np.einsum("im,ij,jm->m", wave_functions.conj(), sigma, wave_functions).real
    den = np.einsum("im,im->m", wave_functions.conj(), wave_functions).real
    return num / den


def spin_transmission(fsyst, energies: Iterable[float] | float, *,
                      axis: str | Sequence[float] = "z", from_lead: int = 0, to_lead: int = 1,
                      params: Mapping[str, Any] | None = None,
                      solver: str | Callable = "default", progress: bool = True
                      ) -> SpinTransmission:
    """Spin-resolved transmission by projecting the S-matrix onto the lead modes' spin.

    See the module notes for the method: exact for spin-pure lead modes (leads exported with
    ``spin_axis``), a mode-wise approximation otherwise (``purity < 1``).

    Parameters
    ----------
    fsyst : kwant finalized system with leads.
    energies : float or sequence of float, eV.
    axis : {'x', 'y', 'z'} or (3,) float
        Spin quantization axis ``n`` (e.g. the lead magnetization).
    from_lead, to_lead, params, solver, progress
        As in :func:`transmission`.

    Returns
    -------
    SpinTransmission
        ``transmission[E, out, in]``, spin 0 = up along ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> chain = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    >>> t = -1.0 * np.eye(2)                                   # eV, spin-independent
    >>> lead = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
    ...                                  {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    >>> from ase_hamgnn.transport.export import to_kwant_system
    >>> syst = to_kwant_system(lead.tile((4, 1, 1)), lead, spin_axis="z").finalized()
    >>> res = spin_transmission(syst, [0.5], axis="z", progress=False)
    >>> res.transmission[0].round(8)     # [out, in]: no spin flip in a pristine chain
    array([[1., 0.],
           [0., 1.]])
    """
    _check_leads(fsyst, from_lead, to_lead)
    smatrix = _smatrix_function(solver)
    es = _energies(energies)
    if isinstance(axis, str):
        if axis not in ("x", "y", "z"):
            raise ValueError(f"axis must be 'x', 'y', 'z' or a 3-vector, got {axis!r}")
        n_axis = np.eye(3)["xyz".index(axis)]
    else:
        n_axis = np.asarray(axis, dtype=np.float64).reshape(3)
        n_axis = n_axis / np.linalg.norm(n_axis)
    pairs = mirror_pairs(fsyst)
    sig_from = _lead_spin(fsyst, from_lead, n_axis)
    sig_to = _lead_spin(fsyst, to_lead, n_axis)
    out = np.zeros((len(es), 2, 2), dtype=np.float64)
    purity = np.full(len(es), np.nan)
    for n, energy in enumerate(tqdm(es, desc="spin transmission", unit="E",
                                    disable=not progress)):
        smat = _smatrix_at(fsyst, smatrix, float(energy), params, pairs, from_lead, to_lead)
        block = smat.submatrix(to_lead, from_lead)
        if block.size == 0:
            continue
        wf_in = smat.lead_info[from_lead].wave_functions
        wf_out = smat.lead_info[to_lead].wave_functions
        s_in = _mode_spin(wf_in[:, : wf_in.shape[1] // 2], sig_from)     # incoming modes
        s_out = _mode_spin(wf_out[:, wf_out.shape[1] // 2:], sig_to)     # outgoing modes
        p_in = np.stack([(1 + s_in) / 2, (1 - s_in) / 2])                # (2, n_in)
        p_out = np.stack([(1 + s_out) / 2, (1 - s_out) / 2])             # (2, n_out)
        out[n] = p_out @ np.abs(block) ** 2 @ p_in.T
        purity[n] = float(np.min(np.abs(np.concatenate([s_in, s_out]))))
    return SpinTransmission(es, out, purity, n_axis, int(from_lead), int(to_lead))


def local_maps(fsyst, energy: float, *, lead: int = 0, params: Mapping[str, Any] | None = None
               ) -> LocalMaps:
    """Local charge and spin densities and bond (spin) currents of the scattering states.

    Uses ``kwant.wave_function`` for the states injected from ``lead``,
    ``kwant.operator.Density`` with the on-site operators ``sigma_a (x) 1_orb``
    (:func:`~ase_hamgnn.transport.export.spin_matrix`, spin-major order) for the densities, and
    the bond currents ``J_ab = 2 Im psi_a^dagger (M_a H_ab + H_ab M_b) / 2 psi_b`` (from ``b``
    to ``a``; ``M = 1`` for charge, ``sigma_a (x) 1_orb`` for spin) evaluated directly on the
    sparse Hamiltonian.  For ``M = 1`` this is Kwant's ``operator.Current``; it is not called
    because Kwant 1.5.0 returns wrong bond currents out of sites in the second and later
    site ranges when families have different ``norbs`` (e.g. 8 and 2), which is the normal
    case here.  With an overlap the Hamiltonian is ``H - E (S - 1)``, so the bond currents
    are those of ``H - E S`` (conserved for the generalized problem) and the densities are
    ``psi^dagger M psi`` without ``S`` (no Mulliken partition of the overlap charge).

    Parameters
    ----------
    fsyst : kwant finalized system with leads.
    energy : float, eV.
    lead : int
        Injecting lead.
    params : mapping, optional
        Kwant parameters; ``overlap_energy`` is filled in.

    Returns
    -------
    LocalMaps

    Examples
    --------
    >>> maps = local_maps(syst, 0.4)                                  # doctest: +SKIP
    >>> plot_spin_density(maps); plot_current(maps)                   # doctest: +SKIP
    """
    import kwant
    import scipy.sparse as sp

    _check_leads(fsyst, lead)
    energy = float(energy)
    kw_params = _params(fsyst, energy, params)
    solved = precalculated(fsyst, all_lead_modes(fsyst, energy, kw_params, mirror_pairs(fsyst)))
    psi = kwant.wave_function(solved, energy, params=kw_params)(lead)   # (n_modes, n_orbs)
    psi = np.asarray(psi, dtype=np.complex128).reshape(-1, psi.shape[-1])
    sites = fsyst.sites
    norbs = np.array([s.family.norbs for s in sites], dtype=np.int64)
    site_of = np.repeat(np.arange(len(sites)), norbs)
    families = {s.family for s in sites}

    ham = sp.coo_matrix(fsyst.hamiltonian_submatrix(sparse=True, params=kw_params))
    sa, sb = site_of[ham.row], site_of[ham.col]
    keys = np.unique(sa[sa < sb].astype(np.int64) * len(sites) + sb[sa < sb])
    bonds = np.stack([keys // len(sites), keys % len(sites)], axis=1).reshape(-1, 2)

    dens, curr = [], []
    for comp in ("0", "x", "y", "z"):
        onsite = {f: spin_matrix(f.norbs // 2, comp) for f in families}
        density = kwant.operator.Density(fsyst, onsite, sum=False)
        dens.append(sum((density(p, params=kw_params).real for p in psi),
                        np.zeros(len(sites))))
        m = sp.block_diag([onsite[s.family] for s in sites], format="csr")
        op = sp.coo_matrix(0.5 * (m @ ham.tocsr() + ham.tocsr() @ m))
        ra, rb = site_of[op.row], site_of[op.col]
        sel = ra < rb
        z = np.einsum("mi,i,mi->i", psi[:, op.row[sel]].conj(), op.data[sel],
                      psi[:, op.col[sel]])
        idx = np.searchsorted(keys, ra[sel].astype(np.int64) * len(sites) + rb[sel])
        bond_current = np.zeros(len(bonds), dtype=np.float64)
        np.add.at(bond_current, idx, 2.0 * z.imag)
        curr.append(bond_current)
    positions = np.array([s.pos for s in sites], dtype=np.float64)
    return LocalMaps(
        energy=energy,
        lead=int(lead),
        positions=positions,
        charge=dens[0] / (2 * np.pi),
        spin=np.stack(dens[1:], axis=1) / (2 * np.pi),
        bonds=bonds,
        current=curr[0],
        spin_current=np.stack(curr[1:], axis=1),
    )


# -- plots ----------------------------------------------------------------------------------
def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4))[1]


def _energy_axis(ax, reference: float | None, reference_label: str) -> None:
    """x label ``E (eV)`` or ``E - E_F (eV)``, with the reference marked by a dashed line
    when it is in view."""
    if reference is None:
        ax.set_xlabel("E (eV)")
        return
    ax.set_xlabel(rf"$E - {reference_label}$ (eV)")
    lo, hi = ax.get_xlim()
    if lo <= 0.0 <= hi:
        ax.axvline(0.0, color="k", lw=0.8, ls="--", zorder=1)
        ax.annotate(rf"${reference_label}$", (0.0, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -3), textcoords="offset points", ha="left", va="top",
                    fontsize="small")


#: Spin channels of :func:`plot_transmission`: (in, out) spin index, label, style.  Every
#: curve has its own colour, dash pattern and marker, so that equal curves stay visible.
_CHANNELS = (
    (0, 0, r"$\uparrow\to\uparrow$", dict(color="C3", ls="-", marker="^")),
    (1, 1, r"$\downarrow\to\downarrow$", dict(color="C0", ls="--", marker="v")),
    (0, 1, r"$\uparrow\to\downarrow$", dict(color="C2", ls="-.", marker="x")),
    (1, 0, r"$\downarrow\to\uparrow$", dict(color="C1", ls=":", marker="+")),
)


def plot_transmission(result: TransmissionCurve | SpinTransmission, ax=None, *,
                      reference: float | None = None, reference_label: str = "E_F"):
    """Conductance ``G = (e^2/h) T`` against energy.

    A :class:`TransmissionCurve` is drawn with its open channels (dashed steps, the
    plateaus of a clean ribbon); a :class:`SpinTransmission` as the total (a thick pale
    line underneath) and the four channels ``in -> out`` on top, each with its own colour,
    dash pattern and marker, so that a channel equal to the total stays visible.  Spin
    labels are along :attr:`SpinTransmission.axis`.

    Parameters
    ----------
    result : TransmissionCurve or SpinTransmission
    ax : matplotlib Axes, optional (a new figure otherwise).
    reference : energy (eV) subtracted from the axis and marked by a dashed line, e.g. the
        Fermi level; ``None`` plots absolute energies.
    reference_label : mathtext name of the reference (``"E_F"``).

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    e = result.energies - (0.0 if reference is None else reference)
    markers = dict(ms=3.5) if len(e) <= 80 else dict(marker="")  # the sampled energies
    if isinstance(result, SpinTransmission):
        ax.plot(e, result.total, color="0.6", lw=4.5, alpha=0.6, solid_capstyle="butt",
                label="total", zorder=1)
        for i_in, i_out, label, style in _CHANNELS:
            ax.plot(e, result.transmission[:, i_out, i_in], lw=1.3, label=label, zorder=2,
                    **{**style, **markers})
        name = _axis_name(result.axis)
        title = f"spin along {name} (in $\\to$ out)"
    elif isinstance(result, TransmissionCurve):
        ax.step(e, result.open_channels, "--", color="0.5", where="mid", lw=1.0,
                label="open channels", zorder=1)
        ax.plot(e, result.transmission, "k-", lw=1.4, label="T", zorder=2,
                **{"marker": "o", **markers})
        title = None
    else:
        raise TypeError(f"expected TransmissionCurve or SpinTransmission, got {type(result)}")
    if len(e) > 1:
        ax.set_xlim(e.min(), e.max())
    _energy_axis(ax, reference, reference_label)
    ax.set_ylabel(rf"$G$ ($e^2/h$), lead {result.from_lead} $\to$ {result.to_lead}")
    ax.legend(frameon=False, fontsize="small", title=title, title_fontsize="small")
    return ax


def _axis_name(axis: np.ndarray) -> str:
    for n, name in enumerate("xyz"):
        if np.allclose(axis, np.eye(3)[n]):
            return name
    return "(" + ", ".join(f"{a:.2f}" for a in axis) + ")"


def plot_spin_density(maps: LocalMaps, ax=None, *, cmap: str = "RdBu_r"):
    """Local spin density: in-plane arrows ``(s_x, s_y)``, colour ``s_z / |s|``, marker size
    proportional to the charge density (xy projection).  Returns the ``Axes``."""
    ax = _axes(ax)
    x, y = maps.positions[:, 0], maps.positions[:, 1]
    s = maps.spin
    norm = np.linalg.norm(s, axis=1)
    scale = norm.max() if norm.size and norm.max() > 0 else 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        sz = np.where(norm > 0, s[:, 2] / norm, 0.0)
    size = 5 + 60 * maps.charge / (maps.charge.max() if maps.charge.max() > 0 else 1.0)
    sc = ax.scatter(x, y, c=sz, s=size, cmap=cmap, vmin=-1, vmax=1)
    if norm.max(initial=0.0) > 0:
        ax.quiver(x, y, s[:, 0] / scale, s[:, 1] / scale, angles="xy", pivot="middle")
    ax.figure.colorbar(sc, ax=ax, label=r"$s_z / |s|$")
    if not maps.charge.max(initial=0.0) > 0:
        ax.text(0.5, 0.5, f"no open channel at E = {maps.energy:.3g} eV:\nno scattering "
                f"states from lead {maps.lead}", transform=ax.transAxes, ha="center",
                va="center", bbox=dict(facecolor="w", edgecolor="0.5"))
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_title(f"spin density, E = {maps.energy:.3g} eV, lead {maps.lead}")
    return ax


def plot_current(maps: LocalMaps, ax=None, *, component: str | None = None,
                 cmap: str = "viridis", reference: float | None = None,
                 reference_label: str = "E_F"):
    """Local current map: arrows of the site current (:meth:`LocalMaps.site_current`, xy
    projection), their length relative to the largest, their colour the magnitude.

    The colour bar is in units of the linear response to a bias ``V`` between the leads:
    a charge current ``|I| / V`` in ``e^2/h``, a spin current (``component`` ``'x'``,
    ``'y'`` or ``'z'``) ``|I_s| / V`` in ``(hbar/2) e/h``.  With no open channel at
    :attr:`LocalMaps.energy` (no charge current anywhere), or none of the asked spin
    current, the sites are drawn grey and the figure says so.

    Parameters
    ----------
    maps : LocalMaps
    ax : matplotlib Axes, optional (a new figure otherwise).
    component : ``None`` (charge current) or ``'x'``, ``'y'``, ``'z'`` (spin current).
    cmap : colour map of the magnitude.
    reference, reference_label : the title gives ``E - E_F`` when ``reference`` (eV) is
        given, else the absolute energy.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    j = maps.site_current(component)
    mag = np.linalg.norm(j[:, :2], axis=1)
    largest = float(mag.max()) if mag.size else 0.0
    x, y = maps.positions[:, 0], maps.positions[:, 1]
    if component is None:
        name, unit = "current", r"$|I|/V$ per site ($e^2/h$)"
    else:
        name = f"spin-{component} current"
        unit = rf"$|I_{{s,{component}}}|/V$ per site ($(\hbar/2)\,e/h$)"
    if reference is None:
        at = f"E = {maps.energy:.3g} eV"
    else:
        at = rf"$E - {reference_label}$ = {maps.energy - reference:+.3g} eV"
    ax.scatter(x, y, s=4, color="0.8", lw=0, zorder=1)
    if largest > 0:
        q = ax.quiver(x, y, j[:, 0] / largest, j[:, 1] / largest, mag, cmap=cmap,
                      angles="xy", pivot="middle", zorder=2)
        q.set_clim(0.0, largest)
        ax.figure.colorbar(q, ax=ax, label=unit)
    else:
        if np.abs(maps.current).max(initial=0.0) > 0:   # open channels, none of this current
            message = f"no {name} at {at}"
        else:
            message = f"no open channel at {at}:\nno current from lead {maps.lead}"
        ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
                bbox=dict(facecolor="w", edgecolor="0.5"))
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_title(f"{name} injected from lead {maps.lead}, {at}")
    return ax
