"""One meaning of ``kpts`` in the whole package: ASE's Monkhorst–Pack mesh for ``(n1, n2, n3)``
(shifted along even sizes), the Γ-centred mesh for ``{"size": ..., "gamma": True}``."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.dft.kpoints import monkhorst_pack

from ase_hamgnn import OrbitalBasis, TBHamiltonian
from ase_hamgnn.analysis import projected_dos
from ase_hamgnn.calculator import HamGNNCalc
from ase_hamgnn.errors import KPointError
from ase_hamgnn.spectra import kmesh, kpm_dos, kpoints_and_weights, resolve_kpts


class _ChainModel:
    """An s chain along x with nearest-neighbour hopping t = -1 eV and on-site +1 eV, as a
    predictor: E(k) = 1 - 2 cos(2 pi k1) on both spins."""

    basis = OrbitalBasis({"H": ["1s"]})
    cutoff = 1.5

    def predict(self, atoms):
        t = -np.eye(2)
        return TBHamiltonian.from_blocks(self.basis, atoms, {
            (0, 0, (0, 0, 0)): np.eye(2), (0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})

    def n_electrons(self, atoms):
        return 1


def _chain() -> Atoms:
    return Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])


def test_2_1_1_is_ase_monkhorst_pack_everywhere():
    """(2, 1, 1): k1 = -1/4, +1/4 (ASE), where E = 1 eV on all four states; a Γ-centred mesh
    would give k1 = 0, 1/2 and E = -1, 3 eV.  The DOS of the calculator's eigenvalues, of
    ``ham.dos``, of the projected DOS and of KPM all see the level at 1 eV alone."""
    np.testing.assert_allclose(resolve_kpts((2, 1, 1)), monkhorst_pack((2, 1, 1)))
    np.testing.assert_allclose(np.sort(resolve_kpts((2, 1, 1))[:, 0]), [-0.25, 0.25])
    np.testing.assert_allclose(np.sort(kmesh((2, 1, 1))[:, 0]), [0.0, 0.5])
    np.testing.assert_allclose(
        np.sort(resolve_kpts({"size": (2, 1, 1), "gamma": True})[:, 0]), [0.0, 0.5])

    atoms = _chain()
    atoms.calc = HamGNNCalc(model=_ChainModel(), kpts=(2, 1, 1))
    calc_eigs = np.concatenate([atoms.calc.get_eigenvalues(kpt=i)
                                for i in range(len(atoms.calc.get_ibz_k_points()))])
    np.testing.assert_allclose(calc_eigs, 1.0, atol=1e-12)

    ham = atoms.calc.get_hamiltonian()
    energies = np.array([-1.0, 1.0, 3.0])
    d = ham.dos((2, 1, 1), energies, width=0.05)
    assert d[1] > 10.0 and d[0] < 1e-6 and d[2] < 1e-6
    pdos = projected_dos(ham, (2, 1, 1), energies, width=0.05)
    np.testing.assert_allclose(pdos.total, d, rtol=1e-12, atol=1e-12)
    gamma = ham.dos({"size": (2, 1, 1), "gamma": True}, energies, width=0.05)
    assert gamma[0] > 5.0 and gamma[2] > 5.0 and gamma[1] < 1e-6  # one state per cell each
    k, w = kpoints_and_weights((2, 1, 1))
    np.testing.assert_allclose(np.sort(k[:, 0]), [-0.25, 0.25])
    np.testing.assert_allclose(w, 0.5)
    res = kpm_dos(ham, np.linspace(-2, 4, 61), kpts=(2, 1, 1), n_moments=64, rng=0)
    np.testing.assert_allclose(np.sort(res.kpts[:, 0]), [-0.25, 0.25])


def test_calculator_and_hamiltonian_fermi_levels_agree_on_an_even_mesh():
    atoms = _chain()
    atoms.calc = HamGNNCalc(model=_ChainModel(), kpts=(4, 1, 1))
    ham = atoms.calc.get_hamiltonian()
    # ASE's (4, 1, 1): k1 = +-1/8, +-3/8; one electron fills the four lowest of 8 states
    # (the two k-points +-1/8) and E_F lies mid-gap between the two levels
    assert ham.fermi_level(1.0, (4, 1, 1)) == pytest.approx(atoms.calc.get_fermi_level(),
                                                             abs=1e-12)
    e_low, e_high = 1 - 2 * np.cos(2 * np.pi / 8), 1 - 2 * np.cos(2 * np.pi * 3 / 8)
    assert ham.fermi_level(1.0, (4, 1, 1)) == pytest.approx(0.5 * (e_low + e_high), abs=1e-12)


def test_mesh_along_a_non_periodic_direction_and_unknown_dict_keys_are_refused():
    ham = _ChainModel().predict(_chain())
    with pytest.raises(KPointError, match="non-periodic direction 1"):
        ham.dos((2, 2, 1), np.zeros(1))
    with pytest.raises(KPointError, match="unknown keys"):
        ham.dos({"sise": (2, 1, 1)}, np.zeros(1))
    with pytest.raises(KPointError, match="needs the cell"):
        resolve_kpts({"density": 3.0})
