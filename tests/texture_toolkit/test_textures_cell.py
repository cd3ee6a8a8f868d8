"""Supercells, the primitive-cell record, the layer frame and minimum-image distances."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

import textures
from textures._cell import find_layer, minimum_image_2d, primitive_cell
from textures._errors import NoLayerError, TextureError


@pytest.mark.parametrize(
    "matrix",
    [
        (4, 3, 1),
        [[2, 1, 0], [-1, 1, 0], [0, 0, 1]],  # √3×√3
        [[3, 1, 0], [1, 4, 0], [0, 0, 1]],
        [[1, 2, 0], [2, 1, 0], [0, 0, 1]],  # negative determinant
    ],
)
def test_supercell_counts_volume_and_composition(nibr2, matrix):
    p = np.diag(matrix) if np.ndim(matrix) == 1 else np.array(matrix)
    det = round(abs(np.linalg.det(p)))
    sc = textures.supercell(nibr2, matrix)
    assert len(sc) == det * len(nibr2)
    assert sc.get_volume() == pytest.approx(det * nibr2.get_volume(), rel=1e-12)
    assert sc.get_chemical_formula() == f"Br{2 * det}Ni{det}"
    np.testing.assert_allclose(sc.cell[:], p @ nibr2.cell[:], atol=1e-12)
    np.testing.assert_allclose(sc.info["primitive_cell"], nibr2.cell[:], atol=1e-12)
    # every atom of the supercell is a lattice translate of a primitive atom
    frac = sc.get_positions() @ np.linalg.inv(nibr2.cell[:])
    prim_frac = nibr2.get_scaled_positions()
    same = [
        np.any(np.all(np.abs((f - prim_frac) - np.round(f - prim_frac)) < 1e-8, axis=1))
        for f in frac
    ]
    assert all(same)


def test_supercell_of_supercell_keeps_the_primitive_cell(nibr2):
    sc = textures.supercell(textures.supercell(nibr2, (2, 2, 1)), (3, 1, 1))
    np.testing.assert_allclose(sc.info["primitive_cell"], nibr2.cell[:])
    assert len(sc) == 12 * len(nibr2)


def test_supercell_copies_moments_and_leaves_input(nibr2):
    fm = textures.ferromagnet(nibr2, (1, 0, 0))
    before = fm.copy()
    sc = textures.supercell(fm, [[2, 1, 0], [-1, 1, 0], [0, 0, 1]])
    assert sc.get_initial_magnetic_moments().shape == (9, 3)
    np.testing.assert_allclose(sc.get_initial_magnetic_moments()[sc.numbers == 28], [[1, 0, 0]] * 3)
    assert fm == before and "primitive_cell" not in fm.info


@pytest.mark.parametrize(
    "bad, error",
    [
        (3, TypeError),
        ([[1, 0, 0], [2, 0, 0], [0, 0, 1]], TextureError),
        ((1.5, 1, 1), TextureError),
    ],
)
def test_supercell_rejects_bad_matrices(nibr2, bad, error):
    with pytest.raises(error):
        textures.supercell(nibr2, bad)


def test_stale_primitive_cell_is_detected(nibr2):
    sc = textures.supercell(nibr2, (3, 3, 1))
    sc.info["primitive_cell"] = np.diag([5.0, 5.0, 20.0])
    with pytest.raises(TextureError, match="does not tile"):
        primitive_cell(sc)


def test_minimum_image_is_the_shortest_periodic_image(seeded):
    basis = np.array([[10.0, 0.0], [-13.0, 4.0]])  # oblique, not reduced
    vectors = seeded.uniform(-30, 30, size=(200, 2))
    best = minimum_image_2d(vectors, basis)
    shifts = np.array([[i, j] for i in range(-25, 26) for j in range(-25, 26)]) @ basis
    brute = vectors[:, None, :] + shifts[None]
    shortest = np.min(np.linalg.norm(brute, axis=2), axis=1)
    np.testing.assert_allclose(np.linalg.norm(best, axis=1), shortest, atol=1e-10)
    # and it is a lattice translate of the input
    frac = (best - vectors) @ np.linalg.inv(basis)
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-9)


@pytest.mark.parametrize("fixture", ["nibr2", "nibr2_slab", "square"])
def test_layer_frame_of_xy_layers(request, fixture):
    atoms = textures.supercell(request.getfixturevalue(fixture), (3, 2, 1))
    layer = find_layer(atoms, atoms.numbers != 35)
    assert layer.axis == 2 and layer.periodic
    np.testing.assert_allclose([layer.e_x, layer.e_y, layer.normal], np.eye(3), atol=1e-12)


def test_layer_normal_points_up_for_a_left_handed_cell(nibr2):
    flipped = nibr2.copy()
    flipped.set_cell(-nibr2.cell[:], scale_atoms=False)
    layer = find_layer(flipped, flipped.numbers == 28)
    np.testing.assert_allclose(layer.normal, [0, 0, 1], atol=1e-12)


def test_layer_found_along_a_vacuum_axis_that_is_not_the_third_vector(nibr2):
    rolled = Atoms(
        nibr2.symbols,
        positions=nibr2.positions[:, [2, 0, 1]],
        cell=nibr2.cell[:][[2, 0, 1]][:, [2, 0, 1]],
        pbc=True,
    )
    layer = find_layer(rolled, rolled.numbers == 28)
    assert layer.axis == 0
    np.testing.assert_allclose(abs(layer.normal), [1, 0, 0], atol=1e-12)


def test_bulk_3d_supercell_has_no_layer():
    fe = textures.supercell(bulk("Fe", "bcc", a=2.87, cubic=True), (3, 3, 3))
    with pytest.raises(NoLayerError, match="no 2D layer"):
        find_layer(fe, fe.numbers == 26)
