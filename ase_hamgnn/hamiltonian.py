"""``TBHamiltonian``: an immutable, sparse, real-space tight-binding Hamiltonian.

Storage and gauge
-----------------
A Hamiltonian is the set of matrices ``H(R)`` over integer lattice vectors ``R`` (in units of
the cell vectors), each a scipy CSR matrix of dimension ``n`` = number of spin-orbitals of the
cell (spin-major per atom, atoms in order; see :mod:`ase_hamgnn.basis`).  The block of atoms
``(i, j)`` in ``H(R)`` is ``<i, 0 | H | j, R>``.  The Bloch sum is in the lattice-vector gauge,

    H(k) = sum_R H(R) exp(2 pi i k . R),    k in fractional reciprocal coordinates,

and ``hk(k, gauge="atomic")`` gives the atom-position gauge ``exp(2 pi i k . (R + t_j - t_i))``
for consumers that need it (same eigenvalues, different eigenvector phases).  Hermiticity is
``H(-R) = H(R)^dagger``.  An optional overlap ``S(R)`` (same layout, spin-diagonal and equal for
both spins) turns every spectrum into the generalized problem ``H c = E S c``.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import scipy.sparse as sp

from ase_hamgnn._atomic import atomic_write_bytes
from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.errors import (
    BlockShapeError,
    HamiltonianFileError,
    HermiticityError,
    IntegerValueError,
    NonFiniteError,
)
from ase_hamgnn.geometry import Geometry

__all__ = ["HERMITICITY_TOL", "TBHamiltonian"]

Vector = tuple[int, int, int]
_FORMAT = "ase-hamgnn-tb"
_FORMAT_VERSION = 1

#: Largest ``|H_ij(R) - H_ji(-R)^dagger|`` (and the same for S) in eV that is accepted as
#: Hermitian: the default of :class:`TBHamiltonian` and of every DFT reader, which symmetrize
#: what they read and refuse files whose raw blocks are further from Hermitian.  Converged
#: DFT files are Hermitian to ~1e-9 Hartree (a few 1e-8 eV), far below this; 1 μeV is far
#: below the accuracy of any DFT Hamiltonian.
HERMITICITY_TOL = 1e-6


def _integers(values: Any, what: str) -> tuple[int, ...]:
    """``values`` as a tuple of ints, refusing (never truncating) non-integer values."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise IntegerValueError(f"{what} must be integers, got {values!r}") from None
    if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
        raise IntegerValueError(
            f"{what} must be integers, got {values!r}; non-integer values are not rounded")
    return tuple(int(x) for x in arr)


def _as_vector(r: Iterable[int]) -> Vector:
    t = _integers(r, "lattice vector R (in units of the cell vectors)")
    if len(t) != 3:
        raise ValueError(f"lattice vector R must have 3 integer components, got {r!r}")
    return t  # type: ignore[return-value]


def _freeze(mat: Any, n: int, what: str, r: Vector) -> sp.csr_matrix:
    # a sparse input (e.g. another TBHamiltonian's read-only H(R)) may share its arrays with
    # the result: copy it, so that the in-place clean-up below never writes into the caller's
    m = sp.csr_matrix(mat, dtype=np.complex128, copy=sp.issparse(mat))
    if m.shape != (n, n):
        raise BlockShapeError(
            f"{what}(R={r}) has shape {m.shape}, but the basis gives {n} spin-orbitals per cell"
        )
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    for arr in (m.data, m.indices, m.indptr):
        arr.setflags(write=False)
    return m


