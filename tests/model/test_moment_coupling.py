"""The moment-coupling inputs of H0: invariants of the moments, bounded in the normalized
form, and the old raw form unchanged for old checkpoints; the explicit bond term
h0 + (M_i·M_j / moment_max²) h1 (``bond_moment_term``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ase_hamgnn.errors import ConfigError
from ase_hamgnn.model import HamGNNModel, ModelConfig
from ase_hamgnn.model.network import moment_products
from ase_hamgnn.symmetry import random_rotation

BASIS = {"Ni": ["4s", "3d"], "Br": ["4s", "4p"]}


def _pairs(rng, n=50):
    m_i = torch.as_tensor(rng.normal(size=(n, 3)) * 2.0)
    m_j = torch.as_tensor(rng.normal(size=(n, 3)) * 2.0)
    m_j[:5] = 0.0  # bonds to non-magnetic atoms
    return m_i, m_j


def test_normalized_inputs_are_the_angle_and_the_sizes():
    rng = np.random.default_rng(0)
    m_i, m_j = _pairs(rng)
    out = moment_products(m_i, m_j, "normalized", moment_max=4.0).numpy()
    a, b = m_i.numpy(), m_j.numpy()
    size = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.divide((a * b).sum(1), size, out=np.zeros(len(a)), where=size > 0)
    np.testing.assert_allclose(out[:, 0], cos, atol=1e-14)
    np.testing.assert_allclose(out[:, 1], size / 16.0, atol=1e-14)
    assert np.all(out[:5] == 0.0)
    assert np.all(np.abs(out[:, 0]) <= 1.0 + 1e-14)


@pytest.mark.parametrize("coupling", ["raw", "normalized"])
def test_inputs_are_invariant_under_rotation_and_time_reversal(coupling):
    rng = np.random.default_rng(1)
    m_i, m_j = _pairs(rng)
    g = torch.as_tensor(random_rotation(rng))
    ref = moment_products(m_i, m_j, coupling, 4.0)
    torch.testing.assert_close(moment_products(m_i @ g.T, m_j @ g.T, coupling, 4.0), ref,
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(moment_products(-m_i, -m_j, coupling, 4.0), ref,
                               atol=0, rtol=0)


def test_raw_coupling_keeps_one_input_and_true_means_raw():
    for value in (True, "raw"):
        model = HamGNNModel(ModelConfig(basis=BASIS, magnetic=("Ni",), moment_coupling=value,
                                        node_irreps="4x0e+2x1o", pair_multiplicity=1,
                                        n_layers=1, lmax_sh=2, n_radial=4, radial_hidden=8),
                            dtype=torch.float64)
        assert model.network.pair_radial.hs[0] == 4 + 1
    normalized = HamGNNModel(ModelConfig(basis=BASIS, magnetic=("Ni",),
                                         moment_coupling="normalized", node_irreps="4x0e+2x1o",
                                         pair_multiplicity=1, n_layers=1, lmax_sh=2,
                                         n_radial=4, radial_hidden=8), dtype=torch.float64)
    assert normalized.network.pair_radial.hs[0] == 4 + 2
    assert normalized.can_share_environments   # the bond invariant joins the bond classes


def test_unknown_coupling_is_a_config_error():
    with pytest.raises((ConfigError, ValueError), match="moment_coupling"):
        ModelConfig(basis=BASIS, moment_coupling="cosine")


def _spin_free_bond(model, atoms, i, j):
    """Spin-independent part ``(H_uu + H_dd) / 2`` of all blocks ``i -> j`` (every R)."""
    ham = model.predict(atoms)
    off, n = ham.offsets, ham.basis.n_orbitals(atoms.get_chemical_symbols()[i])
    blocks = []
    for r in sorted(ham.h_r):
        b = ham.h_r[r].toarray()[off[i]:off[i] + 2 * n, off[j]:off[j] + 2 * n]
        blocks.append(0.5 * (b[:n, :n] + b[n:, n:]))
    return np.stack(blocks)


@pytest.mark.parametrize("model_name", ["small_model", "bond_term_model"])
def test_bond_moment_term_makes_hopping_affine_in_the_moment_product(request, model_name,
                                                                     nibr2_like):
    """Turning one moment of a Ni-Ni bond by θ (sizes fixed) changes the bond's
    spin-independent block by ``(cos θ - 1) |M_i||M_j| / moment_max² h1`` with
    ``bond_moment_term``, and leaves it alone without (the paper's form)."""
    model = request.getfixturevalue(model_name)
    atoms = nibr2_like.repeat((2, 1, 1))
    ni = np.nonzero(atoms.numbers == 28)[0]

    def bond(theta):
        a = atoms.copy()
        m = np.zeros((len(a), 3))
        m[ni[0]] = [0.0, 0.0, 2.0]
        m[ni[1]] = [2.0 * np.sin(theta), 0.0, 2.0 * np.cos(theta)]
        a.set_initial_magnetic_moments(m)
        return _spin_free_bond(model, a, ni[0], ni[1])

    thetas = np.array([0.0, 0.7, 1.9, np.pi])
    blocks = np.stack([bond(t) for t in thetas])
    change = blocks - blocks[0]
    if not model.config.bond_moment_term:
        assert np.abs(change).max() < 1e-12
        return
    slope = change[-1] / (np.cos(thetas[-1]) - 1.0)
    assert np.abs(slope).max() > 1e-4  # the term is there
    for t, c in zip(thetas, change):
        np.testing.assert_allclose(c, (np.cos(t) - 1.0) * slope, atol=1e-12)


def test_bond_moment_term_needs_the_physics_form():
    with pytest.raises((ValueError, ConfigError), match="bond_moment_term"):
        ModelConfig(basis=BASIS, magnetic=("Ni",), form="general", bond_moment_term=True)
