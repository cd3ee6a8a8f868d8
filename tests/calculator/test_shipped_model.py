"""The calculator with a real model loaded by name or path, with its defaults: no mocks.

The shipped ``nibri-reference`` network was trained on the synthetic reference model; these
tests check the plumbing (dtype names, loading, ASE's tools on top), not its accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.dft.bandgap import bandgap
from ase.dft.dos import DOS

from ase_hamgnn import HamGNNCalc, TBHamiltonian, load_model
from ase_hamgnn.data import nibri
from ase_hamgnn.model import HamGNNModel, list_models, resolve_dtype


@pytest.fixture(scope="module")
def shipped() -> HamGNNModel:
    return load_model("nibri-reference", dtype="float64")


def ferromagnet():
    atoms = nibri()
    mag = np.zeros((len(atoms), 3))
    mag[np.array(atoms.get_chemical_symbols()) == "Ni"] = [0.0, 0.0, 2.0]
    atoms.set_initial_magnetic_moments(mag)
    return atoms


@pytest.mark.parametrize("name, expected", [
    ("float64", torch.float64), ("float32", torch.float32), ("double", torch.float64),
    ("torch.float32", torch.float32), (torch.float64, torch.float64),
    (np.float32, torch.float32), (np.dtype("float64"), torch.float64)])
def test_resolve_dtype_accepts_names_and_dtypes(name, expected):
    assert resolve_dtype(name) is expected


@pytest.mark.parametrize("bad, error", [("float16x", ValueError), (torch.int64, ValueError),
                                        (np.int32, ValueError), (object(), TypeError)])
def test_resolve_dtype_rejects_what_the_network_cannot_run(bad, error):
    with pytest.raises(error, match="float32"):
        resolve_dtype(bad)


def test_load_model_takes_dtype_names(shipped):
    assert shipped.dtype is torch.float64
    assert all(p.dtype is torch.float64 for p in shipped.network.parameters())
    single = load_model("nibri-reference", dtype="float32")
    atoms = ferromagnet()
    h64 = shipped.predict(atoms).hk((0.1, 0.2, 0.0)).toarray()
    h32 = single.predict(atoms, assembly_dtype="float64").hk((0.1, 0.2, 0.0)).toarray()
    assert np.abs(h64).max() > 1.0
    np.testing.assert_allclose(h32, h64, atol=1e-4 * np.abs(h64).max())


def test_calculator_with_shipped_model_by_name_and_defaults():
    """The flagship call of the README, with every default: bands, gap and DOS."""
    atoms = ferromagnet()
    atoms.calc = HamGNNCalc(model="nibri-reference", kpts=(6, 6, 1))
    calc = atoms.calc
    assert isinstance(calc.predictor, HamGNNModel)
    assert calc.predictor.dtype is torch.float64  # the calculator's documented default
    ham = calc.get_hamiltonian()
    assert isinstance(ham, TBHamiltonian) and len(ham) == len(atoms)
    n_bands = calc.get_number_of_bands()
    assert n_bands == ham.n_spin_orbitals
    k = calc.get_ibz_k_points()
    for i in (0, 17):
        np.testing.assert_allclose(calc.get_eigenvalues(i), ham.eigvalsh(k[i]), atol=1e-10)
    # The electron count is an even integer and NiBrI is an insulator in the model too.
    gap, (_, k_vbm, n_vbm), (_, k_cbm, n_cbm) = bandgap(calc, output=None)
    assert gap > 0.1
    vbm, cbm = calc.get_eigenvalues(k_vbm)[n_vbm], calc.get_eigenvalues(k_cbm)[n_cbm]
    assert cbm - vbm == pytest.approx(gap)
    assert vbm < calc.get_fermi_level() < cbm
    bs = calc.band_structure(path="GMKG", npoints=30)
    assert bs.energies.shape == (1, 30, n_bands)
    dos = DOS(calc, width=0.1, npts=200).get_dos(spin=0)
    assert dos.shape == (200,) and np.all(dos >= 0)
    # The total weight of the (Gaussian-broadened) DOS is the number of bands per cell.
    e_gamma = ham.eigvalsh((0, 0, 0))
    grid = np.linspace(e_gamma[0] - 3.0, e_gamma[-1] + 3.0, 4000)
    total = ham.dos((6, 6, 1), grid, width=0.1)
    assert np.trapezoid(total, grid) == pytest.approx(n_bands, rel=1e-3)


def test_calculator_with_a_checkpoint_path(tmp_path, shipped):
    path = shipped.save(tmp_path / "model.pt")
    atoms = ferromagnet()
    atoms.calc = HamGNNCalc(model=str(path), kpts=(2, 2, 1), dtype=torch.float32)
    assert atoms.calc.predictor.dtype is torch.float32
    twin = ferromagnet()
    twin.calc = reference = HamGNNCalc(model=shipped, kpts=(2, 2, 1))
    np.testing.assert_allclose(atoms.calc.get_eigenvalues(1),
                               reference.get_eigenvalues(1), atol=1e-4)
    atoms.calc.set(dtype="float64")  # reloads the model in the new dtype
    assert atoms.calc.predictor.dtype is torch.float64
    np.testing.assert_allclose(atoms.calc.get_eigenvalues(1),
                               reference.get_eigenvalues(1), atol=1e-9)


@pytest.mark.parametrize("name", list_models())
def test_every_shipped_model_predicts_its_own_system(name):
    """Each shipped model (``<system>-reference``) is labelled synthetic, predicts a random
    configuration of its system close to the reference model it learned, and is exact under
    a random rotation with inversion and under time reversal."""
    import json

    from ase_hamgnn.data import ReferenceTB, generate_configurations
    from ase_hamgnn.model.hamgnn_model import _shipped_dir as shipped_dir
    from ase_hamgnn.symmetry import random_rotation, transform_atoms, transform_hamiltonian

    meta = json.loads((shipped_dir() / f"{name}.json").read_text())
    assert "SYNTHETIC" in meta["description"] and meta["name"] == name
    system = name.split("-")[0]
    model = load_model(name, dtype="float64")
    atoms = generate_configurations(system, "2x2", 1, np.random.default_rng(3))[0]
    pred, exact = model.predict(atoms), ReferenceTB(system).predict(atoms)
    errors = np.concatenate([np.abs(pred.h_r[r] - m)[m.nonzero()].A1 for r, m in exact.h_r.items()])
    # measured: mean 0.1 meV; the largest entry of a random configuration 15-80 meV
    assert errors.mean() < 1e-3 and pred.max_abs_difference(exact) < 0.25  # eV
    g = -random_rotation(np.random.default_rng(4))  # with inversion
    for rotation, reverse in ((g, False), (None, True)):
        moved = model.predict(transform_atoms(atoms, rotation, reverse))
        oracle = transform_hamiltonian(pred, rotation, reverse)
        assert moved.max_abs_difference(oracle) < 1e-9
