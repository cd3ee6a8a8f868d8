"""Spin spirals: periodicity over supercells, rotation planes, cone angle, commensurability."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

import textures
from textures import IncommensurateError, NoLayerError, TextureError


def _index_of(atoms, positions):
    """Index of the atom of ``atoms`` at each Cartesian position, modulo the cell."""
    inv = np.linalg.inv(atoms.cell[:])
    frac = atoms.get_positions() @ inv
    out = []
    for p in positions:
        d = frac - p @ inv
        d -= np.round(d)
        hit = np.flatnonzero(np.linalg.norm(d @ atoms.cell[:], axis=1) < 1e-6)
        assert len(hit) == 1
        out.append(hit[0])
    return np.array(out)


@pytest.mark.parametrize("kind", ["cycloidal", "helical"])
def test_spiral_is_periodic_across_the_supercell_boundary(nibr2, kind):
    q = (1 / 8, 0, 0)
    small = textures.spin_spiral(textures.supercell(nibr2, (8, 1, 1)), q, kind=kind, phase=0.3)
    big = textures.spin_spiral(textures.supercell(nibr2, (16, 2, 1)), q, kind=kind, phase=0.3)
    m_big = big.get_initial_magnetic_moments()
    # atoms related by a vector of the small supercell carry the same moment
    for t in small.cell[:]:
        partner = _index_of(big, big.get_positions() + t)
        np.testing.assert_allclose(m_big[partner], m_big, atol=1e-12)
    # and the explicit bigger supercell reproduces the small one atom by atom
    at_small = _index_of(big, small.get_positions())
    np.testing.assert_allclose(m_big[at_small], small.get_initial_magnetic_moments(), atol=1e-12)
    # the spiral really turns: 8 distinct directions on Ni
    ni = small.get_initial_magnetic_moments()[small.numbers == 28]
    assert len(np.unique(np.round(ni, 8), axis=0)) == 8


def test_same_q_in_a_nondiagonal_supercell_gives_the_same_field(nibr2):
    q = (1 / 3, 1 / 3, 0)
    diag = textures.spin_spiral(textures.supercell(nibr2, (3, 3, 1)), q)
    rot = textures.spin_spiral(textures.supercell(nibr2, [[2, 1, 0], [-1, 1, 0], [0, 0, 1]]), q)
    at = _index_of(diag, rot.get_positions())
    np.testing.assert_allclose(
        diag.get_initial_magnetic_moments()[at], rot.get_initial_magnetic_moments(), atol=1e-12
    )


def _q_hat(prim, q):
    v = np.linalg.inv(prim.cell[:]) @ np.asarray(q, float)
    return v / np.linalg.norm(v)


def test_cycloid_turns_in_the_plane_of_q_and_the_normal(nibr2):
    sc = textures.spin_spiral(textures.supercell(nibr2, (8, 1, 1)), (1 / 8, 0, 0))
    ni = sc.numbers == 28
    m = sc.get_initial_magnetic_moments()[ni]
    q_hat = _q_hat(nibr2, (1 / 8, 0, 0))
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, q_hat)  # Néel-type: rotation axis normal × q̂
    np.testing.assert_allclose(m @ axis, 0.0, atol=1e-12)  # in the plane of (z, q)
    # the moment turns by 2π/8 per primitive vector a1, positively about normal × q̂
    order = np.argsort(sc.get_positions()[ni, 0])
    m = m[order]
    angle = np.arctan2(m @ q_hat, m @ z)
    np.testing.assert_allclose(np.angle(np.exp(1j * np.diff(angle))), 2 * np.pi / 8, atol=1e-12)
    np.testing.assert_allclose(np.cross(m[0], m[1]), np.sin(2 * np.pi / 8) * axis, atol=1e-12)


def test_helix_turns_perpendicular_to_q(nibr2):
    sc = textures.supercell(nibr2, (6, 6, 1))
    q = (1 / 6, 1 / 6, 0)
    m = textures.spin_spiral(sc, q, kind="helical").get_initial_magnetic_moments()
    b = 2 * np.pi * np.linalg.inv(nibr2.cell[:]).T
    q_hat = np.array(q) @ b / np.linalg.norm(np.array(q) @ b)
    np.testing.assert_allclose(q_hat, _q_hat(nibr2, q), atol=1e-12)
    np.testing.assert_allclose(m @ q_hat, 0.0, atol=1e-12)


def test_conical_spiral_keeps_the_cone_angle(nibr2):
    sc = textures.supercell(nibr2, (1, 7, 1))
    alpha = 0.6
    m = textures.conical_spiral(sc, (0, 2 / 7, 0), alpha).get_initial_magnetic_moments()
    ni = m[sc.numbers == 28]
    np.testing.assert_allclose(ni[:, 2], np.cos(alpha), atol=1e-12)
    tilted = textures.conical_spiral(sc, (0, 2 / 7, 0), alpha, axis=(1, 0, 0))
    np.testing.assert_allclose(
        tilted.get_initial_magnetic_moments()[sc.numbers == 28][:, 0], np.cos(alpha), atol=1e-12
    )


def test_single_q_multi_q_equals_spin_spiral(nibr2):
    sc = textures.supercell(nibr2, (6, 6, 1))
    q = (1 / 6, -1 / 3, 0)
    one = textures.spin_spiral(sc, q, kind="helical", phase=0.7)
    multi = textures.multi_q_spiral(sc, [q], kind="helical", phases=[0.7], amplitudes=[2.5])
    np.testing.assert_allclose(
        multi.get_initial_magnetic_moments(), one.get_initial_magnetic_moments(), atol=1e-12
    )


def test_triple_q_with_uniform_component_is_a_skyrmion_crystal(nibr2):
    sc = textures.supercell(nibr2, (12, 12, 1))
    qs = [(1 / 6, 0, 0), (0, 1 / 6, 0), (-1 / 6, -1 / 6, 0)]
    up = textures.multi_q_spiral(sc, qs, kind="helical", uniform=(0, 0, 0.8))
    # four magnetic unit cells of the triple-q state, one skyrmion each
    assert textures.topological_charge(up) == pytest.approx(4.0, abs=1e-9)
    # time reversal (every spiral shifted by π, uniform part reversed) reverses Q
    down = textures.multi_q_spiral(sc, qs, kind="helical", phases=[np.pi] * 3, uniform=(0, 0, -0.8))
    np.testing.assert_allclose(
        down.get_initial_magnetic_moments(), -up.get_initial_magnetic_moments(), atol=1e-12
    )
    assert textures.topological_charge(down) == pytest.approx(-4.0, abs=1e-9)


@pytest.mark.parametrize("kind", ["cycloidal", "helical"])
def test_flat_and_conical_spirals_have_zero_charge(nibr2, kind):
    sc = textures.supercell(nibr2, (8, 8, 1))
    assert textures.topological_charge(textures.spin_spiral(sc, (1 / 8, 1 / 4, 0), kind=kind)) == 0
    conical = textures.conical_spiral(sc, (1 / 8, 0, 0), 0.5)
    assert textures.topological_charge(conical) == pytest.approx(0.0, abs=1e-12)


def test_incommensurate_q_names_the_nearest_q_and_a_fitting_supercell(nibr2):
    sc = textures.supercell(nibr2, (8, 1, 1))
    with pytest.raises(IncommensurateError) as info:
        textures.spin_spiral(sc, (0.13, 0, 0))
    err = info.value
    assert isinstance(err, ValueError)
    np.testing.assert_allclose(err.nearest_q, [0.125, 0, 0], atol=1e-12)
    assert err.reps[1:] == (1, 1)
    assert abs(0.13 * err.reps[0] - round(0.13 * err.reps[0])) < 0.03
    message = str(err)
    assert "(0.125, 0, 0)" in message and f"({err.reps[0]}, 1, 1)" in message
    # the suggested supercell works for the rational q of the message
    q_fit = round(0.13 * err.reps[0]) / err.reps[0]
    textures.spin_spiral(textures.supercell(nibr2, err.reps), (q_fit, 0, 0))
    # the nearest q works on the given cell
    textures.spin_spiral(sc, err.nearest_q)


def test_q_along_a_nonperiodic_axis_is_not_constrained(nibr2, nibr2_slab):
    q = (1 / 4, 0, 0.05)
    textures.spin_spiral(textures.supercell(nibr2_slab, (4, 1, 1)), q, kind="helical")
    with pytest.raises(IncommensurateError):
        textures.spin_spiral(textures.supercell(nibr2, (4, 1, 1)), q, kind="helical")


def test_q_refers_to_the_cell_itself_without_a_primitive_record(nibr2):
    sc = nibr2 * (8, 1, 1)  # ASE repeat keeps info, but nibr2 has no record: cell is reference
    with pytest.raises(IncommensurateError, match=r"\(8, 1, 1\)"):
        textures.spin_spiral(sc, (1 / 8, 0, 0))
    textures.spin_spiral(sc, (1 / 8, 0, 0), primitive_cell=nibr2.cell[:])
    textures.spin_spiral(sc, (1, 0, 0))


def test_spiral_argument_errors(nibr2):
    sc = textures.supercell(nibr2, (4, 1, 1))
    with pytest.raises(TypeError):
        textures.spin_spiral(sc, (1 / 4, 0, 0), kind="helical", axis=(0, 0, 1))
    with pytest.raises(TextureError, match="q != 0"):
        textures.spin_spiral(sc, (0, 0, 0))
    with pytest.raises(TextureError, match="'cycloidal' or 'helical'"):
        textures.spin_spiral(sc, (1 / 4, 0, 0), kind="screw")
    with pytest.raises(TextureError, match="vanishes"):
        textures.multi_q_spiral(sc, [(1 / 4, 0, 0), (1 / 4, 0, 0)], phases=[0, np.pi])


def test_bulk_cycloid_needs_an_axis():
    fe = textures.supercell(bulk("Fe", "bcc", a=2.87, cubic=True), (4, 1, 1))
    with pytest.raises(NoLayerError, match="axis="):
        textures.spin_spiral(fe, (1 / 4, 0, 0))
    m = textures.spin_spiral(fe, (1 / 4, 0, 0), axis=(0, 1, 0)).get_initial_magnetic_moments()
    np.testing.assert_allclose(m[:, 1], 0.0, atol=1e-12)
    helix = textures.spin_spiral(fe, (1 / 4, 0, 0), kind="helical").get_initial_magnetic_moments()
    np.testing.assert_allclose(helix[:, 0], 0.0, atol=1e-12)
