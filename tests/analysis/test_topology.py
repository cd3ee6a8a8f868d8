"""Topology: Chern numbers by the Fukui–Hatsugai–Suzuki method and the Kubo Hall
conductivity on the Qi–Wu–Zhang model (known phase diagram), time-reversal symmetric systems
(zero), and gauge/overlap invariances of the reference model."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ase import Atoms  # noqa: E402

from ase_hamgnn import OrbitalBasis, TBHamiltonian  # noqa: E402
from ase_hamgnn.analysis import (  # noqa: E402
    berry_curvature,
    chern_numbers,
    hall_conductivity,
    plane_directions,
)
from ase_hamgnn.data import ReferenceTB  # noqa: E402

SX = np.array([[0, 1], [1, 0]], dtype=np.complex128)
SY = np.array([[0, -1j], [1j, 0]], dtype=np.complex128)
SZ = np.diag([1.0, -1.0]).astype(np.complex128)


def qwz_blocks(u: float, atom: int = 0, reverse: bool = False) -> dict:
    """Qi–Wu–Zhang H(k) = sin kx σx + sin ky σy + (u + cos kx + cos ky) σz (the spin of one
    s orbital as the pseudospin); ``reverse``: its time-reversed partner σy H(-k)* σy."""
    blocks = {(0, 0, 0): u * SZ,
              (1, 0, 0): (SZ + SX / 1j) / 2, (-1, 0, 0): (SZ - SX / 1j) / 2,
              (0, 1, 0): (SZ + SY / 1j) / 2, (0, -1, 0): (SZ - SY / 1j) / 2}
    if reverse:
        blocks = {r: SY @ b.conj() @ SY for r, b in blocks.items()}
    return {(atom, atom, r): b for r, b in blocks.items()}


def qwz(u: float, pair: bool = False) -> TBHamiltonian:
    basis = OrbitalBasis({"H": ["1s"]})
    if not pair:
        atoms = Atoms("H", cell=[1, 1, 10], pbc=[True, True, False])
        return TBHamiltonian.from_blocks(basis, atoms, qwz_blocks(u))
    atoms = Atoms("H2", scaled_positions=[[0, 0, 0.5], [0.5, 0.5, 0.5]], cell=[1, 1, 10],
                  pbc=[True, True, False])
    return TBHamiltonian.from_blocks(basis, atoms, {**qwz_blocks(u, 0),
                                                    **qwz_blocks(u, 1, reverse=True)})


@pytest.mark.parametrize("u, chern", [(1.0, -1), (0.5, -1), (-1.0, 1), (-1.7, 1),
                                      (2.5, 0), (-3.0, 0)])
def test_qwz_phase_diagram(u, chern):
    groups = chern_numbers(qwz(u), (12, 12))
    assert [(g.start, g.stop) for g in groups] == [(0, 1), (1, 2)]
    c = groups[0].chern
    assert abs(c - round(c)) < 1e-10
    assert round(c) == chern
    assert abs(groups[0].chern + groups[1].chern) < 1e-10
    assert groups[0].gap_above == pytest.approx(2 * min(abs(abs(u) - 2), abs(u)), abs=0.05)


def test_berry_curvature_sums_to_chern_and_plots():
    omega = berry_curvature(qwz(1.0), 0, (10, 10))
    assert omega.curvature.shape == (10, 10)
    area = 4 * np.pi**2  # BZ area of the unit square lattice, Å^-2
    assert np.sum(omega.curvature) * area / 100 / (2 * np.pi) == pytest.approx(omega.chern)
    ax = omega.plot()
    assert "C = -1.000" in ax.get_title()
    plt.close("all")


@pytest.mark.parametrize("u", [1.0, -0.6])
def test_hall_conductivity_in_gap_is_chern(u):
    c = chern_numbers(qwz(u), (10, 10))[0].chern
    sigma = hall_conductivity(qwz(u), [0.0, -0.5, 0.5, 10.0, -10.0], (30, 30))
    np.testing.assert_allclose(sigma.sigma_xy[:3], round(c), atol=3e-3)
    np.testing.assert_allclose(sigma.sigma_xy[3:], 0.0, atol=1e-10)  # empty / full
    assert sigma.siemens[0] == pytest.approx(round(c) * 3.874045865e-5, rel=1e-2)


def test_hall_conductivity_temperature_and_eta_converge():
    sigma = hall_conductivity(qwz(1.0), [0.0], (30, 30), temperature=300.0, eta=0.0)
    assert sigma.sigma_xy[0] == pytest.approx(-1.0, abs=1e-3)


def test_time_reversal_pair_has_no_chern_number_or_hall_effect():
    ham = qwz(1.0, pair=True)
    groups = chern_numbers(ham, (10, 10))
    assert len(groups) == 2
    assert [round(g.chern, 8) for g in groups] == [0.0, 0.0]
    energies = np.linspace(-3, 3, 13) + 0.0137  # off exact (degenerate) eigenvalues
    sigma = hall_conductivity(ham, energies, (12, 12)).sigma_xy
    np.testing.assert_allclose(sigma, 0.0, atol=1e-10)


def test_reference_model_without_moments_is_trivial():
    ref = ReferenceTB("nibr2")
    atoms = ref.structure()
    atoms.set_initial_magnetic_moments(np.zeros((len(atoms), 3)))
    ham = ref.predict(atoms)
    groups = chern_numbers(ham, (6, 6))
    assert all(abs(g.chern) < 1e-8 for g in groups)
    sigma = hall_conductivity(ham, np.linspace(-6, 6, 25), (8, 8)).sigma_xy
    np.testing.assert_allclose(sigma, 0.0, atol=1e-9)


@pytest.mark.parametrize("overlap", [False, True])
def test_reference_chern_numbers_with_and_without_overlap(overlap):
    # FM NiBrI with SOC: the two empty minority e_g bands carry C = -1, +1 (the same with
    # the Löwdin-treated overlap); all occupied groups are trivial, the sum rule holds.
    ref = ReferenceTB("nibri", overlap=overlap)
    groups = chern_numbers(ref.predict(ref.structure()), (6, 6), gap_tol=0.05)
    chern = {(g.start, g.stop): g.chern for g in groups}
    assert all(abs(c - round(c)) < 1e-8 for c in chern.values())
    assert abs(sum(chern.values())) < 1e-8
    assert round(chern[(24, 25)]) == -1 and round(chern[(25, 26)]) == 1
    assert all(round(c) == 0 for (a, b), c in chern.items() if b <= 24)
    assert all(g.max_flux < 2.0 for g in groups)


def test_overlap_kubo_and_non_2d_raise():
    ref = ReferenceTB("nibr2", overlap=True)
    ham = ref.predict(ref.structure())
    with pytest.raises(NotImplementedError, match="overlap=False"):
        hall_conductivity(ham, 0.0, (4, 4))
    bulk = Atoms("H", cell=[1, 1, 1], pbc=True)
    h3 = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), bulk,
                                   {(0, 0, (0, 0, 0)): SZ})
    with pytest.raises(ValueError, match="directions"):
        chern_numbers(h3, (4, 4))
    assert plane_directions(h3.geometry, (0, 1)) == (0, 1)
    with pytest.raises(ValueError, match="mesh"):
        berry_curvature(qwz(1.0), 0, (1, 4))


def test_supercell_conserves_total_chern():
    c_prim = chern_numbers(qwz(1.0), (8, 8))[0].chern
    groups = chern_numbers(qwz(1.0).tile((2, 2, 1)), (4, 4))
    assert round(sum(g.chern for g in groups if g.emax < 0)) == round(c_prim)


def test_kubo_velocity_is_derivative_of_atomic_gauge_bloch_hamiltonian():
    from ase_hamgnn.analysis.topology import _orbital_positions, _velocities

    ref = ReferenceTB("nibri")
    ham = ref.predict(ref.structure())
    k, dk = np.array([0.13, -0.27, 0.0]), 1e-5
    tau = _orbital_positions(ham)
    _, d1, d2 = _velocities(ham, k, (0, 1), tau)
    phase = np.exp(2j * np.pi * tau @ k)  # back to the atomic gauge: D^dagger X D
    for a, d in enumerate((d1, d2)):
        step = dk * np.eye(3)[a]
        fd = (ham.hk(k + step, "atomic") - ham.hk(k - step, "atomic")).toarray() / (2 * dk)
        np.testing.assert_allclose(phase.conj()[:, None] * d * phase[None, :], fd, atol=1e-6)


def test_hall_conductivity_supercell_equals_primitive():
    # The 2x2 supercell on a 12x12 mesh folds onto the primitive 24x24 mesh exactly; with
    # atomic-gauge velocities the Kubo sum is the same at every Fermi energy.
    energies = np.linspace(-2.5, 2.5, 11)
    prim = hall_conductivity(qwz(0.7), energies, (24, 24), temperature=2000.0)
    sup = hall_conductivity(qwz(0.7).tile((2, 2, 1)), energies, (12, 12), temperature=2000.0)
    np.testing.assert_allclose(sup.sigma_xy, prim.sigma_xy, atol=1e-10)
