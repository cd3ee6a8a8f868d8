"""Export a :class:`~ase_hamgnn.TBHamiltonian` to Kwant.

Site families
-------------
Every atom ``i`` of a cell becomes one Kwant site family (a sublattice of one
``kwant.lattice.Polyatomic`` whose primitive vectors are the cell vectors and whose basis
positions are the atomic positions, Å).  The family has ``norbs = 2 n_i`` orbitals in the
package's spin-major order ``[orbitals (up), orbitals (down)]``, so Kwant operators with the
on-site matrices of :func:`spin_matrix` measure spin.  The site of atom ``j`` in cell ``R`` is
``lattice.sublattices[j](*R)`` and the hopping ``(site_i(0), site_j(R))`` carries the block
``H_ij(R) = <i, 0 | H | j, R>`` (eV).  Kwant's ``wraparound`` then reproduces the lattice-gauge
Bloch sum ``H(k) = sum_R H(R) exp(2 pi i k . R)`` with ``k_x = 2 pi k_1`` etc.
(:func:`bloch_params`).

Non-orthogonal bases
--------------------
When ``S != 1`` the exported values are ``H - E (S - 1)`` evaluated at the Kwant parameter
``overlap_energy`` = ``E`` (eV).  At that energy the solutions of ``(E - H') psi = 0`` are exactly
those of ``H psi = E S psi``, so scattering matrices, transmissions and scattering states are
exact; pass ``params={"overlap_energy": energy}`` (the helpers of
:mod:`ase_hamgnn.transport.scattering` do it).  Spectra of the exported system are only
meaningful at ``E``; for band checks first apply :func:`lowdin_orthogonalize` (an
approximation, documented there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ase_hamgnn.errors import HamGNNError
from ase_hamgnn.transport.orthogonalize import lowdin_orthogonalize

if TYPE_CHECKING:  # the Hamiltonian calls this module (TBHamiltonian.to_kwant), not back
    from ase_hamgnn.hamiltonian import TBHamiltonian

__all__ = [
    "OVERLAP_ENERGY",
    "KwantExportError",
    "LeadDirectionError",
    "LeadMismatchError",
    "LeadPeriodError",
    "SpinConservationError",
    "bloch_params",
    "hopping_blocks",
    "kwant_lattice",
    "lowdin_orthogonalize",
    "spin_matrix",
    "to_kwant",
    "to_kwant_periodic",
    "to_kwant_system",
]

#: Name of the Kwant parameter (eV) at which ``H - E (S - 1)`` is evaluated for ``S != 1``.
OVERLAP_ENERGY = "overlap_energy"

_PAULI = {
    "0": np.eye(2, dtype=np.complex128),
    "x": np.array([[0, 1], [1, 0]], dtype=np.complex128),
    "y": np.array([[0, -1j], [1j, 0]], dtype=np.complex128),
    "z": np.array([[1, 0], [0, -1]], dtype=np.complex128),
}

Vector = tuple[int, int, int]
Block = tuple[np.ndarray, np.ndarray | None]  # (H block, S block or None)


# -- errors ---------------------------------------------------------------------------------
class KwantExportError(HamGNNError, ValueError):
    """A Hamiltonian cannot be exported to Kwant as asked."""


class LeadDirectionError(KwantExportError):
    """The lead direction is not a lattice vector along periodic axes of the lead cell."""


class LeadPeriodError(KwantExportError):
    """Lead hoppings reach beyond the neighbouring lead cell; the lead period is too short."""


class LeadMismatchError(KwantExportError):
    """The scattering region does not sit on the lead's lattice (positions, species, basis)."""


class SpinConservationError(KwantExportError):
    """A lead was asked to conserve spin along an axis that its Hamiltonian does not conserve."""


