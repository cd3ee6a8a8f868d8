"""HamGNNCalc on bad input: the same k-point parsing as ``ham.dos``, the structure checks of
the predictors, and a refusal (not a MemoryError after minutes) for systems too large to
diagonalize densely."""

from __future__ import annotations

import numpy as np
import pytest
from ase.dft.kpoints import monkhorst_pack

from ase_hamgnn.calculator import HamGNNCalc
from ase_hamgnn.data import ReferenceTB, nibri
from ase_hamgnn.errors import CellError, DenseSizeError, KPointError, MomentError, StructureError


@pytest.fixture(scope="module")
def model() -> ReferenceTB:
    return ReferenceTB("nibri")


def attached(model, **parameters):
    atoms = nibri()
    atoms.calc = HamGNNCalc(model=model, **parameters)
    return atoms


# -- k-points -------------------------------------------------------------------------------
def test_float_mesh_is_a_monkhorst_pack_mesh(model):
    atoms = attached(model, kpts=(4.0, 4.0, 1.0))
    k = atoms.calc.get_ibz_k_points()
    assert np.array_equal(k, monkhorst_pack((4, 4, 1)))
    atoms.calc.set(fermi_kpts=np.array([3.0, 3.0, 1.0]), kpts={"path": "GM", "npoints": 3})
    assert np.isfinite(atoms.calc.get_fermi_level())


@pytest.mark.parametrize("kpts", [(2.5, 1, 1), (0.5, 0.0, 0.0), (4, 0, 1)])
def test_flat_triples_that_are_no_mesh_are_refused_like_in_ham_dos(model, kpts):
    atoms = attached(model, kpts=kpts)
    with pytest.raises(KPointError, match="integer") as calc_error:
        atoms.calc.get_ibz_k_points()
    ham = atoms.calc.get_hamiltonian()
    with pytest.raises(KPointError, match="integer") as dos_error:
        ham.dos(kpts, np.linspace(-1.0, 1.0, 3))
    assert str(dos_error.value) in str(calc_error.value)


def test_transposed_kpoint_array_is_refused(model):
    k = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0.0, 0.0], [0.3, 0.0, 0.0]])
    atoms = attached(model, kpts=k.T)
    with pytest.raises(KPointError, match="transposed"):
        atoms.calc.get_eigenvalues()
    atoms.calc.set(kpts=k)
    assert atoms.calc.get_eigenvalues(kpt=3).shape == (28,)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_temperature_must_be_finite(model, bad):
    atoms = attached(model, kpts=(2, 2, 1), temperature=bad)
    with pytest.raises(KPointError, match="temperature"):
        atoms.calc.get_fermi_level()


# -- structures -----------------------------------------------------------------------------
def test_singular_cell_is_refused(model):
    atoms = attached(model)
    cell = atoms.cell.array.copy()
    cell[1] = cell[0] + [0.0, 1e-4, 0.0]
    atoms.set_cell(cell)
    with pytest.raises(CellError, match="linearly independent"):
        atoms.calc.get_hamiltonian()


def test_no_atoms_are_refused(model):
    atoms = nibri()[[]]
    atoms.calc = HamGNNCalc(model=model)
    with pytest.raises(StructureError, match="no atoms"):
        atoms.calc.get_hamiltonian()


def test_huge_moments_are_refused(model):
    atoms = attached(model)
    m = atoms.get_initial_magnetic_moments()
    m[0] = [1e300, 0.0, 0.0]
    atoms.set_initial_magnetic_moments(m)
    with pytest.raises(MomentError, match="units"):
        atoms.calc.get_hamiltonian()


# -- systems too large for dense diagonalization --------------------------------------------
def test_default_dense_limit():
    assert HamGNNCalc.default_parameters["max_dense_size"] == 6000


def test_too_large_systems_are_refused_before_diagonalizing(model):
    atoms = attached(model, kpts=(2, 2, 1), max_dense_size=20)  # nibri has 28 spin-orbitals
    ham = atoms.calc.get_hamiltonian()  # needs no diagonalization
    assert ham.n_spin_orbitals == 28
    for get in (atoms.calc.get_eigenvalues, atoms.calc.get_fermi_level,
                atoms.calc.get_occupation_numbers,
                lambda: atoms.calc.band_structure(path="GM", npoints=3)):
        with pytest.raises(DenseSizeError) as error:
            get()
        for hint in ("find_gap", "edge_states", "kpm_dos", "calc.get_hamiltonian()",
                     "max_dense_size"):
            assert hint in str(error.value)
        assert "eigenvalues" not in atoms.calc.results
    atoms.calc.set(max_dense_size=None)  # keeps the Hamiltonian
    assert atoms.calc.get_hamiltonian() is ham
    assert atoms.calc.get_eigenvalues().shape == (28,)
