"""Environment sharing: atoms and bonds with equal environments share the network's work,
and the Hamiltonian is the same as the plain evaluation's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import textures
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.graph import neighbor_graph
from ase_hamgnn.model.inputs import graph_inputs
from ase_hamgnn.model.sharing import environment_classes


@pytest.fixture
def skyrmion(nibr2_like):
    cells = textures.supercell(nibr2_like, (5, 5, 1))
    return textures.skyrmion(cells, radius=6.0, magnetic=("Ni",), magnitude=2.0)


def _plain_and_shared(model, atoms):
    previous = model.share_environments
    try:
        model.share_environments = False
        plain = model.predict(atoms)
        model.share_environments = True
        shared = model.predict(atoms)
    finally:
        model.share_environments = previous
    return plain, shared


def _classes(model, atoms):
    geometry = Geometry.from_atoms(atoms)
    return model.environment_classes(geometry, neighbor_graph(geometry, model.cutoff))


@pytest.mark.parametrize("model_name", ["small_model", "biased_model", "bond_term_model",
                                        "onsite_env_model"])
def test_shared_prediction_equals_plain(request, model_name, skyrmion):
    model = request.getfixturevalue(model_name)
    if model_name == "biased_model":  # moment_coupling: the bond invariant splits classes
        assert model.config.moment_coupling
        plain, shared = _plain_and_shared(model, skyrmion)
        scale = max(abs(m).max() for m in plain.h_r.values())
        assert plain.max_abs_difference(shared) <= 1e-12 * scale
        classes = _classes(model, skyrmion)
        assert classes is not None and classes.reduction() > 1.0
        return
    classes = _classes(model, skyrmion)
    # a texture of constant |M| on an ideal 5x5 supercell: Ni and Br, then the unit
    # cell's 3 atoms (the two Br sit on opposite sides of the Ni plane)
    assert [len(r) for r in classes.node_reps] == [2] + [3] * (model.config.n_layers + 1)
    assert classes.reduction() == pytest.approx(25.0)
    plain, shared = _plain_and_shared(model, skyrmion)
    scale = max(abs(m).max() for m in plain.h_r.values())
    assert plain.max_abs_difference(shared) <= 1e-12 * scale


def test_displaced_atom_and_moment_sizes_split_classes(small_model, skyrmion, rng):
    atoms = skyrmion.copy()
    atoms.positions[7] += [0.05, -0.02, 0.01]
    moments = atoms.get_initial_magnetic_moments()
    moments[0] *= 1.3  # a longer moment on one Ni
    atoms.set_initial_magnetic_moments(moments)
    classes = _classes(small_model, atoms)
    # the displaced atom, the longer moment and their neighbourhoods get classes of their own
    assert 3 < len(classes.node_reps[-1]) < len(atoms)
    assert len(np.unique(classes.node[-1][[0, 7]])) == 2
    plain, shared = _plain_and_shared(small_model, atoms)
    scale = max(abs(m).max() for m in plain.h_r.values())
    assert plain.max_abs_difference(shared) <= 1e-12 * scale

    # every atom displaced at random: nothing is shared, predict uses the plain evaluation
    atoms.positions += rng.uniform(-0.05, 0.05, size=atoms.positions.shape)
    assert _classes(small_model, atoms) is None


def test_classes_never_join_atoms_with_different_features(small_model, skyrmion):
    """Atoms of one class have equal node features in the plain network (float64)."""
    atoms = skyrmion.copy()
    atoms.positions[4] += [0.03, 0.0, 0.0]
    geometry = Geometry.from_atoms(atoms)
    data, graph = graph_inputs(geometry, small_model.cutoff, dtype=torch.float64)
    net = small_model.network
    with torch.no_grad():
        x, *_ = net.node_features(data, data["moments"])
    classes = environment_classes(geometry.numbers, geometry.moments, graph.edge_index,
                                  graph.vectors, small_model.config.n_layers + 1)
    level = classes.node[small_model.config.n_layers]
    x = x.numpy()
    for c in np.unique(level):
        rows = x[level == c]
        assert np.abs(rows - rows[0]).max() <= 1e-12 * np.abs(x).max()
    # and different classes really differ here (the refinement is not needlessly fine)
    firsts = x[classes.node_reps[small_model.config.n_layers]]
    gaps = np.abs(firsts[:, None] - firsts[None]).max(-1) + np.eye(len(firsts))
    assert gaps.min() > 1e-8


def test_bad_arguments(small_model, coupled_model, skyrmion):
    geometry = Geometry.from_atoms(skyrmion)
    graph = neighbor_graph(geometry, small_model.cutoff)
    with pytest.raises(ValueError, match="levels"):
        environment_classes(geometry.numbers, geometry.moments, graph.edge_index,
                            graph.vectors, 0)
    classes = environment_classes(geometry.numbers, geometry.moments, graph.edge_index,
                                  graph.vectors, 1)
    data, _ = graph_inputs(geometry, small_model.cutoff, dtype=torch.float64)
    with pytest.raises(ValueError, match="refinement levels"):
        small_model.network(data, classes=classes)
    plain_classes = environment_classes(geometry.numbers, geometry.moments, graph.edge_index,
                                        graph.vectors, coupled_model.config.n_layers + 1)
    with pytest.raises(ValueError, match="moment_coupling"):   # no bond invariants in them
        coupled_model.network(data, classes=plain_classes)
    with pytest.raises(ValueError, match="environment_tol"):
        type(small_model)(small_model.config, environment_tol=0.0)