# -- small pieces -------------------------------------------------------------------------
def spin_matrix(n_orbitals: int, axis: str | Sequence[float] = "z") -> np.ndarray:
    """On-site spin operator ``sigma_axis (x) 1_orb`` in the spin-major order of the package.

    Parameters
    ----------
    n_orbitals : int
        Spatial orbitals of the atom (the matrix is ``2 n_orbitals`` square).
    axis : {'0', 'x', 'y', 'z'} or (3,) float
        Pauli matrix (``'0'`` is the identity, i.e. charge) or a direction ``n`` (normalized
        here) for ``n . sigma``.

    Returns
    -------
    numpy.ndarray
        complex128, shape ``(2 n_orbitals, 2 n_orbitals)``; eigenvalues ``+-1`` (dimensionless;
        multiply by ``hbar / 2`` for spin angular momentum).

    Examples
    --------
    >>> spin_matrix(1, "z").real
    array([[ 1.,  0.],
           [ 0., -1.]])
    """
    if isinstance(axis, str):
        if axis not in _PAULI:
            raise ValueError(f"axis must be '0', 'x', 'y', 'z' or a 3-vector, got {axis!r}")
        pauli = _PAULI[axis]
    else:
        n = np.asarray(axis, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(n)) if n.shape == (3,) else 0.0
        if n.shape != (3,) or not np.isfinite(norm) or norm == 0.0:
            raise ValueError(
                f"axis must be '0', 'x', 'y', 'z' or a non-zero 3-vector, got {axis!r}"
            )
        n = n / norm
        pauli = n[0] * _PAULI["x"] + n[1] * _PAULI["y"] + n[2] * _PAULI["z"]
    return np.kron(pauli, np.eye(int(n_orbitals), dtype=np.complex128))


def kwant_lattice(ham: TBHamiltonian):
    """Kwant lattice with one site family per atom of ``ham``'s cell.

    Parameters
    ----------
    ham : TBHamiltonian

    Returns
    -------
    kwant.lattice.Polyatomic
        Primitive vectors = cell rows (Å), basis = atomic positions (Å); sublattice ``i`` is
        named ``'<symbol><i>'`` and has ``norbs = 2 x orbitals`` of atom ``i`` (spin-major).

    Examples
    --------
    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> chain = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    >>> t = -1.0 * np.eye(2)                                   # eV, spin-independent
    >>> lead = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
    ...                                  {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    >>> lat = kwant_lattice(lead)
    >>> np.asarray(lat.sublattices[0](2, 0, 0).pos)             # atom 0 in cell R = (2, 0, 0)
    array([2., 0., 0.])
    """
    import kwant
    from ase.data import chemical_symbols

    geo = ham.geometry
    names = [f"{chemical_symbols[z]}{i}" for i, z in enumerate(geo.numbers)]
    norbs = [int(n) for n in np.diff(ham.offsets)]
    if len(names) == 1:
        # kwant.lattice.general returns a Monatomic lattice without basis; keep one type.
        return kwant.lattice.Polyatomic(geo.cell, geo.positions, name=names, norbs=norbs)
    return kwant.lattice.general(geo.cell, geo.positions, name=names, norbs=norbs)


def bloch_params(ham: TBHamiltonian, k: Iterable[float]) -> dict[str, float]:
    """Kwant ``wraparound`` momenta for the fractional ``k`` of ``ham``.

    The wrapped system of :func:`to_kwant_periodic` has one momentum per periodic axis, named
    ``k_x, k_y, k_z`` in the order of the periodic axes; each is the phase ``2 pi k_a`` (rad)
    gained over one cell vector.

    Examples
    --------
    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> chain = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    >>> t = -1.0 * np.eye(2)                                   # eV, spin-independent
    >>> lead = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
    ...                                  {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    >>> bloch_params(lead, [0.25, 0.0, 0.0])
    {'k_x': 1.5707963267948966}
    """
    k = np.asarray(k, dtype=np.float64).reshape(3)
    axes = np.flatnonzero(ham.geometry.pbc)
    return {f"k_{name}": float(2.0 * np.pi * k[a]) for name, a in zip("xyz", axes, strict=False)}


