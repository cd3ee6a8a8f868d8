"""Small layered structures for the texture tests, built directly with ASE."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

A_NIBR2 = 3.71  # Å
A_SQUARE = 3.0  # Å


def make_nibr2(pbc: tuple[bool, bool, bool] = (True, True, True)) -> Atoms:
    """1T NiBr2-like monolayer: triangular lattice (120° cell), 1 Ni + 2 Br, vacuum along z."""
    a, c = A_NIBR2, 20.0
    cell = [[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]]
    dz = 1.4 / c
    return Atoms(
        "NiBr2",
        scaled_positions=[[0, 0, 0.5], [1 / 3, 2 / 3, 0.5 + dz], [2 / 3, 1 / 3, 0.5 - dz]],
        cell=cell,
        pbc=pbc,
    )


@pytest.fixture
def nibr2() -> Atoms:
    """Primitive NiBr2-like monolayer, periodic in all directions with 20 Å of cell along z."""
    return make_nibr2()


@pytest.fixture
def nibr2_slab() -> Atoms:
    """The same monolayer with ``pbc = (True, True, False)``."""
    return make_nibr2((True, True, False))


@pytest.fixture
def square() -> Atoms:
    """Square lattice of Fe (a = 3 Å), one atom per cell, non-periodic along z."""
    return Atoms(
        "Fe", positions=[[0, 0, 7.5]], cell=[A_SQUARE, A_SQUARE, 15.0], pbc=(True, True, False)
    )


@pytest.fixture
def seeded() -> np.random.Generator:
    return np.random.default_rng(5)
