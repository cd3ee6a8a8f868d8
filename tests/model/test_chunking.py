"""Edge chunking caps memory and changes nothing: chunked prediction equals unchunked."""

from __future__ import annotations

import numpy as np
import pytest

from ase_hamgnn.model.layers import edge_slices


@pytest.fixture
def textured_supercell(nibr2_like, rng):
    atoms = nibr2_like.repeat((2, 2, 1))
    moments = np.zeros((len(atoms), 3))
    ni = atoms.numbers == 28
    moments[ni] = rng.normal(size=(ni.sum(), 3))
    atoms.set_initial_magnetic_moments(moments)
    return atoms


@pytest.mark.parametrize("model_name", ["small_model", "general_model"])
def test_chunked_prediction_equals_unchunked(request, model_name, textured_supercell):
    model = request.getfixturevalue(model_name)
    previous = model.edge_chunk
    try:
        model.edge_chunk = None
        whole = model.predict(textured_supercell)
        model.edge_chunk = 61  # several uneven chunks
        chunked = model.predict(textured_supercell)
    finally:
        model.edge_chunk = previous
    assert set(whole.h_r) == set(chunked.h_r)
    for r, mat in whole.h_r.items():
        diff = abs(mat - chunked.h_r[r])
        # equal to float64 rounding (matrix products may block a chunk differently)
        assert (diff.max() if diff.nnz else 0.0) <= 1e-14 * abs(mat).max()


def test_edge_slices_cover_every_edge_once():
    slices = edge_slices(23, 5)
    covered = np.concatenate([np.arange(23)[s] for s in slices])
    np.testing.assert_array_equal(covered, np.arange(23))
    assert edge_slices(3, None) == [slice(0, 3)]
    with pytest.raises(ValueError, match="positive"):
        edge_slices(10, 0)


def test_bad_edge_chunk_is_rejected(small_model):
    with pytest.raises(ValueError, match="edge_chunk"):
        small_model.edge_chunk = 0


def test_float32_network_with_float64_assembly(small_model, textured_supercell):
    """A float32 network agrees with the float64 one to float32 precision, whichever dtype the
    spin assembly uses; the float64 assembly output is complex128."""
    import torch

    from ase_hamgnn.model import HamGNNModel

    fast = HamGNNModel(small_model.config, dtype=torch.float32, seed=1)
    exact = small_model.predict(textured_supercell)
    scale = max(abs(m).max() for m in exact.h_r.values())
    for assembly in (torch.float64, None):
        ham = fast.predict(textured_supercell, assembly_dtype=assembly)
        worst = max(abs(ham.h_r[r] - m).max() for r, m in exact.h_r.items())
        assert worst <= 2e-5 * scale
    assert fast.network.assembly_dtype is None  # restored after predict
