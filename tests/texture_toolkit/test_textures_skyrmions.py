"""Skyrmions, antiskyrmions and skyrmion lattices: charge, helicity, vorticity, fit checks."""

from __future__ import annotations

import numpy as np
import pytest

import textures
from textures import CellTooSmallError, NoLayerError, TextureError
from textures._cell import minimum_image_2d, periodic_images_2d


@pytest.fixture
def cell16(nibr2):
    return textures.supercell(nibr2, (16, 16, 1))


def _core_frame(atoms, center):
    """In-plane minimum-image vectors from ``center`` to every Ni, and the Ni moments."""
    ni = atoms.numbers == 28
    d = minimum_image_2d(atoms.get_positions()[ni, :2] - center[:2], atoms.cell[:2, :2])
    return d, atoms.get_initial_magnetic_moments()[ni]


def _vorticity_and_helicity(atoms, center):
    """Recover (v, γ) from the field: winding of the in-plane moment along a loop around the
    core, then γ = <Φ − v ϕ> over the wall."""
    d, m = _core_frame(atoms, center)
    wall = np.abs(m[:, 2]) < 0.9
    phi = np.arctan2(d[wall, 1], d[wall, 0])
    big_phi = np.arctan2(m[wall, 1], m[wall, 0])
    order = np.argsort(phi)
    steps = np.angle(np.exp(1j * np.diff(np.append(big_phi[order], big_phi[order][0]))))
    winding = steps.sum() / (2 * np.pi)
    v = round(winding)
    mean = np.mean(np.exp(1j * (big_phi - v * phi)))
    return winding, np.angle(mean), abs(mean)


@pytest.mark.parametrize("profile", ["standard", "linear"])
@pytest.mark.parametrize("helicity", [0.0, np.pi / 2, np.pi, -1.0])
@pytest.mark.parametrize("polarity", [-1, 1])
def test_single_skyrmion_and_antiskyrmion_charges(cell16, profile, helicity, polarity):
    kw = dict(radius=8.0, width=3.0, profile=profile, helicity=helicity, polarity=polarity)
    q_sk = textures.topological_charge(textures.skyrmion(cell16, **kw))
    q_anti = textures.topological_charge(textures.antiskyrmion(cell16, **kw))
    # Q = p v: core down in an up background (p = -1) is Q = -1 for a skyrmion
    assert q_sk == pytest.approx(polarity, abs=1e-9)
    assert q_anti == pytest.approx(-q_sk, abs=1e-9)


@pytest.mark.parametrize("vorticity", [1, -1, 2])
@pytest.mark.parametrize("helicity", [0.0, np.pi / 2, 2.5, -np.pi / 3])
def test_helicity_and_vorticity_recovered_from_the_field(cell16, vorticity, helicity):
    center = np.array([10.3, 12.9, 10.0])
    sk = textures.skyrmion(
        cell16, center=center, radius=9.0, width=3.0, helicity=helicity, vorticity=vorticity
    )
    winding, gamma, coherence = _vorticity_and_helicity(sk, center)
    assert winding == pytest.approx(vorticity, abs=1e-9)
    assert coherence == pytest.approx(1.0, abs=1e-9)
    assert np.angle(np.exp(1j * (gamma - helicity))) == pytest.approx(0.0, abs=1e-9)
    assert textures.topological_charge(sk) == pytest.approx(-vorticity, abs=1e-9)


def test_neel_points_outwards_and_bloch_circulates(cell16):
    center = np.array([0.0, 0.0, 10.0])
    d, m = _core_frame(textures.skyrmion(cell16, center=center, radius=8.0), center)
    wall = np.abs(m[:, 2]) < 0.9
    radial = np.einsum("ij,ij->i", d[wall], m[wall, :2]) / np.linalg.norm(d[wall], axis=1)
    np.testing.assert_allclose(radial, np.linalg.norm(m[wall, :2], axis=1), atol=1e-12)
    d, m = _core_frame(
        textures.skyrmion(cell16, center=center, radius=8.0, helicity=np.pi / 2), center
    )
    np.testing.assert_allclose(np.einsum("ij,ij->i", d[wall], m[wall, :2]), 0.0, atol=1e-10)


def test_profile_and_background(cell16):
    sk = textures.skyrmion(cell16, radius=8.0, width=2.0)
    center = 0.5 * (cell16.cell[0] + cell16.cell[1])
    d, m = _core_frame(sk, center)
    rho = np.linalg.norm(d, axis=1)
    theta = np.arccos(np.clip(m[:, 2], -1, 1))  # from the +z background
    expected = textures.profile_angle(rho, 8.0, 2.0)
    _, shortest = periodic_images_2d(d, cell16.cell[:2, :2])
    unique = shortest.sum(axis=1) == 1  # atoms not on the Wigner-Seitz boundary
    assert unique.sum() > 0.9 * len(unique)
    np.testing.assert_allclose(theta[unique], expected[unique], atol=1e-7)
    # on the boundary the fields of the equidistant cores are averaged, which partly cancels
    # their in-plane parts: the tilt from the background is not larger than the profile's
    assert np.all(theta[~unique] <= expected[~unique] + 1e-12)
    np.testing.assert_allclose(m[np.argmin(rho)], [0, 0, -1], atol=1e-12)  # core at the centre
    assert np.all(m[rho > 24.0, 2] > 0.999)  # background far away
    r = np.linspace(0, 30, 301)
    for profile in ("standard", "linear"):
        t = textures.profile_angle(r, 8.0, 2.0, profile)
        assert t[0] == pytest.approx(np.pi) and np.all(np.diff(t) <= 1e-15)
        assert textures.profile_angle(8.0, 8.0, 2.0, profile) == pytest.approx(np.pi / 2)
    lin = textures.profile_angle(r, 8.0, 2.0, "linear")
    assert np.all(lin[r <= 6.0] == np.pi) and np.all(lin[r >= 10.0] == 0.0)
    assert np.isfinite(textures.profile_angle(r, 1000.0, 0.5)).all()  # no overflow


