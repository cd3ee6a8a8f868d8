"""The DeepH folder format: round trips, H(k), the orbital convention on hand-made files,
and clear errors for broken folders."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pytest
from openmx_reference import FIXTURES, OPENMX_HARTREE_IN_EV, eigenvalues, grid_point
from tb_helpers import random_tb

from ase_hamgnn import OrbitalBasis, TBHamiltonian
from ase_hamgnn.data.io.conventions import orbital_transform
from ase_hamgnn.data.io.deeph import (
    basis_from_orbital_types,
    is_deeph_folder,
    read_deeph,
    write_deeph,
)
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.symmetry import wigner_d

TOL = 1e-12


@pytest.fixture
def spd_basis() -> OrbitalBasis:
    return OrbitalBasis({"Ni": ["4s", "3d", "4f"], "Br": ["4s", "4p"]})


@pytest.fixture
def ham(rng, spd_basis, nibr2_like) -> TBHamiltonian:
    return random_tb(rng, nibr2_like, spd_basis, overlap=True)


def test_round_trip_spinful(tmp_path, ham, spd_basis, rng):
    folder = write_deeph(ham, tmp_path / "s0", fermi_level=-1.5)
    assert is_deeph_folder(folder)
    back = read_deeph(folder, basis=spd_basis)
    assert back.basis == spd_basis
    assert back.max_abs_difference(ham) < TOL
    np.testing.assert_allclose(back.geometry.moments, ham.geometry.moments, atol=TOL)
    np.testing.assert_allclose(back.geometry.positions, ham.geometry.positions, atol=0)
    np.testing.assert_allclose(back.geometry.cell, ham.geometry.cell, atol=0)
    np.testing.assert_array_equal(back.geometry.pbc, ham.geometry.pbc)
    for k in rng.random((4, 3)):
        np.testing.assert_allclose(back.hk(k).toarray(), ham.hk(k).toarray(), atol=TOL)
        np.testing.assert_allclose(back.sk(k).toarray(), ham.sk(k).toarray(), atol=TOL)
        np.testing.assert_allclose(back.eigvalsh(k), ham.eigvalsh(k), atol=1e-10)
    info = json.loads((folder / "info.json").read_text())
    assert info["isspinful"] is True and info["fermi_level"] == -1.5
    assert not info["isorthogonal"]


def test_files_follow_deeph_layout(tmp_path, ham):
    folder = write_deeph(ham, tmp_path / "s0")
    n_ni, n_br = 1 + 5 + 7, 1 + 3
    with h5py.File(folder / "hamiltonians.h5", "r") as f:
        assert "[0, 0, 0, 1, 1]" in f  # 1-based atoms
        assert "[0, 0, 0, 0, 0]" not in f
        assert f["[0, 0, 0, 1, 2]"].shape == (2 * n_ni, 2 * n_br)
        assert f["[0, 0, 0, 1, 2]"].dtype == np.complex128
        br = f["[1, 0, 0, 2, 3]"][()]
    with h5py.File(folder / "overlaps.h5", "r") as f:
        assert f["[0, 0, 0, 1, 2]"].shape == (n_ni, n_br)  # spinless, real
        assert f["[0, 0, 0, 1, 2]"].dtype == np.float64
    # s and p shells are the same functions in both conventions: Br-Br blocks unchanged
    np.testing.assert_array_equal(br, ham.block(1, 2, (1, 0, 0)))
    lat = np.loadtxt(folder / "lat.dat")
    np.testing.assert_array_equal(lat.T, ham.geometry.cell)  # columns are lattice vectors
    pos = np.loadtxt(folder / "site_positions.dat")
    np.testing.assert_array_equal(pos.T, ham.geometry.positions)
    assert (folder / "orbital_types.dat").read_text().splitlines() == ["0 2 3", "0 1", "0 1"]
    assert np.loadtxt(folder / "element.dat").tolist() == [28, 35, 35]
    mag = np.loadtxt(folder / "magmom.txt")
    assert mag.shape == (3, 4) and mag[0, 0] == 1.0 and mag[1, 0] == 0.0


def test_spinless_round_trip(tmp_path, rng, basis, nibr2_like):
    ham = random_tb(rng, nibr2_like, basis)
    # spin-independent, real version of it
    up = {r: np.real(m.toarray()) for r, m in ham.h_r.items()}
    blocks = {}
    off = ham.offsets
    for r, m in up.items():
        for i in range(3):
            for j in range(3):
                ni, nj = (off[i + 1] - off[i]) // 2, (off[j + 1] - off[j]) // 2
                b = m[off[i]:off[i] + ni, off[j]:off[j] + nj]
                blocks[(i, j, r)] = np.kron(np.eye(2), b)
    for (i, j, r), b in list(blocks.items()):  # make it Hermitian
        mr = tuple(-x for x in r)
        if (j, i, mr) in blocks and (i, j, r) < (j, i, mr):
            blocks[(j, i, mr)] = b.T
    spinless = TBHamiltonian.from_blocks(basis, nibr2_like, blocks)
    folder = write_deeph(spinless, tmp_path / "s", spinful=False)
    assert json.loads((folder / "info.json").read_text())["isspinful"] is False
    with h5py.File(folder / "hamiltonians.h5", "r") as f:
        assert f["[0, 0, 0, 1, 1]"].dtype == np.float64
        assert f["[0, 0, 0, 1, 1]"].shape == (6, 6)
    back = read_deeph(folder, basis=basis)
    assert back.max_abs_difference(spinless) < TOL
    with pytest.raises(ValueError, match="depends on spin"):
        write_deeph(ham, tmp_path / "bad", spinful=False)


def _hand_made(folder, shells, h_blocks, *, spinful=False, magmom=True, info=None):
    """A one-atom DeepH folder written directly (OpenMX orbital order)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "element.dat").write_text("26\n")
    (folder / "lat.dat").write_text("3 0 0\n0 3 0\n0 0 3\n")
    (folder / "site_positions.dat").write_text("0\n0\n0\n")
    (folder / "orbital_types.dat").write_text(" ".join(map(str, shells)) + "\n")
    (folder / "info.json").write_text(json.dumps(info or {"isspinful": spinful,
                                                          "fermi_level": 0.0}))
    if magmom:
        (folder / "magmom.txt").write_text("1 2.0 90 0\n")
    with h5py.File(folder / "hamiltonians.h5", "w") as f:
        for key, b in h_blocks.items():
            f[key] = b
    return folder


