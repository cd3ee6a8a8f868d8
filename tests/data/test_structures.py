"""Structure builders: composition, geometry, periodicity, moments and supercell order."""

from __future__ import annotations

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from ase_hamgnn.data import fe_ir111, nibr2, nibri


def _bonds(atoms, a, b, cutoff=3.0):
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    sym = np.array(atoms.get_chemical_symbols())
    return d[(sym[i] == a) & (sym[j] == b)]


def test_nibr2_geometry():
    atoms = nibr2()
    assert atoms.get_chemical_formula() == "Br2Ni"
    assert atoms.pbc.tolist() == [True, True, False]
    np.testing.assert_allclose(atoms.cell.lengths()[:2], 3.70)
    np.testing.assert_allclose(atoms.cell.angles()[2], 120.0)
    bonds = _bonds(atoms, "Ni", "Br")
    assert len(bonds) == 6  # octahedral NiBr6
    np.testing.assert_allclose(bonds, 2.538, atol=2e-3)
    # vacuum of 10 Å on each side along z
    z = atoms.positions[:, 2]
    assert z.min() == pytest.approx(10.0) and atoms.cell[2, 2] - z.max() == pytest.approx(10.0)


def test_nibri_is_janus():
    atoms = nibri()
    assert sorted(atoms.get_chemical_symbols()) == ["Br", "I", "Ni"]
    np.testing.assert_allclose(atoms.cell.lengths()[:2], 3.82)
    z = dict(zip(atoms.get_chemical_symbols(), atoms.positions[:, 2], strict=True))
    assert z["Br"] > z["Ni"] > z["I"]
    np.testing.assert_allclose(_bonds(atoms, "Ni", "Br"), 2.56, atol=5e-3)
    np.testing.assert_allclose(_bonds(atoms, "Ni", "I"), 2.76, atol=5e-3)


def test_fe_ir111_stacking():
    atoms = fe_ir111(n_ir_layers=3)
    assert atoms.get_chemical_symbols() == ["Ir", "Ir", "Ir", "Fe"]
    np.testing.assert_allclose(atoms.cell.lengths()[:2], 3.839 / np.sqrt(2))
    z = atoms.positions[:, 2]
    assert np.all(np.diff(z) > 0)  # bottom Ir layer first, Fe on top
    np.testing.assert_allclose(np.diff(z)[:2], 3.839 / np.sqrt(3))
    assert z[3] - z[2] == pytest.approx(2.04)
    # hcp hollow: Fe sits above the second Ir layer from the top, not above the top layer
    frac = atoms.get_scaled_positions()[:, :2]
    same = lambda p, q: np.allclose((p - q + 0.5) % 1.0 - 0.5, 0.0, atol=1e-8)  # noqa: E731
    assert same(frac[3], frac[1]) and not same(frac[3], frac[2])
    assert len(fe_ir111(n_ir_layers=5)) == 6


@pytest.mark.parametrize("builder", [nibr2, nibri, fe_ir111])
def test_supercells_and_moments(builder):
    prim = builder()
    big = builder((3, 2))
    assert len(big) == 6 * len(prim)
    np.testing.assert_allclose(big.positions, prim.repeat((3, 2, 1)).positions)
    assert big.get_chemical_symbols() == prim.repeat((3, 2, 1)).get_chemical_symbols()
    np.testing.assert_allclose(builder((3, 2, 1)).positions, big.positions)
    mom = big.get_initial_magnetic_moments()
    assert mom.shape == (len(big), 3)
    magnetic = np.isin(big.get_chemical_symbols(), ["Ni", "Fe"])
    assert np.all(mom[magnetic, 2] > 1.5) and np.all(mom[~magnetic] == 0)
    assert np.all(mom[:, :2] == 0)


def test_parameters_and_bad_sizes():
    assert nibr2(magmom=1.5).get_initial_magnetic_moments()[0, 2] == 1.5
    assert nibr2(a=3.8).cell.lengths()[0] == pytest.approx(3.8)
    assert nibri(vacuum=5.0).cell[2, 2] == pytest.approx(5.0 * 2 + 1.30 + 1.66)
    with pytest.raises(ValueError, match="size\\[2\\] must be 1"):
        nibr2((2, 2, 2))
    with pytest.raises(ValueError, match="positive"):
        nibri((0, 2))
    with pytest.raises(TypeError):
        nibri(3)
    with pytest.raises(ValueError, match="n_ir_layers"):
        fe_ir111(n_ir_layers=0)
    with pytest.raises(ValueError, match="vacuum"):
        nibr2(vacuum=0.0)


@pytest.mark.parametrize("builder, system, element", [
    (nibr2, "nibr2", "Ni"), (nibri, "nibri", "Ni"), (fe_ir111, "feir", "Fe")])
def test_builders_carry_the_reference_moment_sizes_and_textures_keep_them(builder, system,
                                                                          element):
    import textures
    from ase_hamgnn.data import ReferenceTB

    size = ReferenceTB(system).parameters.elements[element].moment  # what datasets use
    assert size == {"Ni": 2.0, "Fe": 2.7}[element]
    atoms = builder((4, 4))
    on = np.array(atoms.get_chemical_symbols()) == element
    np.testing.assert_allclose(np.linalg.norm(atoms.get_initial_magnetic_moments()[on], axis=1),
                               size)
    mag = (element,)  # Ir is a transition metal too: name the magnetic species
    textured = [
        textures.skyrmion(textures.supercell(builder(), (6, 6, 1)), radius=4.0, magnetic=mag),
        textures.spin_spiral(textures.supercell(builder(), (4, 1, 1)), (1 / 4, 0, 0),
                             magnetic=mag),
        textures.random_moments(atoms, rng=0, magnetic=mag),
        textures.noncollinear_afm(textures.supercell(builder(), (3, 3, 1)), magnetic=mag),
    ]
    for out in textured:
        mine = np.array(out.get_chemical_symbols()) == element
        np.testing.assert_allclose(
            np.linalg.norm(out.get_initial_magnetic_moments()[mine], axis=1), size, atol=1e-12)


def test_a_texture_of_nibri_is_within_the_shipped_models_moment_range():
    import warnings

    import textures
    from ase_hamgnn import load_model
    from ase_hamgnn.errors import MomentRangeWarning

    model = load_model("nibri-reference")
    atoms = textures.antiskyrmion(nibri((6, 6)), radius=5.0, magnetic=("Ni",))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MomentRangeWarning)
        model.check_moment_range(atoms)
