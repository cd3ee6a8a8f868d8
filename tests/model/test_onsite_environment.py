"""Environment-dependent on-site levels (``ModelConfig.onsite_environment``): the least-squares
step recovers a pure data set of the term, the model adds exactly the term, configurations
and checkpoints round-trip, and initial_fit explains part of the reference data's on-site
levels.  (Rotations, inversion, time reversal, Hermiticity and environment sharing: the
``onsite_env_model`` runs through test_equivariance.py and test_sharing.py.)"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import SMALL

from ase_hamgnn import keys as K
from ase_hamgnn.errors import ConfigError
from ase_hamgnn.model import HamGNNModel, ModelConfig, load_model
from ase_hamgnn.model.inputs import graph_inputs
from ase_hamgnn.model.onsite import OnsiteEnvironment, OnsiteFit, onsite_masks


def _textured(base, rng):
    atoms = base.repeat((2, 2, 1))
    atoms.positions += rng.uniform(-0.15, 0.15, size=atoms.positions.shape)
    moments = np.zeros((len(atoms), 3))
    ni = atoms.numbers == 28
    moments[ni] = rng.normal(size=(ni.sum(), 3)) * rng.uniform(0.5, 2.0, size=(ni.sum(), 1))
    atoms.set_initial_magnetic_moments(moments)
    return atoms


def _term(model_config: ModelConfig) -> OnsiteEnvironment:
    basis = model_config.orbital_basis
    return OnsiteEnvironment(basis, [28, 35], model_config.cutoff, model_config.n_radial,
                             model_config.moment_max).double().refresh(torch.float64)


def _inputs(atoms, cutoff):
    data, _ = graph_inputs(atoms, cutoff, dtype=torch.float64)
    species = torch.as_tensor([{28: 0, 35: 1}[int(z)] for z in data[K.ATOMIC_NUMBERS]])
    return data, species


def test_masks_are_identities_on_equal_l_shell_pairs():
    from ase_hamgnn.basis import OrbitalBasis

    basis = OrbitalBasis({"Ni": ["4s", "5s", "3d"]})
    pairs, masks = onsite_masks(basis, 28)
    assert pairs == [(0, 0), (0, 1), (1, 1), (2, 2)]
    np.testing.assert_array_equal(masks[1][:2, :2], [[0, 1], [1, 0]])
    np.testing.assert_array_equal(masks[3][2:, 2:], np.eye(5))
    assert all(np.array_equal(m, m.T) for m in masks)


def test_least_squares_recovers_a_pure_data_set(nibr2_like, rng):
    """Levels = mean + the term (random coefficients) + parts orthogonal to the masks (which
    the fit must ignore): the fitted term reproduces the levels to rounding."""
    config = ModelConfig(**SMALL, onsite_bias=True, onsite_environment=True)
    truth, fresh = _term(config), _term(config)
    truth.set_coefficients({k: rng.normal(size=p.shape) for k, p in truth.coefficients.items()})
    mean = {z: rng.normal(size=(n, n)) for z, n in ((28, 6), (35, 4))}
    mean = {z: m + m.T for z, m in mean.items()}
    fit = OnsiteFit(fresh, mean)
    structures = []
    for _ in range(12):
        atoms = _textured(nibr2_like, rng)
        data, species = _inputs(atoms, config.cutoff)
        with torch.no_grad():
            extra = truth(species, data[K.MOMENTS], data[K.EDGE_INDEX], data[K.EDGE_VECTORS], 6)
        h0 = []
        for i, z in enumerate(atoms.numbers):
            n = mean[int(z)].shape[0]
            noise = rng.normal(size=(n, n))
            noise = noise + noise.T
            _, masks = onsite_masks(config.orbital_basis, int(z))
            for m in masks:  # keep only what no mask sees (traceless within the shells)
                noise -= m * np.sum(noise * m) / np.sum(m * m)
            h0.append(mean[int(z)] + extra[i, :n, :n].numpy() + 0.1 * noise)
        fit.add(atoms.numbers, data[K.MOMENTS].numpy(), data[K.EDGE_INDEX].numpy(),
                data[K.EDGE_VECTORS].numpy(), h0)
        structures.append((data, species))
    fresh.set_coefficients(fit.solve(ridge=1e-14))
    for data, species in structures:
        args = (species, data[K.MOMENTS], data[K.EDGE_INDEX], data[K.EDGE_VECTORS], 6)
        with torch.no_grad():
            want, got = truth(*args), fresh(*args)
        assert (got - want).abs().max() <= 1e-7 * want.abs().max()


def test_model_adds_exactly_the_term(onsite_env_model, nibr2_like, rng):
    """With the network's heads silenced the on-site blocks are the average levels plus the
    term, identical in both spin channels and spin-independent."""
    model = copy.deepcopy(onsite_env_model)
    with torch.no_grad():
        for head in (*model.network.edge_heads.values(), *model.network.node_heads.values()):
            head.weight.zero_()
    atoms = _textured(nibr2_like, rng)
    data, species = _inputs(atoms, model.cutoff)
    with torch.no_grad():
        out = model.network(data)
        extra = model.network.onsite_environment(species, data[K.MOMENTS], data[K.EDGE_INDEX],
                                                 data[K.EDGE_VECTORS], model.network.n_max)
    start = 0
    for i, z in enumerate(atoms.numbers):
        n = model.basis.n_orbitals(int(z))
        block = out["onsite"][start:start + 4 * n * n].reshape(2 * n, 2 * n).numpy()
        start += 4 * n * n
        bias = model.network.onsite_bias[str(int(z))].detach().numpy()
        pairs, masks = onsite_masks(model.basis, int(z))
        level = sum(0.5 * (bias[a, b] + bias[b, a]) * m for (a, b), m in zip(pairs, masks))
        want = level + extra[i, :n, :n].numpy()
        np.testing.assert_allclose(block[:n, :n], want, rtol=0, atol=1e-12)
        np.testing.assert_allclose(block[n:, n:], want, rtol=0, atol=1e-12)
        assert np.abs(block[:n, n:]).max() == 0
    assert extra.abs().max() > 1e-3  # the term is there, and it varies between atoms
    ni = [i for i, z in enumerate(atoms.numbers) if z == 28]
    assert (extra[ni[0]] - extra[ni[1]]).abs().max() > 1e-6


def test_config_checks_and_round_trips(onsite_env_model, nibr2_like, rng, tmp_path):
    config = onsite_env_model.config
    assert ModelConfig.from_dict(config.to_dict()) == config
    old = ModelConfig(**SMALL).to_dict()
    del old["onsite_environment"]
    assert ModelConfig.from_dict(old).onsite_environment is False
    with pytest.raises(ValueError, match="needs onsite_bias"):
        ModelConfig(**SMALL, onsite_environment=True)
    with pytest.raises(ConfigError, match="onsite_environment = 'on'"):
        ModelConfig(**SMALL, onsite_bias=True, onsite_environment="on")
    path = onsite_env_model.save(tmp_path / "env.pt")
    again = load_model(path, dtype=torch.float64)
    atoms = _textured(nibr2_like, rng)
    ham = onsite_env_model.predict(atoms)
    scale = max(abs(m).max() for m in ham.h_r.values())
    assert again.predict(atoms).max_abs_difference(ham) <= 1e-6 * scale


def test_initial_fit_explains_reference_levels(tmp_path):
    """On the synthetic reference data (environment-dependent on-site energies), the fitted
    term leaves a smaller on-site residual than the average levels alone."""
    from ase_hamgnn.data import HamiltonianDataset, make_reference_dataset
    from ase_hamgnn.train import initial_fit, mean_onsite_h0

    root = tmp_path / "data"
    make_reference_dataset(root, "nibr2", "2x1", 10, seed=5, progress=False)
    dataset = HamiltonianDataset(root, "train")
    keys = {k: v for k, v in SMALL.items() if k not in ("basis", "cutoff")}
    config = ModelConfig(**{**keys, "basis": dataset.basis.to_dict(), "cutoff": 5.0},
                         onsite_bias=True, onsite_environment=True)
    model = HamGNNModel(config, dtype=torch.float64, seed=0)
    initial_fit(model, dataset)
    term = model.network.onsite_environment
    assert all(p.detach().abs().max() > 0 for p in term.coefficients.values())
    mean = mean_onsite_h0(dataset, model.basis)
    after = []
    for record in dataset:
        numbers = record[K.ATOMIC_NUMBERS].numpy()
        species = torch.as_tensor([term.species.index(int(z)) for z in numbers])
        with torch.no_grad():
            extra = term(species, record[K.MOMENTS].double(), record[K.EDGE_INDEX],
                         record[K.EDGE_VECTORS].double(), 9)
        flat = record[K.H_ONSITE].numpy()
        start = 0
        for i, z in enumerate(numbers):
            n = model.basis.n_orbitals(int(z))
            block = flat[start:start + 4 * n * n].reshape(2 * n, 2 * n)
            start += 4 * n * n
            h0 = 0.5 * (block[:n, :n] + block[n:, n:]).real
            _, masks = onsite_masks(model.basis, int(z))
            for m in masks:
                dev = h0 - mean[int(z)]
                level = np.sum(dev * m) / np.sum(m * m)
                fitted = np.sum(extra[i, :n, :n].numpy() * m) / np.sum(m * m)
                after.append((level, level - fitted))
    levels, residual = np.asarray(after).T
    ratio = np.sqrt(np.mean(residual**2)) / np.sqrt(np.mean(levels**2))
    assert ratio < 0.5  # measured: 0.03


def test_average_levels_need_whole_blocks(onsite_env_model):
    from ase_hamgnn.model.onsite import shell_levels

    basis = onsite_env_model.basis
    block = np.diag(np.arange(6.0))  # Ni: 4s then 3d
    np.testing.assert_allclose(shell_levels(basis, 28, block), [[0.0, 0.0], [0.0, 3.0]])
    with pytest.raises(ValueError, match=r"expected shape \(6, 6\)"):
        shell_levels(basis, 28, np.zeros((2, 2)))