def test_hand_made_crystal_field_keeps_its_axis(tmp_path):
    """A d shell split by a field along z (OpenMX order: z2, x2-y2, xy, xz, yz) must, in our
    y-polar orbitals, still be symmetric under rotations about z -- and not about y."""
    onsite = np.diag([1.0, 0.2, 0.2, -0.5, -0.5])
    folder = _hand_made(tmp_path / "fe", [2], {"[0, 0, 0, 1, 1]": onsite})
    ham = read_deeph(folder)
    assert ham.basis == OrbitalBasis({"Fe": ["3d"]})
    np.testing.assert_allclose(ham.geometry.moments, [[2.0, 0.0, 0.0]], atol=1e-15)
    h = ham.block(0, 0)[:5, :5].real
    np.testing.assert_allclose(ham.block(0, 0)[5:, 5:], h, atol=0)  # spin independent
    np.testing.assert_allclose(h, orbital_transform("openmx", 2) @ onsite
                               @ orbital_transform("openmx", 2).T, atol=TOL)
    c, s = np.cos(0.7), np.sin(0.7)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    ry = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    d = wigner_d(2, rz)
    # (x2-y2, xy) and (xz, yz) are degenerate pairs, so the block is axially symmetric
    np.testing.assert_allclose(d @ h @ d.T, h, atol=1e-12)
    d = wigner_d(2, ry)
    assert np.abs(d @ h @ d.T - h).max() > 0.1
    # the eigenvector of the highest level is our image of d(3z^2-r^2)
    vals, vecs = np.linalg.eigh(h)
    np.testing.assert_allclose(vals, [-0.5, -0.5, 0.2, 0.2, 1.0], atol=1e-12)
    dz2 = vecs[:, -1] * np.sign(vecs[4, -1])
    np.testing.assert_allclose(dz2, [0, 0, -0.5, 0, np.sqrt(3) / 2], atol=1e-12)