def hopping_blocks(ham: TBHamiltonian, lattice_vectors: Iterable[Iterable[int]] | None = None,
                   ) -> dict[tuple[int, int, Vector], Block]:
    """Non-zero atom-pair blocks ``{(i, j, R): (H_ij(R), S_ij(R) or None)}``, one per Kwant
    hopping or site.

    Only one of each Hermitian pair is returned: every ``(i, j)`` for ``R`` lexicographically
    ``> 0``, and ``i <= j`` for ``R = 0`` (``i == j``, ``R = 0`` is the on-site block, present
    for every atom when ``R = 0`` is kept).  Blocks are dense complex128,
    shape ``(2 n_i, 2 n_j)``, in eV (S dimensionless); S is ``None`` for an orthogonal basis.

    Parameters
    ----------
    ham : TBHamiltonian
    lattice_vectors : iterable of 3 ints, optional
        Keep only these ``R`` (e.g. ``[(0, 0, 0)]`` for a finite region); default all.
    """
    keep = None if lattice_vectors is None else {tuple(int(x) for x in r) for r in lattice_vectors}
    offsets = ham.offsets
    out: dict[tuple[int, int, Vector], Block] = {}
    s_store = ham.s_r
    rs = set(ham.h_r) | set(s_store or {})
    for r in sorted(rs):
        if keep is not None and r not in keep:
            continue
        if r < (0, 0, 0):
            continue
        h_blocks = _atom_blocks(ham.h_r.get(r), offsets, r == (0, 0, 0))
        s_blocks = {} if s_store is None else _atom_blocks(s_store.get(r), offsets,
                                                          r == (0, 0, 0))
        for i, j in sorted(set(h_blocks) | set(s_blocks)):
            h = h_blocks.get((i, j))
            if h is None:
                h = np.zeros((offsets[i + 1] - offsets[i], offsets[j + 1] - offsets[j]),
                             dtype=np.complex128)
            s = None
            if s_store is not None:
                s = s_blocks.get((i, j), np.zeros_like(h))
            out[(i, j, r)] = (h, s)
    if keep is None or (0, 0, 0) in keep:
        # every atom needs a site even if its on-site block is zero
        for i in range(len(ham)):
            if (i, i, (0, 0, 0)) not in out:
                n = int(offsets[i + 1] - offsets[i])
                out[(i, i, (0, 0, 0))] = (np.zeros((n, n), dtype=np.complex128),
                                          None if s_store is None else np.zeros((n, n),
                                                                                 np.complex128))
    return out


def _atom_blocks(mat: sp.csr_matrix | None, offsets: np.ndarray, upper_only: bool
                 ) -> dict[tuple[int, int], np.ndarray]:
    """Split a CSR matrix into dense atom-pair blocks (pairs with ``i <= j`` when
    ``upper_only``)."""
    if mat is None or mat.nnz == 0:
        return {}
    coo = mat.tocoo()
    ai = np.searchsorted(offsets, coo.row, side="right") - 1
    aj = np.searchsorted(offsets, coo.col, side="right") - 1
    sel = ai <= aj if upper_only else np.ones(coo.nnz, dtype=bool)
    ai, aj = ai[sel], aj[sel]
    rows, cols, data = coo.row[sel], coo.col[sel], coo.data[sel]
    natoms = len(offsets) - 1
    keys = ai.astype(np.int64) * natoms + aj
    order = np.argsort(keys, kind="stable")
    keys, rows, cols, data = keys[order], rows[order], cols[order], data[order]
    uniq, starts = np.unique(keys, return_index=True)
    ends = np.append(starts[1:], len(keys))
    out = {}
    for key, a, b in zip(uniq.tolist(), starts.tolist(), ends.tolist(), strict=True):
        i, j = divmod(key, natoms)
        blk = np.zeros((offsets[i + 1] - offsets[i], offsets[j + 1] - offsets[j]),
                       dtype=np.complex128)
        blk[rows[a:b] - offsets[i], cols[a:b] - offsets[j]] = data[a:b]
        out[(i, j)] = blk
    return out


def _value(h: np.ndarray, s: np.ndarray | None, onsite: bool) -> Any:
    """Kwant value for one block: the matrix itself, or ``H - E (S - 1)`` as a function of
    :data:`OVERLAP_ENERGY` when there is an overlap."""
    h = np.ascontiguousarray(h, dtype=np.complex128)
    if s is None:
        return h
    s_shift = np.asarray(s, dtype=np.complex128) - (np.eye(len(s)) if onsite else 0.0)
    if not np.any(s_shift):
        return h
    if onsite:
        def onsite_value(site, overlap_energy):
            return h - overlap_energy * s_shift
        return onsite_value

    def hopping_value(site1, site2, overlap_energy):
        return h - overlap_energy * s_shift
    return hopping_value


