"""HamGNNCalc: the ASE contract (bands, DOS, gap through ASE's own tools), k-point forms,
caching over all_changes, and typed errors for bad input."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import (
    CalculatorSetupError,
    PropertyNotImplementedError,
    kpts2ndarray,
)
from ase.dft.bandgap import bandgap
from ase.dft.dos import DOS
from ase.dft.kpoints import monkhorst_pack
from toy_predictor import ToyPredictor, nibr, triangular

from ase_hamgnn import BasisError, TBHamiltonian
from ase_hamgnn.calculator import HamGNNCalc
from ase_hamgnn.errors import MissingMomentsError, OverlappingAtomsError, StructureError
from ase_hamgnn.spectra import dos as tb_dos
from ase_hamgnn.spectra import fermi_level_from_eigenvalues


@pytest.fixture
def model() -> ToyPredictor:
    return ToyPredictor()


@pytest.fixture
def atoms(model) -> Atoms:
    at = nibr()
    at.calc = HamGNNCalc(model=model, kpts=(6, 6, 1))
    return at


def direct_eigenvalues(ham: TBHamiltonian, kpts: np.ndarray) -> np.ndarray:
    return np.array([ham.eigvalsh(k) for k in kpts])


# -- the ASE contract -------------------------------------------------------------------------
def test_properties_match_direct_diagonalization(atoms):
    calc = atoms.calc
    ham = calc.get_hamiltonian()
    assert isinstance(ham, TBHamiltonian) and len(ham) == len(atoms)
    k = calc.get_ibz_k_points()
    np.testing.assert_allclose(k, monkhorst_pack((6, 6, 1)))
    np.testing.assert_allclose(calc.get_bz_k_points(), k)
    np.testing.assert_array_equal(calc.get_bz_to_ibz_map(), np.arange(36))
    np.testing.assert_allclose(calc.get_k_point_weights(), np.full(36, 1 / 36))
    assert calc.get_number_of_spins() == 1
    assert calc.get_spin_polarized() is False
    assert calc.get_number_of_bands() == ham.n_spin_orbitals == 10
    expected = direct_eigenvalues(ham, k)
    for i in (0, 7, 35):
        np.testing.assert_allclose(calc.get_eigenvalues(kpt=i, spin=0), expected[i], atol=1e-12)
    ef = fermi_level_from_eigenvalues(expected, np.full(36, 1 / 36), 3.0)
    assert calc.get_fermi_level() == pytest.approx(ef, abs=1e-12)
    occ = np.array([calc.get_occupation_numbers(i) for i in range(36)])
    assert occ.mean(axis=0).sum() == pytest.approx(3.0)
    with pytest.raises(IndexError, match="spin=0"):
        calc.get_eigenvalues(0, spin=1)
    with pytest.raises(IndexError, match="out of range"):
        calc.get_eigenvalues(36)


def test_ase_band_structure_on_path_kpts(model):
    at = nibr()
    at.calc = HamGNNCalc(model=model, kpts={"path": "GMKG", "npoints": 40},
                         fermi_kpts=(6, 6, 1))
    bs = at.calc.band_structure()  # ASE's own get_band_structure
    path = at.cell.bandpath("GMKG", npoints=40, pbc=at.pbc)
    ham = model.predict(at)
    np.testing.assert_allclose(bs.path.kpts, path.kpts, atol=1e-12)
    np.testing.assert_allclose(bs.energies[0], direct_eigenvalues(ham, path.kpts), atol=1e-12)
    mesh = HamGNNCalc(model=model, kpts=(6, 6, 1))
    assert bs.reference == pytest.approx(mesh.get_property("fermi_level", nibr()), abs=1e-12)
    assert "".join(bs.path.get_linear_kpoint_axis()[2]) == "GMKG"


def test_band_structure_with_path_argument_keeps_kpts(atoms, model):
    calc = atoms.calc
    bs = calc.band_structure(path="GMKG", npoints=30)
    path = atoms.cell.bandpath("GMKG", npoints=30, pbc=atoms.pbc)
    np.testing.assert_allclose(bs.energies[0],
                               direct_eigenvalues(model.predict(atoms), path.kpts), atol=1e-12)
    assert bs.reference == pytest.approx(calc.get_fermi_level())
    assert len(calc.get_ibz_k_points()) == 36  # kpts untouched
    bs2 = calc.band_structure(path=path, reference=0.0)
    assert bs2.reference == 0.0
    np.testing.assert_allclose(bs2.energies, bs.energies)


def test_ase_bandgap_agrees_with_direct(atoms):
    calc = atoms.calc
    gap, p1, p2 = bandgap(calc)
    e = direct_eigenvalues(calc.get_hamiltonian(), calc.get_ibz_k_points())
    n_occ = 3
    assert gap == pytest.approx(e[:, n_occ].min() - e[:, n_occ - 1].max(), abs=1e-12)
    assert gap > 0.5
    (_, k1, n1), (_, k2, n2) = p1, p2  # (spin, k, band)
    assert (n1, n2) == (n_occ - 1, n_occ)
    assert e[k1, n1] == pytest.approx(e[:, n_occ - 1].max())
    assert e[k2, n2] == pytest.approx(e[:, n_occ].min())
    gap_direct, _, _ = bandgap(calc, direct=True)
    assert gap_direct == pytest.approx(np.min(e[:, n_occ] - e[:, n_occ - 1]), abs=1e-12)


def test_ase_dos_integrates_to_number_of_states(atoms):
    calc = atoms.calc
    width = 0.1
    dos = DOS(calc, width=width, npts=3001)
    e = dos.get_energies()
    d0 = dos.get_dos(spin=0)  # one channel of spinors: the true DOS
    assert np.trapezoid(d0, e) == pytest.approx(calc.get_number_of_bands(), rel=1e-4)
    np.testing.assert_allclose(dos.get_dos(), 2 * d0)  # ASE doubles a single channel
    # ASE's Gaussian exp(-(x/w)^2) is a standard deviation of w / sqrt(2)
    ours = tb_dos(calc.get_hamiltonian(), calc.get_ibz_k_points(),
                  e + calc.get_fermi_level(), width=width / np.sqrt(2))
    np.testing.assert_allclose(d0, ours, atol=1e-10)
    # linear tetrahedra (width=0) use the BZ k-points and the identity BZ -> IBZ map
    lti = DOS(calc, width=0.0, window=(-12.0, 8.0), npts=2001)
    assert np.trapezoid(lti.get_dos(spin=0), lti.get_energies()) == pytest.approx(10, rel=1e-2)


def test_no_fake_energy_forces_or_stress(atoms):
    for getter in (atoms.get_potential_energy, atoms.get_forces, atoms.get_stress,
                   atoms.get_magnetic_moments):
        with pytest.raises(PropertyNotImplementedError, match="tight-binding Hamiltonian"):
            getter()


# -- k-point forms -----------------------------------------------------------------------------
@pytest.mark.parametrize("kpts", [
    (4, 4, 1),
    {"density": 3.0},
    {"density": 3.0, "gamma": True},
    {"size": (3, 3, 1), "gamma": True},
    {"path": "GMK", "npoints": 12},
    [[0.0, 0.0, 0.0], [0.25, 0.1, 0.0], [0.5, 0.5, 0.0]],
])
def test_kpts_forms_follow_ase_helpers(model, kpts):
    at = triangular()
    calc = HamGNNCalc(model=model, kpts=kpts)
    at.calc = calc
    np.testing.assert_allclose(calc.get_ibz_k_points(), kpts2ndarray(kpts, atoms=at),
                               atol=1e-12)
    n_k = len(calc.get_ibz_k_points())
    assert calc.get_k_point_weights().sum() == pytest.approx(1.0)
    assert np.array(DOS(calc, width=0.2).e_skn).shape == (1, n_k, 8)


def test_bad_kpts(model):
    at = triangular()
    at.calc = HamGNNCalc(model=model, kpts=(4, 4, 2))
    with pytest.raises(ValueError, match="non-periodic direction 2"):
        at.calc.get_ibz_k_points()
    at.calc = HamGNNCalc(model=model, kpts="GMK")
    with pytest.raises(ValueError, match="kpts must be"):
        at.calc.get_ibz_k_points()


def test_fermi_level_with_temperature_and_electron_count(model):
    at = triangular()
    at.calc = HamGNNCalc(model=model, kpts=(8, 8, 1), temperature=300.0)
    calc = at.calc
    e = np.array([calc.get_eigenvalues(i) for i in range(64)])
    ef = fermi_level_from_eigenvalues(e, np.full(64, 1 / 64), 1.0, 300.0)
    assert calc.get_fermi_level() == pytest.approx(ef, abs=1e-9)
    occ = np.array([calc.get_occupation_numbers(i) for i in range(64)])
    assert occ.mean(axis=0).sum() == pytest.approx(1.0, abs=1e-6)
    calls = model.calls
    calc.set(n_electrons=2.0, temperature=0.0)
    assert calc.get_fermi_level() == pytest.approx(
        fermi_level_from_eigenvalues(e, np.full(64, 1 / 64), 2.0), abs=1e-12)
    assert model.calls == calls  # electron count and temperature keep the Hamiltonian


def test_string_model_is_loaded_lazily_with_device_and_dtype(monkeypatch, model):
    seen = {}

    def load_model(name, device, dtype):
        seen.update(name=name, device=device, dtype=dtype)
        return model

    monkeypatch.setitem(sys.modules, "ase_hamgnn.model",
                        types.SimpleNamespace(load_model=load_model))
    calc = HamGNNCalc(model="nibri-reference", device="cpu", dtype="float32")
    assert calc.predictor is model
    assert seen == {"name": "nibri-reference", "device": "cpu", "dtype": "float32"}


def test_string_model_without_model_package_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "ase_hamgnn.model", None)
    with pytest.raises(ImportError, match="pass a predictor object"):
        HamGNNCalc(model="model.pt")


def test_not_a_predictor():
    with pytest.raises(TypeError, match="predictor"):
        HamGNNCalc(model=42)
    with pytest.raises(TypeError, match="unknown HamGNNCalc parameter"):
        HamGNNCalc(model=ToyPredictor(), kpoints=(2, 2, 1))


def test_no_atoms_yet():
    with pytest.raises(CalculatorSetupError, match="atoms.calc = calc"):
        HamGNNCalc(model=ToyPredictor()).get_fermi_level()


# -- caching -----------------------------------------------------------------------------------
def test_changing_moments_invalidates_cache(atoms, model):
    calc = atoms.calc
    e0 = calc.get_eigenvalues(3)
    ham0 = calc.get_hamiltonian()
    assert model.calls == 1
    moments = atoms.get_initial_magnetic_moments()
    moments[0] = [0.0, 1.2, 1.6]
    atoms.set_initial_magnetic_moments(moments)
    e1 = calc.get_eigenvalues(3)
    assert model.calls == 2
    assert not np.allclose(e0, e1)
    assert calc.get_hamiltonian() is not ham0
    np.testing.assert_allclose(calc.get_hamiltonian().geometry.moments[0], [0.0, 1.2, 1.6])


def test_identical_state_does_not_recompute(atoms, model):
    calc = atoms.calc
    calc.get_eigenvalues(0)
    ham0 = calc.get_hamiltonian()
    atoms.positions = atoms.positions.copy()
    atoms.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments().copy())
    atoms.cell = atoms.cell.array.copy()
    calc.get_eigenvalues(5)
    calc.get_fermi_level()
    bandgap(calc)
    assert calc.get_hamiltonian() is ham0
    assert model.calls == 1


def test_moving_an_atom_recomputes(atoms, model):
    calc = atoms.calc
    e0 = calc.get_eigenvalues(0)
    atoms.positions[1] += [0.05, 0.0, 0.0]
    assert not np.allclose(calc.get_eigenvalues(0), e0)
    assert model.calls == 2


def test_new_kpts_keep_the_hamiltonian(atoms, model):
    calc = atoms.calc
    ham0 = calc.get_hamiltonian()
    calc.get_eigenvalues(0)
    calc.set(kpts=(2, 2, 1))
    assert len(calc.get_ibz_k_points()) == 4
    np.testing.assert_allclose(calc.get_eigenvalues(1),
                               ham0.eigvalsh(monkhorst_pack((2, 2, 1))[1]), atol=1e-12)
    assert calc.get_hamiltonian() is ham0 and model.calls == 1
    calc.set(min_distance=0.4)  # a structural check parameter: start over
    calc.get_hamiltonian()
    assert model.calls == 2


def test_calculator_can_be_shared_by_explicit_atoms(model):
    calc = HamGNNCalc(model=model, kpts=(2, 2, 1))
    a, b = triangular(moment=(0, 0, 2.0)), triangular(moment=(0, 0, -2.0))
    ha = calc.get_hamiltonian(a)
    hb = calc.get_hamiltonian(b)
    assert ha is not hb and model.calls == 2
    np.testing.assert_allclose(calc.get_property("eigenvalues", b)[0, 0],
                               hb.eigvalsh(monkhorst_pack((2, 2, 1))[0]))


# -- bad input ---------------------------------------------------------------------------------
def test_missing_moments_on_magnetic_species(model):
    at = nibr()
    at.set_initial_magnetic_moments(None)
    at.calc = HamGNNCalc(model=model)
    with pytest.raises(MissingMomentsError, match=r"\['Ni'\].*set_initial_magnetic_moments"):
        at.calc.get_hamiltonian()
    at.set_initial_magnetic_moments([[0, 0, 0], [0, 0, 1.0]])  # moment on Br, none on Ni
    with pytest.raises(MissingMomentsError, match="first indices \\[0\\]"):
        at.calc.get_eigenvalues(0)
    at.calc.set(require_moments=False)
    assert len(at.calc.get_hamiltonian()) == 2


def test_moments_not_checked_without_declared_magnetic_elements():
    at = nibr()
    at.set_initial_magnetic_moments(None)
    at.calc = HamGNNCalc(model=ToyPredictor(declare_magnetic=False))
    assert len(at.calc.get_hamiltonian()) == 2


def test_scalar_moments_mean_along_z(model):
    at = nibr()
    at.set_initial_magnetic_moments(None)
    at.set_initial_magnetic_moments([2.0, 0.0])
    at.calc = HamGNNCalc(model=model)
    np.testing.assert_allclose(at.calc.get_hamiltonian().geometry.moments,
                               [[0, 0, 2.0], [0, 0, 0]])


def test_unknown_element(model):
    at = nibr()
    at.symbols[1] = "Au"
    at.calc = HamGNNCalc(model=model)
    with pytest.raises(BasisError, match="Au"):
        at.calc.get_fermi_level()


def test_overlapping_atoms(model):
    at = nibr()
    at.positions[1] = at.positions[0] + [0.1, 0.2, 0.0]
    at.calc = HamGNNCalc(model=model)
    with pytest.raises(OverlappingAtomsError, match="atoms 0 and 1"):
        at.calc.get_hamiltonian()
    # overlap with a periodic image across the cell boundary
    at = nibr()
    at.positions[1] = at.positions[0] + at.cell[0] - [0.2, 0.0, 0.0]
    at.calc = HamGNNCalc(model=model)
    with pytest.raises(OverlappingAtomsError, match="periodic images"):
        at.calc.get_hamiltonian()
    # an atom and its own image
    tiny = triangular(a=0.3)
    tiny.calc = HamGNNCalc(model=model)
    with pytest.raises(OverlappingAtomsError, match="own periodic image"):
        tiny.calc.get_hamiltonian()


def test_nan_positions(model):
    at = nibr()
    at.positions[1, 0] = np.nan
    at.calc = HamGNNCalc(model=model)
    with pytest.raises(StructureError, match=r"atoms \[1\] have NaN"):
        at.calc.get_hamiltonian()
    assert model.calls == 0


def test_reference_model_requires_moments_on_nickel():
    from ase_hamgnn.data import ReferenceTB, nibri

    atoms = nibri()
    atoms.set_initial_magnetic_moments(np.zeros((3, 3)))
    atoms.calc = HamGNNCalc(model=ReferenceTB("nibri"), kpts=(2, 2, 1))
    with pytest.raises(MissingMomentsError, match="Ni"):
        atoms.calc.get_hamiltonian(atoms)


# -- occupations and Fermi level at a fixed electron count --------------------------------------
@pytest.mark.parametrize("temperature", [1.0, 10.0, 100.0, 300.0])
def test_insulator_fermi_level_stays_near_mid_gap_at_any_temperature(temperature):
    # Electrons above the gap equal holes below it; each side is bounded by one state of
    # weight 1/n_k and by all n_states of the cell, so the Fermi-Dirac level lies within
    # kT/2 ln(2 n_states n_k) of mid-gap (0.33 meV at 1 K, not at a band edge).
    from ase_hamgnn.data import ReferenceTB, nibri
    from ase_hamgnn.spectra.occupations import K_BOLTZMANN_EV

    atoms = nibri()
    atoms.calc = HamGNNCalc(model=ReferenceTB("nibri"), kpts=(6, 6, 1))
    calc = atoms.calc
    n = calc.get_number_of_electrons()
    eig = np.array([calc.get_eigenvalues(i) for i in range(36)])
    states = np.sort(eig.ravel())
    vbm, cbm = states[round(n) * 36 - 1], states[round(n) * 36]
    mid = 0.5 * (vbm + cbm)
    assert cbm - vbm > 1.0 and calc.get_fermi_level() == pytest.approx(mid, abs=1e-12)
    calc.set(temperature=temperature)
    ef = calc.get_fermi_level()
    kt = K_BOLTZMANN_EV * temperature
    assert vbm < ef < cbm
    assert abs(ef - mid) <= 0.5 * kt * np.log(2 * calc.get_number_of_bands() * 36)
    occ = np.array([calc.get_occupation_numbers(i) for i in range(36)])
    assert occ.sum() / 36 == pytest.approx(n, abs=1e-9)
    np.testing.assert_allclose(occ, 1.0 / (1.0 + np.exp(np.clip((eig - ef) / kt, -700, 700))),
                               rtol=0, atol=1e-12)


def test_states_degenerate_at_the_fermi_level_share_the_remaining_electrons(model):
    # Non-magnetic Ni layer on a Γ-centred 6x6 mesh: the six states of one k-star (three k
    # and -k pairs, Kramers-degenerate) form the level at E_F, and the 36 electrons of
    # n_electrons = 1 leave four of them for it: 2/3 each, not 1/2 and not all six.
    at = triangular(moment=(0.0, 0.0, 0.0))
    mesh = {"size": (6, 6, 1), "gamma": True}
    at.calc = HamGNNCalc(model=model, kpts=mesh, require_moments=False)
    calc = at.calc
    ef = calc.get_fermi_level()
    eig = np.array([calc.get_eigenvalues(i) for i in range(36)])
    occ = np.array([calc.get_occupation_numbers(i) for i in range(36)])
    at_ef = np.abs(eig - ef) < 1e-6
    assert at_ef.sum() == 6
    np.testing.assert_allclose(occ[at_ef], 2.0 / 3.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(occ[~at_ef], (eig[~at_ef] < ef).astype(float))
    assert occ.sum() == pytest.approx(36.0, abs=1e-12)
    # on a band path the Fermi level comes from the mesh, and so does the share at E_F
    calc.set(kpts={"path": "GMKG", "npoints": 37}, fermi_kpts=mesh)
    assert calc.get_fermi_level() == pytest.approx(ef, abs=1e-12)
    n_path = len(calc.get_ibz_k_points())
    e_path = np.array([calc.get_eigenvalues(i) for i in range(n_path)])
    occ_path = np.array([calc.get_occupation_numbers(i) for i in range(n_path)])
    expected = np.where(np.abs(e_path - ef) < 1e-6, 2.0 / 3.0, (e_path < ef).astype(float))
    np.testing.assert_allclose(occ_path, expected, rtol=0, atol=1e-12)
