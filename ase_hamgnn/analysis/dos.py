"""Projected densities of states of a :class:`~ase_hamgnn.TBHamiltonian`.

The projection of an eigenstate ``c`` (S-orthonormal column of ``H(k) c = E S(k) c``) on a
spin-orbital ``mu`` is the Mulliken weight ``Re[conj(c_mu) (S(k) c)_mu]`` (``|c_mu|^2`` for an
orthogonal basis).  Summed over all spin-orbitals it is 1 for every state, so the projected
densities of all groups add up to the total density of states; individual Mulliken weights
may be slightly negative for a strongly non-orthogonal basis.

Spin resolution uses the 2x2 spin density of each spatial orbital: along a unit axis ``n`` the
"up" and "down" parts are ``(q + n . m) / 2`` and ``(q - n . m) / 2`` with charge ``q`` and spin
``m`` (``<sigma>``-weighted Mulliken populations), so they too add up to the total.  The axis
may be global (``'z'``, a vector) or ``'local'``: every atom's own moment direction, the
majority/minority split that makes sense for a texture (atoms without a moment take the axis
of the nearest atom with one).

Densities are per cell and eV and count spinor states: integrated over all energies the total
is the number of spin-orbitals per cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ase.data import chemical_symbols

from ase_hamgnn._plotting import energy_axis
from ase_hamgnn.spectra.dense import broaden, progress_bar
from ase_hamgnn.spectra.kpoints import kpoints_and_weights
from ase_hamgnn.spectra.projections import axis_vector, mulliken_charge_spin, orbital_axes

__all__ = [
    "GROUPINGS",
    "PDOS",
    "orbital_groups",
    "projected_dos",
    "state_projections",
]

#: Ways to group spin-orbitals in :func:`projected_dos`.
GROUPINGS = ("element", "shell", "l", "atom")

_L_LETTERS = "spdfgh"


@dataclass(frozen=True, eq=False)
class PDOS:
    """Total and projected densities of states on an energy grid.

    Attributes
    ----------
    energies : (n_E,) energies in eV.
    total : (n_E,) total density of states, states per eV and cell (spinor states).
    labels : names of the groups, e.g. ``('Ni', 'Br')`` or ``('Ni 4s', 'Ni 3d', ...)``.
    projected : (n_groups, n_spin, n_E) projected densities, states per eV and cell; ``n_spin``
        is 1 without spin resolution and 2 (up, down along ``spin_axis``) with it.
    spin_axis : unit 3-vector of the spin resolution, ``'local'`` (each atom's moment
        direction), or ``None``.
    width : broadening in eV; kind : ``"gaussian"`` or ``"lorentzian"``.
    """

    energies: np.ndarray
    total: np.ndarray
    labels: tuple[str, ...]
    projected: np.ndarray
    spin_axis: np.ndarray | str | None
    width: float
    kind: str

    @property
    def spin_resolved(self) -> bool:
        """True when :attr:`projected` has up and down channels."""
        return self.projected.shape[1] == 2

    def get(self, label: str, spin: str | None = None) -> np.ndarray:
        """Projected DOS of group ``label``; ``spin`` ``'up'``/``'down'`` (or ``None`` for
        their sum), states per eV and cell."""
        if label not in self.labels:
            raise KeyError(f"no group {label!r}; groups are {list(self.labels)}")
        p = self.projected[self.labels.index(label)]
        if spin is None:
            return p.sum(axis=0)
        if not self.spin_resolved:
            raise ValueError("this PDOS has no spin resolution; compute it with spin_axis='z'")
        if spin not in ("up", "down"):
            raise ValueError(f"spin must be 'up', 'down' or None, got {spin!r}")
        return p[0 if spin == "up" else 1].copy()

    def integrate(self, emin: float | None = None, emax: float | None = None
                  ) -> dict[str, float]:
        """Number of states of every group (and ``'total'``) between ``emin`` and ``emax`` (eV,
        default the whole grid), by the trapezoidal rule; e.g. with ``emax`` at the Fermi
        level these are Mulliken occupations."""
        e = self.energies
        lo = e[0] if emin is None else emin
        hi = e[-1] if emax is None else emax
        sel = (e >= lo) & (e <= hi)
        out = {lbl: float(np.trapezoid(self.projected[g].sum(axis=0)[sel], e[sel]))
               for g, lbl in enumerate(self.labels)}
        out["total"] = float(np.trapezoid(self.total[sel], e[sel]))
        return out

    def plot(self, ax=None, reference: float | None = None, emin: float | None = None,
             emax: float | None = None, show_total: bool = True, fill: bool = True,
             reference_label: str = "E_F"):
        r"""Plot the projected DOS (energy on x).  With spin resolution the up channel points
        up and the down channel down.  Returns the matplotlib Axes.

        Parameters
        ----------
        reference : energy in eV subtracted from the axis and marked by a dashed line (e.g.
            the Fermi level); ``None`` plots absolute energies.
        emin, emax : energy window in eV relative to ``reference``.
        show_total : draw the total DOS (per spin channel when spin-resolved) in grey.
        fill : fill under each projected curve.
        reference_label : mathtext name of the reference (``"E_F"``, ``r"E_\mathrm{mid}"``).
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
        e = self.energies - (0.0 if reference is None else reference)
        signs = (1.0, -1.0) if self.spin_resolved else (1.0,)
        if show_total:
            totals = (self.projected.sum(axis=0) if self.spin_resolved else self.total[None])
            for s, sign in enumerate(signs):
                ax.fill_between(e, sign * totals[s], color="0.85", lw=0,
                                label="total" if s == 0 else None)
        for g, label in enumerate(self.labels):
            colour = f"C{g % 10}"
            for s, sign in enumerate(signs):
                y = sign * self.projected[g, s]
                ax.plot(e, y, color=colour, lw=1.0, label=label if s == 0 else None)
                if fill:
                    ax.fill_between(e, y, color=colour, alpha=0.15, lw=0)
        if self.spin_resolved:
            ax.axhline(0.0, color="k", lw=0.5)
            ax.set_ylabel("PDOS (states/eV)")
            name = _axis_name(self.spin_axis)
            ax.text(0.01, 0.98, f"up, along {name}", transform=ax.transAxes, va="top",
                    fontsize="small")
            ax.text(0.01, 0.02, "down", transform=ax.transAxes, va="bottom", fontsize="small")
        else:
            ax.set_ylabel("PDOS (states/eV)")
        energy_axis(ax, reference, reference_label)
        ax.set_xlim(e[0] if emin is None else emin, e[-1] if emax is None else emax)
        ax.legend(frameon=False, fontsize="small")
        return ax


