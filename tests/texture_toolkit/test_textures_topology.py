"""Topological charge: integrality, invariances, sign convention and errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

import textures
from textures import NoLayerError, TextureError
from textures._cell import find_layer
from textures.topology import triangulate


def _rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _rotated(atoms, rot):
    out = atoms.copy()
    out.set_cell(atoms.cell[:] @ rot.T, scale_atoms=False)
    out.positions = atoms.positions @ rot.T
    out.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments() @ rot.T)
    return out


@pytest.fixture
def sk(nibr2):
    return textures.skyrmion(textures.supercell(nibr2, (14, 14, 1)), radius=7.0, width=3.0)


@pytest.mark.parametrize("matrix", [(7, 5, 1), [[4, 1, 0], [-2, 5, 0], [0, 0, 1]], (1, 9, 1)])
def test_periodic_triangulation_tiles_the_torus(nibr2, matrix, seeded):
    sc = textures.supercell(nibr2, matrix)
    sc.positions += seeded.normal(scale=0.1, size=sc.positions.shape)
    ni = sc.numbers == 28
    layer = find_layer(sc, ni)
    pts = layer.project(sc.get_positions()[ni])
    tri = triangulate(pts, layer.lattice)
    # Euler characteristic of the torus: V - E + F = 0, every edge shared by two triangles
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    n_edges = len(edges) // 2
    assert len(tri) == 2 * ni.sum()
    assert ni.sum() - n_edges + len(tri) == 0
    assert np.all(counts % 2 == 0)


def test_random_textures_have_integer_charge(nibr2, seeded):
    sc = textures.supercell(nibr2, (9, 7, 1))
    charges = [
        textures.topological_charge(textures.random_moments(sc, rng=seeded)) for _ in range(5)
    ]
    np.testing.assert_allclose(charges, np.round(charges), atol=1e-9)
    assert any(abs(q) > 0.5 for q in charges)  # random textures do carry charge


def test_charge_is_invariant_under_rigid_motions_and_permutations(sk, seeded):
    q0 = textures.topological_charge(sk)
    assert q0 == pytest.approx(-1.0, abs=1e-9)
    # rotating lattice and moments together about the normal, or tilting it a little
    for rot in (_rotation([0, 0, 1], 0.7), _rotation([1, 2, 0.5], 0.3)):
        assert textures.topological_charge(_rotated(sk, rot)) == pytest.approx(q0, abs=1e-9)
    moved = sk.copy()
    moved.positions += [1.3, -0.4, 0.2]
    assert textures.topological_charge(moved) == pytest.approx(q0, abs=1e-9)
    perm = seeded.permutation(len(sk))
    assert textures.topological_charge(sk[perm]) == pytest.approx(q0, abs=1e-9)
    shaken = sk.copy()
    shaken.positions += seeded.normal(scale=0.1, size=shaken.positions.shape)
    assert textures.topological_charge(shaken) == pytest.approx(q0, abs=1e-9)


def test_charge_under_spin_rotation_and_time_reversal(sk):
    m = sk.get_initial_magnetic_moments()
    q0 = textures.topological_charge(sk)
    rot = _rotation([0.3, -1, 2], 2.1)
    assert textures.topological_charge(sk, moments=m @ rot.T) == pytest.approx(q0, abs=1e-9)
    assert textures.topological_charge(sk, moments=-m) == pytest.approx(-q0, abs=1e-9)


def test_sign_convention_follows_the_upward_normal(sk):
    """Turning the layer upside down (rotation by π about x) and viewing it from +z again is
    a mirror image of the skyrmion: the charge changes sign."""
    flipped = _rotated(sk, _rotation([1, 0, 0], np.pi))
    assert textures.topological_charge(flipped) == pytest.approx(1.0, abs=1e-9)


def test_collinear_and_coplanar_textures_have_zero_charge(nibr2):
    sc = textures.supercell(nibr2, (6, 6, 1))
    scalar = sc.copy()
    scalar.set_initial_magnetic_moments(np.where(np.arange(len(sc)) % 2 == 0, 2.0, -1.0))
    assert textures.topological_charge(scalar) == 0.0
    afm = textures.noncollinear_afm(sc, "120", axis=(1, 1, 0))
    assert textures.topological_charge(afm) == 0.0


def test_finite_flake_gives_a_nearly_integer_charge(nibr2_slab):
    flake = textures.supercell(nibr2_slab, (16, 16, 1))
    flake.pbc = False
    sk = textures.skyrmion(flake, radius=6.0, width=2.0, center=flake.get_center_of_mass())
    assert textures.topological_charge(sk) == pytest.approx(-1.0, abs=0.05)


def test_3d_structure_raises(seeded):
    fe = textures.random_moments(
        textures.supercell(bulk("Fe", "bcc", a=2.87, cubic=True), (3, 3, 3)), rng=seeded
    )
    with pytest.raises(NoLayerError, match="no 2D layer"):
        textures.topological_charge(fe)


def test_two_magnetic_layers_raise_unless_one_is_selected(seeded):
    a = 3.71
    cell = [[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 25.0]]
    slab = Atoms(
        "NiFe", positions=[[0, 0, 10.0], [a / 2, a / (2 * np.sqrt(3)), 12.2]], cell=cell, pbc=True
    )
    slab = textures.random_moments(textures.supercell(slab, (5, 5, 1)), rng=seeded)
    with pytest.raises(NoLayerError, match="magnetic=") as info:
        textures.topological_charge(slab)
    assert "layer" in str(info.value)
    q = textures.topological_charge(slab, magnetic="Ni")
    assert q == pytest.approx(round(q), abs=1e-9)


def test_zero_moments_on_magnetic_atoms_raise(sk):
    m = sk.get_initial_magnetic_moments()
    m[0] = 0.0
    with pytest.raises(TextureError, match="zero moment"):
        textures.topological_charge(sk, moments=m)
    with pytest.raises(TextureError, match="shape"):
        textures.topological_charge(sk, moments=m[:5])