# -- periodic export ----------------------------------------------------------------------
def to_kwant_periodic(ham: TBHamiltonian):
    """Bulk Kwant builder of ``ham`` with a translational symmetry along every periodic axis.

    Use it for band checks through ``kwant.wraparound`` (momenta from :func:`bloch_params`),
    or as a template for ``Builder.fill``.  With an overlap, values are ``H - E (S - 1)`` at the
    parameter ``overlap_energy`` (see the module notes).

    Parameters
    ----------
    ham : TBHamiltonian
        Hopping vectors ``R`` must have zero components along non-periodic axes.

    Returns
    -------
    kwant.Builder
        Unfinalized, symmetry = ``TranslationalSymmetry`` of the periodic cell vectors; sites
        from :func:`kwant_lattice`.

    Raises
    ------
    KwantExportError
        If ``H(R)`` has ``R`` components along a non-periodic axis.

    Examples
    --------
    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> chain = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    >>> t = -1.0 * np.eye(2)                                   # eV, spin-independent
    >>> lead = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
    ...                                  {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    >>> import kwant
    >>> wrapped = kwant.wraparound.wraparound(to_kwant_periodic(lead)).finalized()
    >>> k = [0.1, 0.0, 0.0]
    >>> h = wrapped.hamiltonian_submatrix(params=bloch_params(lead, k))
    >>> bool(np.allclose(np.linalg.eigvalsh(h), lead.eigvalsh(k)))
    True
    """
    import kwant

    pbc = ham.geometry.pbc
    for r in ham.lattice_vectors:
        bad = [a for a in range(3) if r[a] != 0 and not pbc[a]]
        if bad:
            raise KwantExportError(
                f"H(R={tuple(int(x) for x in r)}) hops along non-periodic axis {bad[0]}; set "
                f"pbc[{bad[0]}] = True on the geometry or drop those blocks"
            )
    lat = kwant_lattice(ham)
    periods = [lat.vec(tuple(int(a == b) for b in range(3))) for a in np.flatnonzero(pbc)]
    builder = kwant.Builder(kwant.TranslationalSymmetry(*periods))
    fams = lat.sublattices
    blocks = hopping_blocks(ham)
    for (i, j, r), (h, s) in blocks.items():          # sites first, then hoppings
        if i == j and r == (0, 0, 0):
            builder[fams[i](0, 0, 0)] = _value(h, s, onsite=True)
    for (i, j, r), (h, s) in blocks.items():
        if not (i == j and r == (0, 0, 0)):
            builder[fams[i](0, 0, 0), fams[j](*r)] = _value(h, s, onsite=False)
    return builder


# -- scattering systems -------------------------------------------------------------------
def _parse_direction(direction: Any, pbc: np.ndarray) -> np.ndarray:
    """Integer lattice vector (in cell units of the lead Hamiltonian) from an axis or vector."""
    if isinstance(direction, (int, np.integer)) and not isinstance(direction, bool):
        if not 0 <= int(direction) < 3:
            raise LeadDirectionError(
                f"lead direction axis must be 0, 1 or 2, got {direction}; or give an integer "
                "lattice vector such as (1, 0, 0)"
            )
        vec = np.zeros(3, dtype=np.int64)
        vec[int(direction)] = 1
    else:
        arr = np.asarray(direction, dtype=np.float64).reshape(-1)
        if arr.shape != (3,) or not np.isfinite(arr).all():
            raise LeadDirectionError(
                f"lead direction must be an axis (0, 1, 2) or 3 integers in units of the lead "
                f"cell vectors, got {direction!r}"
            )
        if not np.allclose(arr, np.round(arr), rtol=0, atol=1e-9):
            raise LeadDirectionError(
                f"lead direction {tuple(arr)} is not a lattice vector: give integer multiples of "
                "the lead cell vectors, e.g. (1, 0, 0) or (1, 1, 0) (not Cartesian Å)"
            )
        vec = np.round(arr).astype(np.int64)
    if not vec.any():
        raise LeadDirectionError("lead direction is the zero vector; use e.g. (1, 0, 0)")
    bad = [a for a in range(3) if vec[a] != 0 and not pbc[a]]
    if bad:
        periodic = [a for a in range(3) if pbc[a]]
        raise LeadDirectionError(
            f"lead direction {tuple(int(x) for x in vec)} runs along axis {bad[0]}, which is "
            f"not periodic in the lead Hamiltonian (pbc = {tuple(bool(p) for p in pbc)}); "
            f"choose a direction within the periodic axes {periodic}"
        )
    return vec


def _normalize_directions(directions: Any) -> list[Any]:
    if isinstance(directions, (int, np.integer)):
        return [directions]
    items = list(directions)
    if len(items) == 3 and all(isinstance(x, (int, np.integer, float)) for x in items):
        raise LeadDirectionError(
            f"directions={tuple(items)!r} is ambiguous: give a sequence of directions, e.g. "
            f"directions=[{tuple(items)!r}] for one lattice vector or directions=[0, 1] for axes"
        )
    if not items:
        raise LeadDirectionError("directions is empty; give at least one, e.g. directions=[0]")
    return items


