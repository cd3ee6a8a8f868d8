"""The synthetic reference model: exact symmetries, physics checks and magnitudes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp
from ase import Atoms

from ase_hamgnn.data import ReferenceTB, fe_ir111, nibr2, nibri
from ase_hamgnn.data.reference.soc import angular_momentum, soc_matrix
from ase_hamgnn.errors import BasisError
from ase_hamgnn.spectra import broaden, kmesh
from ase_hamgnn.symmetry import (
    random_rotation,
    su2_from_rotation,
    transform_atoms,
    transform_hamiltonian,
    wigner_d,
)

TOL = 1e-10
BUILDERS = {"nibr2": nibr2, "nibri": nibri, "feir": fe_ir111}
SMALL = {"nibr2": (2, 1), "nibri": (2, 1), "feir": (1, 1)}


def _random_config(system: str, rng: np.random.Generator, size=None) -> Atoms:
    """Small cell with up to 0.1 Å displacements and random moments (0.5–3 μB) everywhere."""
    atoms = BUILDERS[system](size or SMALL[system])
    atoms.positions += rng.uniform(-0.1, 0.1, size=atoms.positions.shape) / np.sqrt(3)
    m = rng.normal(size=(len(atoms), 3))
    m *= (rng.uniform(0.5, 3.0, size=len(atoms)) / np.linalg.norm(m, axis=1))[:, None]
    atoms.set_initial_magnetic_moments(m)
    return atoms


def _improper(rng: np.random.Generator) -> np.ndarray:
    return -random_rotation(rng)


def _spin_indices(ham):
    off = ham.offsets
    half = np.diff(off) // 2
    up = np.concatenate([np.arange(o, o + h) for o, h in zip(off[:-1], half, strict=True)])
    dn = np.concatenate([np.arange(o + h, o + 2 * h) for o, h in zip(off[:-1], half, strict=True)])
    return up, dn


# -- exact symmetries ------------------------------------------------------------------------------
@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("system", ["nibr2", "nibri", "feir"])
def test_rotations_and_rotoinversions(system, overlap):
    rng = np.random.default_rng(1)
    ref = ReferenceTB(system, overlap=overlap)
    atoms = _random_config(system, rng)
    ham = ref.predict(atoms)
    for g in (random_rotation(rng), _improper(rng), -np.eye(3)):
        moved = ref.predict(transform_atoms(atoms, g))
        assert moved.max_abs_difference(transform_hamiltonian(ham, g)) < TOL


@pytest.mark.parametrize("system", ["nibr2", "nibri", "feir"])
def test_time_reversal(system):
    rng = np.random.default_rng(2)
    ref = ReferenceTB(system, overlap=True)
    atoms = _random_config(system, rng)
    flipped = ref.predict(transform_atoms(atoms, time_reversal=True))
    assert flipped.max_abs_difference(transform_hamiltonian(ref.predict(atoms),
                                                            time_reversal=True)) < TOL
    # and combined with a rotoinversion
    g = _improper(rng)
    both = ref.predict(transform_atoms(atoms, g, time_reversal=True))
    assert both.max_abs_difference(transform_hamiltonian(ref.predict(atoms), g, True)) < TOL


@pytest.mark.parametrize("system", ["nibri", "feir"])
def test_atom_permutation(system):
    rng = np.random.default_rng(3)
    ref = ReferenceTB(system, overlap=True)
    atoms = _random_config(system, rng, size=(2, 2))
    perm = rng.permutation(len(atoms))
    ham, ham_p = ref.predict(atoms), ref.predict(atoms[perm])
    off, off_p = ham.offsets, ham_p.offsets
    # spin-orbital k of permuted atom a is spin-orbital k of original atom perm[a]
    index = np.concatenate([np.arange(off[p], off[p + 1]) for p in perm])
    p_mat = sp.csr_matrix((np.ones(len(index)), (np.arange(len(index)), index)),
                          shape=(len(index), len(index)))
    assert off_p[-1] == off[-1]
    for store, store_p in ((ham.h_r, ham_p.h_r), (ham.s_r, ham_p.s_r)):
        assert set(store) == set(store_p)
        for r, mat in store.items():
            diff = p_mat @ mat @ p_mat.T - store_p[r]
            assert (abs(diff).max() if diff.nnz else 0.0) < TOL


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("system", ["nibr2", "nibri", "feir"])
def test_periodic_images_equal_explicit_supercell(system, overlap):
    rng = np.random.default_rng(4)
    ref = ReferenceTB(system, overlap=overlap)
    atoms = _random_config(system, rng, size=(1, 1))
    ham = ref.predict(atoms)
    assert all(r[2] == 0 for r in ham.h_r)  # slab: no lattice vectors along z
    big = ref.predict(atoms.repeat((2, 3, 1)))
    assert big.max_abs_difference(ham.tile((2, 3, 1))) < TOL


@pytest.mark.parametrize("system", ["nibri", "feir"])
def test_hermiticity_is_exact(system):
    ref = ReferenceTB(system, overlap=True)
    ham = ref.predict(_random_config(system, np.random.default_rng(5)))
    for store in (ham.h_r, ham.s_r):
        for r, mat in store.items():
            partner = store[tuple(-x for x in r)]
            assert abs(mat - partner.conj().T).max() == 0.0


def test_moment_only_rotation_is_a_symmetry_only_without_soc():
    rng = np.random.default_rng(6)
    atoms = _random_config("nibri", rng)
    q = random_rotation(rng)
    spun = atoms.copy()
    spun.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments() @ q.T)
    for soc, symmetric in ((False, True), (True, False)):
        ref = ReferenceTB("nibri", soc=soc)
        ham, ham_spun = ref.predict(atoms), ref.predict(spun)
        n = ham.n_spin_orbitals // 2
        # spin rotation only: kron(U, 1) per atom, i.e. U acting on the spin-major halves
        u = su2_from_rotation(q)
        up, dn = _spin_indices(ham)
        rows = np.concatenate([up, up, dn, dn])
        cols = np.concatenate([up, dn, up, dn])
        data = np.repeat(u.ravel(), n)
        rot = sp.csr_matrix((data, (rows, cols)), shape=(2 * n, 2 * n))
        worst = max(abs(rot @ ham.h_r[r] @ rot.conj().T - ham_spun.h_r[r]).max()
                    for r in ham.h_r)
        assert (worst < TOL) == symmetric


# -- physics ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("system", ["nibr2", "nibri", "feir"])
def test_kramers_degeneracy_without_moments(system):
    rng = np.random.default_rng(7)
    ref = ReferenceTB(system, overlap=system == "nibri")
    atoms = _random_config(system, rng, size=(1, 1))
    atoms.set_initial_magnetic_moments(np.zeros((len(atoms), 3)))
    ham = ref.predict(atoms)
    for k in ([0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0.5, 0.5, 0]):
        e = ham.eigvalsh(k)
        np.testing.assert_allclose(e[0::2], e[1::2], atol=1e-9)
    # and the moments lift it
    atoms.set_initial_magnetic_moments(BUILDERS[system]((1, 1)).get_initial_magnetic_moments())
    e = ref.predict(atoms).eigvalsh([0, 0, 0])
    assert np.abs(e[0::2] - e[1::2]).max() > 0.1


def test_ferromagnet_along_z_without_soc_has_no_spin_flip_blocks():
    atoms = nibri((2, 1))
    atoms.positions += np.random.default_rng(8).uniform(-0.05, 0.05, atoms.positions.shape)
    for soc in (False, True):
        ham = ReferenceTB("nibri", soc=soc).predict(atoms)
        up, dn = _spin_indices(ham)
        worst = max(abs(m[up][:, dn]).max() if m[up][:, dn].nnz else 0.0
                    for m in ham.h_r.values())
        assert (worst == 0.0) == (not soc)


def _gap(ham, n_electrons, mesh=(6, 6, 1)):
    eig = np.array([ham.eigvalsh(k) for k in kmesh(mesh)])
    return eig[:, n_electrons].min() - eig[:, n_electrons - 1].max()


@pytest.mark.parametrize("system", ["nibr2", "nibri"])
@pytest.mark.parametrize("overlap", [False, True])
def test_ferromagnetic_dihalides_are_semiconductors(system, overlap):
    ref = ReferenceTB(system, overlap=overlap)
    atoms = ref.structure()
    gap = _gap(ref.predict(atoms), ref.n_electrons(atoms))
    assert 1.2 < gap < 1.8  # documented: ~1.45 eV (orthogonal), 1.0-2.0 eV by design


def test_fe_ir111_is_a_metal():
    ref = ReferenceTB("feir")
    atoms = ref.structure()
    ham = ref.predict(atoms)
    ne = ref.n_electrons(atoms)
    assert ne == 8 + 3 * 9
    eig = np.array([ham.eigvalsh(k) for k in kmesh((12, 12, 1))])
    ef = ham.fermi_level(ne, kpts=(12, 12, 1))
    crossing = (eig.min(axis=0) < ef) & (eig.max(axis=0) > ef)
    assert crossing.sum() >= 4
    dos = broaden(eig, np.full(len(eig), 1 / len(eig)), np.array([ef]), width=0.1)
    assert dos[0] > 2.0  # states / eV / cell


def test_overlap_is_positive_definite_and_generalized_problem_works():
    ref = ReferenceTB("nibri", overlap=True)
    atoms = _random_config("nibri", np.random.default_rng(9))
    ham = ref.predict(atoms)
    assert not ham.orthogonal
    for k in kmesh((3, 3, 1)):
        s = ham.sk(k).toarray()
        assert np.linalg.eigvalsh(s).min() > 0.5
        e, c = ham.eigh(k)
        h = ham.hk(k).toarray()
        np.testing.assert_allclose(h @ c, s @ c * e, atol=1e-9)
        np.testing.assert_allclose(c.conj().T @ s @ c, np.eye(len(e)), atol=1e-9)
    # overlap blocks are spin-diagonal copies, on-site S = 1
    blk = ham.block(0, 0, overlap=True)
    np.testing.assert_allclose(blk, np.eye(len(blk)))


def test_displacements_change_the_hamiltonian_smoothly():
    ref = ReferenceTB("nibr2")
    atoms = nibr2()
    ham = ref.predict(atoms)
    moved = atoms.copy()
    moved.positions[1] += [0.0, 0.0, 1e-4]
    diff = ref.predict(moved).max_abs_difference(ham)
    assert 1e-7 < diff < 1e-3
    # the cosine taper: a dimer at the cutoff has vanishing hopping on both sides of it
    for d in (ref.cutoff - 1e-6, ref.cutoff + 1e-6):
        dimer = Atoms("NiBr", positions=[[0, 0, 0], [0, 0, d]])
        assert np.abs(ref.predict(dimer).block(0, 1)).max() < 1e-9


def test_moment_dependence_is_nonlinear_beyond_heisenberg():
    ref = ReferenceTB("nibr2", soc=False)
    atoms = nibr2((2, 1))
    m = np.random.default_rng(10).normal(size=(len(atoms), 3))
    hams = []
    for scale in (0.0, 1.0, 2.0):
        a = atoms.copy()
        a.set_initial_magnetic_moments(scale * m)
        hams.append(ref.predict(a))
    r = (0, 0, 0)
    h0, h1, h2 = (h.h_r[r].toarray() for h in hams)
    assert np.abs((h2 - h0) - 2 * (h1 - h0)).max() > 1e-2


def test_magnitudes_are_realistic():
    ref = ReferenceTB("nibri", soc=False)
    atoms = nibri()
    ham = ref.predict(atoms)
    ni, br, i_ = (ham.block(n, n) for n in range(3))
    # Ni d exchange splitting (FM, 2 μB): 1-3 eV
    d_split = (ni[7:12, 7:12] - ni[1:6, 1:6]).diagonal().real
    assert np.all((d_split > 1.0) & (d_split < 3.0))
    # induced exchange on ligand p shells: 10-100 meV
    for blk in (br, i_):
        split = (blk[5:8, 5:8] - blk[1:4, 1:4]).diagonal().real
        assert np.all((split > 0.01) & (split < 0.1))
    # nearest-neighbour Ni-Br hoppings: 0.5-1.5 eV
    t = np.abs(ham.block(0, 1, (0, 0, 0))[:6, :4]).max()
    assert 0.5 < t < 1.5
    assert "SYNTHETIC" in repr(ref)


def test_soc_matrices():
    for l in (1, 2):  # noqa: E741
        lx, ly, lz = angular_momentum(l)
        np.testing.assert_allclose(lx @ ly - ly @ lx, 1j * lz, atol=1e-13)
        np.testing.assert_allclose(lx @ lx + ly @ ly + lz @ lz, l * (l + 1) * np.eye(2 * l + 1),
                                   atol=1e-13)
        # D^l(exp(-i theta n.L)) is e3nn's Wigner matrix of the rotation about n by theta
        from scipy.linalg import expm
        from scipy.spatial.transform import Rotation

        n = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
        q = Rotation.from_rotvec(0.9 * n).as_matrix()
        generator = n[0] * lx + n[1] * ly + n[2] * lz
        np.testing.assert_allclose(wigner_d(l, q), expm(-0.9j * generator), atol=1e-12)
        # zeta L.S: j = l + 1/2 at zeta l / 2, j = l - 1/2 at -zeta (l + 1) / 2
        e = np.linalg.eigvalsh(soc_matrix(l, 0.4))
        np.testing.assert_allclose(e, [-0.2 * (l + 1)] * (2 * l) + [0.2 * l] * (2 * l + 2),
                                   atol=1e-13)
    # p shell in (x, y, z): (L_a)_bc = -i eps_abc
    eps = np.zeros((3, 3, 3))
    eps[0, 1, 2] = eps[1, 2, 0] = eps[2, 0, 1] = 1
    eps[0, 2, 1] = eps[2, 1, 0] = eps[1, 0, 2] = -1
    np.testing.assert_allclose(angular_momentum(1), -1j * eps, atol=1e-13)


# -- interface -------------------------------------------------------------------------------------
def test_interface_and_errors():
    ref = ReferenceTB("nibri")
    assert ref.basis.elements == ("Ni", "Br", "I")
    assert ref.cutoff == 5.5
    assert ref.n_electrons(nibri((2, 2))) == 4 * 24
    # 34 x 34 NiBrI supercell: 3468 atoms, 32368 spin-orbitals (28 per formula unit)
    big = nibri((34, 34))
    assert len(big) == 3468
    assert ref.basis.spin_orbital_offsets(big.numbers)[-1] == 32368
    # scalar moments mean "along z"
    atoms = nibri()
    scalar = atoms.copy()
    scalar.set_initial_magnetic_moments(None)
    scalar.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments()[:, 2])
    assert ref.predict(scalar).max_abs_difference(ref.predict(atoms)) == 0.0
    with pytest.raises(BasisError, match="Cl"):
        ref.predict(Atoms("NiCl", positions=[[0, 0, 0], [0, 0, 2.4]]))
    with pytest.raises(BasisError):
        ReferenceTB("nibr2").n_electrons(nibri())
    with pytest.raises(ValueError, match="apart"):
        ref.predict(Atoms("NiBr", positions=[[0, 0, 0], [0, 0, 0.2]]))
    with pytest.raises(ValueError, match="unknown reference system"):
        ReferenceTB("cri3")
    with pytest.raises(ValueError, match="parameters are for"):
        ReferenceTB("nibri", parameters=ReferenceTB("feir").parameters)
    # a finite cluster works too (no periodic direction: only R = 0)
    cluster = Atoms("NiBr2", positions=[[0, 0, 0], [0, 0, 2.5], [0, 2.5, 0]])
    assert list(ref.predict(cluster).h_r) == [(0, 0, 0)]


@pytest.mark.slow
def test_large_supercell_predicts_in_seconds():
    ref = ReferenceTB("nibri")
    atoms = ref.structure((34, 34))
    start = time.perf_counter()
    ham = ref.predict(atoms)
    elapsed = time.perf_counter() - start
    assert ham.n_spin_orbitals == 32368
    assert elapsed < 30.0
