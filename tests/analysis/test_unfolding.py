"""Band unfolding: an undistorted ferromagnetic supercell gives back the primitive bands with
weights 0 or 1; sum rules for textured supercells; maps from structures; plots."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ase.build import make_supercell  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "calculator"))
from toy_predictor import ToyPredictor, nibr  # noqa: E402

from ase_hamgnn.analysis import UnfoldedBands, UnfoldingMap, unfold  # noqa: E402

SQRT3 = np.array([[2, 1, 0], [-1, 1, 0], [0, 0, 1]])  # √3 x √3 R30° supercell


def assert_unfolds_to_primitive(prim_ham, ub: UnfoldedBands, n_cells: int) -> None:
    w = ub.weights
    n_prim = prim_ham.n_spin_orbitals
    # weights 0 or 1, and exactly the primitive number of states at each k
    assert np.all(np.minimum(np.abs(w), np.abs(w - 1)) < 1e-9)
    np.testing.assert_allclose(w.sum(axis=1), n_prim, atol=1e-9)
    assert ub.energies.shape[1] == n_cells * n_prim
    for k, e, wk in zip(ub.kpts, ub.energies, w, strict=True):
        np.testing.assert_allclose(np.sort(e[wk > 0.5]), prim_ham.eigvalsh(k), atol=1e-9)


@pytest.fixture(scope="module")
def prim():
    return ToyPredictor().predict(nibr())


def test_tiled_ferromagnet_unfolds_to_primitive_bands(prim):
    big = prim.tile((3, 2, 1))
    umap = UnfoldingMap.from_structures(prim.geometry, big.geometry)
    np.testing.assert_array_equal(umap.supercell_matrix, np.diag([3, 2, 1]))
    assert umap.n_cells == 6
    path = prim.to_atoms().cell.bandpath("GMKG", npoints=25, pbc=prim.geometry.pbc)
    ub = unfold(big, umap, path)
    assert_unfolds_to_primitive(prim, ub, 6)
    # spin expectation of the weight-1 states is that of the primitive states
    k = path.kpts[7]
    e_p, c_p = prim.eigh(k)
    s_p = prim.spin_expectation(k, c_p)
    sel = ub.weights[7] > 0.5
    order = np.argsort(ub.energies[7][sel])
    np.testing.assert_allclose(ub.spin[7][sel][order][:, 2].sum(), s_p[:, 2].sum(), atol=1e-8)
    # a uniform ferromagnet: spin along the local moments is <sigma> along M
    m_hat = prim.geometry.moments[0] / np.linalg.norm(prim.geometry.moments[0])
    np.testing.assert_allclose(ub.local_spin, ub.spin @ m_hat, atol=1e-10)


def test_non_diagonal_supercell_from_the_predictor():
    model = ToyPredictor()
    prim_atoms = nibr()
    sc_atoms = make_supercell(prim_atoms, SQRT3)
    sc_atoms.wrap()  # positions folded back: translations must follow
    prim_ham, sc_ham = model.predict(prim_atoms), model.predict(sc_atoms)
    umap = UnfoldingMap.from_structures(prim_atoms, sc_atoms, supercell_matrix=SQRT3)
    k = np.random.default_rng(3).random((6, 3)) * [1, 1, 0]
    assert_unfolds_to_primitive(prim_ham, unfold(sc_ham, umap, k, spin=False), 3)


def test_overlap_unfolds_with_mulliken_weights():
    model = ToyPredictor(overlap=True)
    prim_ham = model.predict(nibr())
    big = prim_ham.tile((2, 2, 1))
    umap = UnfoldingMap.from_structures(prim_ham.geometry, big.geometry)
    k = np.array([[0.1, 0.3, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert_unfolds_to_primitive(prim_ham, unfold(big, umap, k), 4)


def test_spiral_sum_rules():
    """A spin spiral breaks the primitive translations: fractional weights, but each
    supercell state's weights over the folded k add to 1, and all states at one k add to the
    number of primitive spin-orbitals."""
    n = 4
    prim_atoms = nibr()
    sc = prim_atoms.repeat((n, 1, 1))
    mom = np.zeros((len(sc), 3))
    for a in range(len(sc)):
        if sc[a].symbol == "Ni":
            phase = 2 * np.pi * round(sc.get_scaled_positions()[a, 0] * n) / n
            mom[a] = 2.0 * np.array([np.sin(phase), 0.0, np.cos(phase)])
    sc.set_initial_magnetic_moments(mom)
    ham = ToyPredictor().predict(sc)
    umap = UnfoldingMap.from_structures(prim_atoms, sc)
    base = np.array([0.07, 0.21, 0.0])
    folded = base + np.array([[g / n, 0.0, 0.0] for g in range(n)])
    ub = unfold(ham, umap, folded)
    np.testing.assert_allclose(ub.energies, np.broadcast_to(ub.energies[0], ub.energies.shape),
                               atol=1e-9)  # all fold onto the same K
    np.testing.assert_allclose(ub.weights.sum(axis=0), 1.0, atol=1e-9)
    np.testing.assert_allclose(ub.weights.sum(axis=1), 10.0, atol=1e-9)
    assert np.any((ub.weights > 0.02) & (ub.weights < 0.98))  # shadow bands exist


def test_shift_invert_unfolding(prim):
    big = prim.tile((2, 2, 1))
    umap = UnfoldingMap.from_structures(prim.geometry, big.geometry)
    k = [[0.2, 0.1, 0.0]]
    full = unfold(big, umap, k)
    part = unfold(big, umap, k, n=6, sigma=-1.0)
    for e in part.energies[0]:
        assert np.min(np.abs(full.energies[0] - e)) < 1e-9
    assert np.all(np.minimum(part.weights, 1 - part.weights) < 1e-6)


def test_explicit_map_and_errors(prim):
    big = prim.tile((2, 1, 1))
    umap = UnfoldingMap.from_structures(prim.geometry, big.geometry)
    same = UnfoldingMap(prim.geometry.cell, prim.geometry.numbers, np.diag([2, 1, 1]),
                        umap.primitive_index, umap.translations)
    k = [[0.3, 0.1, 0.0]]
    np.testing.assert_allclose(unfold(big, same, k).weights, unfold(big, umap, k).weights)
    with pytest.raises(ValueError, match="same primitive site"):
        UnfoldingMap(prim.geometry.cell, prim.geometry.numbers, np.diag([2, 1, 1]),
                     umap.primitive_index, np.zeros_like(umap.translations))
    with pytest.raises(ValueError, match="copies of"):
        UnfoldingMap(prim.geometry.cell, prim.geometry.numbers, np.diag([3, 1, 1]),
                     umap.primitive_index, umap.translations)
    with pytest.raises(ValueError, match="singular"):
        UnfoldingMap(prim.geometry.cell, prim.geometry.numbers, np.diag([2, 1, 0]),
                     umap.primitive_index, umap.translations)
    with pytest.raises(ValueError, match="not an integer matrix"):
        UnfoldingMap.from_structures(prim.geometry, _stretched(big))
    displaced = big.to_atoms()
    displaced.positions[1] += [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="nearest primitive site"):
        UnfoldingMap.from_structures(prim.geometry, displaced)
    with pytest.raises(ValueError, match="cell is not supercell_matrix"):
        unfold(prim.tile((1, 2, 1)), umap, k)
    with pytest.raises(ValueError, match="both n and sigma"):
        unfold(big, umap, k, n=4)


def _stretched(ham):
    atoms = ham.to_atoms()
    atoms.set_cell(atoms.cell.array * [[1.1], [1.0], [1.0]], scale_atoms=True)
    return atoms


def test_small_displacements_keep_the_map(prim):
    big = prim.tile((2, 2, 1))
    atoms = big.to_atoms()
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    umap = UnfoldingMap.from_structures(prim.geometry, atoms)
    ref = UnfoldingMap.from_structures(prim.geometry, big.geometry)
    np.testing.assert_array_equal(umap.primitive_index, ref.primitive_index)
    np.testing.assert_array_equal(umap.translations, ref.translations)


def test_spectral_function_and_plots(prim):
    big = prim.tile((2, 2, 1))
    umap = UnfoldingMap.from_structures(prim.geometry, big.geometry)
    path = prim.to_atoms().cell.bandpath("GMKG", npoints=15, pbc=prim.geometry.pbc)
    ub = unfold(big, umap, path)
    grid = np.linspace(-12, 8, 2001)
    spec = ub.spectral_function(grid, width=0.1)
    assert spec.shape == (len(path.kpts), len(grid))
    np.testing.assert_allclose(np.trapezoid(spec, grid, axis=1), prim.n_spin_orbitals,
                               rtol=1e-6)
    for kwargs in ({}, {"axis": "z"}, {"axis": "local"}, {"mode": "image", "reference": -1.0}):
        ax = ub.plot(**kwargs)
        assert [t.get_text() for t in ax.get_xticklabels()] == [r"$\Gamma$", "M", "K",
                                                                  r"$\Gamma$"]
        plt.close(ax.figure)
    with pytest.raises(ValueError, match="mode must be"):
        ub.plot(mode="lines")
