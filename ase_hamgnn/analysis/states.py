"""Real-space pictures of single states: weight per atom and maps over the atoms.

The weight of a state ``c`` (an S-normalized column of ``H(k) c = E S(k) c``) on atom ``i``
is its Mulliken population summed over the atom's orbitals and both spins,
``w_i = sum_{mu in i} Re[conj(c_mu) (S(k) c)_mu]`` (``|c_mu|^2`` for an orthogonal basis):
the weights of a state sum to 1 (individual ones may be slightly negative for a strongly
non-orthogonal basis).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ase_hamgnn.analysis.dos import mulliken_charge_spin

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["atom_weights", "plot_state_density", "plot_state_on_texture"]


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
        :func:`ase_hamgnn.gap.find_gap` with ``states=True``).

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
    c = np.asarray(states, dtype=np.complex128)
    single = c.ndim == 1
    c = c[:, None] if single else c
    if c.shape[0] != ham.n_spin_orbitals:
        raise ValueError(f"states must have {ham.n_spin_orbitals} rows (spin-orbitals of this "
                         f"Hamiltonian), got {c.shape[0]}")
    q, _ = mulliken_charge_spin(ham, k, c)  # (n_orb, n_states), spatial orbitals
    orb_offsets = np.concatenate([[0], np.cumsum(np.diff(ham.offsets) // 2)])
    w = np.add.reduceat(q, orb_offsets[:-1], axis=0)
    return w[:, 0] if single else w


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
    keep = np.ones(len(atoms), dtype=bool)
    if species is not None:
        wanted = {species} if isinstance(species, str) else set(species)
        symbols = np.array(atoms.get_chemical_symbols())
        unknown = wanted - set(symbols.tolist())
        if unknown:
            raise ValueError(f"species {sorted(unknown)} not in these atoms "
                             f"({sorted(set(symbols.tolist()))})")
        keep = np.isin(symbols, sorted(wanted))
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
    >>> from ase_hamgnn.gap import find_gap
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


def _as_atoms(obj: Any):
    if hasattr(obj, "get_positions"):
        return obj
    if hasattr(obj, "to_atoms"):  # Geometry or TBHamiltonian
        return obj.to_atoms()
    raise TypeError(f"expected ase.Atoms, Geometry or TBHamiltonian, got {type(obj).__name__}")
