"""Band unfolding of a supercell Hamiltonian onto the primitive Brillouin zone.

Spectral weights follow Ku, Berlijn and Lee, Phys. Rev. Lett. 104, 216401 (2010): the weight
of the supercell eigenstate ``|K J>`` at the primitive wave vector ``k`` (``K = k`` folded into
the supercell zone) is its projection on the primitive Bloch orbitals at ``k``,

    W_J(k) = (1 / N_L) sum_n | sum_{I -> n} c_IJ exp(-2 pi i k . r_I) |^2,

where ``N_L = |det M|`` is the number of primitive cells in the supercell, ``I -> n`` runs over
the supercell spin-orbitals that are copies of primitive spin-orbital ``n``, ``r_I`` is the
primitive lattice translation (integer, primitive lattice coordinates) of the supercell atom
and ``c`` is the supercell eigenvector in the lattice-vector gauge at ``K = M k`` (fractional
supercell coordinates).  With an overlap matrix the squared modulus becomes the Mulliken form
``Re[conj(A_n) (B_n)]`` with ``B`` built from ``S(K) c``.  Sum rules: summed over the
``N_L`` primitive k that fold onto one ``K``, the weights of a state add to 1; summed over all
states at one ``k`` they add to the number of primitive spin-orbitals.

For an undistorted supercell with the same moments in every cell the weights are exactly 0 or
1 and the weighted bands are the primitive bands; a texture (spiral, skyrmion) spreads weight
over shadow bands.  Atomic displacements only enter through the nearest-site assignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ase_hamgnn.geometry import Geometry
from ase_hamgnn.spectra.dense import broaden, progress_bar
from ase_hamgnn.spectra.projections import axis_vector, mulliken_charge_spin, orbital_axes

__all__ = ["UnfoldedBands", "UnfoldingMap", "unfold"]


def _as_geometry(obj: Any) -> Geometry:
    if isinstance(obj, Geometry):
        return obj
    if hasattr(obj, "geometry") and isinstance(obj.geometry, Geometry):  # a TBHamiltonian
        return obj.geometry
    return Geometry(obj.cell.array, obj.positions, obj.numbers, obj.pbc,
                    np.zeros((len(obj), 3)))


@dataclass(frozen=True, eq=False)
class UnfoldingMap:
    """Which primitive atom and primitive lattice translation each supercell atom is.

    The supercell lattice vectors (rows) are ``supercell_matrix @ primitive_cell``, and
    supercell atom ``I`` sits at (or, when displaced, near)
    ``primitive position[primitive_index[I]] + translations[I] @ primitive_cell``.

    Attributes
    ----------
    primitive_cell : (3, 3) primitive lattice vectors as rows, Å.
    primitive_numbers : (N_p,) atomic numbers of the primitive atoms.
    supercell_matrix : (3, 3) integer matrix ``M``.
    primitive_index : (N_sc,) primitive atom of each supercell atom.
    translations : (N_sc, 3) integer primitive lattice translation of each supercell atom.

    Raises
    ------
    ValueError
        If the shapes do not agree, ``M`` is singular, or two supercell atoms are the same
        primitive site (after reducing the translations modulo the supercell lattice).
    """

    primitive_cell: np.ndarray
    primitive_numbers: np.ndarray
    supercell_matrix: np.ndarray
    primitive_index: np.ndarray
    translations: np.ndarray

    def __post_init__(self) -> None:
        cell = np.array(self.primitive_cell, dtype=np.float64).reshape(3, 3)
        nums = np.array(self.primitive_numbers, dtype=np.int64).reshape(-1)
        m_float = np.asarray(self.supercell_matrix, dtype=np.float64).reshape(3, 3)
        m = np.rint(m_float).astype(np.int64)
        if not np.allclose(m, m_float, atol=1e-8):
            raise ValueError(f"supercell_matrix must be integer, got {m_float.tolist()}")
        n_cells = int(round(abs(np.linalg.det(m))))
        if n_cells == 0:
            raise ValueError(f"supercell_matrix {m.tolist()} is singular")
        idx = np.array(self.primitive_index, dtype=np.int64).reshape(-1)
        tr = np.array(self.translations, dtype=np.int64).reshape(-1, 3)
        if len(idx) != len(tr):
            raise ValueError(
                f"primitive_index ({len(idx)}) and translations ({len(tr)}) need one row per "
                "supercell atom"
            )
        if len(idx) != n_cells * len(nums):
            raise ValueError(
                f"the supercell has {len(idx)} atoms, but |det M| = {n_cells} copies of "
                f"{len(nums)} primitive atoms make {n_cells * len(nums)}"
            )
        if len(idx) and (idx.min() < 0 or idx.max() >= len(nums)):
            raise ValueError("primitive_index names a primitive atom out of range")
        # translations reduced into the supercell: every (atom, reduced translation) once
        frac = tr @ np.linalg.inv(m)
        reduced = np.rint((frac - np.floor(frac + 1e-9)) @ m).astype(np.int64)
        keys = np.concatenate([idx[:, None], reduced], axis=1)
        if len(np.unique(keys, axis=0)) != len(keys):
            raise ValueError(
                "two supercell atoms are the same primitive site; the supercell is not "
                "supercell_matrix copies of the primitive cell (check the matrix and positions)"
            )
        for name, arr in (("primitive_cell", cell), ("primitive_numbers", nums),
                          ("supercell_matrix", m), ("primitive_index", idx),
                          ("translations", tr)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def n_cells(self) -> int:
        """Number of primitive cells in the supercell, ``|det M|``."""
        return int(round(abs(np.linalg.det(self.supercell_matrix))))

    @classmethod
    def from_structures(cls, primitive: Any, supercell: Any,
                        supercell_matrix: Any = None, tol: float = 0.5) -> UnfoldingMap:
        """Build the map by matching every supercell atom to the nearest primitive site.

        Parameters
        ----------
        primitive : ase.Atoms or Geometry
            The primitive cell.
        supercell : ase.Atoms, Geometry or TBHamiltonian
            The supercell (e.g. ``ham.geometry`` of ``ham.tile(...)`` or of a textured cell),
            atoms possibly displaced.
        supercell_matrix : (3, 3) ints, optional
            ``M`` with ``supercell.cell = M @ primitive.cell``; inferred from the cells if
            omitted.
        tol : float
            Largest distance in Å between a supercell atom and its primitive site.

        Raises
        ------
        ValueError
            If the cells are not related by an integer matrix, or an atom is farther than
            ``tol`` from every primitive site of its element.
        """
        prim, sc = _as_geometry(primitive), _as_geometry(supercell)
        a_p = prim.cell
        if abs(np.linalg.det(a_p)) < 1e-10:
            raise ValueError("the primitive cell must have three non-zero, independent vectors "
                             "(give non-periodic directions a vacuum length)")
        m_float = sc.cell @ np.linalg.inv(a_p)
        if supercell_matrix is None:
            m = np.rint(m_float)
            if not np.allclose(m, m_float, atol=1e-5):
                raise ValueError(
                    "the supercell cell is not an integer matrix times the primitive cell "
                    f"(M = {np.round(m_float, 4).tolist()}); pass supercell_matrix or fix the "
                    "cells"
                )
        else:
            m = np.asarray(supercell_matrix, dtype=np.float64).reshape(3, 3)
            if not np.allclose(m @ a_p, sc.cell, atol=1e-4):
                raise ValueError(
                    f"supercell.cell differs from supercell_matrix @ primitive.cell by "
                    f"{np.abs(m @ a_p - sc.cell).max():.2e} Å"
                )
        periodic = prim.pbc.astype(np.float64)
        f_sc = sc.positions @ np.linalg.inv(a_p)
        f_p = prim.positions @ np.linalg.inv(a_p)
        diff = f_sc[:, None, :] - f_p[None, :, :]            # (N_sc, N_p, 3)
        shift = np.rint(diff) * periodic
        dist = np.linalg.norm((diff - shift) @ a_p, axis=2)  # Å
        dist[sc.numbers[:, None] != prim.numbers[None, :]] = np.inf
        best = np.argmin(dist, axis=1) if len(prim) else np.zeros(len(sc), dtype=np.int64)
        d_best = dist[np.arange(len(sc)), best]
        far = np.flatnonzero(d_best > tol)
        if far.size:
            i = int(far[0])
            raise ValueError(
                f"supercell atom {i} (Z={int(sc.numbers[i])}) is {d_best[i]:.3f} Å from the "
                f"nearest primitive site of its element (tol = {tol} Å); the supercell does not "
                "match the primitive cell (or raise tol for large displacements)"
            )
        tr = shift[np.arange(len(sc)), best].astype(np.int64)
        return cls(a_p, prim.numbers, m, best, tr)

    def folded(self, kpts: Any) -> np.ndarray:
        """Supercell k-points ``K = M k`` (fractional, reduced into [0, 1)) of the primitive
        k-points ``kpts`` (n_k, 3); rounded to 1e-9, so that k-points that fold onto the same
        ``K`` compare equal."""
        k = np.asarray(kpts, dtype=np.float64).reshape(-1, 3)
        big = k @ self.supercell_matrix.T.astype(np.float64)
        red = np.round(big - np.floor(big), 9)
        return np.where(red >= 1.0, 0.0, red) + 0.0

    def commensurate_path(self, path: Any) -> Any:
        """The primitive k-points on ``path`` (an ASE ``BandPath`` of the primitive cell:
        its special points and segments are used, not its k-points) that fold onto the
        supercell's Γ, plus the special points themselves: the k-points a periodic supercell
        resolves.  :func:`~ase_hamgnn.analysis.unfolded_spectral_function` with
        ``shared_vectors`` computes all of those that fold onto Γ with one recursion.

        Returns
        -------
        ase.dft.kpoints.BandPath
            Same cell, special points and path string; the k-points in path order.

        Examples
        --------
        >>> from ase_hamgnn.data import nibri
        >>> from ase_hamgnn.analysis import UnfoldingMap
        >>> prim = nibri()
        >>> umap = UnfoldingMap.from_structures(prim, prim.repeat((4, 4, 1)))
        >>> bp = umap.commensurate_path(prim.cell.bandpath("MGK", npoints=0, pbc=prim.pbc))
        >>> len(bp.kpts)   # M-Γ: 0.5, 0.25, 0; Γ-K: 0.25 (1, 1), then K itself
        5
        """
        from ase.dft.kpoints import BandPath

        m = self.supercell_matrix.astype(np.float64)
        special = {name: np.asarray(v, dtype=np.float64) for name, v in
                   path.special_points.items()}
        out: list[np.ndarray] = []
        for segment in _path_segments(path.path):
            for a, b in zip(segment[:-1], segment[1:], strict=False):
                ka, kb = special[a], special[b]
                ma, md = m @ ka, m @ (kb - ka)
                axis = int(np.argmax(np.abs(md)))
                ts = [0.0]
                if abs(md[axis]) > 1e-12:
                    lo, hi = sorted((ma[axis], ma[axis] + md[axis]))
                    for j in range(int(np.ceil(lo - 1e-9)), int(np.floor(hi + 1e-9)) + 1):
                        t = (j - ma[axis]) / md[axis]
                        if 1e-9 < t < 1 - 1e-9 and np.allclose(
                                ma + t * md, np.rint(ma + t * md), atol=1e-7):
                            ts.append(t)
                ts.append(1.0)
                for t in sorted(ts):
                    k = ka + t * (kb - ka)
                    if not out or not np.allclose(out[-1], k, atol=1e-12):
                        out.append(k)
        return BandPath(path.cell, kpts=np.array(out), special_points=path.special_points,
                        path=path.path)

    def spin_orbital_map(self, ham) -> tuple[np.ndarray, np.ndarray]:
        """For every spin-orbital of the supercell Hamiltonian ``ham``: the primitive
        spin-orbital it copies, and the row of :attr:`translations` (its atom)."""
        numbers = ham.geometry.numbers
        if len(numbers) != len(self.primitive_index):
            raise ValueError(
                f"the Hamiltonian has {len(numbers)} atoms, the map {len(self.primitive_index)}"
            )
        if not np.array_equal(numbers, self.primitive_numbers[self.primitive_index]):
            raise ValueError("the Hamiltonian's elements do not match the primitive atoms of "
                             "the map; build the map from this supercell")
        p_off = ham.basis.spin_orbital_offsets(self.primitive_numbers)
        sc_off = ham.offsets
        counts = np.diff(sc_off)
        atom = np.repeat(np.arange(len(numbers)), counts)
        local = np.arange(sc_off[-1]) - sc_off[atom]
        return p_off[self.primitive_index[atom]] + local, atom

    def bloch_projector(self, ham, k: Any) -> sp.csr_matrix:
        """Primitive Bloch orbitals at primitive ``k`` in the supercell Hamiltonian ``ham``.

        Row ``n`` (a primitive spin-orbital) holds ``exp(-2 pi i k . r_I)`` at every supercell
        spin-orbital ``I`` that copies ``n`` (``r_I`` the primitive translation of its atom),
        zero elsewhere: ``(P @ c)[n] / sqrt(n_cells)`` is the projection of the supercell state
        ``c`` (lattice-vector gauge, at ``K = M k``) on the normalized Bloch orbital
        ``|k, n>``, whose coefficients are row ``n`` of ``P.conj() / sqrt(n_cells)``.

        Returns
        -------
        scipy.sparse.csr_matrix, (n_primitive_spin_orbitals, n_supercell_spin_orbitals)
        """
        cell_sc = self.supercell_matrix @ self.primitive_cell
        if not np.allclose(cell_sc, ham.geometry.cell, atol=1e-4):
            raise ValueError("the Hamiltonian's cell is not supercell_matrix @ primitive_cell; "
                             "build the map from this supercell")
        p_of, atom_of = self.spin_orbital_map(ham)
        n_prim = int(ham.basis.spin_orbital_offsets(self.primitive_numbers)[-1])
        r_of = self.translations[atom_of].astype(np.float64)  # (n_so, 3)
        phase = np.exp(-2j * np.pi * (r_of @ np.asarray(k, dtype=np.float64).reshape(3)))
        return sp.csr_matrix((phase, (p_of, np.arange(len(p_of)))), shape=(n_prim, len(p_of)))


def _path_segments(path: str) -> list[list[str]]:
    """ASE path string (``"GXMG,Z"``, names like ``"K1"``) -> lists of special-point
    names, one per continuous segment."""
    import re

    return [re.findall(r"[A-Z][a-z0-9']*", part) for part in path.split(",") if part]


@dataclass(frozen=True, eq=False)
class UnfoldedBands:
    """Supercell states along primitive k-points with their unfolding weights.

    Attributes
    ----------
    kpts : (n_k, 3) fractional k-points of the primitive cell.
    energies : (n_k, n_states) supercell eigenvalues at the folded ``K``, eV.
    weights : (n_k, n_states) spectral weights in [0, 1] (Mulliken form may dip below 0).
    spin : (n_k, n_states, 3) ``<sigma>`` of each state, or ``None``.
    local_spin : (n_k, n_states) Mulliken spin of each state along the local moments
        (majority > 0; see :func:`ase_hamgnn.analysis.local_axes`), or ``None``.
    path : the primitive ``BandPath`` it was computed on, or ``None``.
    """

    kpts: np.ndarray
    energies: np.ndarray
    weights: np.ndarray
    spin: np.ndarray | None = None
    local_spin: np.ndarray | None = None
    path: Any = None

    def spectral_function(self, energies: Any, width: float = 0.05,
                          kind: str = "gaussian") -> np.ndarray:
        """Unfolded spectral function ``A(k, E) = sum_J W_J(k) delta(E - E_J)``, shape
        (n_k, n_E), in states per eV and primitive cell."""
        e = np.asarray(energies, dtype=np.float64).reshape(-1)
        if width <= 0:
            raise ValueError(f"width must be positive (eV), got {width}")
        return np.array([broaden(self.energies[i:i + 1], np.ones(1), e, width, kind,
                                 projections=self.weights[i:i + 1])
                         for i in range(len(self.kpts))])

    def _xaxis(self):
        if self.path is not None:
            return self.path.get_linear_kpoint_axis()
        x = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(self.kpts, axis=0),
                                                            axis=1))])
        return x, [], []

    def plot(self, ax=None, mode: str = "markers", reference: float = 0.0,
             emin: float | None = None, emax: float | None = None, size: float = 12.0,
             color: str = "C0", axis: Any = None, min_weight: float = 0.02,
             width: float = 0.05, n_energies: int = 400, cmap: str | None = None):
        """Effective band structure.  Returns the matplotlib Axes.

        Parameters
        ----------
        mode : ``'markers'`` (marker area and opacity proportional to the weight) or
            ``'image'`` (the broadened spectral function as a colour map).
        reference : energy in eV subtracted from the axis (e.g. the Fermi level).
        emin, emax : energy window in eV relative to ``reference``.
        size : marker area (points^2) of a state of weight 1.
        color : marker colour without spin colouring.
        axis : colour markers by ``<sigma>`` along ``'x'``, ``'y'``, ``'z'``, a 3-vector, or
            ``'local'`` (along each atom's moment: majority red, minority blue).
        min_weight : states with smaller weight are not drawn (markers).
        width, n_energies : broadening (eV) and energy points of the image.
        cmap : colour map (default ``'coolwarm'`` for spin, ``'Greys'`` for the image).
        """
        import matplotlib.pyplot as plt
        from matplotlib.colors import to_rgba

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
        x, xticks, labels = self._xaxis()
        e = self.energies - reference
        lo = e.min() if emin is None else emin
        hi = e.max() if emax is None else emax
        if mode == "markers":
            w = np.clip(self.weights, 0.0, 1.0)
            sel = w >= min_weight
            xx = np.broadcast_to(x[:, None], e.shape)[sel]
            if axis is not None:
                if self.spin is None:
                    raise ValueError("these bands carry no spin; unfold with spin=True")
                if isinstance(axis, str) and axis == "local":
                    if self.local_spin is None:
                        raise ValueError("these bands carry no local spin (no moments)")
                    values = self.local_spin[sel]
                else:
                    values = (self.spin @ axis_vector(axis))[sel]
                sc = ax.scatter(xx, e[sel], s=size * w[sel], c=values, cmap=cmap or "coolwarm",
                                vmin=-1, vmax=1, alpha=None, lw=0)
                name = axis if isinstance(axis, str) else "n"
                label = (r"$\langle\sigma\rangle$ along local moment" if name == "local"
                         else rf"$\langle\sigma_{{{name}}}\rangle$")
                ax.figure.colorbar(sc, ax=ax, label=label)
            else:
                rgba = np.tile(to_rgba(color), (sel.sum(), 1))
                rgba[:, 3] = 0.15 + 0.85 * w[sel]
                ax.scatter(xx, e[sel], s=size * w[sel], c=rgba, lw=0)
        elif mode == "image":
            grid = np.linspace(lo, hi, int(n_energies))
            spec = self.spectral_function(grid + reference, width)
            mesh = ax.pcolormesh(x, grid, spec.T, shading="gouraud", cmap=cmap or "Greys",
                                 vmin=0.0, vmax=np.percentile(spec, 99.5) or None)
            ax.figure.colorbar(mesh, ax=ax, label="A(k, E) (1/eV)")
        else:
            raise ValueError(f"mode must be 'markers' or 'image', got {mode!r}")
        for xt in xticks:
            ax.axvline(xt, color="k", lw=0.5)
        ax.set_xticks(xticks)
        ax.set_xticklabels([lbl.replace("G", r"$\Gamma$") for lbl in labels])
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(lo, hi)
        ax.set_ylabel("E - E_F (eV)" if reference else "E (eV)")
        return ax


def unfold(ham, mapping: UnfoldingMap, kpts: Any, *, spin: bool = True,
           n: int | None = None, sigma: float | None = None,
           progress: bool | None = None) -> UnfoldedBands:
    """Unfold the bands of supercell Hamiltonian ``ham`` onto primitive k-points.

    Parameters
    ----------
    ham : TBHamiltonian
        Hamiltonian of the supercell (e.g. ``ref.predict(texture)`` or ``prim.tile(reps)``).
    mapping : UnfoldingMap
        Supercell atoms -> primitive atoms and translations, e.g.
        ``UnfoldingMap.from_structures(primitive_atoms, ham.geometry)``.
    kpts : BandPath or (n_k, 3) array
        k-points in fractional coordinates of the **primitive** reciprocal cell; a
        ``BandPath`` of the primitive cell gives labelled plots.
    spin : also store ``<sigma>`` of every state and, when the geometry has moments, its
        spin along the local moments (for spin-coloured plots).
    n, sigma : only the ``n`` states nearest ``sigma`` (eV), by sparse shift-invert (large
        supercells); both or neither.
    progress : show a progress bar (``None``: only for long k loops on a terminal).

    Returns
    -------
    UnfoldedBands

    Examples
    --------
    A spin-degenerate chain, doubled: at k = 0.1 the two lower supercell states are the
    primitive band (weight 1), the two upper ones its folded copy from k = 0.6 (weight 0).

    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> chain = Atoms("H", cell=[1, 10, 10], pbc=[True, False, False])
    >>> t = -1.0 * np.eye(2)
    >>> ham = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
    ...                                 {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    >>> big = ham.tile((2, 1, 1))
    >>> umap = UnfoldingMap.from_structures(ham.geometry, big.geometry)
    >>> ub = unfold(big, umap, [[0.1, 0.0, 0.0]])
    >>> np.round(ub.energies, 3), np.round(ub.weights, 6) + 0.0
    (array([[-1.618, -1.618,  1.618,  1.618]]), array([[1., 1., 0., 0.]]))
    """
    if (n is None) != (sigma is None):
        raise ValueError("give both n and sigma for shift-invert unfolding, or neither")
    mapping.bloch_projector(ham, np.zeros(3))  # checks the cell and the atoms
    if hasattr(kpts, "kpts"):
        k_all, bandpath = np.asarray(kpts.kpts, dtype=np.float64), kpts
    else:
        k_all, bandpath = np.asarray(kpts, dtype=np.float64).reshape(-1, 3), None
    m = mapping.supercell_matrix.astype(np.float64)
    has_moments = bool(np.any(np.linalg.norm(ham.geometry.moments, axis=1) > 1e-8))
    axes = orbital_axes(ham, "local") if spin and has_moments else None
    energies, weights, spins, local = [], [], [], []
    for k in progress_bar(k_all, "unfolding", progress):
        big_k = m @ k
        if n is None:
            e, c = ham.eigh(big_k)
        else:
            e, c = ham.eigsh(big_k, n, sigma)
        proj = mapping.bloch_projector(ham, k)
        a = proj @ c
        if ham.orthogonal:
            w = np.sum(np.abs(a) ** 2, axis=0)
        else:
            b = proj @ (ham.sk(big_k) @ c)
            w = np.sum(np.real(a.conj() * b), axis=0)
        energies.append(e)
        weights.append(w / mapping.n_cells)
        if spin:
            spins.append(ham.spin_expectation(big_k, c))
        if axes is not None:
            local.append(mulliken_charge_spin(ham, big_k, c, axes)[1].sum(axis=0))
    return UnfoldedBands(kpts=k_all, energies=np.array(energies), weights=np.array(weights),
                         spin=np.array(spins) if spin else None,
                         local_spin=np.array(local) if axes is not None else None,
                         path=bandpath)
