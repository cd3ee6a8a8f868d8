"""The geometry a Hamiltonian belongs to: cell, positions, species, periodicity, moments."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ase_hamgnn.errors import CellError, MomentError, OverlappingAtomsError, StructureError

__all__ = ["MAX_CELL_CONDITION", "MAX_MOMENT", "MIN_CELL_HEIGHT", "Geometry", "check_cell",
           "read_moments"]

#: Smallest spacing (Å) of the lattice planes of a periodic cell: along each periodic
#: direction, the distance of the lattice vector from the span of the other periodic vectors.
#: A smaller spacing is a (nearly) singular cell, e.g. ``a2`` a copy of ``a1``; a neighbour
#: search in it would need millions of periodic images.
MIN_CELL_HEIGHT = 0.5

#: Largest condition number (ratio of the largest to the smallest singular value) of the
#: periodic lattice vectors.
MAX_CELL_CONDITION = 1e6

#: Largest magnetic moment (μB) a geometry accepts; no atom carries more than ~10 μB.
MAX_MOMENT = 100.0


def read_moments(atoms: Atoms) -> np.ndarray:
    """Magnetic moments of ``atoms`` as an (N, 3) float64 array in μB.

    Reads ``initial_magmoms``: an (N, 3) array is taken as it is; scalar moments (N,) mean
    collinear moments along z.

    Raises
    ------
    MomentError
        If the moments have another shape, are not finite or are larger than
        :data:`MAX_MOMENT` μB.
    """
    m = np.asarray(atoms.get_initial_magnetic_moments(), dtype=np.float64)
    if m.ndim == 1:
        m = np.stack([np.zeros_like(m), np.zeros_like(m), m], axis=1)
    if m.shape != (len(atoms), 3):
        raise MomentError(
            f"initial_magmoms must have shape ({len(atoms)},) or ({len(atoms)}, 3), got {m.shape}"
        )
    _check_moments(m, "initial_magmoms")
    return m


def _check_moments(m: np.ndarray, what: str) -> None:
    """:class:`MomentError` for NaN, inf or moments larger than :data:`MAX_MOMENT` μB."""
    bad = np.flatnonzero(~np.isfinite(m).all(axis=1))
    if bad.size:
        raise MomentError(
            f"{what} of atoms {bad[:10].tolist()} contain NaN or inf; set finite moments in μB"
        )
    # components first: the norm of a 1e300 vector would overflow
    size = np.linalg.norm(np.clip(m, -2 * MAX_MOMENT, 2 * MAX_MOMENT), axis=1)
    big = np.flatnonzero(size > MAX_MOMENT)
    if big.size:
        largest = np.abs(m[big[0]]).max()
        first = largest * np.linalg.norm(m[big[0]] / largest)  # no overflow
        raise MomentError(
            f"{what} of atoms {big[:10].tolist()} are larger than {MAX_MOMENT:g} μB (first: "
            f"{first:.3g} μB); moments are in μB per atom (a few μB for "
            "a transition metal): check their units"
        )


def check_cell(cell: np.ndarray, pbc: np.ndarray) -> None:
    """Check that the periodic lattice vectors of ``cell`` (rows, Å) span a proper lattice.

    Along every periodic direction the spacing of the lattice planes (the distance of that
    lattice vector from the span of the other periodic ones) must be at least
    :data:`MIN_CELL_HEIGHT`, and the periodic vectors must have a condition number below
    :data:`MAX_CELL_CONDITION`.  Non-periodic directions are not checked.

    Raises
    ------
    OverlappingAtomsError
        If a periodic lattice vector is shorter than :data:`MIN_CELL_HEIGHT`: every atom
        overlaps its own image.
    CellError
        If the periodic part of the cell is singular or ill-conditioned.
    """
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    periodic = np.flatnonzero(np.asarray(pbc, dtype=bool).reshape(3))
    if periodic.size == 0:
        return
    vectors = cell[periodic]
    for d in periodic:
        length = float(np.linalg.norm(cell[d]))
        if length < MIN_CELL_HEIGHT:
            raise OverlappingAtomsError(
                f"lattice vector {d} has length {length:.3f} Å < {MIN_CELL_HEIGHT} Å: every "
                "atom overlaps its own periodic image; check the cell (lengths in Å), or set "
                f"pbc False along direction {d} if the structure is not periodic there"
            )
    gram = vectors @ vectors.T
    volume2 = float(np.linalg.det(gram))
    for n, d in enumerate(periodic):
        rest = np.delete(np.delete(gram, n, axis=0), n, axis=1)
        base2 = float(np.linalg.det(rest)) if rest.size else 1.0
        height = float(np.sqrt(max(volume2, 0.0) / base2)) if base2 > 0 else 0.0
        if not height >= MIN_CELL_HEIGHT:
            others = [f"a{int(e) + 1}" for e in periodic if e != d]
            where = (f"from the span of the other periodic vectors ({', '.join(others)})"
                     if others else "long")
            raise CellError(
                f"the periodic cell is singular: lattice vector a{d + 1} = "
                f"{np.round(cell[d], 6).tolist()} Å lies {height:.3g} Å {where}, less than "
                f"the minimum spacing of lattice planes {MIN_CELL_HEIGHT} Å; give linearly "
                f"independent lattice vectors (is a{d + 1} a copy of another one?), or set "
                f"pbc False along direction {d} if the structure is not periodic there"
            )
    cond = float(np.linalg.cond(vectors))
    if not cond <= MAX_CELL_CONDITION:
        lengths = np.linalg.norm(vectors, axis=1)
        raise CellError(
            f"the periodic lattice vectors are ill-conditioned (condition number {cond:.3g} > "
            f"{MAX_CELL_CONDITION:g}; lengths {np.round(lengths, 3).tolist()} Å); use a "
            "reduced cell (e.g. ase.build.niggli_reduce) with vectors of comparable length"
        )


@dataclass(frozen=True, eq=False)
class Geometry:
    """Immutable structure with moments; arrays are read-only float64/int64 copies.

    Construction checks what every later step relies on: finite positions and cell, a
    periodic cell that is not singular (:func:`check_cell`), finite moments of at most
    :data:`MAX_MOMENT` μB.  Distances between atoms are checked by
    :func:`ase_hamgnn.graph.check_structure`, before a prediction.

    Attributes
    ----------
    cell : (3, 3) lattice vectors as rows, Å.
    positions : (N, 3) Cartesian positions, Å.
    numbers : (N,) atomic numbers.
    pbc : (3,) periodic directions.
    moments : (N, 3) magnetic moments, μB.
    """

    cell: np.ndarray
    positions: np.ndarray
    numbers: np.ndarray
    pbc: np.ndarray
    moments: np.ndarray

    def __post_init__(self) -> None:
        cell = np.array(self.cell, dtype=np.float64).reshape(3, 3)
        pos = np.array(self.positions, dtype=np.float64)
        num = np.array(self.numbers, dtype=np.int64)
        pbc = np.array(self.pbc, dtype=bool).reshape(3)
        mom = np.array(self.moments, dtype=np.float64)
        n = len(num)
        if pos.shape != (n, 3) or mom.shape != (n, 3):
            raise ValueError(
                f"positions and moments must be ({n}, 3); got {pos.shape} and {mom.shape}"
            )
        bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
        if bad.size:
            raise StructureError(
                f"atoms {bad[:10].tolist()} have NaN or infinite positions; set finite "
                "Cartesian positions in Å"
            )
        if not np.isfinite(cell).all():
            raise StructureError("the cell contains NaN or inf; set finite lattice vectors in Å")
        _check_moments(mom, "the moments")
        check_cell(cell, pbc)
        for name, arr in (("cell", cell), ("positions", pos), ("numbers", num), ("pbc", pbc),
                          ("moments", mom)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @classmethod
    def from_atoms(cls, atoms: Atoms) -> Geometry:
        """Geometry of ``atoms`` with moments from :func:`read_moments`."""
        return cls(atoms.cell.array, atoms.positions, atoms.numbers, atoms.pbc,
                   read_moments(atoms))

    def to_atoms(self) -> Atoms:
        """A new ``ase.Atoms`` with (N, 3) ``initial_magmoms``."""
        atoms = Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell,
                      pbc=self.pbc)
        atoms.set_initial_magnetic_moments(np.array(self.moments))
        return atoms

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def scaled_positions(self) -> np.ndarray:
        """Fractional coordinates (N, 3) (not wrapped)."""
        return np.linalg.solve(self.cell.T, self.positions.T).T

    def transformed(self, rotation: np.ndarray | None, time_reversal: bool = False) -> Geometry:
        """Geometry after ``g`` in O(3) (moments axial) and optional time reversal."""
        cell, pos, mom = self.cell, self.positions, self.moments
        if rotation is not None:
            g = np.asarray(rotation, dtype=np.float64)
            cell, pos = cell @ g.T, pos @ g.T
            mom = np.linalg.det(g) * mom @ g.T
        if time_reversal:
            mom = -mom
        return Geometry(cell, pos, self.numbers, self.pbc, mom)

    def equals(self, other: Geometry, atol: float = 1e-10) -> bool:
        """Same species and pbc, and cell/positions/moments equal within ``atol``."""
        return (
            np.array_equal(self.numbers, other.numbers)
            and np.array_equal(self.pbc, other.pbc)
            and np.allclose(self.cell, other.cell, atol=atol, rtol=0)
            and np.allclose(self.positions, other.positions, atol=atol, rtol=0)
            and np.allclose(self.moments, other.moments, atol=atol, rtol=0)
        )
