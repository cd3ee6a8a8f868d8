"""HamGNN's graph_data.npz: exact round trips, H(k), the padded OpenMX-order slots checked by
rotating in the foreign convention, units, and clear errors for broken files."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from tb_helpers import random_tb

from ase_hamgnn import OrbitalBasis
from ase_hamgnn.data.io.conventions import foreign_orbitals
from ase_hamgnn.data.io.hamgnn_npz import HAMGNN_LAYOUTS, orbital_slots, read_hamgnn, write_hamgnn
from ase_hamgnn.data.io.units import BOHR_IN_ANGSTROM, HARTREE_IN_EV
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.symmetry import random_rotation, su2_from_rotation, wigner_d

TOL = 1e-12


@pytest.fixture
def ham(rng, basis, nibr2_like):
    return random_tb(rng, nibr2_like, basis, overlap=True)


def _graphs(path):
    return np.load(path, allow_pickle=True)["graph"].item()


def _save(path, graphs):
    np.savez(path, graph=np.array(graphs, dtype=object))
    return path


def test_round_trip_and_hk(tmp_path, ham, basis, rng):
    other = random_tb(rng, ham.to_atoms(), basis, overlap=True)
    path = write_hamgnn([ham, other], tmp_path / "graph_data.npz")
    back = read_hamgnn(path, basis=basis, pbc=ham.geometry.pbc)
    assert len(back) == 2
    for mine, orig in zip(back, [ham, other]):
        assert mine.max_abs_difference(orig) < TOL
        np.testing.assert_allclose(mine.geometry.positions, orig.geometry.positions, atol=1e-13)
        np.testing.assert_allclose(mine.geometry.cell, orig.geometry.cell, atol=1e-13)
        np.testing.assert_allclose(mine.geometry.moments, orig.geometry.moments, atol=1e-13)
        for k in rng.random((3, 3)):
            np.testing.assert_allclose(mine.hk(k).toarray(), orig.hk(k).toarray(), atol=TOL)
            np.testing.assert_allclose(mine.sk(k).toarray(), orig.sk(k).toarray(), atol=TOL)
    # the default basis comes from the slots the overlap diagonal fills
    inferred = read_hamgnn(path)[0]
    assert inferred.basis == OrbitalBasis({"Ni": ["1s", "3d"], "Br": ["1s", "2p"]})
    k = rng.random(3)
    np.testing.assert_allclose(inferred.hk(k).toarray(), ham.hk(k).toarray(), atol=TOL)


def test_file_layout(tmp_path, ham):
    path = write_hamgnn([ham], tmp_path / "g.npz")
    g = _graphs(path)[0]
    n_edges = g.edge_index.shape[1]
    assert g.Hon.shape == (3, 4 * 14 * 14) and g.iHoff.shape == (n_edges, 4 * 14 * 14)
    assert g.Son.shape == (3, 14 * 14) and g.Soff.shape == (n_edges, 14 * 14)
    assert g.cell.shape == (1, 3, 3)
    inv = g.inv_edge_idx.numpy()
    np.testing.assert_array_equal(g.edge_index.numpy()[:, inv], g.edge_index.numpy()[::-1])
    np.testing.assert_array_equal(g.cell_shift.numpy()[inv], -g.cell_shift.numpy())
    np.testing.assert_allclose(g.nbr_shift.numpy(), g.cell_shift.numpy().astype(float)
                               @ g.cell.numpy()[0], atol=1e-12)
    # Bohr and Hartree: Br's s orbital (slot 0), up-up, on site
    np.testing.assert_allclose(g.pos.numpy() * BOHR_IN_ANGSTROM, ham.geometry.positions,
                               atol=1e-13)
    assert abs(g.Hon[1, 0].item() * HARTREE_IN_EV - ham.block(1, 1)[0, 0].real) < 1e-13
    # Ni s + d: slots 0 and 9..13 of the 14-orbital square (s s s p p d)
    assert orbital_slots([0, 2], 14).tolist() == [0, 9, 10, 11, 12, 13]
    assert orbital_slots([2, 0], 19).tolist() == [9, 10, 11, 12, 13, 0]
    son = g.Son.numpy().reshape(3, 14, 14)
    assert np.flatnonzero(np.diag(son[0])).tolist() == [0, 9, 10, 11, 12, 13]
    # the reverse edge's stored down-up quarter is the Hermitian partner
    full = (g.Hoff + 1j * g.iHoff).numpy().reshape(-1, 28, 28)
    np.testing.assert_allclose(full[:, 14:, :14], full[inv][:, :14, 14:].conj()
                               .transpose(0, 2, 1), atol=1e-14)


def test_units_are_selectable(tmp_path, ham, basis):
    path = write_hamgnn([ham], tmp_path / "g.npz")
    graphs = _graphs(path)
    g = graphs[0]
    g.pos = g.pos * BOHR_IN_ANGSTROM
    g.cell = g.cell * BOHR_IN_ANGSTROM
    for key in ("Hon", "Hoff", "iHon", "iHoff"):
        setattr(g, key, getattr(g, key) * HARTREE_IN_EV)
    _save(tmp_path / "a.npz", graphs)
    back = read_hamgnn(tmp_path / "a.npz", basis=basis, length_unit="angstrom",
                       energy_unit="ev", pbc=ham.geometry.pbc)[0]
    assert back.max_abs_difference(ham) < 1e-11
    np.testing.assert_allclose(back.geometry.positions, ham.geometry.positions, atol=1e-13)
    with pytest.raises(ValueError, match="length_unit"):
        read_hamgnn(path, length_unit="nm")


def test_f_shells_need_the_26_layout(tmp_path, rng, nibr2_like):
    spdf = OrbitalBasis({"Ni": ["4s", "3d", "4f"], "Br": ["4s", "4p", "5p"]})
    ham = random_tb(rng, nibr2_like, spdf, overlap=True)
    path = write_hamgnn([ham], tmp_path / "f.npz")
    assert _graphs(path)[0].Son.shape[1] == 26 * 26
    assert read_hamgnn(path, basis=spdf, pbc=ham.geometry.pbc)[0].max_abs_difference(ham) < TOL
    with pytest.raises(DatasetError, match="larger nao_max"):
        orbital_slots([3], 19)


def _foreign_wigner(l, g, rng):  # noqa: E741
    """D(g) of OpenMX's real orbitals, from the functions alone: Y(g r) = D Y(r)."""
    pts = rng.normal(size=(8 * (2 * l + 1), 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    y = foreign_orbitals("openmx", l, pts)
    return np.linalg.lstsq(y, foreign_orbitals("openmx", l, pts @ g.T), rcond=None)[0].T


def test_rotating_in_the_file_convention_equals_rotating_in_ours(tmp_path, ham, basis, rng):
    """Rotate the padded blocks with OpenMX-convention Wigner matrices (and positions, cell,
    moments) inside the file; reading must give our blocks rotated with e3nn's matrices."""
    g_rot = random_rotation(rng)
    u = su2_from_rotation(g_rot)
    path = write_hamgnn([ham], tmp_path / "g.npz")
    graphs = _graphs(path)
    g = graphs[0]
    pad = scipy.linalg.block_diag(*[_foreign_wigner(l, g_rot, rng) for l in HAMGNN_LAYOUTS[14]])
    d_file = np.kron(u, pad)
    full = (torch.cat([g.Hon, g.Hoff]) + 1j * torch.cat([g.iHon, g.iHoff])).numpy()
    full = full.reshape(-1, 28, 28)
    rotated = d_file @ full @ d_file.conj().T
    s = torch.cat([g.Son, g.Soff]).numpy().reshape(-1, 14, 14)
    s_rot = pad @ s @ pad.T
    n = len(g.Hon)
    g.Hon, g.Hoff = (torch.as_tensor(x.real.reshape(len(x), -1)) for x in (rotated[:n],
                                                                            rotated[n:]))
    g.iHon, g.iHoff = (torch.as_tensor(x.imag.reshape(len(x), -1)) for x in (rotated[:n],
                                                                              rotated[n:]))
    g.Son, g.Soff = (torch.as_tensor(x.reshape(len(x), -1)) for x in (s_rot[:n], s_rot[n:]))
    g.pos = g.pos @ torch.as_tensor(g_rot.T)
    g.cell = g.cell @ torch.as_tensor(g_rot.T)
    g.spin_vec = g.spin_vec @ torch.as_tensor(g_rot.T)
    back = read_hamgnn(_save(tmp_path / "rot.npz", graphs), basis=basis,
                       pbc=ham.geometry.pbc)[0]
    np.testing.assert_allclose(back.geometry.positions, ham.geometry.positions @ g_rot.T,
                               atol=1e-12)
    np.testing.assert_allclose(back.geometry.moments, ham.geometry.moments @ g_rot.T,
                               atol=1e-12)
    ls = [[sh.l for sh in basis.shells(int(z))] for z in ham.geometry.numbers]
    d_ours = [np.kron(u, scipy.linalg.block_diag(*[wigner_d(l, g_rot) for l in la]))
              for la in ls]
    for r in [(0, 0, 0), (1, 0, 0), (-1, 1, 0)]:
        for i in range(3):
            for j in range(3):
                np.testing.assert_allclose(back.block(i, j, r),
                                           d_ours[i] @ ham.block(i, j, r) @ d_ours[j].conj().T,
                                           atol=1e-10)


def test_down_up_quarter(tmp_path, ham, basis):
    """HamGNN's scripts store H_du = conj(H_ud) element-wise; by default H_du comes from
    Hermiticity instead, and 'stored' keeps what the file says."""
    path = write_hamgnn([ham], tmp_path / "g.npz")
    graphs = _graphs(path)
    g = graphs[0]
    for re_key, im_key in (("Hon", "iHon"), ("Hoff", "iHoff")):
        re = getattr(g, re_key).numpy().reshape(-1, 28, 28).copy()
        im = getattr(g, im_key).numpy().reshape(-1, 28, 28).copy()
        re[:, 14:, :14], im[:, 14:, :14] = re[:, :14, 14:], -im[:, :14, 14:]
        setattr(g, re_key, torch.as_tensor(re.reshape(len(re), -1)))
        setattr(g, im_key, torch.as_tensor(im.reshape(len(im), -1)))
    path = _save(tmp_path / "hamgnn_style.npz", graphs)
    back = read_hamgnn(path, basis=basis, pbc=ham.geometry.pbc)[0]
    assert back.max_abs_difference(ham) < TOL
    with pytest.raises(DatasetError, match="Hermitian"):
        read_hamgnn(path, basis=basis, down_up="stored")


def test_collinear_and_spinless_layouts(tmp_path, ham, basis):
    path = write_hamgnn([ham], tmp_path / "g.npz")
    graphs = _graphs(path)
    g = graphs[0]
    full = torch.cat([g.Hon, g.Hoff]).numpy().reshape(-1, 28, 28)
    up, dn = full[:, :14, :14], full[:, 14:, 14:]
    n = len(g.Hon)
    del g.iHon, g.iHoff
    col = np.stack([up, dn], axis=1).reshape(len(full), 2, -1)
    g.Hon, g.Hoff = torch.as_tensor(col[:n]), torch.as_tensor(col[n:])
    back = read_hamgnn(_save(tmp_path / "c.npz", graphs), basis=basis, pbc=ham.geometry.pbc)[0]
    blk = back.block(0, 1, (0, 0, 0))
    assert np.abs(blk[:6, 4:]).max() == 0 and np.abs(blk[6:, :4]).max() == 0
    # spin-averaged real part of the original, up block only
    g.Hon, g.Hoff = (torch.as_tensor(x.reshape(len(x), -1)) for x in (up[:n], up[n:]))
    del g.spin_length, g.spin_vec
    spinless = read_hamgnn(_save(tmp_path / "s.npz", graphs), basis=basis)[0]
    np.testing.assert_array_equal(spinless.geometry.moments, np.zeros((3, 3)))
    b = spinless.block(0, 0)
    np.testing.assert_allclose(b[:6, :6], b[6:, 6:], atol=0)


def test_errors(tmp_path, ham, basis):
    path = write_hamgnn([ham], tmp_path / "g.npz")
    data = path.read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated"):
        read_hamgnn(tmp_path / "t.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DatasetError, match="no 'graph'"):
        read_hamgnn(tmp_path / "other.npz")
    graphs = _graphs(path)
    del graphs[0].iHoff
    with pytest.raises(DatasetError, match="spin components are missing"):
        read_hamgnn(_save(tmp_path / "m.npz", graphs))
    del graphs[0].iHon
    with pytest.raises(DatasetError, match="spin components are missing"):
        read_hamgnn(_save(tmp_path / "m2.npz", graphs))
    graphs = _graphs(path)
    del graphs[0].spin_vec
    with pytest.raises(DatasetError, match="moments="):
        read_hamgnn(_save(tmp_path / "n.npz", graphs))
    assert read_hamgnn(tmp_path / "n.npz", moments=[ham.geometry.moments], basis=basis,
                       pbc=ham.geometry.pbc)[0].max_abs_difference(ham) < TOL
    other = OrbitalBasis({"Ni": ["4s", "4p"], "Br": ["4s", "4p"]})
    with pytest.raises(DatasetError, match="basis sizes do not match"):
        read_hamgnn(path, basis=other)
    graphs = _graphs(path)
    graphs[0].Son = graphs[0].Son[:, :100]
    with pytest.raises(DatasetError, match="basis sizes do not match"):
        read_hamgnn(_save(tmp_path / "b.npz", graphs))
    graphs = _graphs(path)
    keep = graphs[0].inv_edge_idx.numpy() > 0  # drop one edge, keep its reverse
    for key in ("Hoff", "iHoff", "Soff", "cell_shift"):
        setattr(graphs[0], key, getattr(graphs[0], key)[keep])
    graphs[0].edge_index = graphs[0].edge_index[:, keep]
    with pytest.raises(DatasetError, match="no reverse edge"):
        read_hamgnn(_save(tmp_path / "r.npz", graphs))


class _Touch:
    """Pickles as a call that creates ``marker``: what a hostile file could run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_no_code_from_the_file_is_run(tmp_path):
    marker = tmp_path / "ran"
    path = _save(tmp_path / "evil.npz", {0: _Touch(marker)})
    with pytest.raises(DatasetError, match=r"pathlib.*\.touch.*runs no code"):
        read_hamgnn(path)
    assert not marker.exists()


def test_prediction_input_is_flagged(tmp_path, ham, basis):
    """A graph whose Hon/Hoff are its Hon0/Hoff0 holds the non-self-consistent H0 that HamGNN
    predicts from, not a DFT result."""
    path = write_hamgnn([ham], tmp_path / "g.npz")
    graphs = _graphs(path)
    graphs[0].Hon0, graphs[0].Hoff0 = graphs[0].Hon.clone(), graphs[0].Hoff.clone()
    _save(path, graphs)
    with pytest.warns(UserWarning, match="prediction input, not a converged"):
        read_hamgnn(path, basis=basis)
    graphs[0].Hon0 = graphs[0].Hon0 * 0.9
    _save(path, graphs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_hamgnn(path, basis=basis)


def test_wrong_length_unit_is_flagged(tmp_path, ham, basis):
    """Positions in Bohr read as Å stretch every bond by 1.89: the nearest neighbours (Ni-Br,
    2.6 Å) come out 4.8 Å apart, twice the sum of their covalent radii."""
    path = write_hamgnn([ham], tmp_path / "g.npz")  # Bohr
    with pytest.warns(UserWarning, match=r"Ni-Br\) are 4\.8\d\d Å apart.*wrong unit"):
        read_hamgnn(path, basis=basis, length_unit="angstrom")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_hamgnn(path, basis=basis, length_unit="bohr")


def test_float32_files_are_hermitian_to_their_precision(tmp_path, ham, basis, rng):
    """HamGNN's scripts store float32: blocks then are Hermitian only to the rounding of the
    largest entry, which is accepted (and symmetrized)."""
    path = write_hamgnn([ham], tmp_path / "g.npz")
    graphs = _graphs(path)
    for key in ("Hon", "Hoff", "iHon", "iHoff"):  # entries up to ~40 Ha, Hermitian to 1e-9
        value = getattr(graphs[0], key) * 40.0
        noise = 1.0 + 1e-9 * torch.from_numpy(rng.standard_normal(tuple(value.shape)))
        setattr(graphs[0], key, (value * noise).to(torch.float32))
    _save(path, graphs)
    back = read_hamgnn(path, basis=basis)[0]
    exact = read_hamgnn(write_hamgnn([ham], tmp_path / "e.npz"), basis=basis)[0]
    k = rng.random(3)
    scale = np.abs(exact.eigvalsh(k)).max() * 40.0
    np.testing.assert_allclose(back.eigvalsh(k), 40.0 * exact.eigvalsh(k),
                               atol=8 * np.finfo(np.float32).eps * scale * 10)
