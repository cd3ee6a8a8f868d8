"""TBHamiltonian: Hermiticity, solvers, tiling, overlap, persistence, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from ase import Atoms
from tb_helpers import random_tb

from ase_hamgnn import (
    BasisError,
    BlockShapeError,
    HermiticityError,
    OrbitalBasis,
    TBHamiltonian,
)
from ase_hamgnn.spectra import broaden, resolve_kpts


@pytest.fixture
def ham(rng, basis, nibr2_like):
    return random_tb(rng, nibr2_like, basis)


def test_hk_is_hermitian_at_random_k(rng, ham):
    for _ in range(5):
        k = rng.random(3)
        h = ham.hk(k).toarray()
        np.testing.assert_allclose(h, h.conj().T, atol=1e-13)
    assert sp.issparse(ham.hk(k)) and ham.hk(k).dtype == np.complex128


def test_atomic_gauge_same_spectrum_different_phases(rng, ham):
    k = rng.random(3) * [1, 1, 0]
    np.testing.assert_allclose(ham.eigvalsh(k), ham.eigh(k, gauge="atomic")[0], atol=1e-11)
    assert not np.allclose(ham.hk(k).toarray(), ham.hk(k, gauge="atomic").toarray())
    # H(k + G) = H(k) in the lattice gauge
    np.testing.assert_allclose(ham.hk(k + [1, 0, 0]).toarray(), ham.hk(k).toarray(), atol=1e-12)


def test_tiled_hamiltonian_folds_primitive_bands(ham):
    """A 2x2 supercell at Gamma has exactly the primitive eigenvalues at the four folded k."""
    big = ham.tile((2, 2, 1))
    assert len(big) == 4 * len(ham)
    expected = np.sort(np.concatenate([ham.eigvalsh([a / 2, b / 2, 0])
                                       for a in range(2) for b in range(2)]))
    np.testing.assert_allclose(big.eigvalsh([0, 0, 0]), expected, atol=1e-10)
    # atom order follows ase's repeat
    np.testing.assert_allclose(big.geometry.positions,
                               ham.to_atoms().repeat((2, 2, 1)).positions, atol=1e-12)
    np.testing.assert_allclose(big.geometry.moments[3], ham.geometry.moments[0])


def test_tile_at_general_k(ham, rng):
    big = ham.tile((3, 1, 1))
    kb = rng.random(3) * [1, 1, 0]
    expected = np.sort(np.concatenate(
        [ham.eigvalsh([(kb[0] + a) / 3, kb[1], 0]) for a in range(3)]))
    np.testing.assert_allclose(big.eigvalsh(kb), expected, atol=1e-10)


def test_tile_rejects_non_periodic_direction(ham):
    with pytest.raises(ValueError, match="non-periodic"):
        ham.tile((1, 1, 2))


def test_sparse_shift_invert_matches_dense(ham, rng):
    big = ham.tile((4, 4, 1))  # 28 spin-orbitals x 16 -> above the dense limit
    assert big.n_spin_orbitals > 400
    k = rng.random(3) * [1, 1, 0]
    e_all = big.eigvalsh(k)
    sigma = float(np.median(e_all)) + 0.0123
    e, c = big.eigsh(k, 12, sigma)
    expected = np.sort(e_all[np.argsort(np.abs(e_all - sigma))[:12]])
    np.testing.assert_allclose(e, expected, atol=1e-9)
    h = big.hk(k)
    np.testing.assert_allclose(h @ c, c * e, atol=1e-8)
    np.testing.assert_allclose(c.conj().T @ c, np.eye(12), atol=1e-10)


def test_generalized_problem_matches_lowdin(rng, basis, nibr2_like):
    ham = random_tb(rng, nibr2_like, basis, overlap=True)
    assert not ham.orthogonal
    k = rng.random(3) * [1, 1, 0]
    h, s = ham.hk(k).toarray(), ham.sk(k).toarray()
    s_inv_half = scipy.linalg.fractional_matrix_power(s, -0.5)
    lowdin = np.linalg.eigvalsh(s_inv_half @ h @ s_inv_half)
    e, c = ham.eigh(k)
    np.testing.assert_allclose(e, lowdin, atol=1e-10)
    np.testing.assert_allclose(c.conj().T @ s @ c, np.eye(len(e)), atol=1e-10)
    # and the sparse solver on a tiled copy
    big = ham.tile((4, 4, 1))
    e_all = big.eigvalsh(k)
    es, cs = big.eigsh(k, 6, float(e_all[400]) + 1e-3)
    expected = np.sort(e_all[np.argsort(np.abs(e_all - e_all[400] - 1e-3))[:6]])
    np.testing.assert_allclose(es, expected, atol=1e-9)
    sb = big.sk(k)
    np.testing.assert_allclose(cs.conj().T @ (sb @ cs), np.eye(6), atol=1e-9)


def test_spin_expectation(rng, basis, nibr2_like):
    # Spin-diagonal H with opposite exchange on up and down: <sigma> = (0, 0, +-1).
    ham = random_tb(rng, nibr2_like, basis)
    off = ham.offsets
    up = np.concatenate([np.arange(off[a], off[a] + (off[a + 1] - off[a]) // 2)
                         for a in range(len(off) - 1)])
    dn = np.setdiff1d(np.arange(ham.n_spin_orbitals), up)
    mask = np.zeros(ham.n_spin_orbitals)
    mask[dn] = 1.0
    same_spin = {}
    for r, m in ham.h_r.items():
        d = m.toarray()
        d[np.ix_(up, dn)] = 0
        d[np.ix_(dn, up)] = 0
        d[np.ix_(dn, dn)] = d[np.ix_(up, up)]
        same_spin[r] = d + (50.0 * np.diag(mask) if r == (0, 0, 0) else 0)
    collinear = TBHamiltonian(basis, nibr2_like, same_spin)
    k = [0.1, 0.2, 0]
    e, c = collinear.eigh(k)
    s = collinear.spin_expectation(k, c)
    half = len(e) // 2
    np.testing.assert_allclose(s[:half], [[0, 0, 1]] * half, atol=1e-10)
    np.testing.assert_allclose(s[half:], [[0, 0, -1]] * half, atol=1e-10)
    # general states: |<sigma>| <= 1 and matches an explicit operator
    e, c = ham.eigh(k)
    s = ham.spin_expectation(k, c)
    assert (np.linalg.norm(s, axis=1) <= 1 + 1e-10).all()
    sx = np.zeros((ham.n_spin_orbitals,) * 2, dtype=complex)
    sx[up, dn] = 1
    sx[dn, up] = 1
    np.testing.assert_allclose(s[:, 0], np.einsum("in,ij,jn->n", c.conj(), sx, c).real,
                               atol=1e-10)


def test_dos_and_fermi_level(ham):
    energies = np.linspace(-30, 30, 6001)
    d = ham.dos((4, 4, 1), energies, width=0.1)
    assert np.trapezoid(d, energies) == pytest.approx(ham.n_spin_orbitals, rel=1e-3)
    n_el = 17
    ef = ham.fermi_level(n_el, kpts=(4, 4, 1))
    eig = np.array([ham.eigvalsh(k) for k in resolve_kpts((4, 4, 1))])  # ASE's mesh
    assert np.mean((eig < ef).sum(axis=1)) == pytest.approx(n_el)
    ef_t = ham.fermi_level(n_el, kpts=(4, 4, 1), temperature=300.0)
    kt = 8.617333262e-5 * 300
    occ = np.mean(np.sum(0.5 * (1 - np.tanh((eig - ef_t) / (2 * kt))), axis=1))
    assert occ == pytest.approx(n_el, abs=1e-8)
    with pytest.raises(ValueError, match="n_electrons"):
        ham.fermi_level(10_000)
    lor = broaden(eig, np.full(16, 1 / 16), energies, 0.1, kind="lorentzian")
    assert np.trapezoid(lor, energies) == pytest.approx(ham.n_spin_orbitals, rel=2e-2)


def test_bands_on_an_ase_path(ham):
    path = ham.to_atoms().cell.bandpath("GMKG", npoints=20, pbc=ham.geometry.pbc)
    bs = ham.bands(path)
    assert bs.energies.shape == (20, ham.n_spin_orbitals)
    np.testing.assert_allclose(bs.energies[0], ham.eigvalsh([0, 0, 0]), atol=1e-12)
    ase_bs = bs.to_ase()
    np.testing.assert_allclose(ase_bs.energies[0], bs.energies)
    assert (np.abs(bs.spin_along("z")) <= 1 + 1e-12).all()


def test_save_load_round_trip_is_exact(tmp_path, rng, basis, nibr2_like):
    for overlap in (False, True):
        ham = random_tb(rng, nibr2_like, basis, overlap=overlap)
        path = ham.save(tmp_path / "h.npz")
        again = TBHamiltonian.load(path)
        assert again.max_abs_difference(ham) == 0.0
        assert again.basis == ham.basis and again.geometry.equals(ham.geometry, atol=0)
    assert not list(tmp_path.glob("*.tmp"))


def test_load_rejects_foreign_file(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not an ase-hamgnn"):
        TBHamiltonian.load(tmp_path / "x.npz")


def test_wrong_block_shape_raises(basis, nibr2_like):
    with pytest.raises(BlockShapeError, match=r"\(12, 12\)"):
        TBHamiltonian.from_blocks(basis, nibr2_like, {(0, 0, (0, 0, 0)): np.eye(10)})
    with pytest.raises(BlockShapeError, match="spin-orbitals"):
        TBHamiltonian(basis, nibr2_like, {(0, 0, 0): np.eye(5)})


def test_non_hermitian_raises_naming_the_block(rng, basis, nibr2_like):
    ham = random_tb(rng, nibr2_like, basis)
    h = {r: m.toarray() for r, m in ham.h_r.items()}
    h[(1, 0, 0)][13, 2] += 0.5  # atom 1 (Br, rows 12..19) to atom 0 (Ni)
    with pytest.raises(HermiticityError, match=r"i=1, j=0, R=\(1, 0, 0\)|i=0, j=1, R=\(-1, 0, 0\)"):
        TBHamiltonian(basis, nibr2_like, h)
    h = {(0, 0, 0): np.eye(28), (1, 0, 0): 0.1 * np.eye(28)}
    with pytest.raises(HermiticityError, match="missing"):
        TBHamiltonian(basis, nibr2_like, h)


def test_unknown_element_raises(basis):
    atoms = Atoms("Fe", cell=np.eye(3) * 3, pbc=True)
    with pytest.raises(BasisError, match="Fe"):
        TBHamiltonian(basis, atoms, {(0, 0, 0): np.eye(2)})


def test_overlap_must_be_spin_diagonal(basis, nibr2_like):
    s = np.eye(28)
    s[0, 6] = s[6, 0] = 0.1  # couples Ni 4s up with Ni 4s down
    with pytest.raises(ValueError, match="spin-diagonal"):
        TBHamiltonian(basis, nibr2_like, {(0, 0, 0): np.eye(28)}, {(0, 0, 0): s})


def test_immutable(ham):
    with pytest.raises(TypeError):
        ham.h_r[(5, 5, 5)] = ham.h_r[(0, 0, 0)]
    with pytest.raises(ValueError):
        ham.h_r[(0, 0, 0)].data[0] = 1.0
    with pytest.raises(ValueError):
        ham.geometry.positions[0, 0] = 1.0


def test_block_access(ham):
    b = ham.block(1, 0, (1, 0, 0))
    assert b.shape == (8, 12)
    np.testing.assert_allclose(b, ham.block(0, 1, (-1, 0, 0)).conj().T)
    assert np.all(ham.block(0, 0, (7, 7, 0)) == 0)


def test_basis_value_semantics_in_orthogonal_block():
    basis = OrbitalBasis({"H": ["1s"]})
    atoms = Atoms("H", cell=np.eye(3), pbc=[True, False, False])
    t = -np.eye(2)
    ham = TBHamiltonian.from_blocks(basis, atoms, {(0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    np.testing.assert_allclose(ham.block(0, 0, overlap=True), np.eye(2))
    np.testing.assert_allclose(ham.eigvalsh([0.5, 0, 0]), [2, 2])


def test_local_spin_of_a_ferromagnet_equals_spin_along_the_moment(rng, basis, nibr2_like):
    """For a collinear moment direction m, the spin along the local moments equals
    <sigma> . m (Mulliken spin summed over all orbitals)."""
    ham = random_tb(rng, nibr2_like, basis)
    bands = ham.bands([[0, 0, 0], [0.2, 0.1, 0]])
    m = nibr2_like.get_initial_magnetic_moments()[0]
    np.testing.assert_allclose(bands.spin_along("local"), bands.spin_along(m), atol=1e-10)


# -- loading broken or foreign files --------------------------------------------------------


@pytest.fixture
def saved(tmp_path, rng, basis, nibr2_like):
    return random_tb(rng, nibr2_like, basis).save(tmp_path / "good.npz")


def _rewrite(saved, path, change):
    with np.load(saved) as f:
        arrays = dict(f)
    change(arrays)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("content, match", [
    (b"", "the file is empty"),
    (b"H(R) = 1 eV\n", "not an .npz"),
    (__import__("pickle").dumps({"h": [1.0]}), "pickle, which is never unpickled"),
])
def test_load_refuses_files_that_are_no_npz_archive(tmp_path, content, match):
    from ase_hamgnn.errors import HamiltonianFileError

    path = tmp_path / "h.npz"
    path.write_bytes(content)
    with pytest.raises(HamiltonianFileError, match=match) as info:
        TBHamiltonian.load(path)
    assert str(path) in str(info.value) and "TBHamiltonian.save" in str(info.value)


def test_load_refuses_a_npy_array(tmp_path):
    from ase_hamgnn.errors import HamiltonianFileError

    np.save(tmp_path / "h.npy", np.zeros(3))
    with pytest.raises(HamiltonianFileError, match="h.npy .* single .npy array"):
        TBHamiltonian.load(tmp_path / "h.npy")


def test_load_refuses_truncated_and_corrupted_archives(tmp_path, saved):
    from ase_hamgnn.errors import HamiltonianFileError

    data = saved.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(HamiltonianFileError, match="cut.npz is a truncated or corrupted"):
        TBHamiltonian.load(tmp_path / "cut.npz")
    # the zip directory intact, the compressed data of the arrays scrambled
    start = data.index(b"h_data.npy") + 40
    bad = data[:start] + bytes(b ^ 0x5A for b in data[start:start + 64]) + data[start + 64:]
    (tmp_path / "flipped.npz").write_bytes(bad)
    with pytest.raises(HamiltonianFileError, match="flipped.npz is a truncated or corrupted"):
        TBHamiltonian.load(tmp_path / "flipped.npz")


def test_load_names_missing_arrays(tmp_path, saved):
    from ase_hamgnn.errors import HamiltonianFileError

    path = _rewrite(saved, tmp_path / "miss.npz", lambda a: (a.pop("R"), a.pop("h_data")))
    with pytest.raises(HamiltonianFileError, match="miss.npz .* arrays R, h_data are missing"):
        TBHamiltonian.load(path)


def test_load_never_unpickles_object_arrays(tmp_path, saved):
    from ase_hamgnn.errors import HamiltonianFileError

    def add_object(arrays):
        arrays["basis"] = np.array([{"Ni": ["3d"]}], dtype=object)

    path = _rewrite(saved, tmp_path / "obj.npz", add_object)
    with pytest.raises(HamiltonianFileError, match="obj.npz: the array 'basis' holds Python obj"):
        TBHamiltonian.load(path)
    with pytest.raises(FileNotFoundError):
        TBHamiltonian.load(tmp_path / "absent.npz")


# -- Fermi level at a fixed electron count ------------------------------------------------------


@pytest.mark.parametrize("temperature", [1e-3, 1.0, 10.0, 100.0, 300.0])
def test_fermi_level_of_an_insulator_is_near_mid_gap_at_any_temperature(temperature):
    # With electrons n_c in the conduction and holes p_v in the valence band equal, and both
    # bounded by one state of weight 1/n_k and by all n_states of the cell, the Fermi-Dirac
    # chemical potential lies within kT/2 ln(2 n_states n_k) of mid-gap (the intrinsic
    # level); at 0 K it is mid-gap.
    from ase_hamgnn.data import ReferenceTB, nibri
    from ase_hamgnn.spectra.occupations import K_BOLTZMANN_EV

    ref = ReferenceTB("nibri")
    atoms = nibri()
    ham = ref.predict(atoms)
    n = ref.n_electrons(atoms)
    eig = np.array([ham.eigvalsh(k) for k in resolve_kpts((6, 6, 1))])  # ASE's mesh
    states = np.sort(eig.ravel())
    vbm, cbm = states[n * 36 - 1], states[n * 36]
    assert cbm - vbm > 1.0  # an insulator
    mid = 0.5 * (vbm + cbm)
    assert ham.fermi_level(n, (6, 6, 1)) == pytest.approx(mid, abs=1e-12)
    with np.errstate(over="raise", invalid="raise"):  # no overflow
        ef = ham.fermi_level(n, (6, 6, 1), temperature=temperature)
    kt = K_BOLTZMANN_EV * temperature
    assert vbm < ef < cbm
    assert abs(ef - mid) <= 0.5 * kt * np.log(2 * ham.n_spin_orbitals * 36)
    occ = 1.0 / (1.0 + np.exp(np.clip((eig - ef) / kt, -700, 700)))
    assert occ.sum() / 36 == pytest.approx(n, abs=1e-9)


def test_fermi_level_on_a_partly_filled_degenerate_level():
    # s chain, E(k) = 1 - 2 cos(2 pi k) eV on the Γ-centred 4-point mesh: -1, +1 (four states
    # at k = +-1/4), 3.
    # Three electrons per cell fill 12 of the 16 states: the level at +1 eV is full and E_F is
    # mid-gap (2 eV); one electron fills half of it and E_F is the level itself, at any T.
    chain = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    t = -np.eye(2)
    ham = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain, {
        (0, 0, (0, 0, 0)): np.eye(2), (0, 0, (1, 0, 0)): t, (0, 0, (-1, 0, 0)): t})
    GAMMA_4 = {"size": (4, 1, 1), "gamma": True}  # k = 0, +-1/4, 1/2
    assert ham.fermi_level(1.5, GAMMA_4) == pytest.approx(2.0, abs=1e-12)
    assert ham.fermi_level(1.0, GAMMA_4) == pytest.approx(1.0, abs=1e-12)
    assert ham.fermi_level(0.75, GAMMA_4) == pytest.approx(1.0, abs=1e-12)
    for temperature in (0.1, 300.0):
        assert ham.fermi_level(1.0, GAMMA_4, temperature) == pytest.approx(1.0, abs=1e-9)