def _axis_name(axis: Any) -> str:
    if isinstance(axis, str):
        return "the local moments"
    for name, vec in zip("xyz", np.eye(3), strict=True):
        if np.allclose(axis, vec):
            return name
    return str(np.round(axis, 2).tolist())


def orbital_groups(ham, by: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Labels of the groups and the group index of every spatial orbital of the cell.

    Parameters
    ----------
    ham : TBHamiltonian
        The Hamiltonian (its basis and atoms).
    by : ``'element'``, ``'shell'`` (e.g. ``'Ni 3d'``), ``'l'`` (``'s'``, ``'p'``, ...,
        in order of l) or ``'atom'`` (e.g. ``'Ni0'``); see :data:`GROUPINGS`.

    Returns
    -------
    labels : tuple of str
        Group names, in order of first appearance (of l for ``by='l'``).
    index : (n_orb,) int64
        Group of every spatial orbital, in orbital order (atoms in order, each atom's
        shells and m-components; the spin-up and spin-down copies share it).

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> labels, index = orbital_groups(ReferenceTB("nibri").predict(nibri()), "l")
    >>> labels, index.tolist()
    (('s', 'p', 'd'), [0, 2, 2, 2, 2, 2, 0, 1, 1, 1, 0, 1, 1, 1])
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {GROUPINGS}, got {by!r}")
    basis = ham.basis
    keys: list[str] = []
    for atom, z in enumerate(ham.geometry.numbers):
        el = chemical_symbols[int(z)]
        for shell in basis.shells(el):
            key = {"element": el, "shell": f"{el} {shell.label}", "l": _L_LETTERS[shell.l],
                   "atom": f"{el}{atom}"}[by]
            keys.extend([key] * shell.size)
    labels: list[str] = []
    for key in keys:  # first-appearance order: atoms order, then shells
        if key not in labels:
            labels.append(key)
    if by == "l":
        labels.sort(key=_L_LETTERS.index)
    index = np.array([labels.index(k) for k in keys], dtype=np.int64)
    return tuple(labels), index


def state_projections(ham, k: Any, group_index: np.ndarray, n_groups: int,
                      spin_axis: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (n_states,) eV and Mulliken weights (n_groups, n_spin, n_states) at ``k``.

    ``group_index`` gives the group of every spatial orbital; ``n_spin`` is 1 without
    ``spin_axis`` and 2 (up, down) with it (``'x'``, ``'y'``, ``'z'``, a 3-vector, ``'local'``
    or an (n_orb, 3) array of unit axes per spatial orbital).  Weights of a state sum to 1
    over groups and spins.
    """
    if spin_axis is None or (isinstance(spin_axis, np.ndarray) and spin_axis.ndim == 2):
        axes = spin_axis
    else:
        axes = orbital_axes(ham, spin_axis)
    e, c = ham.eigh(k)
    q, m = mulliken_charge_spin(ham, k, c, axes)
    parts = [q] if m is None else [0.5 * (q + m), 0.5 * (q - m)]
    out = np.zeros((n_groups, len(parts), len(e)))
    for s, part in enumerate(parts):
        np.add.at(out[:, s], group_index, part)
    return e, out


def projected_dos(ham, kpts: Any, energies: Any, *, by: str = "element",
                  spin_axis: Any = None, width: float = 0.05, kind: str = "gaussian",
                  weights: Any = None, progress: bool | None = None) -> PDOS:
    """Total and projected density of states of ``ham`` on a k-point set.

    Parameters
    ----------
    ham : TBHamiltonian
        The Hamiltonian (orthogonal or with overlap; Mulliken projections with S).
    kpts : (n1, n2, n3) ints for ASE's Monkhorst–Pack mesh, any other form of
        :func:`~ase_hamgnn.spectra.kpoints.resolve_kpts`, or an (n_k, 3) array of fractional k.
    energies : (n_E,) energies in eV.
    by : ``'element'``, ``'shell'`` (element and shell, e.g. ``'Ni 3d'``), ``'l'``
        (``'s'``, ``'p'``, ``'d'`` summed over elements) or ``'atom'`` (e.g. ``'Ni0'``).
    spin_axis : ``None`` (no spin resolution), ``'x'``, ``'y'``, ``'z'``, a 3-vector, or
        ``'local'`` (every atom's moment direction; see
        :func:`~ase_hamgnn.spectra.projections.local_axes`): split every group into up and down
        along that axis.
    width : broadening in eV (Gaussian standard deviation or Lorentzian half width).
    kind : ``'gaussian'`` or ``'lorentzian'``.
    weights : optional k-point weights (normalized here); default equal.
    progress : show a progress bar (``None``: only for long k loops on a terminal).

    Returns
    -------
    PDOS
        Total and projected densities in states per eV and cell (spinor states).

    Examples
    --------
    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> chain = Atoms("H", cell=[1, 10, 10], pbc=[True, False, False])
    >>> t = -1.0 * np.eye(2)
    >>> ham = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
    ...                                 {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    >>> pdos = projected_dos(ham, (40, 1, 1), np.linspace(-4, 4, 801), spin_axis="z")
    >>> round(pdos.integrate()["total"], 2)
    2.0
    """
    if width <= 0:
        raise ValueError(f"width must be positive (eV), got {width}")
    if kind not in ("gaussian", "lorentzian"):
        raise ValueError(f"kind must be 'gaussian' or 'lorentzian', got {kind!r}")
    e_grid = np.asarray(energies, dtype=np.float64).reshape(-1)
    axes = orbital_axes(ham, spin_axis)
    if isinstance(spin_axis, str) and spin_axis == "local":
        axis: np.ndarray | str | None = "local"
    else:
        axis = None if spin_axis is None else axis_vector(spin_axis)
    labels, group_index = orbital_groups(ham, by)
    k, w = kpoints_and_weights(kpts, weights, ham.geometry.cell, ham.geometry.pbc)
    eig, proj = [], []
    for kk in progress_bar(k, "projected DOS", progress):
        e, p = state_projections(ham, kk, group_index, len(labels), axes)
        eig.append(e)
        proj.append(p)
    eig_a = np.array(eig)
    proj_a = np.array(proj)  # (n_k, n_groups, n_spin, n_states)
    total = broaden(eig_a, w, e_grid, width, kind)
    projected = np.array([[broaden(eig_a, w, e_grid, width, kind, projections=proj_a[:, g, s])
                           for s in range(proj_a.shape[2])] for g in range(len(labels))])
    return PDOS(energies=e_grid, total=total, labels=labels, projected=projected,
                spin_axis=axis, width=float(width), kind=kind)
