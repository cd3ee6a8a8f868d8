"""An untrained random HamGNN++ (float64) is exactly equivariant: rotations with inversion,
time reversal, atom permutations, periodic images; and exactly Hermitian."""

from __future__ import annotations

import numpy as np
import pytest

from ase_hamgnn.symmetry import random_rotation, transform_atoms, transform_hamiltonian

TOL = 1e-10
MODELS = ["small_model", "coupled_model", "normalized_model", "general_model", "biased_model",
          "channel_model", "bond_term_model", "onsite_env_model"]


@pytest.fixture
def textured(nibr2_like, rng):
    atoms = nibr2_like.repeat((2, 1, 1))
    atoms.positions += rng.uniform(-0.1, 0.1, size=atoms.positions.shape)
    moments = np.zeros((len(atoms), 3))
    ni = atoms.numbers == 28
    moments[ni] = rng.normal(size=(ni.sum(), 3))
    moments[ni] *= (rng.uniform(1.0, 2.5, size=ni.sum()) / np.linalg.norm(moments[ni], axis=1))[
        :, None
    ]
    atoms.set_initial_magnetic_moments(moments)
    return atoms


def _scale(ham):
    return max(abs(m).max() for m in ham.h_r.values())


@pytest.mark.parametrize("model_name", MODELS)
def test_rotation_with_inversion(request, model_name, textured, rng):
    model = request.getfixturevalue(model_name)
    ham = model.predict(textured)
    for proper in (True, False):
        g = random_rotation(rng) * (1 if proper else -1)
        rotated = model.predict(transform_atoms(textured, g))
        expected = transform_hamiltonian(ham, g)
        assert rotated.max_abs_difference(expected) <= TOL * _scale(ham)


@pytest.mark.parametrize("model_name", MODELS)
def test_time_reversal(request, model_name, textured):
    model = request.getfixturevalue(model_name)
    ham = model.predict(textured)
    flipped = model.predict(transform_atoms(textured, time_reversal=True))
    expected = transform_hamiltonian(ham, time_reversal=True)
    assert flipped.max_abs_difference(expected) <= TOL * _scale(ham)
    # and the magnetic part really is there: H(-M) differs from H(M)
    assert flipped.max_abs_difference(ham) > 1e-4 * _scale(ham)


def test_atom_permutation(small_model, textured, rng):
    perm = rng.permutation(len(textured))
    ham = small_model.predict(textured)
    permuted = small_model.predict(textured[perm])
    for a_new, a_old in enumerate(perm):
        for b_new, b_old in enumerate(perm):
            for r in [(0, 0, 0), (1, 0, 0), (0, -1, 0)]:
                np.testing.assert_allclose(
                    permuted.block(a_new, b_new, r),
                    ham.block(a_old, b_old, r),
                    atol=TOL * _scale(ham),
                )


def test_periodic_images_equal_explicit_supercell(small_model, nibr2_like):
    """A periodic ferromagnet: the supercell prediction equals the tiled primitive one."""
    ham = small_model.predict(nibr2_like)
    big = small_model.predict(nibr2_like.repeat((2, 3, 1)))
    assert big.max_abs_difference(ham.tile((2, 3, 1))) <= TOL * _scale(ham)


@pytest.mark.parametrize("model_name", MODELS)
def test_hermitian_and_real_spectrum(request, model_name, textured, rng):
    """Hermitian by construction (predict skips TBHamiltonian's check): H(-R) = H(R)^dagger
    for every R, with and without environment sharing."""
    model = request.getfixturevalue(model_name)
    for atoms in (textured, textured.repeat((2, 1, 1))):  # the repeat has shared classes
        ham = model.predict(atoms)
        for r, mat in ham.h_r.items():
            partner = ham.h_r[tuple(-x for x in r)]
            assert abs(mat - partner.conj().T).max() <= 1e-12 * _scale(ham)
        h = ham.hk(rng.random(3) * [1, 1, 0]).toarray()
        np.testing.assert_allclose(h, h.conj().T, atol=1e-12 * _scale(ham))


def test_moments_only_rotation_is_not_a_symmetry(small_model, textured, rng):
    """With SOC/anisotropic exchange, rotating only the moments changes the spectrum."""
    g = random_rotation(rng)
    moved = textured.copy()
    moved.set_initial_magnetic_moments(textured.get_initial_magnetic_moments() @ g.T)
    k = [0.1, 0.2, 0]
    e0 = small_model.predict(textured).eigvalsh(k)
    e1 = small_model.predict(moved).eigvalsh(k)
    assert np.abs(e0 - e1).max() > 1e-6


def test_batched_prediction_equals_single(small_model, textured, nibr2_like):
    """Two different structures in one torch-geometric batch give the same blocks as each
    on its own."""
    import torch
    from torch_geometric.data import Batch

    from ase_hamgnn.model.inputs import graph_inputs

    graphs = [graph_inputs(a, small_model.cutoff)[0] for a in (textured, nibr2_like)]
    with torch.no_grad():
        single = [small_model.network(g) for g in graphs]
        batched = small_model.network(Batch.from_data_list(graphs))
    for key in ("onsite", "edge"):
        torch.testing.assert_close(batched[key], torch.cat([s[key] for s in single]),
                                   atol=1e-12, rtol=0)
