"""Bad input to the predictors, TBHamiltonian and its spectra: typed errors, never a crash,
a hang, NaN or a silently different question answered."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from ase_hamgnn import OrbitalBasis, TBHamiltonian
from ase_hamgnn.data import ReferenceTB, nibri
from ase_hamgnn.errors import (
    CellError,
    IntegerValueError,
    KPointError,
    MomentError,
    NonFiniteError,
    OverlappingAtomsError,
    StructureError,
)
from ase_hamgnn.model import HamGNNModel, ModelConfig
from ase_hamgnn.spectra import dos, kpoints_and_weights

SMALL = dict(
    basis={"Ni": ["4s", "3d"], "Br": ["4s", "4p"], "I": ["5s", "5p"]},
    cutoff=5.0,
    magnetic=("Ni",),
    valence={"Ni": 10.0, "Br": 7.0, "I": 7.0},
    node_irreps="4x0e+2x1o+1x2e",
    pair_multiplicity=1,
    n_layers=1,
    lmax_sh=2,
    n_radial=4,
    radial_hidden=8,
)


@pytest.fixture(scope="module")
def network() -> HamGNNModel:
    return HamGNNModel(ModelConfig(**SMALL), dtype=torch.float64, seed=1)


@pytest.fixture(scope="module")
def reference() -> ReferenceTB:
    return ReferenceTB("nibri")


@pytest.fixture(params=["reference", "network"])
def predictor(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def ham() -> TBHamiltonian:
    return ReferenceTB("nibri").predict(nibri())


def chain_blocks(value: complex = -1.0) -> dict:
    """Blocks of an H chain along x (one s orbital, spin-independent hopping)."""
    t = np.diag([value, value])
    return {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): np.conj(t).T}


def chain() -> tuple[OrbitalBasis, Atoms]:
    return OrbitalBasis({"H": ["1s"]}), Atoms("H", cell=[1, 10, 10], pbc=[True, False, False])


# -- cells ----------------------------------------------------------------------------------
def test_singular_periodic_cell_is_refused_before_the_neighbour_search(predictor):
    atoms = nibri()
    cell = atoms.cell.array.copy()
    cell[1] = cell[0]
    atoms.set_cell(cell)
    with pytest.raises(CellError, match="a2.*linearly independent"):
        predictor.predict(atoms)


def test_nearly_singular_periodic_cell_is_refused(predictor):
    atoms = nibri()
    cell = atoms.cell.array.copy()
    cell[1] = cell[0] + [0.0, 1e-4, 0.0]
    atoms.set_cell(cell)
    with pytest.raises(CellError, match="spacing of lattice planes"):
        predictor.predict(atoms)


def test_ill_conditioned_periodic_cell_is_refused(reference):
    # planes several Å apart, but one vector ten million times longer than the other
    atoms = Atoms("Ni", cell=[[3.0, 0, 0], [0, 3e7, 0], [0, 0, 20]], pbc=[True, True, False])
    with pytest.raises(CellError, match="niggli_reduce"):
        reference.predict(atoms)


@pytest.mark.parametrize("c", [[0.0, 0.0, 0.0], [0.0, 0.0, 1e-3]])
def test_cell_check_ignores_the_non_periodic_directions(predictor, c):
    atoms = nibri()
    expected = predictor.predict(atoms)
    atoms.cell[2] = c  # no box, or a flat one, along the non-periodic z does not matter
    assert predictor.predict(atoms).max_abs_difference(expected) < 1e-12


# -- atoms ----------------------------------------------------------------------------------
def test_two_atoms_at_one_position_are_refused(predictor):
    atoms = nibri()
    atoms.positions[2] = atoms.positions[1]
    with pytest.raises(OverlappingAtomsError, match="atoms 1 and 2"):
        predictor.predict(atoms)


def test_no_atoms_are_refused(predictor):
    atoms = nibri()[[]]
    with pytest.raises(StructureError, match="no atoms"):
        predictor.predict(atoms)


@pytest.mark.parametrize("size", [1e300, np.inf, np.nan, 500.0])
def test_absurd_moments_are_refused(predictor, size):
    atoms = nibri()
    m = atoms.get_initial_magnetic_moments()
    m[0] = [0.0, 0.0, size]
    atoms.set_initial_magnetic_moments(m)
    with pytest.raises(MomentError, match="atoms \\[0\\]"):
        predictor.predict(atoms)


# -- Hamiltonian blocks ---------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_blocks_are_refused(bad):
    basis, atoms = chain()
    blocks = chain_blocks(bad)
    with pytest.raises(NonFiniteError, match=r"atoms i=0, j=0, R=\((1|-1), 0, 0\)"):
        TBHamiltonian.from_blocks(basis, atoms, blocks)
    h = {(0, 0, 0): np.eye(2), (1, 0, 0): np.eye(2), (-1, 0, 0): np.eye(2)}
    h[(1, 0, 0)] = np.array([[bad, 0], [0, 1.0]])
    with pytest.raises(NonFiniteError, match=r"R=\(1, 0, 0\)"):
        TBHamiltonian(basis, atoms, h)
    s = {(0, 0, 0): np.diag([bad, 1.0])}
    with pytest.raises(NonFiniteError, match=r"S\(R=\(0, 0, 0\)\)"):
        TBHamiltonian(basis, atoms, {(0, 0, 0): np.eye(2)}, s)


def test_non_finite_blocks_in_a_file_are_refused(tmp_path, ham):
    good = ham.save(tmp_path / "good.npz")
    with np.load(good) as f:
        arrays = dict(f)
    arrays["h_data"] = arrays["h_data"].copy()
    arrays["h_data"][3] = np.nan
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(NonFiniteError, match="atoms i="):
        TBHamiltonian.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("r", [(0.5, 0, 0), (1, 0.25, 0), (np.nan, 0, 0)])
def test_non_integer_lattice_vectors_are_refused(r):
    basis, atoms = chain()
    minus = tuple(-x for x in r)
    blocks = {(0, 0, r): -np.eye(2), (0, 0, minus): -np.eye(2)}
    with pytest.raises(IntegerValueError, match="lattice vector R"):
        TBHamiltonian.from_blocks(basis, atoms, blocks)
    with pytest.raises(IntegerValueError, match="lattice vector R"):
        TBHamiltonian(basis, atoms, {(0, 0, 0): np.eye(2), r: np.eye(2), minus: np.eye(2)})


def test_integer_valued_lattice_vectors_still_work():
    basis, atoms = chain()
    blocks = {(0, 0, (1.0, 0.0, 0.0)): -np.eye(2), (0, 0, tuple(np.array([-1, 0, 0]))): -np.eye(2)}
    ham = TBHamiltonian.from_blocks(basis, atoms, blocks)
    assert sorted(ham.h_r) == [(-1, 0, 0), (1, 0, 0)]


def test_tile_refuses_non_integer_repetitions(ham):
    with pytest.raises(IntegerValueError, match="reps"):
        ham.tile((2.5, 1, 1))
    assert len(ham.tile((2.0, 1, 1))) == 2 * len(ham)


# -- k-points, weights, temperature, width --------------------------------------------------
def test_float_mesh_is_a_mesh(ham):
    energies = np.linspace(-5.0, 5.0, 11)
    assert np.array_equal(ham.dos((4.0, 4.0, 1.0), energies), ham.dos((4, 4, 1), energies))
    assert ham.fermi_level(14, (4.0, 4.0, 1.0)) == ham.fermi_level(14, (4, 4, 1))
    k, w = kpoints_and_weights(np.array([2.0, 3.0, 1.0]))
    assert k.shape == (6, 3) and w.shape == (6,)


@pytest.mark.parametrize("kpts", [(2.5, 1, 1), (0.5, 0.0, 0.0), (4, 0, 1), (4, -4, 1)])
def test_flat_triples_that_are_no_mesh_are_refused(ham, kpts):
    with pytest.raises(KPointError, match="integer"):
        ham.dos(kpts, np.linspace(-1.0, 1.0, 3))


def test_transposed_kpoint_array_is_refused(ham):
    k = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0.0, 0.0], [0.3, 0.0, 0.0]])
    with pytest.raises(KPointError, match=r"shape \(3, 4\).*transposed"):
        ham.dos(k.T, np.linspace(-1.0, 1.0, 3))
    with pytest.raises(KPointError, match=r"\(n_k, 3\)"):
        ham.fermi_level(14, k.reshape(-1))
    with pytest.raises(KPointError, match=r"\(n_k, 3\)"):
        ham.fermi_level(14, np.zeros((0, 3)))


@pytest.mark.parametrize("weights", [[0.0, 0.0], [1.0, np.nan], [1.0, -0.5], [1.0]])
def test_weights_need_a_positive_sum(ham, weights):
    k = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]
    with pytest.raises(KPointError, match="positive sum"):
        dos(ham, k, np.linspace(-1.0, 1.0, 3), weights=weights)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0, 0.0])
def test_width_must_be_finite_and_positive(ham, bad):
    with pytest.raises(KPointError, match="width"):
        ham.dos((2, 2, 1), np.linspace(-1.0, 1.0, 3), width=bad)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -10.0])
def test_temperature_must_be_finite(ham, bad):
    with pytest.raises(KPointError, match="temperature"):
        ham.fermi_level(14, (2, 2, 1), temperature=bad)
