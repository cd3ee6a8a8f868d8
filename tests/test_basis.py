"""OrbitalBasis: layout, serialization, errors, and the e3nn orbital convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3

from ase_hamgnn import BasisError, OrbitalBasis, Shell
from ase_hamgnn.symmetry import random_rotation, wigner_d


def test_counts_offsets_and_labels(basis):
    assert basis.elements == ("Ni", "Br")
    assert basis.n_orbitals("Ni") == 6 and basis.n_spin_orbitals(28) == 12
    assert basis.n_orbitals("Br") == 4
    np.testing.assert_array_equal(basis.spin_orbital_offsets([28, 35, 35]), [0, 12, 20, 28])
    assert basis.irreps("Br") == "1x0e+1x1o"
    assert basis.orbital_labels("Br") == ("4s", "4px", "4py", "4pz")
    assert [s.label for s in basis.shells("Ni")] == ["4s", "3d"]
    assert basis.shell_slices("Ni") == (slice(0, 1), slice(1, 6))


def test_serialization_round_trip_and_equality(basis):
    again = OrbitalBasis.from_json(basis.to_json())
    assert again == basis and hash(again) == hash(basis)
    assert OrbitalBasis.from_dict(basis.to_dict()) == basis
    assert OrbitalBasis({"Ni": ["3d", "4s"], "Br": ["4s", "4p"]}) != basis  # order matters
    assert OrbitalBasis({"Ni": [(4, 0), (3, 2)], 35: [Shell(4, 0), "4p"]}) == basis


@pytest.mark.parametrize(
    "spec",
    [{"Xx": ["1s"]}, {"Ni": []}, {"Ni": ["3f"]}, {"Ni": ["4s", "4s"]}, {"Ni": ["bad"]}, {}],
)
def test_malformed_basis_raises(spec):
    with pytest.raises(BasisError):
        OrbitalBasis(spec)


def test_unknown_element_names_the_fix(basis):
    with pytest.raises(BasisError, match="Fe"):
        basis.shells("Fe")
    with pytest.raises(KeyError):  # BasisError is also a KeyError
        basis.check_numbers([26, 28])


@pytest.mark.parametrize("l", [0, 1, 2, 3])
def test_wigner_matrix_rotates_the_orbital_functions(l):
    """D^l(Q) maps e3nn's real harmonics exactly as rotating the functions does:
    Y_l(Q r) = D^l(Q) Y_l(r), for proper and improper Q, to machine precision."""
    rng = np.random.default_rng(l)
    points = rng.normal(size=(50, 3))
    for proper in (True, False):
        q = random_rotation(rng) * (1 if proper else -1)
        d = wigner_d(l, q)
        y = o3.spherical_harmonics(l, torch.as_tensor(points), normalize=True).numpy()
        y_rot = o3.spherical_harmonics(l, torch.as_tensor(points @ q.T), normalize=True).numpy()
        np.testing.assert_allclose(y_rot, y @ d.T, atol=1e-12)


def test_l1_orbitals_are_cartesian_xyz():
    q = random_rotation(np.random.default_rng(3))
    np.testing.assert_allclose(wigner_d(1, q), q, atol=1e-13)
    np.testing.assert_allclose(wigner_d(1, -q), -q, atol=1e-13)  # p orbitals are odd
