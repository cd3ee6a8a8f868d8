"""Magnetism: force-theorem anisotropy (no SOC: none; with SOC: the symmetry of the NiBr2
layer) and Mulliken local moments against the input moments."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ase import Atoms  # noqa: E402

import textures  # noqa: E402
from ase_hamgnn import OrbitalBasis, TBHamiltonian  # noqa: E402
from ase_hamgnn.analysis import (  # noqa: E402
    anisotropy_energy,
    band_energy,
    local_moments,
    rotate_exchange,
    rotate_moments,
)
from ase_hamgnn.data import ReferenceTB  # noqa: E402
from ase_hamgnn.spectra import kmesh  # noqa: E402
from ase_hamgnn.symmetry import random_rotation  # noqa: E402

THETA = np.array([0.0, 0.4, np.pi / 2, np.pi - 0.4, np.pi])
KPTS = (5, 5, 1)


def test_no_anisotropy_without_soc():
    ref = ReferenceTB("nibri", soc=False)
    mae = anisotropy_energy(ref, ref.structure(), THETA, [0.0, 0.3, 1.0, 2.0, 4.0], kpts=KPTS)
    np.testing.assert_allclose(mae.relative_mev, 0.0, atol=1e-8)


@pytest.mark.parametrize("phi", [0.0, np.pi / 3])
def test_nibr2_anisotropy_symmetry(phi):
    # The in-plane C2 axes of the D3d layer (along phi = 0, 60°, ...) combined with time
    # reversal map a direction (theta, phi) to (pi - theta, phi): E(theta) = E(pi - theta).
    # (Inversion alone says nothing: moments are axial vectors.)  Time reversal alone
    # gives E(n) = E(-n).
    ref = ReferenceTB("nibr2")
    mae = anisotropy_energy(ref, ref.structure(), THETA, phi, kpts=KPTS)
    e = mae.energies
    assert np.ptp(e) > 1e-5  # SOC gives a real anisotropy (0.2 meV scale)
    np.testing.assert_allclose(e, e[::-1], atol=1e-9)
    assert mae.easy_axis[0] in (0.0, np.pi)


def test_band_energy_and_polar_plot():
    ref = ReferenceTB("nibr2")
    atoms = ref.structure()
    res = band_energy(ref.predict(atoms), ref.n_electrons(atoms), KPTS, temperature=300.0)
    assert res.n_electrons == 24 and res.energy < 0
    mae = anisotropy_energy(ref, atoms, [0.0, 1.0], kpts=(3, 3, 1))
    ax = mae.plot()
    assert ax.name == "polar"
    plt.close("all")
    with pytest.raises(TypeError, match="predict"):
        anisotropy_energy(object(), atoms, 0.0)
    with pytest.raises(ValueError, match="n_electrons"):
        band_energy(ref.predict(atoms), -1, KPTS)


def test_rotate_moments_is_rigid():
    atoms = textures.ferromagnet(ReferenceTB("nibr2").structure((2, 1)), magnitude=2.0)
    out = rotate_moments(atoms, np.pi / 2, np.pi / 2)
    np.testing.assert_allclose(out.get_initial_magnetic_moments()[0], [0.0, 2.0, 0.0],
                               atol=1e-12)


@pytest.mark.parametrize("direction", [(0, 0, 1), (1, 0, 0), (0.3, -0.5, 0.8)])
def test_mulliken_moments_follow_ferromagnet(direction):
    ref = ReferenceTB("nibr2")
    atoms = textures.ferromagnet(ref.structure(), direction, magnitude=2.0)
    lm = local_moments(ref.predict(atoms), ref.n_electrons(atoms), (4, 4, 1))
    assert lm.angles[0] < 0.5  # degrees (SOC tilts a little off a high-symmetry axis)
    assert 0.5 < lm.ratios[0] < 1.5
    assert lm.charges.sum() == pytest.approx(24.0, abs=1e-8)
    s = lm.summary()
    assert s["max_angle_deg"] == pytest.approx(lm.angles[0])
    assert "angle" in lm.report()


def test_mulliken_moments_without_soc_exactly_collinear_and_with_overlap():
    for ref in (ReferenceTB("nibr2", soc=False), ReferenceTB("nibr2", overlap=True)):
        atoms = textures.ferromagnet(ref.structure(), (1, 1, 1), magnitude=2.0)
        lm = local_moments(ref.predict(atoms), ref.n_electrons(atoms), (3, 3, 1),
                           temperature=100.0)
        assert lm.angles[0] < (1e-6 if not ref.soc else 0.5)
        assert lm.charges.sum() == pytest.approx(24.0, abs=1e-6)


# -- occupations at a fixed electron count ----------------------------------------------------
def s_chain(onsite: float = 1.0, hopping: float = -1.0) -> TBHamiltonian:
    """One s orbital per cell of a chain (eV): ``E(k) = onsite + 2 hopping cos(2 pi k)``, each
    level a spin pair."""
    atoms = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    t = hopping * np.eye(2)
    return TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), atoms, {
        (0, 0, (0, 0, 0)): onsite * np.eye(2), (0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})


def test_degenerate_level_at_the_fermi_level_holds_exactly_the_electrons():
    # 4 k-points: E = -1 eV (k = 0), +1 eV (k = +-1/4: four spinor states), 3 eV (k = 1/2).
    # One electron per cell is 4 states over the mesh: the two at k = 0 and two of the four
    # at +1 eV, so E_band = (2 (-1) + 2 (+1)) / 4 = 0 and E_F sits on the level.
    ham = s_chain()
    GAMMA_4 = {"size": (4, 1, 1), "gamma": True}  # the Γ-centred mesh
    res = band_energy(ham, 1.0, GAMMA_4)
    assert res.fermi_level == pytest.approx(1.0, abs=1e-12)
    assert abs(res.energy) < 1e-12
    lm = local_moments(ham, 1.0, GAMMA_4)
    assert lm.fermi_level == pytest.approx(1.0, abs=1e-12)
    assert lm.charges.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(lm.moments, 0.0, atol=1e-12)
    # the level is symmetric about E_F: at 1 K the smeared filling is the same
    warm = band_energy(ham, 1.0, GAMMA_4, temperature=1.0)
    assert warm.fermi_level == pytest.approx(1.0, abs=1e-9)
    assert abs(warm.energy) < 1e-9


def test_metal_anisotropy_fills_exactly_n_electrons_per_k_point():
    # Fe/Ir(111) is a metal; on the 9x9 mesh a k/-k pair of the in-plane magnetization is the
    # level at the Fermi level and the electron count fills only one of its two states.  The
    # force-theorem band energy is the sum of the lowest n_electrons x n_k eigenvalues of the
    # mesh (the literal oracle), whose difference is a few μeV here.
    ref = ReferenceTB("feir")
    atoms = ref.structure()
    n = ref.n_electrons(atoms)
    theta = np.array([0.0, np.pi / 2])
    mae = anisotropy_energy(ref, atoms, theta, kpts=(9, 9, 1))
    k = kmesh((9, 9, 1))
    exact = []
    for t in theta:
        ham = ref.predict(rotate_moments(atoms, float(t), 0.0))
        eig = np.sort(np.concatenate([ham.eigvalsh(kk) for kk in k]))
        exact.append(eig[: n * len(k)].sum() / len(k))
    np.testing.assert_allclose(mae.energies, exact, rtol=0, atol=1e-10)
    assert (mae.energies[1] - mae.energies[0]) * (exact[1] - exact[0]) > 0
    lm = local_moments(ref.predict(rotate_moments(atoms, np.pi / 2, 0.0)), n, (9, 9, 1))
    assert lm.charges.sum() == pytest.approx(n, abs=1e-9)


# -- frozen-potential rotation of the exchange field ------------------------------------------
QUARTER_Y = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # +z -> +x
DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["nibri", "feir"])
def test_rotate_exchange_equals_reprediction_of_a_rigid_model(name):
    # The synthetic reference model's Hamiltonian follows the moments rigidly (exchange
    # linear in M, the rest in |M| and the angles between moments), so the frozen rotation of
    # a non-collinear texture is its re-prediction for the rotated moments.
    ref = ReferenceTB(name)
    atoms = textures.spin_spiral(ref.structure((3, 1)), q=(1 / 3, 0, 0), magnitude=2.0,
                                   primitive_cell=ref.structure().cell)
    g = random_rotation(np.random.default_rng(5))
    frozen = rotate_exchange(ref.predict(atoms), g)
    moved = atoms.copy()
    moved.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments() @ g.T)
    assert frozen.max_abs_difference(ref.predict(moved)) < 1e-12
    np.testing.assert_allclose(frozen.geometry.moments, moved.get_initial_magnetic_moments(),
                               atol=1e-12)
    # rotations compose, and the inverse rotation restores the Hamiltonian
    g2 = random_rotation(np.random.default_rng(6))
    twice = rotate_exchange(rotate_exchange(ref.predict(atoms), g), g2)
    assert twice.max_abs_difference(rotate_exchange(ref.predict(atoms), g2 @ g)) < 1e-12
    assert rotate_exchange(frozen, g.T).max_abs_difference(ref.predict(atoms)) < 1e-12


def test_frozen_and_repredicted_anisotropy_agree_for_the_reference_model():
    ref = ReferenceTB("nibr2")
    frozen = anisotropy_energy(ref, ref.structure(), THETA, 0.3, kpts=KPTS)
    again = anisotropy_energy(ref, ref.structure(), THETA, 0.3, kpts=KPTS, method="repredict")
    np.testing.assert_allclose(frozen.energies, again.energies, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="frozen"):
        anisotropy_energy(ref, ref.structure(), THETA, kpts=KPTS, method="scf")


def test_rotate_exchange_without_soc_keeps_every_level():
    ref = ReferenceTB("nibri", soc=False)
    ham = ref.predict(textures.spin_spiral(ref.structure((3, 1)), q=(1 / 3, 0, 0),
                                                primitive_cell=ref.structure().cell))
    g = random_rotation(np.random.default_rng(2))
    for k in ([0.0, 0.0, 0.0], [0.1, 0.27, 0.0]):
        np.testing.assert_allclose(rotate_exchange(ham, g).eigvalsh(k), ham.eigvalsh(k),
                                   rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="proper"):
        rotate_exchange(ham, -g)


def _band_sum(ham: TBHamiltonian, n: int) -> float:
    return float(np.sort(ham.eigvalsh([0.0, 0.0, 0.0]))[:n].sum())


def test_rotate_exchange_on_dft_fe3_with_spin_orbit_coupling():
    # Fe3 triangle (PySCF, X2C1e spin-orbit coupling, constrained moments along z and along
    # x; tests/analysis/data/README.md).  Checks on real DFT Hamiltonians:
    hz = TBHamiltonian.load(DATA / "fe3-x2c-z.npz")
    hx = TBHamiltonian.load(DATA / "fe3-x2c-x.npz")
    frozen = rotate_exchange(hz, QUARTER_Y)
    # 1. the exchange field (2.8 eV entries) rotates onto the self-consistent x state to a
    #    few meV: what the rigid rotation leaves out is the charge's response (about 1 meV)
    assert hz.max_abs_difference(hx) > 1.0
    assert frozen.max_abs_difference(hx) < 0.006
    # 2. the X2C1e spin-orbit term is a one-electron operator: the time-reversal-even spin
    #    part of H is the same for both directions
    def soc(ham):  # Im of the sigma_x, sigma_y, sigma_z components
        h = ham.h_r[(0, 0, 0)].toarray()
        up, dn = ham.spin_indices
        uu, dd = h[np.ix_(up, up)], h[np.ix_(dn, dn)]
        ud, du = h[np.ix_(up, dn)], h[np.ix_(dn, up)]
        return np.imag([(ud + du) / 2, (du - ud) / 2j, (uu - dd) / 2])
    assert np.abs(soc(hz)).max() > 0.05  # spin-orbit entries up to 63 meV
    np.testing.assert_allclose(soc(hx), soc(hz), rtol=0, atol=1e-7)
    # 3. the self-consistent x state sits about 0.9 meV lower as a whole (a uniform shift,
    #    which moves the sum of 24 levels by about 21 meV and is no anisotropy), while the
    #    frozen rotation keeps the mean level and gives the easy axis of the DFT total
    #    energy (z, +1.8 meV per Fe3 from z to x): +5.3 meV by the force theorem
    mean = [np.mean(h.eigvalsh([0.0, 0.0, 0.0])) for h in (hz, hx, frozen)]
    assert -1.5e-3 < mean[1] - mean[0] < -0.3e-3
    assert abs(mean[2] - mean[0]) < 1e-9
    force_theorem = _band_sum(frozen, 24) - _band_sum(hz, 24)
    assert 2e-3 < force_theorem < 9e-3
