"""Structure builders for the systems of the HamGNN++ paper, with literature lattice constants.

Every builder returns a new two-dimensional ``ase.Atoms``: periodic in the plane, vacuum along
``z`` (``pbc = (True, True, False)``), so Hamiltonians of it only have lattice vectors with
``R_z = 0``.  ``size = (n1, n2)`` (or ``(n1, n2, 1)``) repeats the primitive cell with
``Atoms.repeat``, so atom order is that of :meth:`ase_hamgnn.TBHamiltonian.tile`.  Moments are
written as ``(N, 3)`` ``initial_magmoms`` in μB, ferromagnetic along ``+z`` on the magnetic
atoms (Ni, Fe) and zero on the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import add_adsorbate, fcc111

__all__ = ["fe_ir111", "nibr2", "nibri"]

#: Default vacuum on each side of a layer, Å.
VACUUM = 10.0


def _reps(size: Sequence[int]) -> tuple[int, int, int]:
    try:
        reps = tuple(int(x) for x in size)
    except TypeError:
        raise TypeError(f"size must be a tuple such as (2, 2) or (2, 2, 1), got {size!r}") from None
    if len(reps) == 2:
        reps = (*reps, 1)
    if len(reps) != 3 or min(reps) < 1:
        raise ValueError(f"size must be two or three positive integers, got {size!r}")
    if reps[2] != 1:
        raise ValueError(
            f"size[2] must be 1: these are two-dimensional layers with vacuum along z, got {size!r}"
        )
    return reps  # type: ignore[return-value]


def _finish(atoms: Atoms, size: Sequence[int], vacuum: float, moments: dict[str, float]) -> Atoms:
    if not vacuum > 0:
        raise ValueError(f"vacuum must be positive (Å on each side), got {vacuum}")
    atoms.pbc = (True, True, False)
    atoms.center(vacuum=vacuum, axis=2)
    atoms.wrap()
    mag = np.zeros((len(atoms), 3), dtype=np.float64)
    for symbol, value in moments.items():
        mag[np.array(atoms.get_chemical_symbols()) == symbol, 2] = value
    atoms.set_initial_magnetic_moments(mag)
    return atoms.repeat(_reps(size))


def _dihalide(top: str, bottom: str, a: float, h_top: float, h_bottom: float) -> Atoms:
    """1T (CdI2-type) MX2 layer: M on a triangular lattice, X above and below in the two
    hollow sites, so every M sits in an X6 octahedron."""
    cell = [[a, 0.0, 0.0], [-0.5 * a, 0.5 * np.sqrt(3.0) * a, 0.0], [0.0, 0.0, 1.0]]
    frac = np.array([[0.0, 0.0, 0.0], [1 / 3, 2 / 3, 0.0], [2 / 3, 1 / 3, 0.0]])
    pos = frac @ np.array(cell)
    pos[1, 2], pos[2, 2] = h_top, -h_bottom
    return Atoms(["Ni", top, bottom], positions=pos, cell=cell)


def nibr2(size: Sequence[int] = (1, 1, 1), a: float = 3.70, height: float = 1.37,
          vacuum: float = VACUUM, magmom: float = 2.0) -> Atoms:
    """Monolayer NiBr2, 1T (CdI2 type), ferromagnetic along z.

    Parameters
    ----------
    size : (n1, n2) or (n1, n2, 1)
        Repetitions of the primitive cell (Ni, Br top, Br bottom).
    a : float
        Lattice constant, Å.  Default 3.70 Å: the experimental bulk value is about 3.71 Å, and
        DFT monolayer values are 3.68–3.72 Å (A. S. Botana and M. R. Norman, Phys. Rev.
        Materials 3, 044001 (2019); M. Lu et al., ACS Omega 4, 5714 (2019)).
    height : float
        Height of each Br plane above/below the Ni plane, Å.  1.37 Å gives a Ni–Br bond of
        2.54 Å, the bulk value.
    vacuum : float
        Vacuum on each side of the layer along z, Å.
    magmom : float
        Moment on Ni along +z, μB; 2 μB is the formal moment of Ni2+ (d8, S = 1).

    Examples
    --------
    >>> atoms = nibr2((2, 2))
    >>> atoms.get_chemical_formula(), atoms.pbc.tolist()
    ('Br8Ni4', [True, True, False])
    """
    return _finish(_dihalide("Br", "Br", a, height, height), size, vacuum, {"Ni": magmom})


def nibri(size: Sequence[int] = (1, 1, 1), a: float = 3.82, height_br: float = 1.30,
          height_i: float = 1.66, vacuum: float = VACUUM, magmom: float = 2.0) -> Atoms:
    """Janus monolayer NiBrI (Br plane above, I plane below the Ni plane), FM along z.

    Parameters
    ----------
    size : (n1, n2) or (n1, n2, 1)
        Repetitions of the primitive cell (Ni, Br, I).  The paper's skyrmion cell is
        ``(34, 34)``: 3468 atoms.
    a : float
        Lattice constant, Å.  Default 3.82 Å, between NiBr2 (3.70 Å) and NiI2 (3.92–3.96 Å);
        DFT values for Janus NiBrI lie in 3.8–3.9 Å (e.g. M. Lu et al., ACS Omega 4, 5714
        (2019); S.-D. Guo et al., arXiv:2204.06715).
    height_br, height_i : float
        Heights of the Br plane above and the I plane below the Ni plane, Å; with the
        defaults the bonds are Ni–Br 2.56 Å and Ni–I 2.76 Å.
    vacuum : float
        Vacuum on each side of the layer along z, Å.
    magmom : float
        Moment on Ni along +z, μB (formal Ni2+, S = 1).
    """
    return _finish(_dihalide("Br", "I", a, height_br, height_i), size, vacuum, {"Ni": magmom})


def fe_ir111(size: Sequence[int] = (1, 1, 1), n_ir_layers: int = 3, a: float = 3.839,
             height: float = 2.04, vacuum: float = VACUUM, magmom: float = 2.7) -> Atoms:
    """Pseudomorphic Fe monolayer in hcp hollow sites on an fcc Ir(111) slab.

    Parameters
    ----------
    size : (n1, n2) or (n1, n2, 1)
        Repetitions of the 1x1 surface cell (``n_ir_layers`` Ir atoms, then one Fe).
    n_ir_layers : int
        Number of Ir(111) layers (ABC stacking), at least 1; atoms are ordered from the
        bottom Ir layer to the Fe layer.
    a : float
        fcc lattice constant of Ir, Å (experimental 3.839 Å); the in-plane constant is
        ``a / sqrt(2) = 2.715`` Å and the Ir interlayer spacing ``a / sqrt(3) = 2.217`` Å.
    height : float
        Fe–Ir interlayer distance, Å.  2.04 Å is the bulk spacing reduced by about 8 %, the
        inward relaxation typical of DFT for 3d monolayers on Ir(111).  The hcp stacking is
        the one of the nanoskyrmion lattice (S. Heinze et al., Nat. Phys. 7, 713 (2011)).
    vacuum : float
        Vacuum on each side of the slab along z, Å.
    magmom : float
        Moment on Fe along +z, μB (DFT gives about 2.7–2.9 μB); Ir moments are zero.
    """
    if not isinstance(n_ir_layers, (int, np.integer)) or n_ir_layers < 1:
        raise ValueError(f"n_ir_layers must be a positive integer, got {n_ir_layers!r}")
    slab = fcc111("Ir", size=(1, 1, int(n_ir_layers)), a=a, orthogonal=False)
    add_adsorbate(slab, "Fe", height, "hcp")
    return _finish(slab, size, vacuum, {"Fe": magmom})