def test_missing_partner_blocks_are_completed(tmp_path):
    hop = np.arange(9.0).reshape(3, 3)
    folder = _hand_made(tmp_path / "p", [1], {"[0, 0, 0, 1, 1]": np.eye(3),
                                              "[1, 0, 0, 1, 1]": hop})
    ham = read_deeph(folder)
    np.testing.assert_allclose(ham.block(0, 0, (-1, 0, 0))[:3, :3], hop.T)


def test_basis_labels_from_orbital_types():
    basis = basis_from_orbital_types([26, 8], [[0, 0, 1, 1, 2], [0, 1]])
    assert [s.label for s in basis.shells("Fe")] == ["1s", "2s", "2p", "3p", "3d"]
    with pytest.raises(DatasetError, match="same basis"):
        basis_from_orbital_types([26, 26], [[0, 2], [0]])


# -- errors ---------------------------------------------------------------------------------------
def test_truncated_hdf5(tmp_path, ham, spd_basis):
    folder = write_deeph(ham, tmp_path / "t")
    path = folder / "hamiltonians.h5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(DatasetError, match="truncated"):
        read_deeph(folder, basis=spd_basis)


def test_truncated_text_files(tmp_path, ham, spd_basis):
    folder = write_deeph(ham, tmp_path / "t")
    lines = (folder / "site_positions.dat").read_text().splitlines()
    (folder / "site_positions.dat").write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(DatasetError, match="site_positions"):
        read_deeph(folder, basis=spd_basis)
    folder = write_deeph(ham, tmp_path / "u")
    (folder / "orbital_types.dat").write_text("0 2 3\n0 1\n")
    with pytest.raises(DatasetError, match="orbital_types.dat has 2 lines"):
        read_deeph(folder, basis=spd_basis)


def test_missing_spin_components(tmp_path):
    folder = _hand_made(tmp_path / "m", [1], {"[0, 0, 0, 1, 1]": np.eye(3)}, spinful=True)
    with pytest.raises(DatasetError, match="spin components are missing"):
        read_deeph(folder)


def test_mismatched_basis_sizes(tmp_path, spd_basis, ham):
    folder = _hand_made(tmp_path / "m", [0, 1], {"[0, 0, 0, 1, 1]": np.eye(3)})
    with pytest.raises(DatasetError, match="basis sizes do not match"):
        read_deeph(folder)
    folder = write_deeph(ham, tmp_path / "w")
    other = OrbitalBasis({"Ni": ["4s", "3d"], "Br": ["4s", "4p"]})
    with pytest.raises(DatasetError, match="orbital_types.dat but the basis gives"):
        read_deeph(folder, basis=other)


def test_moments_required_for_spinful_data(tmp_path):
    block = np.eye(6, dtype=complex)
    folder = _hand_made(tmp_path / "n", [1], {"[0, 0, 0, 1, 1]": block}, spinful=True,
                        magmom=False)
    with pytest.raises(DatasetError, match="magmom.txt"):
        read_deeph(folder)
    ham = read_deeph(folder, moments=np.zeros((1, 3)))
    np.testing.assert_array_equal(ham.block(0, 0), block)


