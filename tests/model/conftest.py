"""Small untrained models for the physics tests of the network (float64)."""

from __future__ import annotations

import pytest
import torch

from ase_hamgnn.model import HamGNNModel, ModelConfig

SMALL = dict(
    basis={"Ni": ["4s", "3d"], "Br": ["4s", "4p"]},
    cutoff=5.0,
    magnetic=("Ni",),
    valence={"Ni": 10.0, "Br": 7.0},
    node_irreps="8x0e+2x0o+4x1o+4x1e+2x2e+2x2o+1x3o+1x3e",
    pair_multiplicity=1,
    n_layers=1,
    lmax_sh=3,
    n_radial=4,
    radial_hidden=8,
)


@pytest.fixture(scope="session")
def small_model() -> HamGNNModel:
    return HamGNNModel(ModelConfig(**SMALL), dtype=torch.float64, seed=1)


@pytest.fixture(scope="session")
def coupled_model() -> HamGNNModel:
    return HamGNNModel(ModelConfig(**SMALL, moment_coupling=True), dtype=torch.float64, seed=2)


@pytest.fixture(scope="session")
def normalized_model() -> HamGNNModel:
    """``moment_coupling="normalized"``: cos θ_ij and |M_i||M_j| / moment_max² as inputs."""
    return HamGNNModel(ModelConfig(**SMALL, moment_coupling="normalized"), dtype=torch.float64,
                       seed=6)


@pytest.fixture(scope="session")
def bond_term_model() -> HamGNNModel:
    """``bond_moment_term``: bond blocks ``h0 + (M_i·M_j / moment_max²) h1``."""
    return HamGNNModel(ModelConfig(**SMALL, bond_moment_term=True), dtype=torch.float64,
                       seed=7)


@pytest.fixture(scope="session")
def general_model() -> HamGNNModel:
    """The ablation baseline (paper's Eq. 7 form)."""
    return HamGNNModel(ModelConfig(**SMALL, form="general"), dtype=torch.float64, seed=3)


@pytest.fixture(scope="session")
def biased_model() -> HamGNNModel:
    """On-site energies per shell pair (``onsite_bias``), set to random values; Ni carries two
    s shells, so the bias has an off-diagonal (4s-5s) entry as well."""
    import numpy as np

    config = ModelConfig(**{**SMALL, "basis": {"Ni": ["4s", "5s", "3d"], "Br": ["4s", "4p"]}},
                         moment_coupling=True, onsite_bias=True)
    model = HamGNNModel(config, dtype=torch.float64, seed=4)
    gen = np.random.default_rng(4)
    model.network.set_onsite_bias({28: gen.normal(size=(7, 7)), 35: gen.normal(size=(4, 4))})
    return model


@pytest.fixture(scope="session")
def channel_model() -> HamGNNModel:
    """Three exchange channels and orbital-resolved on-site weights (beyond the paper)."""
    config = ModelConfig(**SMALL, moment_coupling=True, exchange_channels=3,
                         onsite_weight="orbital")
    model = HamGNNModel(config, dtype=torch.float64, seed=5)
    with torch.no_grad():  # the orbital part starts switched off; switch it on
        for gate in model.network.onsite_weight_gate.values():
            gate.fill_(0.7)
    return model


@pytest.fixture(scope="session")
def onsite_env_model() -> HamGNNModel:
    """Environment-dependent on-site levels (``onsite_environment``) with random coefficients
    and random average levels."""
    import numpy as np

    config = ModelConfig(**SMALL, onsite_bias=True, onsite_environment=True)
    model = HamGNNModel(config, dtype=torch.float64, seed=9)
    gen = np.random.default_rng(9)
    model.network.set_onsite_bias({28: gen.normal(size=(6, 6)), 35: gen.normal(size=(4, 4))})
    term = model.network.onsite_environment
    term.set_coefficients({k: gen.normal(size=p.shape) for k, p in term.coefficients.items()})
    return model
