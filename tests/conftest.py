"""Shared fixtures: random generator, a basis and a small NiBr2-like magnetic cell."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from ase_hamgnn import OrbitalBasis


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


@pytest.fixture
def basis() -> OrbitalBasis:
    return OrbitalBasis({"Ni": ["4s", "3d"], "Br": ["4s", "4p"]})


@pytest.fixture
def nibr2_like() -> Atoms:
    """A 2D triangular NiBr2-like cell (1T), with non-collinear moments on Ni."""
    a = 3.7
    cell = [[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 20.0]]
    atoms = Atoms(
        "NiBr2",
        scaled_positions=[[0, 0, 0.5], [1 / 3, 2 / 3, 0.57], [2 / 3, 1 / 3, 0.43]],
        cell=cell,
        pbc=[True, True, False],
    )
    atoms.set_initial_magnetic_moments([[0.3, -0.4, 1.9], [0, 0, 0], [0, 0, 0]])
    return atoms
