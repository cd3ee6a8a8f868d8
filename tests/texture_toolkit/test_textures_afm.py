"""Non-collinear antiferromagnets of the triangular lattice."""

from __future__ import annotations

import numpy as np
import pytest

import textures
from textures import IncommensurateError, TextureError

SQRT3 = [[2, 1, 0], [-1, 1, 0], [0, 0, 1]]


def _partner(atoms, shift):
    """For each atom, the index of the atom at its position + shift (modulo the cell)."""
    inv = np.linalg.inv(atoms.cell[:])
    frac = atoms.get_positions() @ inv
    target = (atoms.get_positions() + shift) @ inv
    d = target[:, None, :] - frac[None, :, :]
    d -= np.round(d)
    dist = np.linalg.norm(d @ atoms.cell[:], axis=2)
    assert np.all(np.sort(dist, axis=1)[:, 0] < 1e-6)
    return np.argmin(dist, axis=1)


def _triangles(atoms, prim):
    """Counter-clockwise up and down nearest-neighbour triangles of the Ni sites."""
    a1, a2 = prim.cell[0], prim.cell[1]  # 120° apart; a1 + a2 is 60° from a1
    ni = np.flatnonzero(atoms.numbers == 28)
    i1, i12, i2 = (_partner(atoms, s)[ni] for s in (a1, a1 + a2, a2))
    return np.concatenate([np.column_stack([ni, i1, i12]), np.column_stack([ni, i12, i2])])


@pytest.mark.parametrize("matrix", [SQRT3, (3, 3, 1), (6, 3, 1)])
@pytest.mark.parametrize("chirality", [1, -1])
def test_120_state_has_zero_moment_per_triangle(nibr2, matrix, chirality):
    sc = textures.supercell(nibr2, matrix)
    afm = textures.noncollinear_afm(sc, "120", chirality=chirality, phase=0.4)
    m = afm.get_initial_magnetic_moments()
    tri = _triangles(sc, nibr2)
    np.testing.assert_allclose(m[tri].sum(axis=1), 0.0, atol=1e-12)
    # neighbours at 120°, spins in the layer plane (default axis = normal)
    np.testing.assert_allclose(np.einsum("ij,ij->i", m[tri[:, 0]], m[tri[:, 1]]), -0.5, atol=1e-12)
    np.testing.assert_allclose(m[:, 2], 0.0, atol=1e-12)
    # vector chirality: counter-clockwise around an up-triangle the spins turn by ±120°
    n_up = len(tri) // 2
    up = tri[:n_up]
    kappa = np.cross(m[up[:, 0]], m[up[:, 1]])[:, 2]
    np.testing.assert_allclose(kappa, chirality * np.sqrt(3) / 2, atol=1e-12)
    assert textures.topological_charge(afm) == 0.0


def test_120_state_in_a_tilted_spin_plane(nibr2):
    sc = textures.supercell(nibr2, SQRT3)
    m = textures.noncollinear_afm(sc, "120", axis=(1, 0, 0)).get_initial_magnetic_moments()
    np.testing.assert_allclose(m[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(m.sum(axis=0), 0.0, atol=1e-12)


def test_120_state_rejects_cells_that_do_not_fit(nibr2):
    with pytest.raises(IncommensurateError, match=r"\(3, 3, 1\)") as info:
        textures.noncollinear_afm(textures.supercell(nibr2, (2, 2, 1)), "120")
    np.testing.assert_allclose(np.abs(info.value.q[:2]), [1 / 3, 1 / 3], atol=1e-12)


def test_tetrahedral_state(nibr2):
    sc = textures.supercell(nibr2, (4, 4, 1))
    afm = textures.noncollinear_afm(sc, "tetrahedral")
    m = afm.get_initial_magnetic_moments()[sc.numbers == 28]
    corners = np.unique(np.round(m, 10), axis=0)
    assert len(corners) == 4
    gram = corners @ corners.T
    np.testing.assert_allclose(gram[~np.eye(4, dtype=bool)], -1 / 3, atol=1e-12)  # tetrahedron
    np.testing.assert_allclose(m.sum(axis=0), 0.0, atol=1e-12)
    # uniform scalar chirality: every triangle subtends π, Q = ±2 per 2x2 magnetic cell
    q = textures.topological_charge(afm)
    assert abs(q) == pytest.approx(2 * 4, abs=1e-9)
    tilted = textures.noncollinear_afm(sc, "tetrahedral", axis=(0, 0, 1))
    np.testing.assert_allclose(tilted.get_initial_magnetic_moments()[0], [0, 0, 1], atol=1e-12)
    assert textures.topological_charge(tilted) == pytest.approx(q, abs=1e-9)
    with pytest.raises(IncommensurateError):
        textures.noncollinear_afm(textures.supercell(nibr2, (3, 3, 1)), "tetrahedral")


def test_afm_needs_a_triangular_magnetic_lattice(square):
    with pytest.raises(TextureError, match="triangular"):
        textures.noncollinear_afm(textures.supercell(square, (3, 3, 1)), "120")
    with pytest.raises(TextureError, match="'120' or 'tetrahedral'"):
        textures.noncollinear_afm(textures.supercell(square, (3, 3, 1)), "zigzag")
