"""The shipped model keeps predicting the same Hamiltonian.

``data/nibri-reference-prediction.npz`` holds the flattened on-site and edge blocks (complex64)
that ``load_model("nibri-reference").predict`` gave for :func:`fixture_structure` with the
network's tensor products and linear maps evaluated by e3nn's modules (``fused = False``;
written when the production model replaced the first demonstration model); the fused path
of :mod:`ase_hamgnn.model.fused` must reproduce them to float32 rounding, and so must the
e3nn path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ase_hamgnn.data.structures import nibri
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.graph import BlockLayout, neighbor_graph
from ase_hamgnn.model import load_model

REFERENCE = Path(__file__).parent / "data" / "nibri-reference-prediction.npz"


def fixture_structure():
    """2x2 NiBrI, positions rattled by 0.01 Å and Ni moments (2 μB) in random directions,
    both from a seeded generator: no two atoms share an environment."""
    atoms = nibri((2, 2, 1))
    rng = np.random.default_rng(7)
    atoms.positions += rng.normal(scale=0.01, size=atoms.positions.shape)
    moments = np.zeros((len(atoms), 3))
    ni = atoms.numbers == 28
    direction = rng.normal(size=(int(ni.sum()), 3))
    moments[ni] = 2.0 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    atoms.set_initial_magnetic_moments(moments)
    return atoms


def _blocks(model, atoms):
    ham = model.predict(atoms)
    geometry = Geometry.from_atoms(atoms)
    layout = BlockLayout(model.basis, geometry.numbers, neighbor_graph(geometry, model.cutoff))
    onsite, edge = layout.from_matrices(ham.h_r)
    return np.concatenate([onsite, edge])


@pytest.mark.parametrize("fused", [True, False])
def test_shipped_model_predicts_the_stored_hamiltonian(fused):
    model = load_model("nibri-reference")
    model.network.fused = fused
    got = _blocks(model, fixture_structure())
    ref = np.load(REFERENCE)
    expected = np.concatenate([ref["onsite"], ref["edge"]]).astype(np.complex128)
    assert got.shape == expected.shape
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)