class TBHamiltonian:
    """Immutable real-space tight-binding Hamiltonian with optional overlap.

    Parameters
    ----------
    basis : OrbitalBasis
        Orbitals of every element in ``geometry``.
    geometry : Geometry or ase.Atoms
        Structure and moments the Hamiltonian belongs to (copied).
    h : mapping
        ``R -> H(R)``, ``R`` a 3-tuple of ints, ``H(R)`` anything scipy.sparse accepts, of
        shape ``(n, n)``, in eV.
    s : mapping, optional
        ``R -> S(R)``, the overlap; ``None`` for an orthogonal basis.
    hermiticity_tol : float or None
        Largest allowed ``|H_ji(-R) - H_ij(R)^dagger|`` in eV (and for S); default
        :data:`HERMITICITY_TOL`.  ``None`` skips
        the check, for producers that are Hermitian by construction (a model's prediction
        mirrors every bond block onto its reverse; the check costs a transpose of every
        ``H(R)``).

    Raises
    ------
    BasisError
        If an element of the geometry is not in the basis.
    BlockShapeError
        If a matrix does not have the dimension the basis gives.
    HermiticityError
        If ``H(-R) != H(R)^dagger``; the message names the worst atom pair and ``R``.
    NonFiniteError
        If a matrix holds NaN or inf; the message names the atom pair and ``R``.
    IntegerValueError
        If a lattice vector ``R`` is not integer-valued (``(0.5, 0, 0)`` is refused, not
        truncated).
    StructureError
        If the geometry is unusable (see :class:`~ase_hamgnn.geometry.Geometry`).

    Examples
    --------
    >>> import numpy as np
    >>> from ase import Atoms
    >>> from ase_hamgnn import OrbitalBasis, TBHamiltonian
    >>> chain = Atoms("H", cell=[1, 10, 10], pbc=[True, False, False])
    >>> basis = OrbitalBasis({"H": ["1s"]})
    >>> t = -1.0 * np.eye(2)           # spin-independent hopping, eV
    >>> ham = TBHamiltonian.from_blocks(basis, chain, {(0, 0, (1, 0, 0)): t,
    ...                                               (0, 0, (-1, 0, 0)): t})
    >>> ham.eigh([0.0, 0.0, 0.0])[0]
    array([-2., -2.])
    """

    __slots__ = ("_basis", "_geometry", "_h", "_s", "_offsets", "_up", "_dn")

    def __init__(
        self,
        basis: OrbitalBasis,
        geometry: Geometry | Any,
        h: Mapping[Iterable[int], Any],
        s: Mapping[Iterable[int], Any] | None = None,
        *,
        hermiticity_tol: float | None = HERMITICITY_TOL,
    ) -> None:
        if not isinstance(basis, OrbitalBasis):
            raise TypeError(f"basis must be an OrbitalBasis, got {type(basis).__name__}")
        if not isinstance(geometry, Geometry):
            geometry = Geometry.from_atoms(geometry)
        basis.check_numbers(geometry.numbers)
        self._basis = basis
        self._geometry = geometry
        self._offsets = basis.spin_orbital_offsets(geometry.numbers)
        self._offsets.setflags(write=False)
        n = int(self._offsets[-1])
        if not h:
            raise ValueError("H needs at least one lattice vector (the on-site R = (0, 0, 0))")
        self._h = MappingProxyType(
            {_as_vector(r): _freeze(m, n, "H", _as_vector(r)) for r, m in h.items()}
        )
        self._s = None
        if s is not None:
            self._s = MappingProxyType(
                {_as_vector(r): _freeze(m, n, "S", _as_vector(r)) for r, m in s.items()}
            )
        self._check_finite(self._h, "H")
        if self._s is not None:
            self._check_finite(self._s, "S")
        up, dn = self._spin_index_arrays()
        self._up, self._dn = up, dn
        if hermiticity_tol is not None:
            self._check_hermitian(self._h, "H", hermiticity_tol)
        if self._s is not None:
            if hermiticity_tol is not None:
                self._check_hermitian(self._s, "S", hermiticity_tol)
            self._check_overlap_spin()

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_blocks(
        cls,
        basis: OrbitalBasis,
        geometry: Geometry | Any,
        blocks: Mapping[tuple[int, int, Iterable[int]], np.ndarray],
        overlap_blocks: Mapping[tuple[int, int, Iterable[int]], np.ndarray] | None = None,
        **kwargs: Any,
    ) -> TBHamiltonian:
        """Build from dense atom-pair blocks ``{(i, j, R): H_ij(R)}``.

        Each block must have shape ``(2 n_i, 2 n_j)`` (spin-major); every block and its
        Hermitian partner ``(j, i, -R)`` must be given.
        """
        if not isinstance(geometry, Geometry):
            geometry = Geometry.from_atoms(geometry)
        basis.check_numbers(geometry.numbers)
        offsets = basis.spin_orbital_offsets(geometry.numbers)

        def assemble(items, what):
            per_r: dict[Vector, tuple[list, list, list]] = {}
            for (i, j, r), block in items.items():
                r = _as_vector(r)
                if not (0 <= i < len(geometry) and 0 <= j < len(geometry)):
                    raise IndexError(f"{what} block ({i}, {j}, {r}) names an atom out of range")
                b = np.asarray(block, dtype=np.complex128)
                shape = (int(offsets[i + 1] - offsets[i]), int(offsets[j + 1] - offsets[j]))
                if b.shape != shape:
                    raise BlockShapeError(
                        f"{what} block ({i}, {j}, R={r}) has shape {b.shape}; atoms "
                        f"{i} and {j} need {shape} (2 x orbitals each, spin-major)"
                    )
                rows, cols = np.meshgrid(
                    np.arange(shape[0]) + offsets[i],
                    np.arange(shape[1]) + offsets[j],
                    indexing="ij",
                )
                acc = per_r.setdefault(r, ([], [], []))
                acc[0].append(rows.ravel())
                acc[1].append(cols.ravel())
                acc[2].append(b.ravel())
            n = int(offsets[-1])
            return {
                r: sp.coo_matrix(
                    (np.concatenate(d), (np.concatenate(a), np.concatenate(c))), shape=(n, n)
                )
                for r, (a, c, d) in per_r.items()
            }

        h = assemble(blocks, "H")
        s = None if overlap_blocks is None else assemble(overlap_blocks, "S")
        return cls(basis, geometry, h, s, **kwargs)

    # -- read-only views --------------------------------------------------------------------
    @property
    def basis(self) -> OrbitalBasis:
        """The orbital basis."""
        return self._basis

    @property
    def geometry(self) -> Geometry:
        """Structure and moments (read-only arrays)."""
        return self._geometry

    @property
    def h_r(self) -> Mapping[Vector, sp.csr_matrix]:
        """Read-only mapping ``R -> H(R)`` (CSR, complex128, eV)."""
        return self._h

    @property
    def s_r(self) -> Mapping[Vector, sp.csr_matrix] | None:
        """Read-only mapping ``R -> S(R)``, or ``None`` for an orthogonal basis."""
        return self._s

    @property
    def lattice_vectors(self) -> np.ndarray:
        """Integer lattice vectors ``R`` present, shape ``(n_R, 3)``."""
        return np.array(sorted(self._h), dtype=np.int64).reshape(-1, 3)

    @property
    def offsets(self) -> np.ndarray:
        """Spin-orbital offsets of the atoms, shape ``(N + 1,)``."""
        return self._offsets

    @property
    def n_spin_orbitals(self) -> int:
        """Dimension of ``H(k)``."""
        return int(self._offsets[-1])

    @property
    def orthogonal(self) -> bool:
        """True when there is no overlap matrix (``S = 1``)."""
        return self._s is None

    def __len__(self) -> int:
        return len(self._geometry)

    def __repr__(self) -> str:
        nnz = sum(m.nnz for m in self._h.values())
        return (
            f"TBHamiltonian(atoms={len(self)}, spin_orbitals={self.n_spin_orbitals}, "
            f"R={len(self._h)}, nnz={nnz}, overlap={not self.orthogonal})"
        )

    def to_atoms(self):
        """The geometry as a new ``ase.Atoms`` with (N, 3) ``initial_magmoms``."""
        return self._geometry.to_atoms()

    def block(
        self, i: int, j: int, r: Iterable[int] = (0, 0, 0), overlap: bool = False
    ) -> np.ndarray:
        """Dense block ``H_ij(R)`` (or ``S_ij(R)``), shape ``(2 n_i, 2 n_j)``; zeros if ``R``
        is absent."""
        store = self._s if overlap else self._h
        o = self._offsets
        shape = (o[i + 1] - o[i], o[j + 1] - o[j])
        if store is None:
            eye = np.zeros(shape, dtype=np.complex128)
            if i == j and tuple(r) == (0, 0, 0):
                eye[:] = np.eye(shape[0])
            return eye
        mat = store.get(_as_vector(r))
        if mat is None:
            return np.zeros(shape, dtype=np.complex128)
        return mat[o[i] : o[i + 1], o[j] : o[j + 1]].toarray()

    # -- k space ----------------------------------------------------------------------------
    def _bloch(
        self, store: Mapping[Vector, sp.csr_matrix], k: np.ndarray, gauge: str
    ) -> sp.csr_matrix:
        k = np.asarray(k, dtype=np.float64).reshape(3)
        out = None
        for r, mat in store.items():
            phase = np.exp(2j * np.pi * float(np.dot(k, r)))
            out = mat * phase if out is None else out + mat * phase
        out = sp.csr_matrix(out)
        if gauge == "atomic":
            tau = self._geometry.scaled_positions
            ph = np.exp(2j * np.pi * (tau @ k))
            per_orb = np.repeat(ph, np.diff(self._offsets))
            d = sp.diags(per_orb)
            out = sp.csr_matrix(d.conj() @ out @ d)
        elif gauge != "lattice":
            raise ValueError(f"gauge must be 'lattice' or 'atomic', got {gauge!r}")
        return out

    def hk(self, k: Iterable[float], gauge: str = "lattice") -> sp.csr_matrix:
        """Bloch Hamiltonian ``H(k)`` (CSR, complex128, eV); ``k`` fractional."""
        return self._bloch(self._h, k, gauge)

    def sk(self, k: Iterable[float], gauge: str = "lattice") -> sp.csr_matrix:
        """Bloch overlap ``S(k)`` (the identity for an orthogonal basis)."""
        if self._s is None:
            return sp.identity(self.n_spin_orbitals, dtype=np.complex128, format="csr")
        return self._bloch(self._s, k, gauge)

    def eigh(self, k: Iterable[float], gauge: str = "lattice") -> tuple[np.ndarray, np.ndarray]:
        """All eigenpairs at ``k`` by dense diagonalization (generalized with S).

        Returns energies (n,) in eV, ascending, and states (n, n) as columns normalized to
        ``C^dagger S C = 1``.
        """
        from ase_hamgnn.spectra.dense import dense_eigh

        return dense_eigh(self, k, gauge)

    def eigvalsh(self, k: Iterable[float]) -> np.ndarray:
        """All eigenvalues at ``k`` (eV), ascending."""
        from ase_hamgnn.spectra.dense import dense_eigh

        return dense_eigh(self, k, "lattice", vectors=False)[0]

    def eigsh(
        self, k: Iterable[float], n: int, sigma: float, gauge: str = "lattice"
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` eigenpairs nearest ``sigma`` (eV) by sparse shift-invert (generalized
        with S); energies ascending, states as S-orthonormal columns."""
        from ase_hamgnn.spectra.dense import shift_invert_eigh

        return shift_invert_eigh(self, k, n, sigma, gauge)

    def spin_expectation(self, k: Iterable[float], states: np.ndarray) -> np.ndarray:
        """``<sigma_x, sigma_y, sigma_z>`` of each column of ``states`` at ``k``, shape (n, 3);
        uses ``S(k)`` (Mulliken-free: ``c^dagger sigma S c``) when the basis is non-orthogonal.
        The per-orbital parts are :func:`ase_hamgnn.spectra.projections.orbital_spin_density`."""
        from ase_hamgnn.spectra.projections import orbital_spin_density

        return orbital_spin_density(self, k, states)[1].sum(axis=1).T

    def bands(self, path: Any, spin: bool = True, n: int | None = None, sigma: float | None = None):
        """Band structure along an ASE ``BandPath`` (see :func:`ase_hamgnn.spectra.dense.bands`)."""
        from ase_hamgnn.spectra.dense import bands

        return bands(self, path, spin=spin, n=n, sigma=sigma)

    def dos(
        self, kpts: Any, energies: np.ndarray, width: float = 0.05, kind: str = "gaussian"
    ) -> np.ndarray:
        """Density of states per cell and eV, both spins (see
        :func:`ase_hamgnn.spectra.dense.dos`)."""
        from ase_hamgnn.spectra.dense import dos

        return dos(self, kpts, energies, width=width, kind=kind)

    def fermi_level(
        self, n_electrons: float, kpts: Any = (1, 1, 1), temperature: float = 0.0
    ) -> float:
        """Fermi level in eV for ``n_electrons`` per cell (see
        :func:`ase_hamgnn.spectra.dense.fermi_level`)."""
        from ase_hamgnn.spectra.dense import fermi_level

        return fermi_level(self, n_electrons, kpts=kpts, temperature=temperature)

    def to_kwant(self, lead: TBHamiltonian | None = None, **kwargs: Any):
        """Kwant builder: periodic (for ``kwant.wraparound``) without ``lead``, a scattering
        region with leads from ``lead`` otherwise (see
        :func:`ase_hamgnn.transport.export.to_kwant`)."""
        from ase_hamgnn.transport.export import to_kwant

        return to_kwant(self, lead, **kwargs)

    # -- supercells -------------------------------------------------------------------------
    def tile(self, reps: Iterable[int]) -> TBHamiltonian:
        """Hamiltonian of the ``reps = (n1, n2, n3)`` supercell.

        Atom order matches ``ase.Atoms.repeat(reps)``: image ``(c1, c2, c3)`` (last index
        fastest) holds a copy of all atoms.  Along a non-periodic direction ``reps`` must be 1.
        ``reps`` must be integer-valued: ``(2.5, 1, 1)`` raises
        :class:`~ase_hamgnn.errors.IntegerValueError`.
        """
        reps_a = np.array(_integers(reps, "reps (supercell repetitions)"), dtype=np.int64)
        if reps_a.shape != (3,) or (reps_a < 1).any():
            raise ValueError(f"reps must be three positive integers, got {reps!r}")
        for d in range(3):
            if reps_a[d] > 1 and not self._geometry.pbc[d]:
                raise ValueError(f"cannot tile along non-periodic direction {d}; use reps[{d}] = 1")
        images = (
            np.array(np.meshgrid(*[np.arange(n) for n in reps_a], indexing="ij")).reshape(3, -1).T
        )
        nimg = len(images)
        ncell = self.n_spin_orbitals

        def tile_store(store):
            acc: dict[Vector, list] = {}
            for r, mat in store.items():
                coo = mat.tocoo()
                target = images + np.asarray(r)
                new_r = np.floor_divide(target, reps_a)
                wrapped = target - new_r * reps_a
                src_idx = np.arange(nimg)
                dst_idx = (wrapped[:, 0] * reps_a[1] + wrapped[:, 1]) * reps_a[2] + wrapped[:, 2]
                for key in {tuple(x) for x in new_r.tolist()}:
                    sel = np.all(new_r == key, axis=1)
                    rows = (src_idx[sel][:, None] * ncell + coo.row[None, :]).ravel()
                    cols = (dst_idx[sel][:, None] * ncell + coo.col[None, :]).ravel()
                    data = np.broadcast_to(coo.data, (sel.sum(), coo.nnz)).ravel()
                    acc.setdefault(key, []).append((rows, cols, data))
            n = ncell * nimg
            return {
                r: sp.coo_matrix(
                    (
                        np.concatenate([p[2] for p in parts]),
                        (
                            np.concatenate([p[0] for p in parts]),
                            np.concatenate([p[1] for p in parts]),
                        ),
                    ),
                    shape=(n, n),
                )
                for r, parts in acc.items()
            }

        atoms = self._geometry.to_atoms().repeat(tuple(int(x) for x in reps_a))
        s = None if self._s is None else tile_store(self._s)
        return TBHamiltonian(self._basis, Geometry.from_atoms(atoms), tile_store(self._h), s)

    # -- comparison -------------------------------------------------------------------------
    def max_abs_difference(self, other: TBHamiltonian) -> float:
        """Largest ``|H(R) - H'(R)|`` entry over all ``R`` (and S), eV; ``inf`` if the layouts
        differ."""
        if self._basis != other._basis or not np.array_equal(self._offsets, other._offsets):
            return float("inf")
        worst = 0.0
        for mine, theirs in ((self._h, other._h), (self._s, other._s)):
            if (mine is None) != (theirs is None):
                return float("inf")
            if mine is None:
                continue
            for r in set(mine) | set(theirs):
                a = mine.get(r)
                b = theirs.get(r)
                diff = a if b is None else (b if a is None else a - b)
                if diff.nnz:
                    worst = max(worst, float(np.abs(diff.data).max()))
        return worst

    @property
    def spin_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Spin-up and spin-down indices of every spatial orbital, in orbital order (atoms in
        order, each atom's orbitals spin-major: its up copies, then its down copies)."""
        return self._up, self._dn

    # -- checks -----------------------------------------------------------------------------
    def _spin_index_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        starts = self._offsets[:-1]
        half = np.diff(self._offsets) // 2
        up = (
            np.concatenate([np.arange(s, s + h) for s, h in zip(starts, half)])
            if len(half)
            else np.zeros(0, int)
        )
        dn = (
            np.concatenate([np.arange(s + h, s + 2 * h) for s, h in zip(starts, half)])
            if len(half)
            else np.zeros(0, int)
        )
        return up, dn

    def _locate(self, row: int, col: int) -> tuple[int, int]:
        i = int(np.searchsorted(self._offsets, row, side="right") - 1)
        j = int(np.searchsorted(self._offsets, col, side="right") - 1)
        return i, j

    def _check_finite(self, store, what: str) -> None:
        """:class:`NonFiniteError` naming the first atom pair and ``R`` holding NaN or inf."""
        for r, mat in store.items():
            bad = np.flatnonzero(~np.isfinite(mat.data))
            if bad.size:
                row = int(np.searchsorted(mat.indptr, bad[0], side="right") - 1)
                i, j = self._locate(row, int(mat.indices[bad[0]]))
                raise NonFiniteError(
                    f"{what}(R={r}) holds {bad.size} NaN or infinite entries, the first in the "
                    f"block of atoms i={i}, j={j}, R={r}; every {what} block must be finite "
                    "(check the model or the file the blocks come from)"
                )

    def _check_hermitian(self, store, what: str, tol: float) -> None:
        worst = (0.0, None)
        for r, mat in store.items():
            minus = tuple(-x for x in r)
            partner = store.get(minus)
            if partner is None:
                if mat.nnz and np.abs(mat.data).max() > tol:
                    raise HermiticityError(
                        f"{what}(R={r}) is given but {what}(R={minus}) is missing; add the "
                        f"Hermitian partner {what}(-R) = {what}(R)^dagger"
                    )
                continue
            diff = (mat - partner.conj().T).tocoo()
            if diff.nnz:
                k = int(np.argmax(np.abs(diff.data)))
                val = float(abs(diff.data[k]))
                if val > worst[0]:
                    worst = (val, (r, int(diff.row[k]), int(diff.col[k])))
        if worst[0] > tol:
            r, row, col = worst[1]
            i, j = self._locate(row, col)
            raise HermiticityError(
                f"{what} is not Hermitian: |{what}_ij(R) - {what}_ji(-R)^dagger| = {worst[0]:.3e} "
                f"(> tol {tol:.1e}) worst at atoms i={i}, j={j}, R={r}; every block needs "
                f"{what}_ji(-R) = {what}_ij(R)^dagger"
            )

    def _check_overlap_spin(self) -> None:
        up, dn = self._up, self._dn
        for r, mat in self._s.items():
            uu, dd = mat[up][:, up], mat[dn][:, dn]
            ud = mat[up][:, dn]
            bad = max(
                abs(uu - dd).max() if (uu - dd).nnz else 0.0, abs(ud).max() if ud.nnz else 0.0
            )
            if bad > 1e-8:
                raise ValueError(
                    f"overlap S(R={r}) must be spin-diagonal with equal up and down blocks "
                    f"(deviation {bad:.2e}); build S as kron(1_spin, S_orbital) per atom pair"
                )

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` (``.npz``) atomically (temporary file, then rename).

        Format (``numpy.savez_compressed``; version 1): ``format``, ``version``, ``basis``
        (JSON of :meth:`OrbitalBasis.to_dict`), ``cell`` (3, 3) Å, ``positions`` (N, 3) Å,
        ``numbers`` (N,), ``pbc`` (3,), ``moments`` (N, 3) μB, ``R`` (n_R, 3) int, and for
        ``H`` (and ``S`` when present) the COO triplets ``h_r`` (index into ``R``), ``h_row``,
        ``h_col``, ``h_data`` (complex128, eV).
        """
        path = Path(path)
        rs = sorted(set(self._h) | set(self._s or {}))
        rindex = {r: n for n, r in enumerate(rs)}
        arrays: dict[str, np.ndarray] = {
            "format": np.array(_FORMAT),
            "version": np.array(_FORMAT_VERSION),
            "basis": np.array(self._basis.to_json()),
            "cell": self._geometry.cell,
            "positions": self._geometry.positions,
            "numbers": self._geometry.numbers,
            "pbc": self._geometry.pbc,
            "moments": self._geometry.moments,
            "R": np.array(rs, dtype=np.int64).reshape(-1, 3),
        }
        for prefix, store in (("h", self._h), ("s", self._s)):
            if store is None:
                continue
            parts = [(rindex[r], m.tocoo()) for r, m in store.items()]
            arrays[f"{prefix}_r"] = np.concatenate([np.full(c.nnz, n, np.int32) for n, c in parts])
            arrays[f"{prefix}_row"] = np.concatenate([c.row.astype(np.int64) for _, c in parts])
            arrays[f"{prefix}_col"] = np.concatenate([c.col.astype(np.int64) for _, c in parts])
            arrays[f"{prefix}_data"] = np.concatenate([c.data for _, c in parts])
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TBHamiltonian:
        """Read a file written by :meth:`save`.  Nothing is unpickled.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        HamiltonianFileError
            If ``path`` is not a TBHamiltonian file: another format (a pickle, a ``.npy``
            array, text), a truncated or corrupted ``.npz`` archive, an archive without the
            arrays :meth:`save` writes or with object arrays, or a newer format version.
        """
        f = _read_npz(path)
        version = int(f["version"])
        if version > _FORMAT_VERSION:
            raise HamiltonianFileError(
                f"{path} has TBHamiltonian format version {version}, newer than this "
                f"ase-hamgnn reads ({_FORMAT_VERSION}); upgrade ase-hamgnn")
        basis = OrbitalBasis.from_json(str(f["basis"]))
        geometry = Geometry(f["cell"], f["positions"], f["numbers"], f["pbc"], f["moments"])
        rs = [tuple(int(x) for x in r) for r in f["R"]]
        n = int(basis.spin_orbital_offsets(geometry.numbers)[-1])
        stores = []
        for prefix in ("h", "s"):
            if f"{prefix}_r" not in f:
                stores.append(None)
                continue
            ri, row, col, data = (f[f"{prefix}_{x}"] for x in ("r", "row", "col", "data"))
            store = {}
            for idx in np.unique(ri):
                sel = ri == idx
                store[rs[idx]] = sp.coo_matrix((data[sel], (row[sel], col[sel])), shape=(n, n))
            stores.append(store)
        return cls(basis, geometry, stores[0], stores[1])


#: Arrays every TBHamiltonian file holds (``s_*`` only with an overlap).
_REQUIRED_ARRAYS = ("format", "version", "basis", "cell", "positions", "numbers", "pbc",
                    "moments", "R", "h_r", "h_row", "h_col", "h_data")


def _read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the TBHamiltonian file ``path``, read eagerly with
    ``allow_pickle=False``; :class:`HamiltonianFileError` naming the file and the problem
    for anything else."""
    what = "an ase-hamgnn TBHamiltonian file (an .npz archive written by TBHamiltonian.save)"
    with open(path, "rb") as fh:  # FileNotFoundError as it is
        head = fh.read(6)
    if not head.startswith(b"PK\x03\x04"):  # every .npz is a zip archive
        kind = ("empty" if not head else
                "a Python pickle, which is never unpickled here (it could run code)"
                if head[:1] == b"\x80" else
                "a single .npy array" if head == b"\x93NUMPY" else
                "not an .npz (zip) archive")
        raise HamiltonianFileError(f"{path} is not {what}: the file is {kind}")
    broken = (f"{path} is a truncated or corrupted .npz archive; write it again with "
              "TBHamiltonian.save")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for name in archive.files:
                try:
                    arrays[name] = archive[name]
                except ValueError as exc:  # an object array: pickled data
                    raise HamiltonianFileError(
                        f"{path}: the array {name!r} holds Python objects (pickled data), "
                        f"which are not unpickled; it is not {what}") from exc
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        if isinstance(exc, HamiltonianFileError):
            raise
        raise HamiltonianFileError(f"{broken} ({type(exc).__name__}: {exc})") from exc
    fmt = arrays.get("format")
    if fmt is None or fmt.dtype.kind != "U" or str(fmt) != _FORMAT:
        raise HamiltonianFileError(
            f"{path} is an .npz archive but not {what}: it has no format entry {_FORMAT!r} "
            f"(arrays: {', '.join(sorted(arrays)) or 'none'})")
    missing = [name for name in _REQUIRED_ARRAYS if name not in arrays]
    if missing:
        raise HamiltonianFileError(
            f"{path} is an incomplete TBHamiltonian file: "
            + (f"the array {missing[0]} is" if len(missing) == 1
               else f"the arrays {', '.join(missing)} are")
            + " missing; write it again with TBHamiltonian.save")
    return arrays