def _match_sites(scattering: TBHamiltonian, lead: TBHamiltonian, tol: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For each scattering atom the lead-cell atom and integer cell ``n`` with
    ``position = lead_position[a] + n @ lead_cell`` (within ``tol`` Å)."""
    if scattering.basis != lead.basis:
        raise LeadMismatchError(
            f"scattering and lead Hamiltonians have different orbital bases ({scattering.basis} "
            f"vs {lead.basis}); predict both with the same model"
        )
    lg, sg = lead.geometry, scattering.geometry
    inv = np.linalg.inv(lg.cell)
    diff = sg.positions[:, None, :] - lg.positions[None, :, :]          # (N, Na, 3) Å
    frac = diff @ inv
    cells = np.round(frac)
    err = np.linalg.norm((frac - cells) @ lg.cell, axis=-1)              # (N, Na) Å
    same = sg.numbers[:, None] == lg.numbers[None, :]
    err = np.where(same, err, np.inf)
    which = np.argmin(err, axis=1)
    best = err[np.arange(len(sg)), which]
    bad = np.flatnonzero(best > tol)
    if bad.size:
        i = int(bad[0])
        raise LeadMismatchError(
            f"{bad.size} scattering atoms do not sit on the lead lattice (first: atom {i} at "
            f"{np.round(sg.positions[i], 4).tolist()} Å, nearest lattice site {best[i]:.3g} Å "
            f"away, tolerance {tol} Å); build the scattering supercell by repeating the lead "
            "cell (e.g. Atoms.repeat or TBHamiltonian.tile) or raise position_tol"
        )
    tags = cells[np.arange(len(sg)), which].astype(np.int64)
    keys = np.column_stack([which, tags])
    uniq, counts = np.unique(keys, axis=0, return_counts=True)
    if (counts > 1).any():
        dup = uniq[np.argmax(counts > 1)]
        atoms = np.flatnonzero((keys == dup).all(axis=1)).tolist()
        raise LeadMismatchError(
            f"scattering atoms {atoms} all sit on the same lead-lattice site (atom {dup[0]} of "
            f"the lead cell in cell {dup[1:].tolist()}); remove duplicated atoms or lower "
            "position_tol"
        )
    return which.astype(np.int64), tags


def _spin_law(lead: TBHamiltonian, lat, axis, tol: float) -> dict:
    """Conservation law ``-n.sigma`` per family (Kwant block 0 = spin up along ``n``), after
    checking that every lead block commutes with it."""
    counts = np.diff(lead.offsets) // 2
    for (i, j, r), (h, _) in hopping_blocks(lead).items():
        si, sj = spin_matrix(counts[i], axis), spin_matrix(counts[j], axis)
        bad = float(np.abs(si @ h - h @ sj).max()) if h.size else 0.0
        if bad > tol:
            raise SpinConservationError(
                f"the lead Hamiltonian does not conserve spin along {axis!r}: block (atoms "
                f"{i}, {j}, R={r}) breaks it by {bad:.3g} eV (spin-orbit coupling or "
                "non-collinear moments); use spin_axis=None and read spin-resolved "
                "transmission from ase_hamgnn.transport.spin_transmission (projection onto "
                "the lead modes' spin)"
            )
    return {fam: -spin_matrix(counts[i], axis) for i, fam in enumerate(lat.sublattices)}


def to_kwant_system(scattering: TBHamiltonian, lead: TBHamiltonian, directions: Any = (0,),
                    *, spin_axis: str | Sequence[float] | None = None,
                    position_tol: float = 1e-3, spin_tol: float = 1e-10):
    """Scattering region from a (textured) supercell with leads from a periodic reference.

    The region holds every atom of ``scattering`` with its on-site block ``H_ii(0)`` and the
    hoppings ``H_ij(0)``; ``H(R != 0)`` of ``scattering`` is not used (open boundaries, the
    leads continue the system).  Each atom must sit on the lattice of the lead cell, i.e.
    ``scattering`` is a (possibly textured, possibly distorted within ``position_tol``)
    supercell of ``lead``.  For every direction ``d`` two semi-infinite leads of the
    reference Hamiltonian ``lead`` are attached with ``TranslationalSymmetry`` of period ``d``:
    first the one running to ``-d``, then the one to ``+d``.  A lead's unit cell is a slab one
    period long, bounded by planes spanned by the other cell vectors of ``lead``; its
    cross-section is the region's outermost such slab, so a region made of whole lead cells
    (e.g. ``lead`` repeated) gives full-width leads, and a cross-shaped region gives a
    four-terminal (Hall) bar with narrow side leads.  For oblique cells (hexagonal) whose
    hoppings then span two slabs, either use the period the error suggests or build ``lead``
    on a rectangular supercell.

    Parameters
    ----------
    scattering : TBHamiltonian
        Hamiltonian of the scattering region (e.g. a skyrmion supercell), eV.
    lead : TBHamiltonian
        Periodic reference (e.g. ferromagnetic or pristine primitive cell), same basis.  Its
        texture should match the region's ends, otherwise the interface scatters.
    directions : sequence of (int or 3 ints)
        Lead directions: an axis index or an integer lattice vector in units of ``lead``'s
        cell vectors, along periodic axes only.  ``[0]`` (default) gives leads 0 (-a1) and
        1 (+a1); ``[0, 1]`` adds leads 2 (-a2) and 3 (+a2).
    spin_axis : {'x', 'y', 'z'} or (3,) float, optional
        Declare spin along this axis conserved in the leads (Kwant ``conservation_law``,
        block 0 = spin up, block 1 = spin down), so that lead modes are spin eigenstates and
        spin-resolved transmissions are exact.  Only valid for leads without spin-orbit
        coupling and with moments collinear to the axis.
    position_tol : float
        Largest distance (Å) between a scattering atom and its lead-lattice site.
    spin_tol : float
        Largest ``|[H_lead, n.sigma]|`` entry (eV) accepted with ``spin_axis``.

    Returns
    -------
    kwant.Builder
        Unfinalized, with ``2 len(directions)`` leads; call ``.finalized()``.

    Raises
    ------
    LeadDirectionError
        A direction is not an integer lattice vector, is zero, or runs along a non-periodic
        axis of ``lead``.
    LeadPeriodError
        Lead hoppings reach further than the neighbouring lead cell; the message names the
        longer period that works (e.g. ``directions=[(2, 0, 0)]``).
    LeadMismatchError
        Bases differ or atoms do not sit on the lead lattice.
    SpinConservationError
        ``spin_axis`` is given but the lead does not conserve that spin.

    Notes
    -----
    With an overlap (``S != 1``, region or lead) values are ``H - E (S - 1)`` at the Kwant
    parameter ``overlap_energy``; pass it equal to the energy (exact at that energy).

    Examples
    --------
    A pristine chain transmits one channel per spin (a skyrmion supercell and a ferromagnetic
    cell are used the same way):

    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> chain = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    >>> t = -1.0 * np.eye(2)                                   # eV, spin-independent
    >>> lead = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
    ...                                  {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    >>> import kwant
    >>> syst = to_kwant_system(lead.tile((5, 1, 1)), lead, directions=[0]).finalized()
    >>> round(float(kwant.smatrix(syst, 0.5).transmission(1, 0)), 8)
    2.0
    """
    import kwant

    lat = kwant_lattice(lead)
    lead_blocks = hopping_blocks(lead)
    vecs = [_parse_direction(d, lead.geometry.pbc) for d in _normalize_directions(directions)]
    for vec in vecs:
        _check_period(lat, lead_blocks, vec)
    cons = None if spin_axis is None else _spin_law(lead, lat, spin_axis, spin_tol)

    fams = lat.sublattices
    family_of, tags = _match_sites(scattering, lead, position_tol)
    sites = [fams[a](*t) for a, t in zip(family_of.tolist(), tags.tolist(), strict=True)]
    syst = kwant.Builder()
    blocks = hopping_blocks(scattering, [(0, 0, 0)])
    for (i, j, _), (h, s) in blocks.items():           # sites first, then hoppings
        if i == j:
            syst[sites[i]] = _value(h, s, onsite=True)
    for (i, j, _), (h, s) in blocks.items():
        if i != j:
            syst[sites[i], sites[j]] = _value(h, s, onsite=False)

    for vec in vecs:
        for sign in (-1, 1):
            builder = _lead_builder(lat, lead_blocks, sign * vec, sites, tags, cons)
            syst.attach_lead(builder)
    return syst


def _lead_symmetry(lat, vec: np.ndarray):
    """``TranslationalSymmetry`` of period ``vec`` (lead-cell units) whose fundamental domain
    is spanned by ``vec`` and the other cell vectors of the lead, plus the (3, 3) integer
    basis ``[vec, others]`` (columns) in which a tag's first coefficient is its position
    along the lead, in periods."""
    import kwant

    axis = int(np.flatnonzero(vec)[0])
    others = [tuple(int(a == b) for b in range(3)) for a in range(3) if a != axis]
    sym = kwant.TranslationalSymmetry(lat.vec(tuple(int(x) for x in vec)))
    for fam in lat.sublattices:
        sym.add_site_family(fam, other_vectors=others)
    basis = np.column_stack([vec, *others]).astype(np.float64)
    return sym, basis


def _check_period(lat, blocks: Mapping, vec: np.ndarray) -> None:
    """Raise :class:`LeadPeriodError` if a lead hopping spans more than one lead period."""

    def span(v: np.ndarray) -> tuple[int, tuple | None]:
        sym, _ = _lead_symmetry(lat, v)
        worst, where = 0, None
        for (i, j, r) in blocks:
            a = lat.sublattices[i](0, 0, 0)
            b = lat.sublattices[j](*r)
            d = abs(int(sym.which(b)[0]) - int(sym.which(a)[0]))
            if d > worst:
                worst, where = d, (i, j, r)
        return worst, where

    worst, where = span(vec)
    if worst <= 1:
        return
    m = 2
    while span(m * vec)[0] > 1:
        m += 1
    i, j, r = where
    raise LeadPeriodError(
        f"lead along {tuple(int(x) for x in vec)}: hopping from atom {i} to atom {j} in cell "
        f"R={r} spans {worst} lead periods, but Kwant leads may only hop to the neighbouring "
        f"cell; use the longer period directions=[{tuple(int(x) for x in m * vec)}] (and make "
        "the scattering region a whole number of those periods long)"
    )


def _lead_builder(lat, blocks: Mapping, vec: np.ndarray, region_sites: list,
                  region_tags: np.ndarray, cons):
    """Lead of period ``vec`` whose cross-section is the region's outermost period along it:
    the sites whose coordinate along ``vec`` lies within one period of the largest."""
    import kwant

    sym, basis = _lead_symmetry(lat, vec)
    coord = np.linalg.solve(basis, region_tags.T.astype(np.float64))[0]   # in periods
    edge = [s for s, c in zip(region_sites, coord, strict=True) if c > coord.max() - 1 + 1e-9]
    cross = {sym.to_fd(s) for s in edge}
    builder = kwant.Builder(sym, conservation_law=cons)
    fams = lat.sublattices
    index = {fam: n for n, fam in enumerate(fams)}
    by_atom: dict[int, list] = {}
    for s in cross:
        by_atom.setdefault(index[s.family], []).append(s)
    for i, fam_sites in by_atom.items():                  # sites first, then hoppings
        h, s_blk = blocks[(i, i, (0, 0, 0))]
        value = _value(h, s_blk, onsite=True)
        for site in fam_sites:
            builder[site] = value
    for (i, j, r), (h, s_blk) in blocks.items():
        if i == j and r == (0, 0, 0):
            continue
        value = _value(h, s_blk, onsite=False)
        for site in by_atom.get(i, ()):
            target = fams[j](*(np.asarray(site.tag) + np.asarray(r)))
            if sym.to_fd(target) in cross:
                builder[site, target] = value
    return builder


def to_kwant(ham: TBHamiltonian, lead: TBHamiltonian | None = None, **kwargs: Any):
    """Kwant builder of ``ham``: the implementation behind ``TBHamiltonian.to_kwant``.

    Without ``lead`` this is :func:`to_kwant_periodic` (bulk builder for ``wraparound`` or
    ``fill``); with ``lead`` it is :func:`to_kwant_system` (scattering region from ``ham``
    with leads from ``lead``; keyword arguments are passed on).

    Examples
    --------
    >>> bulk = to_kwant(ferro_ham)                                       # doctest: +SKIP
    >>> syst = to_kwant(skyrmion_ham, lead=ferro_ham, directions=[0]).finalized()  # doctest: +SKIP
    """
    if lead is None:
        if kwargs:
            raise TypeError(f"{sorted(kwargs)} only apply with a lead; pass lead=<TBHamiltonian>")
        return to_kwant_periodic(ham)
    return to_kwant_system(ham, lead, **kwargs)