def test_distances_use_the_periodic_images(cell16, nibr2):
    """A skyrmion centred on a corner equals the centred one translated by a lattice vector."""
    t = 8 * nibr2.cell[0] + 8 * nibr2.cell[1]
    c0 = np.array([0.37, 0.21, 10.0])  # off the lattice: no atom is equidistant to two images
    corner = textures.skyrmion(cell16, center=c0, radius=8.0)
    middle = textures.skyrmion(cell16, center=c0 + t, radius=8.0)
    inv = np.linalg.inv(cell16.cell[:])
    frac = cell16.get_positions() @ inv
    shifted = (cell16.get_positions() + t) @ inv
    dist = shifted[:, None, :] - frac[None]
    dist -= np.round(dist)
    partner = np.argmin(np.linalg.norm(dist @ cell16.cell[:], axis=2), axis=1)
    np.testing.assert_allclose(
        middle.get_initial_magnetic_moments()[partner],
        corner.get_initial_magnetic_moments(),
        atol=1e-12,
    )
    assert textures.topological_charge(corner) == pytest.approx(-1.0, abs=1e-9)


@pytest.mark.parametrize("n", [1, 3, 4, 7])
def test_triangular_skyrmion_lattice_has_charge_n(nibr2, n):
    sc = textures.supercell(nibr2, (21, 21, 1))
    lattice = textures.skyrmion_lattice(sc, n=n)
    assert textures.topological_charge(lattice) == pytest.approx(-n, abs=1e-9)
    anti = textures.skyrmion_lattice(sc, n=n, vorticity=-1, polarity=1)
    assert textures.topological_charge(anti) == pytest.approx(-n, abs=1e-9)


def test_square_skyrmion_lattice_on_a_square_lattice(square):
    sc = textures.supercell(square, (16, 16, 1))
    for n in (1, 2, 4):
        q = textures.topological_charge(textures.skyrmion_lattice(sc, n=n, kind="square"))
        assert q == pytest.approx(-n, abs=1e-9)
    by_spacing = textures.skyrmion_lattice(sc, spacing=24.0, kind="square", polarity=1)
    assert textures.topological_charge(by_spacing) == pytest.approx(4, abs=1e-9)


def test_skyrmion_lattice_that_does_not_fit_raises(nibr2, square):
    with pytest.raises(CellTooSmallError, match="square lattice"):
        textures.skyrmion_lattice(textures.supercell(nibr2, (12, 12, 1)), n=4, kind="square")
    with pytest.raises(CellTooSmallError, match="half the skyrmion spacing"):
        textures.skyrmion_lattice(textures.supercell(nibr2, (12, 12, 1)), n=4, radius=8.0)
    with pytest.raises(TypeError):
        textures.skyrmion_lattice(textures.supercell(square, (8, 8, 1)), n=4, spacing=12.0)


def test_radius_larger_than_the_cell_raises(cell16):
    with pytest.raises(CellTooSmallError, match=r"at most half the shortest in-plane period"):
        textures.skyrmion(cell16, radius=30.0)
    with pytest.raises(CellTooSmallError):
        textures.antiskyrmion(cell16, radius=20.0, width=10.0)
    textures.skyrmion(cell16, radius=20.0, width=9.0)  # 29 Å < 29.68 Å fits


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"radius": -1.0}, "positive"),
        ({"radius": 5.0, "width": 6.0, "profile": "linear"}, "width <= radius"),
        ({"radius": 5.0, "polarity": 0}, "polarity"),
        ({"radius": 5.0, "vorticity": 0}, "vorticity"),
        ({"radius": 5.0, "profile": "gaussian"}, "profile"),
        ({"radius": 5.0, "center": (1.0, 2.0)}, "center"),
    ],
)
def test_skyrmion_argument_errors(cell16, kwargs, match):
    with pytest.raises(TextureError, match=match):
        textures.skyrmion(cell16, **kwargs)


def test_skyrmion_in_a_finite_flake(nibr2_slab):
    flake = textures.supercell(nibr2_slab, (12, 12, 1))
    flake.pbc = False
    sk = textures.skyrmion(flake, radius=8.0, center=flake.get_center_of_mass())
    assert np.allclose(
        np.linalg.norm(sk.get_initial_magnetic_moments()[flake.numbers == 28], axis=1), 1.0
    )
    with pytest.raises(TextureError, match="radius="):
        textures.skyrmion(flake)


def test_skyrmion_needs_a_layer():
    from ase.build import bulk

    fe = textures.supercell(bulk("Fe", "bcc", a=2.87, cubic=True), (4, 4, 4))
    with pytest.raises(NoLayerError):
        textures.skyrmion(fe, radius=3.0)
