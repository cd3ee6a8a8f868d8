"""Orbital conventions of foreign formats and unit conversions.

The physics test: rotating in the foreign convention (its own Wigner matrices, built from its
own orbital functions) and converting equals converting and rotating in ours.
"""

from __future__ import annotations

import ase.units
import numpy as np
import pytest
from tb_helpers import random_tb

from ase_hamgnn.data.io.conventions import (
    CONVENTIONS,
    atom_transform,
    convert_block,
    foreign_orbitals,
    orbital_names,
    orbital_transform,
)
from ase_hamgnn.data.io.units import (
    BOHR_IN_ANGSTROM,
    HARTREE_IN_EV,
    angstrom_to_bohr,
    bohr_to_angstrom,
    ev_to_hartree,
    hartree_to_ev,
)
from ase_hamgnn.symmetry import random_rotation, su2_from_rotation, wigner_d

TOL = 1e-12


def _points(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _foreign_wigner(convention: str, l: int, g: np.ndarray, rng) -> np.ndarray:  # noqa: E741
    """D_foreign(g) from the foreign functions alone: Y_f(g r) = D_f Y_f(r) (with parity)."""
    det = np.linalg.det(g)
    pts = _points(8 * (2 * l + 1), rng)
    y = foreign_orbitals(convention, l, pts)
    y_rot = foreign_orbitals(convention, l, pts @ (det * g).T)
    d = np.linalg.lstsq(y, y_rot, rcond=None)[0].T
    return -d if (det < 0 and l % 2) else d


@pytest.mark.parametrize("l", [0, 1, 2, 3])
def test_matrix_maps_the_functions(l, rng):  # noqa: E741
    t = orbital_transform("openmx", l)
    np.testing.assert_allclose(t @ t.T, np.eye(2 * l + 1), atol=TOL)
    pts = _points(50, rng)
    np.testing.assert_allclose(foreign_orbitals("openmx", l, pts) @ t.T,
                               foreign_orbitals("e3nn", l, pts), atol=1e-12)


@pytest.mark.parametrize("l", [0, 1, 2, 3])
def test_rotating_in_foreign_convention_equals_ours(l, rng):  # noqa: E741
    t = orbital_transform("openmx", l)
    for improper in (False, True):
        g = random_rotation(rng) * (-1 if improper else 1)
        d_f = _foreign_wigner("openmx", l, g, rng)
        np.testing.assert_allclose(t @ d_f @ t.T, wigner_d(l, g), atol=1e-10)


def test_explicit_entries_of_the_d_shell():
    # ours d(3y^2-r^2) = -1/2 d(3z^2-r^2) - sqrt(3)/2 d(x^2-y^2); ours dxz = OpenMX dxz
    t = orbital_transform("openmx", 2)
    np.testing.assert_allclose(t[2], [-0.5, -np.sqrt(3) / 2, 0, 0, 0], atol=1e-15)
    assert t[0, 3] == 1.0 and t[1, 2] == 1.0 and t[3, 4] == 1.0
    np.testing.assert_array_equal(orbital_transform("openmx", 1), np.eye(3))
    assert orbital_names("openmx", 2)[0] == "d3z2-r2"
    assert orbital_names("e3nn", 1) == ("px", "py", "pz")
    assert set(CONVENTIONS) == {"openmx", "e3nn"}


def test_hamiltonian_rotation_commutes_with_conversion(rng, basis, nibr2_like):
    """Rotate a whole spinful Hamiltonian in OpenMX's convention (kron(U, D_f) on each atom)
    and convert, versus convert and rotate in ours."""
    ham = random_tb(rng, nibr2_like, basis)
    g = random_rotation(rng)
    u = su2_from_rotation(g)
    numbers = ham.geometry.numbers
    ls = [[s.l for s in basis.shells(int(z))] for z in numbers]

    def d_ours(atom):
        from scipy.linalg import block_diag
        return np.kron(u, block_diag(*[wigner_d(l, g) for l in ls[atom]]))

    def d_foreign(atom):
        from scipy.linalg import block_diag
        return np.kron(u, block_diag(*[_foreign_wigner("openmx", l, g, rng) for l in ls[atom]]))

    for r in [(0, 0, 0), (1, 0, 0), (-1, 1, 0)]:
        for i in range(len(numbers)):
            for j in range(len(numbers)):
                b = ham.block(i, j, r)
                foreign = convert_block(b, ls[i], ls[j], "openmx", to_ours=False)
                rotated_foreign = d_foreign(i) @ foreign @ d_foreign(j).conj().T
                via_foreign = convert_block(rotated_foreign, ls[i], ls[j], "openmx")
                np.testing.assert_allclose(via_foreign, d_ours(i) @ b @ d_ours(j).conj().T,
                                           atol=1e-10)


def test_convert_block_round_trip_and_shapes(rng):
    ls_i, ls_j = [0, 2, 3], [1]
    b = rng.normal(size=(2 * 13, 2 * 3)) + 1j * rng.normal(size=(26, 6))
    back = convert_block(convert_block(b, ls_i, ls_j, "openmx"), ls_i, ls_j, "openmx",
                         to_ours=False)
    np.testing.assert_allclose(back, b, atol=TOL)
    spatial = rng.normal(size=(13, 3))
    assert convert_block(spatial, ls_i, ls_j, "openmx").shape == (13, 3)
    assert atom_transform("openmx", ls_i).shape == (26, 26)
    with pytest.raises(ValueError, match="fits neither"):
        convert_block(spatial[:5], ls_i, ls_j, "openmx")
    with pytest.raises(ValueError, match="l = 0...3"):
        orbital_transform("openmx", 4)
    with pytest.raises(ValueError, match="unknown orbital convention"):
        orbital_transform("siesta", 1)


def test_units():
    assert HARTREE_IN_EV == 27.211386245988
    assert BOHR_IN_ANGSTROM == 0.529177210903
    assert abs(hartree_to_ev(1.0) / ase.units.Hartree - 1) < 1e-7
    assert abs(bohr_to_angstrom(1.0) / ase.units.Bohr - 1) < 1e-7
    x = np.array([[0.5, -2.0], [3.0, 1e-3]])
    np.testing.assert_allclose(ev_to_hartree(hartree_to_ev(x)), x, rtol=1e-15)
    np.testing.assert_allclose(angstrom_to_bohr(bohr_to_angstrom(x)), x, rtol=1e-15)
    np.testing.assert_allclose(hartree_to_ev(x), x * 27.211386245988, rtol=1e-15)
