"""Symmetry operators: group laws, SU(2) covering, time reversal, transform oracle."""

from __future__ import annotations

import numpy as np
import pytest
from tb_helpers import random_tb

from ase_hamgnn.symmetry import (
    PAULI,
    orbital_rotation,
    random_rotation,
    spin_orbital_rotation,
    su2_from_rotation,
    time_reversal_operator,
    transform_atoms,
    transform_hamiltonian,
    wigner_d,
)


@pytest.mark.parametrize("l", [0, 1, 2, 3, 4])
def test_wigner_homomorphism(rng, l):
    for _ in range(5):
        q1, q2 = random_rotation(rng, proper=False), random_rotation(rng, proper=False)
        np.testing.assert_allclose(wigner_d(l, q1 @ q2), wigner_d(l, q1) @ wigner_d(l, q2),
                                   atol=1e-12)
        d = wigner_d(l, q1)
        np.testing.assert_allclose(d @ d.T, np.eye(2 * l + 1), atol=1e-12)


def test_inversion_parity(basis):
    d = orbital_rotation(basis, "Br", -np.eye(3))
    np.testing.assert_allclose(d, np.diag([1, -1, -1, -1]), atol=1e-13)
    np.testing.assert_allclose(orbital_rotation(basis, "Ni", -np.eye(3)), np.eye(6), atol=1e-13)
    np.testing.assert_allclose(su2_from_rotation(-np.eye(3)), np.eye(2) * np.sign(
        su2_from_rotation(-np.eye(3))[0, 0].real), atol=1e-13)  # spin untouched


def test_su2_covering_map(rng):
    for _ in range(20):
        q1, q2 = random_rotation(rng), random_rotation(rng)
        u12 = su2_from_rotation(q1 @ q2)
        prod = su2_from_rotation(q1) @ su2_from_rotation(q2)
        sign = np.sign((u12.conj() * prod).sum().real)
        np.testing.assert_allclose(u12, sign * prod, atol=1e-12)
        u = su2_from_rotation(q1)
        np.testing.assert_allclose(u @ u.conj().T, np.eye(2), atol=1e-13)
        assert abs(np.linalg.det(u) - 1) < 1e-12
        # U (m.sigma) U^dagger = (Q m).sigma
        m = rng.normal(size=3)
        lhs = u @ np.einsum("a,aij->ij", m, PAULI) @ u.conj().T
        np.testing.assert_allclose(lhs, np.einsum("a,aij->ij", q1 @ m, PAULI), atol=1e-12)


def test_su2_special_angles():
    """Rotations by pi (where the quaternion's scalar part vanishes) and the identity."""
    for q in (np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1]), np.eye(3)):
        u = su2_from_rotation(q)
        for a in range(3):
            np.testing.assert_allclose(u @ PAULI[a] @ u.conj().T,
                                       np.einsum("b,bij->ij", q[:, a], PAULI), atol=1e-13)


def test_time_reversal_squares_to_minus_one():
    theta = time_reversal_operator(4)
    # Theta = T K with T real: Theta^2 = T T^* = T T
    np.testing.assert_allclose(theta @ theta.conj(), -np.eye(8), atol=0)
    # Theta flips every Pauli matrix: T sigma^* T^dagger = -sigma
    t1 = time_reversal_operator(1)
    for a in range(3):
        np.testing.assert_allclose(t1 @ PAULI[a].conj() @ t1.T, -PAULI[a], atol=0)


def test_spin_orbital_rotation_is_unitary(basis, rng):
    t = spin_orbital_rotation(basis, "Ni", random_rotation(rng, proper=False))
    np.testing.assert_allclose(t @ t.conj().T, np.eye(12), atol=1e-12)


def test_transform_hamiltonian_group_law_and_spectra(rng, basis, nibr2_like):
    ham = random_tb(rng, nibr2_like, basis, overlap=True)
    q1, q2 = random_rotation(rng, proper=False), random_rotation(rng, proper=False)
    a = transform_hamiltonian(transform_hamiltonian(ham, q2), q1)
    b = transform_hamiltonian(ham, q1 @ q2)
    assert a.max_abs_difference(b) < 1e-10
    assert a.geometry.equals(b.geometry)
    k = rng.random(3) * [1, 1, 0]
    # a rotation is unitary and keeps fractional k: same spectrum
    np.testing.assert_allclose(b.eigvalsh(k), ham.eigvalsh(k), atol=1e-10)
    # time reversal maps the spectrum at k to -k and is an involution on H
    tr = transform_hamiltonian(ham, time_reversal=True)
    np.testing.assert_allclose(tr.eigvalsh(-k), ham.eigvalsh(k), atol=1e-10)
    np.testing.assert_allclose(tr.geometry.moments, -ham.geometry.moments)
    assert transform_hamiltonian(tr, time_reversal=True).max_abs_difference(ham) < 1e-12


def test_transform_atoms_moves_axial_moments(rng, nibr2_like):
    q = random_rotation(rng)
    out = transform_atoms(nibr2_like, -q)
    m0 = nibr2_like.get_initial_magnetic_moments()
    np.testing.assert_allclose(out.get_initial_magnetic_moments(), m0 @ q.T, atol=1e-13)
    np.testing.assert_allclose(out.positions, -nibr2_like.positions @ q.T, atol=1e-13)
    np.testing.assert_allclose(out.get_scaled_positions(wrap=False),
                               nibr2_like.get_scaled_positions(wrap=False), atol=1e-12)
    assert nibr2_like.get_initial_magnetic_moments()[0, 2] == 1.9  # input untouched


def test_non_orthogonal_matrix_is_rejected():
    with pytest.raises(ValueError, match="orthogonal"):
        wigner_d(1, np.diag([1.0, 2.0, 1.0]))
