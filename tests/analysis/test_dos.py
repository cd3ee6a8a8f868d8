"""Projected DOS: sum rules (integrates to the number of states, PDOS sums to the DOS),
Mulliken projections with an overlap, spin resolution, broadening kinds and plots."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "calculator"))
from toy_predictor import ToyPredictor, nibr, triangular  # noqa: E402

from ase_hamgnn.analysis import (  # noqa: E402
    PDOS,
    local_axes,
    projected_dos,
    state_projections,
)
from ase_hamgnn.spectra import dos as total_dos  # noqa: E402

GRID = np.linspace(-10.0, 7.0, 1701)  # eV, all states of the toy model well inside


@pytest.fixture(scope="module")
def ham():
    return ToyPredictor().predict(nibr())


@pytest.fixture(scope="module")
def ham_s():
    return ToyPredictor(overlap=True).predict(nibr())


@pytest.mark.parametrize("by, labels", [
    ("element", ("Ni", "Br")),
    ("shell", ("Ni 4s", "Ni 4p", "Br 4s")),
    ("l", ("s", "p")),
    ("atom", ("Ni0", "Br1")),
])
def test_pdos_sums_to_dos_and_integrates_to_states(ham, by, labels):
    pdos = projected_dos(ham, (6, 6, 1), GRID, by=by, width=0.1)
    assert pdos.labels == labels
    np.testing.assert_allclose(pdos.projected.sum(axis=(0, 1)), pdos.total, atol=1e-10)
    np.testing.assert_allclose(pdos.total, total_dos(ham, (6, 6, 1), GRID, width=0.1),
                               atol=1e-10)
    counts = pdos.integrate()
    assert counts["total"] == pytest.approx(ham.n_spin_orbitals, rel=1e-6)


def test_orbital_counts_per_group(ham):
    pdos = projected_dos(ham, (4, 4, 1), GRID, by="shell", width=0.05)
    counts = pdos.integrate()
    # each group holds 2 x (its spatial orbitals) states over all energies (orthogonal basis)
    assert counts["Ni 4s"] == pytest.approx(2.0, rel=1e-6)
    assert counts["Ni 4p"] == pytest.approx(6.0, rel=1e-6)
    assert counts["Br 4s"] == pytest.approx(2.0, rel=1e-6)


def test_mulliken_projections_with_overlap(ham_s):
    pdos = projected_dos(ham_s, (6, 6, 1), GRID, by="shell", spin_axis="z", width=0.1)
    np.testing.assert_allclose(pdos.projected.sum(axis=(0, 1)), pdos.total, atol=1e-10)
    counts = pdos.integrate()
    assert counts["total"] == pytest.approx(ham_s.n_spin_orbitals, rel=1e-6)
    # Mulliken populations of a whole shell over all states = 2 x orbitals (tr S^-1 S = n)
    assert counts["Ni 4s"] == pytest.approx(2.0, rel=1e-6)
    e, w = state_projections(ham_s, [0.1, 0.2, 0.0], np.array([0, 0, 0, 0, 1]), 2)
    np.testing.assert_allclose(w.sum(axis=(0, 1)), np.ones(len(e)), atol=1e-12)


def test_spin_resolution_follows_the_moment():
    moment = np.array([0.0, 1.2, 1.6])  # |M| = 2 μB, tilted in the yz plane
    ham = ToyPredictor().predict(triangular(moment=moment))
    along = projected_dos(ham, (6, 6, 1), GRID, spin_axis=moment, width=0.1)
    against = projected_dos(ham, (6, 6, 1), GRID, spin_axis=-moment, width=0.1)
    np.testing.assert_allclose(along.projected[:, 0], against.projected[:, 1], atol=1e-10)
    # exchange -J M.sigma: the lowest band (Ni s) is spin-up along M
    low = GRID < -1.3
    up, dn = along.get("Ni", "up")[low], along.get("Ni", "down")[low]
    assert np.trapezoid(up, GRID[low]) > 0.9 and np.trapezoid(dn, GRID[low]) < 0.1
    np.testing.assert_allclose(along.get("Ni", "up") + along.get("Ni", "down"),
                               along.get("Ni"), atol=1e-12)


def test_local_axes_follow_the_moments():
    """Magnetic atoms use their own moment; Br takes the nearest Ni's (periodic images
    included), so a uniformly tilted ferromagnet splits the same along 'local' and along M."""
    atoms = nibr(moment=(0.0, 1.2, 1.6)).repeat((3, 1, 1))
    mom = atoms.get_initial_magnetic_moments()
    mom[2] = [2.0, 0.0, 0.0]  # Ni of the second cell along x
    atoms.set_initial_magnetic_moments(mom)
    atoms.positions[3] += atoms.cell[0] * 3  # Br of that cell moved by a supercell vector
    ham = ToyPredictor().predict(atoms)
    axes = local_axes(ham.geometry)
    np.testing.assert_allclose(axes[[0, 1, 4, 5]], [[0, 0.6, 0.8]] * 4, atol=1e-12)
    np.testing.assert_allclose(axes[[2, 3]], [[1.0, 0, 0]] * 2, atol=1e-12)
    tilted = ToyPredictor().predict(nibr(moment=(0.0, 1.2, 1.6)))
    local = projected_dos(tilted, (4, 4, 1), GRID, spin_axis="local")
    along = projected_dos(tilted, (4, 4, 1), GRID, spin_axis=[0.0, 0.6, 0.8])
    np.testing.assert_allclose(local.projected, along.projected, atol=1e-10)
    assert local.spin_axis == "local"
    with pytest.raises(ValueError, match="needs magnetic moments"):
        local_axes(ToyPredictor().predict(nibr(moment=(0.0, 0.0, 0.0))).geometry)


def test_lorentzian_broadening(ham):
    wide = np.linspace(-400.0, 400.0, 80001)
    pdos = projected_dos(ham, (3, 3, 1), wide, kind="lorentzian", width=0.1)
    # Lorentzian tails: 1 - (2/pi) * width / 400 of the weight lies inside the window
    expected = ham.n_spin_orbitals * (1 - 2 / np.pi * np.arctan(0.1 / 395))
    assert pdos.integrate()["total"] == pytest.approx(expected, rel=2e-4)
    np.testing.assert_allclose(pdos.projected.sum(axis=(0, 1)), pdos.total, atol=1e-10)


def test_explicit_kpoints_and_weights(ham):
    k = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    pdos = projected_dos(ham, k, GRID, weights=[3.0, 1.0], width=0.1)
    expected = (0.75 * total_dos(ham, k[:1], GRID, width=0.1)
                + 0.25 * total_dos(ham, k[1:], GRID, width=0.1))
    np.testing.assert_allclose(pdos.total, expected, atol=1e-10)


def test_bad_arguments(ham):
    with pytest.raises(ValueError, match="by must be one of"):
        projected_dos(ham, (2, 2, 1), GRID, by="orbital")
    with pytest.raises(ValueError, match="width must be positive"):
        projected_dos(ham, (2, 2, 1), GRID, width=0.0)
    with pytest.raises(ValueError, match="kind must be"):
        projected_dos(ham, (2, 2, 1), GRID, kind="box")
    pdos = projected_dos(ham, (2, 2, 1), GRID)
    with pytest.raises(KeyError, match="no group"):
        pdos.get("Fe")
    with pytest.raises(ValueError, match="no spin resolution"):
        pdos.get("Ni", "up")


def test_plots(ham):
    for axis in (None, "z"):
        pdos = projected_dos(ham, (3, 3, 1), GRID, by="shell", spin_axis=axis)
        assert isinstance(pdos, PDOS)
        ax = pdos.plot(reference=-1.0, emin=-6, emax=4)
        assert ax.get_xlim() == (-6, 4)
        assert len(ax.get_legend().get_texts()) == 4  # total + three shells
        plt.close(ax.figure)
