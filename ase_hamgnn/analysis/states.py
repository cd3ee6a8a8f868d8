"""Real-space pictures of single states: weight per atom and maps over the atoms.

The weight of a state ``c`` (an S-normalized column of ``H(k) c = E S(k) c``) on atom ``i``
is its Mulliken population summed over the atom's orbitals and both spins,
``w_i = sum_{mu in i} Re[conj(c_mu) (S(k) c)_mu]`` (``|c_mu|^2`` for an orthogonal basis):
the weights of a state sum to 1 (individual ones may be slightly negative for a strongly
non-orthogonal basis).

The spin of a state on atom ``i`` is the same Mulliken form with the Pauli matrices in the
spin index, ``s_i = sum_{mu in i} Re[c_mu^dagger sigma (S(k) c)_mu]`` (``c_mu`` the spinor
``(c_mu_up, c_mu_down)`` of spatial orbital ``mu``): the ``s_i`` of a state add up to its
``<sigma>``, and ``|s_i| <= w_i`` for an orthogonal basis.  Split over the orbitals' angular
momentum instead, the weights give a state's orbital character atom by atom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ase_hamgnn.analysis.dos import orbital_groups
from ase_hamgnn.spectra.projections import mulliken_charge_spin

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "OrbitalWeights",
    "atom_orbital_weights",
    "atom_spin",
    "atom_weights",
    "plot_edge_state_maps",
    "plot_state_density",
    "plot_state_on_texture",
    "plot_state_spin",
]

_SPIN_LABEL = (r"$\langle\sigma_z\rangle_i / w_i$  (arrows: in-plane "
               r"$\langle\sigma\rangle_i / w_i$)")

#: Colours of the angular momenta in the orbital-character bars.
_L_COLOURS = {"s": "#66c2a5", "p": "#fc8d62", "d": "#8da0cb", "f": "#e78ac3",
              "g": "#a6d854", "h": "#ffd92f"}


def atom_weights(ham: Any, k: Any, states: np.ndarray) -> np.ndarray:
    """Mulliken weight ``|psi|^2`` of each state on each atom (both spins, all orbitals).

    Parameters
    ----------
    ham : TBHamiltonian
        The Hamiltonian the states belong to.
    k : array_like, shape (3,)
        Fractional k-point of the states.
    states : (dim,) or (dim, n_states) ndarray
        S-normalized states as columns (from ``ham.eigh``, ``ham.eigsh``, or
        :func:`ase_hamgnn.spectra.gap.find_gap` with ``states=True``).

    Returns
    -------
    ndarray
        (n_atoms,) for one state, else (n_atoms, n_states), float64; each column sums to 1.

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ham = ReferenceTB("nibri").predict(nibri((2, 2)))
    >>> e, c = ham.eigh((0, 0, 0))
    >>> w = atom_weights(ham, (0, 0, 0), c[:, 0])
    >>> w.shape, round(float(w.sum()), 10)
    ((12,), 1.0)
    """
    c, single = _columns(ham, states)
    q, _ = mulliken_charge_spin(ham, k, c)  # (n_orb, n_states), spatial orbitals
    orb_offsets = np.concatenate([[0], np.cumsum(np.diff(ham.offsets) // 2)])
    w = np.add.reduceat(q, orb_offsets[:-1], axis=0)
    return w[:, 0] if single else w


def atom_spin(ham: Any, k: Any, states: np.ndarray) -> np.ndarray:
    r"""Mulliken spin ``<sigma>`` of each state on each atom (all its orbitals).

    ``s_i = sum_{mu in i} Re[c_mu^dagger sigma (S(k) c)_mu]`` with the spinor ``c_mu`` of
    spatial orbital ``mu`` (the convention of :func:`atom_weights`, Pauli matrices in the spin
    index): summed over atoms it is the state's ``<sigma>`` (``c^dagger (S(k) ⊗ sigma) c``
    for the spin-diagonal overlap of a spin-independent basis), and for an orthogonal basis
    ``|s_i| <= w_i``, the atom's weight.  Dimensionless: a fully polarized state has
    ``|<sigma>| = 1`` (its spin moment is ``-g mu_B <sigma> / 2``; the package's moments
    follow ``<sigma>``, see :func:`ase_hamgnn.analysis.local_moments`).

    Parameters
    ----------
    ham : TBHamiltonian
        The Hamiltonian the states belong to (orthogonal or with overlap).
    k : array_like, shape (3,)
        Fractional k-point of the states.
    states : (dim,) or (dim, n_states) ndarray
        S-normalized states as columns, lattice gauge (from ``ham.eigh``,
        :func:`ase_hamgnn.spectra.gap.edge_states` or :func:`ase_hamgnn.spectra.gap.find_gap`).

    Returns
    -------
    ndarray
        (n_atoms, 3) for one state, else (n_states, n_atoms, 3), float64: Cartesian
        ``<sigma_x>, <sigma_y>, <sigma_z>`` per atom.

    Examples
    --------
    >>> import textures
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ham = ReferenceTB("nibri").predict(textures.ferromagnet(nibri((2, 2)), magnitude=2.0))
    >>> e, c = ham.eigh((0, 0, 0))
    >>> s = atom_spin(ham, (0, 0, 0), c[:, :40])  # 40 lowest states
    >>> s.shape, bool(s.sum(axis=0)[0, 2] > 0)  # Ni 0 polarized along +z
    ((40, 12, 3), True)
    """
    c, single = _columns(ham, states)
    counts = np.diff(ham.offsets) // 2
    owner = np.repeat(np.arange(len(counts)), counts)
    out = np.zeros((c.shape[1], len(counts), 3), dtype=np.float64)
    for a, axis in enumerate(np.eye(3)):
        _, m = mulliken_charge_spin(ham, k, c, np.broadcast_to(axis, (len(owner), 3)))
        np.add.at(out[:, :, a].T, owner, m)  # m: (n_orb, n_states)
    return out[0] if single else out


@dataclass(frozen=True, eq=False)
class OrbitalWeights:
    """Weight of states per atom, split by orbital groups (see :func:`atom_orbital_weights`).

    Attributes
    ----------
    labels : tuple of str
        Group names: ``('s', 'p', 'd')`` (by angular momentum, those present in the basis)
        or ``('Ni 4s', 'Ni 3d', ...)`` (by shell).
    weights : ndarray
        (n_atoms, n_groups) for one state, else (n_states, n_atoms, n_groups), float64:
        Mulliken weights; summed over groups they are :func:`atom_weights`, over groups and
        atoms 1 per state.
    by : str
        The grouping, ``'l'`` or ``'shell'``.
    """

    labels: tuple[str, ...]
    weights: np.ndarray
    by: str

    def get(self, label: str) -> np.ndarray:
        """Weights of group ``label`` per atom: (n_atoms,) or (n_states, n_atoms)."""
        if label not in self.labels:
            raise KeyError(f"no group {label!r}; groups are {list(self.labels)}")
        return self.weights[..., self.labels.index(label)].copy()

    @property
    def total(self) -> np.ndarray:
        """Weights summed over groups, the :func:`atom_weights` of the states (with the
        state axis first when there are several)."""
        return self.weights.sum(axis=-1)


def atom_orbital_weights(ham: Any, k: Any, states: np.ndarray, by: str = "l"
                         ) -> OrbitalWeights:
    """Mulliken weight of each state on each atom, split by orbital angular momentum.

    Parameters
    ----------
    ham : TBHamiltonian
        The Hamiltonian the states belong to (orthogonal or with overlap).
    k : array_like, shape (3,)
        Fractional k-point of the states.
    states : (dim,) or (dim, n_states) ndarray
        S-normalized states as columns, lattice gauge.
    by : ``'l'`` or ``'shell'``
        Groups: ``'s'``, ``'p'``, ``'d'``, ``'f'`` as present in the basis, or every
        element's shells (``'Ni 3d'``; an atom has weight only in its own element's).

    Returns
    -------
    OrbitalWeights
        ``labels`` and ``weights`` (n_atoms, n_groups), or (n_states, n_atoms, n_groups)
        for several states.

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ham = ReferenceTB("nibri").predict(nibri((2, 2)))
    >>> e, c = ham.eigh((0, 0, 0))
    >>> ow = atom_orbital_weights(ham, (0, 0, 0), c[:, 95])  # the VBM
    >>> ow.labels, ow.weights.shape, round(float(ow.weights.sum()), 10)
    (('s', 'p', 'd'), (12, 3), 1.0)
    """
    if by not in ("l", "shell"):
        raise ValueError(f"by must be 'l' or 'shell' (per-atom groups), got {by!r}")
    c, single = _columns(ham, states)
    labels, group = orbital_groups(ham, by)
    counts = np.diff(ham.offsets) // 2
    owner = np.repeat(np.arange(len(counts)), counts)
    q, _ = mulliken_charge_spin(ham, k, c)  # (n_orb, n_states)
    out = np.zeros((c.shape[1], len(counts), len(labels)), dtype=np.float64)
    np.add.at(out.transpose(1, 2, 0), (owner, group), q)
    return OrbitalWeights(labels=labels, weights=out[0] if single else out, by=by)


def _columns(ham: Any, states: np.ndarray) -> tuple[np.ndarray, bool]:
    """States as (dim, n_states) complex columns and whether one state (1-D) was given."""
    c = np.asarray(states, dtype=np.complex128)
    if c.ndim not in (1, 2):
        raise ValueError(f"states must be one state (dim,) or columns (dim, n_states), got "
                         f"shape {c.shape}")
    single = c.ndim == 1
    c = c[:, None] if single else c
    if c.shape[0] != ham.n_spin_orbitals:
        raise ValueError(f"states must have {ham.n_spin_orbitals} rows (spin-orbitals of this "
                         f"Hamiltonian), got {c.shape[0]}")
    return c, single


def _layer_xy(atoms: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """In-plane positions (Cartesian x, y; wrapped into the cell along periodic in-plane
    directions) and the 2D cell for a layer in the xy plane."""
    pos = np.asarray(atoms.get_positions(), dtype=np.float64)
    cell = np.asarray(atoms.cell, dtype=np.float64)
    lattice = cell[:2, :2] if bool(np.all(atoms.pbc[:2])) else None
    if lattice is None or abs(np.linalg.det(lattice)) < 1e-8:
        return pos[:, :2], None
    frac = pos[:, :2] @ np.linalg.inv(lattice)
    return (frac - np.floor(frac + 1e-9)) @ lattice, lattice


def plot_state_density(atoms: Any, weights: np.ndarray, ax: Axes | None = None, *,
                       species: Any = None, cmap: str = "viridis", size: float = 80.0,
                       colorbar: bool = True, title: str | None = None) -> Axes:
    """Scatter of a state's weight per atom over the atoms' in-plane positions.

    Each atom is a dot coloured by its weight and with area proportional to it (largest
    ``size`` points^2), on a layer in the xy plane (positions wrapped into the cell).

    Parameters
    ----------
    atoms : ase.Atoms, Geometry or TBHamiltonian
        The structure (a Hamiltonian's own geometry is used).
    weights : (n_atoms,) array_like
        Weights per atom, e.g. :func:`atom_weights` of one state.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; default a new figure (pyplot is not used).
    species : str or sequence of str, optional
        Only draw these elements (e.g. ``"Ni"``); default all atoms.
    cmap, size, colorbar, title
        Colormap, largest marker area, colour bar on/off, axes title.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ham = ReferenceTB("nibri").predict(nibri((3, 3)))
    >>> e, c = ham.eigh((0, 0, 0))
    >>> ax = plot_state_density(ham, atom_weights(ham, (0, 0, 0), c[:, 60]))
    >>> ax.figure.savefig("state.png")  # doctest: +SKIP
    """
    atoms = _as_atoms(atoms)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(atoms):
        raise ValueError(f"weights must have one value per atom ({len(atoms)}), got {len(w)}")
    xy, lattice = _layer_xy(atoms)
    keep = _species_mask(atoms, species)
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(6, 5), layout="constrained").add_subplot()
    wk = w[keep]
    top = max(float(np.abs(wk).max()), 1e-300)
    order = np.argsort(wk)  # heavy atoms drawn last, on top
    sc = ax.scatter(xy[keep][order, 0], xy[keep][order, 1], c=wk[order], cmap=cmap,
                    s=size * np.clip(wk[order], 0, None) / top + 1.0, vmin=0.0, vmax=top,
                    edgecolors="none")
    if lattice is not None:
        from matplotlib.patches import Polygon

        a1, a2 = lattice
        ax.add_patch(Polygon(np.array([[0, 0], a1, a1 + a2, a2]), closed=True, fill=False,
                             lw=1.2, ec="k"))
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    if title is not None:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(sc, ax=ax, label=r"$|\psi|^2$ per atom", shrink=0.8)
    return ax


def plot_state_spin(atoms: Any, weights: np.ndarray, spin: np.ndarray, ax: Axes | None = None,
                    *, species: Any = None, cmap: str = "coolwarm", colorbar: bool = True,
                    key: bool = True, title: str | None = None) -> Axes:
    r"""Map of a state's weight and spin per atom over the atoms' in-plane positions.

    Every atom is a disc whose area is proportional to its weight ``w_i`` (the heaviest atom
    fills about the distance between neighbours), coloured by the spin polarization along
    z on that atom, ``<sigma_z>_i / w_i`` from -1 to +1.  An arrow on it points along the
    in-plane spin ``(<sigma_x>_i, <sigma_y>_i)``; its length is the in-plane polarization
    ``|<sigma_xy>_i| / w_i`` times the disc's diameter (a little more), so arrows are long
    only where the atom is heavy and its spin lies in the plane (arrows shorter than 0.3
    neighbour distances are left out: they would read as specks).  This is the picture of
    :func:`textures.plot_texture` (same colours for the z component) for one electronic
    state.  A layer in the xy plane is assumed (positions wrapped into the cell, as in
    :func:`plot_state_density`).

    Parameters
    ----------
    atoms : ase.Atoms, Geometry or TBHamiltonian
        The structure.
    weights : (n_atoms,) array_like
        Weights per atom of the state, :func:`atom_weights`.
    spin : (n_atoms, 3) array_like
        Spin per atom of the state, :func:`atom_spin`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; default a new figure (pyplot is not used).
    species : str or sequence of str, optional
        Only draw these elements; default all atoms.
    cmap : str
        Colormap of ``<sigma_z>_i / w_i`` (diverging, limits -1 and +1).
    colorbar : bool
        Add a colour bar.
    key : bool
        Give the scale (the heaviest atom's weight) in the x label.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import textures
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> atoms = textures.antiskyrmion(nibri((6, 6)), radius=5.0, magnetic=("Ni",))
    >>> ham = ReferenceTB("nibri").predict(atoms)
    >>> e, c = ham.eigh((0, 0, 0))
    >>> vbm = c[:, 431]
    >>> ax = plot_state_spin(atoms, atom_weights(ham, (0, 0, 0), vbm),
    ...                      atom_spin(ham, (0, 0, 0), vbm), title="VBM")
    >>> ax.figure.savefig("vbm-spin.png")  # doctest: +SKIP
    """
    from matplotlib.collections import EllipseCollection
    from matplotlib.patches import Polygon

    atoms = _as_atoms(atoms)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    sv = np.asarray(spin, dtype=np.float64)
    if len(w) != len(atoms):
        raise ValueError(f"weights must have one value per atom ({len(atoms)}), got {len(w)}")
    if sv.shape != (len(atoms), 3):
        raise ValueError(f"spin must have shape ({len(atoms)}, 3) (<sigma> per atom, e.g. "
                         f"atom_spin of one state), got {sv.shape}")
    xy, lattice = _layer_xy(atoms)
    keep = _species_mask(atoms, species)
    xy, w, sv = xy[keep], w[keep], sv[keep]
    if ax is None:
        from matplotlib.figure import Figure

        span = np.ptp(xy, axis=0) + 1.0
        height = float(np.clip(4.8 * span[1] / span[0] + 1.3, 3.2, 7.0))
        ax = Figure(figsize=(6.4, height), layout="constrained").add_subplot()
    spacing = _site_spacing(xy, lattice)
    top = max(float(w.max()), 1e-300)
    frac = np.clip(w, 0.0, None) / top
    heavy = w > 1e-9 * top
    pz = np.zeros(len(w))
    pz[heavy] = np.clip(sv[heavy, 2] / w[heavy], -1.0, 1.0)
    order = np.argsort(w)  # heavy atoms drawn last, on top
    # every drawn site as a faint dot, so that light atoms still show the lattice
    ax.scatter(xy[:, 0], xy[:, 1], s=1.0, c="0.75", edgecolors="none", zorder=0)
    diameter = 0.95 * spacing * np.sqrt(frac[order])
    discs = EllipseCollection(diameter, diameter, np.zeros(len(order)), units="xy",
                              offsets=xy[order], offset_transform=ax.transData, cmap=cmap,
                              edgecolors="none", zorder=1)
    discs.set_array(pz[order])
    discs.set_clim(-1.0, 1.0)
    ax.add_collection(discs)
    # arrow: in-plane polarization <sigma_xy>_i / w_i, drawn as long as the disc is wide
    pxy = np.zeros((len(w), 2))
    pxy[heavy] = sv[heavy, :2] / w[heavy, None]
    pxy /= np.maximum(1.0, np.linalg.norm(pxy, axis=1))[:, None]
    uv = 1.25 * spacing * np.sqrt(frac)[:, None] * pxy
    shown = order[np.linalg.norm(uv[order], axis=1) > 0.3 * spacing]  # no specks
    ax.quiver(xy[shown, 0], xy[shown, 1], uv[shown, 0], uv[shown, 1],
              pz[shown], cmap=cmap, clim=(-1.0, 1.0), angles="xy", scale_units="xy",
              scale=1.0, units="xy", width=0.09 * spacing, headwidth=3.2, headlength=3.2,
              headaxislength=2.8, minlength=0.0, pivot="middle", edgecolor="k",
              linewidth=0.35, zorder=2)
    extent = xy
    if lattice is not None:
        a1, a2 = lattice
        corners = np.array([[0, 0], a1, a1 + a2, a2])
        ax.add_patch(Polygon(corners, closed=True, fill=False, lw=1.2, ec="k", zorder=3))
        extent = np.vstack([xy, corners])
    pad = 0.7 * spacing
    ax.set_xlim(extent[:, 0].min() - pad, extent[:, 0].max() + pad)
    ax.set_ylim(extent[:, 1].min() - pad, extent[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"x (Å);  largest disc: $w_i$ = {top:.3g}" if key else "x (Å)")
    ax.set_ylabel("y (Å)")
    if title is not None:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(discs, ax=ax, shrink=0.8, label=_SPIN_LABEL)
    return ax


def plot_state_on_texture(atoms: Any, weights: np.ndarray, *, title: str = "VBM density",
                          species: Any = None, magnetic: Any = None,
                          cmap: str = "viridis") -> Figure:
    """Two panels: the magnetic texture (left, :func:`textures.plot_texture`) and a state's
    weight per atom (right, :func:`plot_state_density`), as in the localized-VBM maps of
    skyrmion supercells.

    Parameters
    ----------
    atoms : ase.Atoms, Geometry or TBHamiltonian
        The textured structure (moments from ``initial_magmoms``).
    weights : (n_atoms,) array_like
        Weights per atom of the state, e.g. ``atom_weights(ham, gap.k_vbm, gap.vbm_state)``.
    title : str
        Title of the right panel.
    species, magnetic
        Elements drawn in the density panel (default all) and the magnetic species of the
        texture panel (default: transition metals present).
    cmap : str
        Colormap of the density.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import textures
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> from ase_hamgnn.spectra.gap import find_gap
    >>> ref = ReferenceTB("nibri")
    >>> atoms = textures.antiskyrmion(nibri((4, 4)), radius=4.0, magnetic=("Ni",))
    >>> ham = ref.predict(atoms)
    >>> g = find_gap(ham, ref.n_electrons(atoms), states=True)
    >>> fig = plot_state_on_texture(atoms, atom_weights(ham, g.k_vbm, g.vbm_state))
    >>> fig.savefig("vbm.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    import textures

    atoms = _as_atoms(atoms)
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    textures.plot_texture(atoms, ax=left, magnetic=magnetic, title="texture")
    plot_state_density(atoms, weights, ax=right, species=species, cmap=cmap, title=title)
    return fig


def plot_edge_state_maps(atoms: Any, ham: Any, k: Any, states: np.ndarray,
                         labels: Sequence[str] = ("VBM", "CBM"), *,
                         regions: Mapping[str, Any] | None = None, magnetic: Any = None,
                         species: Any = None, title: str | None = None) -> Figure:
    """Texture, spin maps of band-edge states and their orbital character, in one figure.

    Panels, left to right: the magnetic texture (:func:`textures.plot_texture`); for every
    state its weight and spin per atom (:func:`plot_state_spin`, energy in the title); and
    the orbital character: for every state and region (default: every element) a bar of its
    weight there, stacked by angular momentum (s, p, d, ... as in the basis), so that the
    bars of one state add up to 1.

    Parameters
    ----------
    atoms : ase.Atoms, Geometry or TBHamiltonian
        The textured structure (moments from ``initial_magmoms``).
    ham : TBHamiltonian
        The Hamiltonian of the states (orthogonal or with overlap).
    k : array_like, shape (3,) or (n_states, 3)
        Fractional k-point of all states, or one per state (e.g. ``(gap.k_vbm, gap.k_cbm)``
        of :func:`ase_hamgnn.spectra.gap.find_gap`).
    states : (dim, n_states) ndarray
        S-normalized states as columns, lattice gauge, one per label (e.g. the VBM and CBM
        columns of :func:`ase_hamgnn.spectra.gap.edge_states` with ``vectors=True``).
    labels : sequence of str
        Names of the states.
    regions : mapping of str to (n_atoms,) bool array_like, optional
        Named sets of atoms for the orbital-character bars, e.g. ``{"core": near, "rest":
        ~near}``; default one per element.  Weight outside all regions is not drawn.
    magnetic : str or sequence of str, optional
        Magnetic species of the texture panel (default: transition metals present).
    species : str or sequence of str, optional
        Elements drawn in the spin maps (default all).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import textures
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> from ase_hamgnn.spectra.gap import edge_states
    >>> ref = ReferenceTB("nibri")
    >>> atoms = textures.antiskyrmion(nibri((8, 8)), radius=6.0, magnetic=("Ni",))
    >>> ham = ref.predict(atoms)
    >>> es = edge_states(ham, ref.n_electrons(atoms), n_below=1, n_above=1, vectors=True)
    >>> fig = plot_edge_state_maps(atoms, ham, es.k, es.states)
    >>> fig.savefig("edge-states.png")  # doctest: +SKIP
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    import textures

    atoms = _as_atoms(atoms)
    if len(atoms) != len(ham.geometry.numbers):
        raise ValueError(f"atoms ({len(atoms)}) and ham ({len(ham.geometry.numbers)} atoms) "
                         "must describe the same structure")
    c, _ = _columns(ham, states)
    labels = tuple(str(lbl) for lbl in labels)
    if c.shape[1] != len(labels):
        raise ValueError(f"{c.shape[1]} states but {len(labels)} labels: give one label per "
                         "column of states")
    kk = np.asarray(k, dtype=np.float64)
    if kk.shape == (3,):
        kk = np.broadcast_to(kk, (len(labels), 3))
    elif kk.shape != (len(labels), 3):
        raise ValueError(f"k must be one k-point (3,) or one per state ({len(labels)}, 3), "
                         f"got shape {kk.shape}")
    if regions is None:
        symbols = np.array(atoms.get_chemical_symbols())
        names = list(dict.fromkeys(symbols.tolist()))
        masks = [symbols == el for el in names]
    else:
        names = [str(name) for name in regions]
        masks = [np.asarray(m, dtype=bool).reshape(-1) for m in regions.values()]
        for name, m in zip(names, masks, strict=True):
            if m.shape != (len(atoms),):
                raise ValueError(f"region {name!r} must be a boolean mask over the "
                                 f"{len(atoms)} atoms, got shape {m.shape}")
    if not names:
        raise ValueError("regions is empty: give at least one named set of atoms")

    xy, _ = _layer_xy(atoms)
    span = np.ptp(xy, axis=0) + 1.0
    panel = float(np.clip(4.6 * np.sqrt(span[0] / 60.0), 4.6, 8.0))  # inches per map
    height = float(np.clip(0.85 * panel * span[1] / span[0] + 1.6, 3.8, 6.0))
    bars = 0.8 + 0.5 * len(names) * len(labels)  # inches for the orbital-character bars
    fig = Figure(figsize=(panel * (len(labels) + 1) + bars + 1.5, height),
                 layout="constrained")
    axes = fig.subplots(1, len(labels) + 2, width_ratios=[panel] * (len(labels) + 1) + [bars])
    textures.plot_texture(atoms, ax=axes[0], magnetic=magnetic, title="texture")
    character = []
    for i, (lbl, ax) in enumerate(zip(labels, axes[1:-1], strict=True)):
        col = c[:, i]
        energy = float(np.real(np.vdot(col, ham.hk(kk[i]) @ col)
                               / np.vdot(col, ham.sk(kk[i]) @ col)))
        where = "" if np.allclose(kk[i], 0.0) else f", k = {np.round(kk[i], 3).tolist()}"
        plot_state_spin(atoms, atom_weights(ham, kk[i], col), atom_spin(ham, kk[i], col),
                        ax=ax, species=species, colorbar=False,
                        title=f"{lbl}: E = {energy:.3f} eV{where}")
        ow = atom_orbital_weights(ham, kk[i], col)
        character.append(np.array([ow.weights[m].sum(axis=0) for m in masks]))
    fig.colorbar(ScalarMappable(Normalize(-1.0, 1.0), "coolwarm"), ax=list(axes[1:-1]),
                 shrink=0.8, label=_SPIN_LABEL)
    _plot_character(axes[-1], np.array(character), ow.labels, labels, names)
    if title is not None:
        fig.suptitle(title)
    return fig


def _plot_character(ax: Axes, character: np.ndarray, l_labels: Sequence[str],
                    state_labels: Sequence[str], regions: Sequence[str]) -> None:
    """Stacked bars: ``character`` (n_states, n_regions, n_l) weights, one group of bars
    (one per region) for every state, stacked by angular momentum."""
    n_states, n_regions, _ = character.shape
    width = 0.8
    step = n_regions + 0.8  # bars of one state side by side, a gap between states
    x = np.arange(n_states)[:, None] * step + np.arange(n_regions)[None, :]
    bottom = np.zeros((n_states, n_regions))
    for g, lbl in enumerate(l_labels):
        part = character[:, :, g]
        ax.bar(x.ravel(), part.ravel(), width, bottom=bottom.ravel(),
               color=_L_COLOURS.get(lbl, f"C{g}"), edgecolor="white", linewidth=0.5,
               label=lbl)
        bottom += np.clip(part, 0.0, None)
    long = max(len(r) for r in regions) > 3
    ax.set_xticks(x.ravel(), [r for _ in range(n_states) for r in regions],
                  rotation=35 if long else 0, ha="right" if long else "center",
                  rotation_mode="anchor")
    top = max(1.0, float(bottom.max()))
    for i, lbl in enumerate(state_labels):  # state names over their group of bars
        ax.text(x[i].mean(), 1.03 * top, lbl, ha="center", va="bottom", fontweight="bold")
    ax.set_ylim(0.0, 1.12 * top)
    ax.set_xlim(x.min() - 0.7, x.max() + 0.7)
    ax.set_ylabel("Mulliken weight of the state")
    ax.set_title("orbital character", pad=14)
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0),
              title="orbitals", title_fontsize="small", handlelength=1.2)
    ax.spines[["top", "right"]].set_visible(False)


def _species_mask(atoms: Any, species: Any) -> np.ndarray:
    """Boolean mask of the atoms of the given elements (all atoms for ``None``)."""
    if species is None:
        return np.ones(len(atoms), dtype=bool)
    wanted = {species} if isinstance(species, str) else set(species)
    symbols = np.array(atoms.get_chemical_symbols())
    unknown = wanted - set(symbols.tolist())
    if unknown:
        raise ValueError(f"species {sorted(unknown)} not in these atoms "
                         f"({sorted(set(symbols.tolist()))})")
    return np.isin(symbols, sorted(wanted))


def _site_spacing(xy: np.ndarray, lattice: np.ndarray | None) -> float:
    """Typical distance (Å) between neighbouring drawn sites: the side of the in-plane area
    per site for a periodic layer, else the median nearest-neighbour distance."""
    if lattice is not None:
        return float(np.sqrt(abs(np.linalg.det(lattice)) / len(xy)) * 1.07)
    if len(xy) < 2:
        return 1.0
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    d[d == 0] = np.inf
    return float(np.median(d.min(axis=1)))


def _as_atoms(obj: Any):
    if hasattr(obj, "get_positions"):
        return obj
    if hasattr(obj, "to_atoms"):  # Geometry or TBHamiltonian
        return obj.to_atoms()
    raise TypeError(f"expected ase.Atoms, Geometry or TBHamiltonian, got {type(obj).__name__}")
