"""The geometry a Hamiltonian belongs to: cell, positions, species, periodicity, moments."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

__all__ = ["Geometry", "read_moments"]


def read_moments(atoms: Atoms) -> np.ndarray:
    """Magnetic moments of ``atoms`` as an (N, 3) float64 array in μB.

    Reads ``initial_magmoms``: an (N, 3) array is taken as it is; scalar moments (N,) mean
    collinear moments along z.

    Raises
    ------
    ValueError
        If the moments have another shape or are not finite.
    """
    m = np.asarray(atoms.get_initial_magnetic_moments(), dtype=np.float64)
    if m.ndim == 1:
        m = np.stack([np.zeros_like(m), np.zeros_like(m), m], axis=1)
    if m.shape != (len(atoms), 3):
        raise ValueError(
            f"initial_magmoms must have shape ({len(atoms)},) or ({len(atoms)}, 3), got {m.shape}"
        )
    if not np.isfinite(m).all():
        raise ValueError("initial_magmoms contain NaN or inf; set finite moments in μB")
    return m


@dataclass(frozen=True, eq=False)
class Geometry:
    """Immutable structure with moments; arrays are read-only float64/int64 copies.

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
        if not (np.isfinite(pos).all() and np.isfinite(cell).all() and np.isfinite(mom).all()):
            raise ValueError("geometry contains NaN or inf")
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
