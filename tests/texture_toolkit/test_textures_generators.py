"""Properties every generator shares: unit directions, untouched input, species, magnitudes,
and the extxyz round trip of (N, 3) moments."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read, write

import textures
from textures import SpeciesError, TextureError

GENERATORS = {
    "ferromagnet": lambda a, **kw: textures.ferromagnet(a, (1, 2, 3), **kw),
    "random": lambda a, **kw: textures.random_moments(a, rng=3, **kw),
    "cycloid": lambda a, **kw: textures.spin_spiral(a, (1 / 6, 0, 0), **kw),
    "helix": lambda a, **kw: textures.spin_spiral(a, (1 / 6, 1 / 6, 0), kind="helical", **kw),
    "conical": lambda a, **kw: textures.conical_spiral(a, (0, 1 / 3, 0), 0.4, **kw),
    "multi_q": lambda a, **kw: textures.multi_q_spiral(
        a,
        [(1 / 6, 0, 0), (0, 1 / 6, 0), (-1 / 6, -1 / 6, 0)],
        kind="helical",
        uniform=(0, 0, 0.7),
        **kw,
    ),
    "afm_120": lambda a, **kw: textures.noncollinear_afm(a, "120", **kw),
    "afm_tetrahedral": lambda a, **kw: textures.noncollinear_afm(a, "tetrahedral", **kw),
    "skyrmion": lambda a, **kw: textures.skyrmion(a, radius=3.0, width=1.5, **kw),
    "antiskyrmion": lambda a, **kw: textures.antiskyrmion(a, radius=3.0, width=1.5, **kw),
    "skyrmion_lattice": lambda a, **kw: textures.skyrmion_lattice(a, n=4, **kw),
}


@pytest.fixture
def cell6(nibr2):
    return textures.supercell(nibr2, (6, 6, 1))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_default_size_zero_on_ligands_and_input_untouched(cell6, name):
    m = GENERATORS[name](cell6).get_initial_magnetic_moments()
    ni = cell6.numbers == 28
    np.testing.assert_allclose(np.linalg.norm(m[ni], axis=1), textures.DEFAULT_MAGNITUDE)
    assert textures.DEFAULT_MAGNITUDE == 1.0
    np.testing.assert_array_equal(m[~ni], 0.0)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_sizes_on_the_atoms_are_kept_and_input_untouched(cell6, name):
    cell6.set_initial_magnetic_moments(np.full((len(cell6), 3), 0.25))
    before = cell6.copy()
    before_info = dict(cell6.info)
    out = GENERATORS[name](cell6)
    assert out is not cell6
    # the input is not modified
    assert cell6 == before
    np.testing.assert_array_equal(cell6.get_initial_magnetic_moments(), 0.25)
    assert cell6.info.keys() == before_info.keys()
    m = out.get_initial_magnetic_moments()
    assert m.shape == (len(cell6), 3) and m.dtype == np.float64
    ni = out.numbers == 28
    # only directions change: each Ni keeps |m| = 0.25 sqrt(3) μB of its input moment
    np.testing.assert_allclose(np.linalg.norm(m[ni], axis=1), 0.25 * np.sqrt(3), atol=1e-12)
    np.testing.assert_array_equal(m[~ni], 0.0)
    np.testing.assert_array_equal(out.positions, cell6.positions)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_per_atom_sizes_collinear_input_and_explicit_magnitude(cell6, name):
    ni = cell6.numbers == 28
    sizes = np.where(ni, np.linspace(1.5, 2.5, len(cell6)), 0.0)
    sizes[np.flatnonzero(ni)[:3]] = 0.0  # three Ni without a moment get the default
    cell6.set_initial_magnetic_moments(-sizes)  # scalar (collinear) moments, along -z
    m = GENERATORS[name](cell6).get_initial_magnetic_moments()
    np.testing.assert_allclose(np.linalg.norm(m[ni], axis=1),
                               np.where(sizes[ni] > 0, sizes[ni], 1.0), atol=1e-12)
    np.testing.assert_array_equal(m[~ni], 0.0)
    # an explicit magnitude wins over the sizes on the atoms
    m = GENERATORS[name](cell6, magnitude=0.7).get_initial_magnetic_moments()
    np.testing.assert_allclose(np.linalg.norm(m[ni], axis=1), 0.7, atol=1e-12)
    # a texture built on a texture keeps its sizes
    again = GENERATORS[name](GENERATORS[name](cell6, magnitude={"Ni": 2.0}))
    np.testing.assert_allclose(
        np.linalg.norm(again.get_initial_magnetic_moments()[ni], axis=1), 2.0, atol=1e-12)


def test_supercell_carries_the_moments(nibr2):
    nibr2.set_initial_magnetic_moments([[0.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    for reps in ((3, 2, 1), [[2, 1, 0], [-1, 1, 0], [0, 0, 1]]):
        sc = textures.supercell(nibr2, reps)
        np.testing.assert_array_equal(
            sc.get_initial_magnetic_moments()[sc.numbers == 28], [[0.0, 0.0, 2.0]] * (len(sc) // 3))
    sk = textures.skyrmion(textures.supercell(nibr2, (8, 8, 1)), radius=5.0)
    np.testing.assert_allclose(
        np.linalg.norm(sk.get_initial_magnetic_moments()[sk.numbers == 28], axis=1), 2.0)


def test_non_finite_moments_on_the_atoms_raise(cell6):
    m = np.zeros((len(cell6), 3))
    m[0] = np.nan
    cell6.set_initial_magnetic_moments(m)
    with pytest.raises(TextureError, match="magnitude="):
        textures.ferromagnet(cell6)
    textures.ferromagnet(cell6, magnitude=2.0)  # an explicit size needs no moments


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_magnitudes_per_species_and_per_atom(cell6, name):
    by_species = GENERATORS[name](cell6, magnitude={"Ni": 1.7})
    m = by_species.get_initial_magnetic_moments()
    np.testing.assert_allclose(np.linalg.norm(m[cell6.numbers == 28], axis=1), 1.7, atol=1e-12)
    per_atom = np.linspace(0.5, 2.0, len(cell6))
    m = GENERATORS[name](cell6, magnitude=per_atom).get_initial_magnetic_moments()
    ni = cell6.numbers == 28
    np.testing.assert_allclose(np.linalg.norm(m[ni], axis=1), per_atom[ni], atol=1e-12)
    np.testing.assert_array_equal(m[~ni], 0.0)


def test_species_filter_and_default_rule(cell6):
    both = textures.ferromagnet(cell6, magnetic=("Ni", "Br")).get_initial_magnetic_moments()
    np.testing.assert_allclose(np.linalg.norm(both, axis=1), 1.0)
    only_br = textures.ferromagnet(cell6, magnetic="Br").get_initial_magnetic_moments()
    np.testing.assert_array_equal(np.linalg.norm(only_br, axis=1) > 0, cell6.numbers == 35)
    default = textures.ferromagnet(cell6).get_initial_magnetic_moments()
    np.testing.assert_array_equal(np.linalg.norm(default, axis=1) > 0, cell6.numbers == 28)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"magnetic": ("Xx",)}, "unknown chemical symbol 'Xx'"),
        ({"magnetic": ("Fe",)}, "'Fe' is not in the structure"),
        ({"magnetic": ()}, "at least one species"),
        ({"magnitude": {"Fe": 2.0}}, "one entry per magnetic species"),
    ],
)
def test_unknown_or_absent_species_raise(cell6, kwargs, match):
    with pytest.raises(SpeciesError, match=match):
        textures.spin_spiral(cell6, (1 / 6, 0, 0), **kwargs)


def test_no_default_magnetic_species():
    from ase.build import graphene

    with pytest.raises(SpeciesError, match="magnetic="):
        textures.ferromagnet(graphene())


@pytest.mark.parametrize("magnitude", [-1.0, np.ones(5), {"Ni": np.nan}])
def test_bad_magnitudes_raise(cell6, magnitude):
    with pytest.raises(TextureError):
        textures.ferromagnet(cell6, magnitude=magnitude)


def test_zero_direction_raises(cell6):
    with pytest.raises(TextureError, match="non-zero"):
        textures.ferromagnet(cell6, (0, 0, 0))


def test_random_moments_are_seeded_and_isotropic(nibr2):
    big = textures.supercell(nibr2, (30, 30, 1))
    a = textures.random_moments(big, rng=11).get_initial_magnetic_moments()
    b = textures.random_moments(big, rng=np.random.default_rng(11)).get_initial_magnetic_moments()
    np.testing.assert_array_equal(a, b)
    m = a[big.numbers == 28]
    # uniform on the sphere: mean ~ 0 and <m_a m_b> = δ_ab / 3
    assert np.all(np.abs(m.mean(axis=0)) < 0.1)
    np.testing.assert_allclose(m.T @ m / len(m), np.eye(3) / 3, atol=0.05)
    with pytest.raises(TypeError):
        textures.random_moments(big, rng="seed")


def test_extxyz_round_trips_noncollinear_moments_natively(tmp_path, cell6):
    sk = textures.skyrmion(cell6, radius=3.0, width=1.5, magnitude={"Ni": 1.6})
    path = tmp_path / "sk.extxyz"
    write(path, sk, format="extxyz")
    back = read(path, format="extxyz")
    assert back.get_initial_magnetic_moments().shape == (len(sk), 3)
    np.testing.assert_allclose(
        back.get_initial_magnetic_moments(), sk.get_initial_magnetic_moments(), atol=1e-7
    )
    np.testing.assert_allclose(back.info["primitive_cell"], sk.info["primitive_cell"])
    assert round(textures.topological_charge(back)) == round(textures.topological_charge(sk))