def test_malformed_info_and_keys(tmp_path):
    folder = _hand_made(tmp_path / "i", [0], {"[0, 0, 0, 1, 1]": np.eye(1)},
                        info={"fermi_level": 0.0})
    with pytest.raises(DatasetError, match="isspinful"):
        read_deeph(folder)
    folder = _hand_made(tmp_path / "k", [0], {"[0, 0, 0, 0, 1]": np.eye(1)})
    with pytest.raises(DatasetError, match="1-based"):
        read_deeph(folder)
    folder = _hand_made(tmp_path / "h", [0], {"[0, 0, 0, 1, 1]": np.eye(1),
                                              "[1, 0, 0, 1, 1]": np.eye(1),
                                              "[-1, 0, 0, 1, 1]": 2 * np.eye(1)})
    with pytest.raises(DatasetError, match="not Hermitian"):
        read_deeph(folder)
    assert not is_deeph_folder(tmp_path)


# -- a real DeepH folder: MoTe2 from OpenMX 3.9.9 via DeepH-pack (fixtures/PROVENANCE.md) ----
MOTE2 = FIXTURES / "mote2_deeph"
MOTE2_GRID = (9, 9, 1)
#: OpenMX diagonalizes the Hamiltonian of its last SCF step; the stored one agrees with it to
#: ~1e-7 eV (measured: 1.5e-7 eV at most, over all 41 k-points and 57 bands).
DFT_TOL = 1e-6


def test_real_folder_gives_the_eigenvalues_openmx_printed(caplog):
    """Generalized eigenvalues of H(k), S(k) against OpenMX's own, band by band, at every
    k-point OpenMX printed (41, in Hartree, converted with the Hartree the folder was written
    with); spinless data give each band twice."""
    with caplog.at_level(logging.INFO, logger="ase_hamgnn.data.io.blocks"):
        ham = read_deeph(MOTE2)
    assert "H symmetrized" in caplog.text and "S symmetrized" in caplog.text
    shells = ["1s", "2s", "3s", "2p", "3p", "3d", "4d"]
    assert ham.basis == OrbitalBasis({"Mo": shells, "Te": shells})
    mu, kpoints, reference = eigenvalues(FIXTURES / "mote2_openmx.out")
    assert len(kpoints) == 41
    fermi = json.loads((MOTE2 / "info.json").read_text())["fermi_level"]
    assert fermi == pytest.approx(mu * OPENMX_HARTREE_IN_EV, abs=1e-9)
    for printed, values in zip(kpoints, reference):
        assert values.shape == (57, 2)
        np.testing.assert_array_equal(values[:, 0], values[:, 1])  # spinless run
        energies = ham.eigvalsh(grid_point(printed, MOTE2_GRID))
        np.testing.assert_allclose(energies, np.repeat(values[:, 0], 2) * OPENMX_HARTREE_IN_EV,
                                   rtol=0, atol=DFT_TOL)


def test_real_folder_is_hermitian_after_reading(tmp_path):
    """Stored blocks are Hermitian to 9e-9 eV; what is read is exactly Hermitian, so saving,
    loading and tiling keep the physics: a 1 x 2 x 1 supercell at K has the bands of the
    cell at k = (K1, K2 / 2) and (K1, K2 / 2 + 1/2)."""
    ham = read_deeph(MOTE2)
    for store in (ham.h_r, ham.s_r):
        for r, mat in store.items():
            assert abs(mat - store[tuple(-x for x in r)].conj().T).max() == 0.0
    again = TBHamiltonian.load(ham.save(tmp_path / "mote2.npz"))
    assert again.max_abs_difference(ham) == 0.0
    mu, kpoints, reference = eigenvalues(FIXTURES / "mote2_openmx.out")
    k = grid_point(kpoints[5], MOTE2_GRID)
    partner = k + [0.0, 0.5, 0.0]
    expected = np.sort(np.concatenate([ham.eigvalsh(k), ham.eigvalsh(partner)]))
    big = again.tile((1, 2, 1))
    np.testing.assert_allclose(big.eigvalsh([k[0], 2 * k[1], k[2]]), expected, atol=1e-9)
    np.testing.assert_allclose(ham.eigvalsh(k), np.repeat(reference[5][:, 0], 2)
                               * OPENMX_HARTREE_IN_EV, atol=DFT_TOL)
