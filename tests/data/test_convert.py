"""`ase-hamgnn dataset convert`: DeepH folders, OpenMX .scfout files and HamGNN
graph_data.npz -> the dataset format of write_dataset.

The DFT stand-in here is the SYNTHETIC reference model (ReferenceTB), written in each format
by our writers (the .scfout writer is a test-only tool of tests/data/test_openmx.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from openmx_reference import FIXTURES, OPENMX_HARTREE_IN_EV, eigenvalues, grid_point

from ase_hamgnn import keys as K
from ase_hamgnn.cli import main
from ase_hamgnn.data import (
    HamiltonianDataset,
    ReferenceTB,
    generate_configurations,
    read_manifest,
    read_record,
    record_to_hamiltonian,
    write_dataset,
)
from ase_hamgnn.data.dataset import record_path
from ase_hamgnn.data.io.convert import convert_dataset, find_deeph_folders, find_source_files
from ase_hamgnn.data.io.deeph import write_deeph
from ase_hamgnn.data.io.hamgnn_npz import write_hamgnn
from ase_hamgnn.errors import DatasetError

NIBRI_SPECIES = {"Ni": ("Ni6.0H-s1d1", "Ni_PBE19H"), "Br": ("Br7.0-s1p1", "Br_PBE19"),
                 "I": ("I7.0-s1p1", "I_PBE19")}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    ref = ReferenceTB("nibri", overlap=True)
    confs = generate_configurations("nibri", "1x1", 4, rng=7)
    root = tmp_path_factory.mktemp("dft")
    hams = [ref.predict(a) for a in confs]
    for n, ham in enumerate(hams):
        write_deeph(ham, root / f"config_{n:03d}")
    return root, ref, confs, hams


def test_convert_matches_reference_generator(tmp_path, source):
    root, ref, confs, hams = source
    manifest = convert_dataset(root, tmp_path / "conv", basis=ref.basis, cutoff=ref.cutoff,
                               rng=3, progress=False)
    assert manifest["synthetic"] is False and "DeepH" in manifest["description"]
    assert manifest["n_records"] == 4 and manifest["overlap"] is True
    assert manifest["generation"]["folders"] == [f"config_{n:03d}" for n in range(4)]
    write_dataset(ref, confs, tmp_path / "ref", rng=3, progress=False)
    ref_manifest = read_manifest(tmp_path / "ref")
    assert manifest["split"] == ref_manifest["split"]
    assert manifest["basis"] == ref_manifest["basis"] and manifest["cutoff"] == ref.cutoff
    for n in range(4):
        mine, theirs = read_record(record_path(tmp_path / "conv", n)), \
            read_record(record_path(tmp_path / "ref", n))
        assert set(mine) == set(theirs)
        for key in (K.EDGE_INDEX, K.CELL_SHIFTS, K.ATOMIC_NUMBERS):
            np.testing.assert_array_equal(mine[key], theirs[key])
        for key in (K.H_ONSITE, K.H_EDGE, K.S_ONSITE, K.S_EDGE, K.MOMENTS):
            np.testing.assert_allclose(mine[key], theirs[key], atol=1e-12)
        assert record_to_hamiltonian(mine).max_abs_difference(hams[n]) < 1e-12
    data = HamiltonianDataset(tmp_path / "conv", split="all")[0]
    assert data[K.H_EDGE].dtype.is_complex


def test_default_cutoff_covers_the_blocks_and_resume(tmp_path, source):
    root, *_ = source
    first = convert_dataset(root, tmp_path / "d", progress=False)
    again = convert_dataset(root, tmp_path / "d", progress=False)  # resumes, same manifest
    assert first == again
    assert first["basis"]["Ni"] == [[1, 0], [3, 2]]  # labels from l only (1s, 3d)
    with pytest.raises(DatasetError, match="cutoff"):
        convert_dataset(root, tmp_path / "e", cutoff=1.0, progress=False)


def test_cli_convert(tmp_path, source, capsys):
    root, *_ = source
    assert main(["dataset", "convert", "--from", "deeph", str(root), "--out",
                 str(tmp_path / "cli"), "--seed", "1"]) == 0
    assert "wrote 4 records" in capsys.readouterr().out
    assert read_manifest(tmp_path / "cli")["n_records"] == 4
    with pytest.raises(SystemExit):
        main(["dataset", "convert", "--from", "siesta", str(root), "--out", str(tmp_path)])
    with pytest.raises(SystemExit):  # the reference-model command still needs --out
        main(["dataset", "-n", "2"])


def test_no_folders(tmp_path):
    with pytest.raises(DatasetError, match="no DeepH folder"):
        find_deeph_folders(tmp_path)
    with pytest.raises(DatasetError, match="not a folder"):
        find_deeph_folders(tmp_path / "missing")


def test_broken_source_folder(tmp_path, source):
    root, ref, confs, hams = source
    broken = tmp_path / "src"
    write_deeph(hams[0], broken / "a")
    path = broken / "a" / "hamiltonians.h5"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match="truncated"):
        convert_dataset(broken, tmp_path / "out", progress=False)


def _same_records(a, b, n, hams):
    for index in range(n):
        mine, theirs = read_record(record_path(a, index)), read_record(record_path(b, index))
        assert set(mine) == set(theirs)
        for key in (K.EDGE_INDEX, K.CELL_SHIFTS, K.ATOMIC_NUMBERS):
            np.testing.assert_array_equal(mine[key], theirs[key])
        for key in (K.H_ONSITE, K.H_EDGE, K.S_ONSITE, K.S_EDGE, K.MOMENTS, K.POSITIONS):
            np.testing.assert_allclose(mine[key], theirs[key], atol=1e-12)
        back = record_to_hamiltonian(mine)  # shell labels come from the source (1s, 3d, ...)
        for k in ([0, 0, 0], [0.3, -0.2, 0.1]):
            np.testing.assert_allclose(back.hk(k).toarray(), hams[index].hk(k).toarray(),
                                       atol=1e-12)


def test_cli_convert_openmx(tmp_path, source, capsys):
    from test_openmx import _write_scfout

    _, ref, confs, hams = source
    runs = tmp_path / "runs"
    for n, ham in enumerate(hams[:2]):
        # the stored input's initial moments are what the converter takes: write them
        m = ham.geometry.moments
        size = np.linalg.norm(m, axis=1)
        theta = np.degrees(np.arccos(np.clip(m[:, 2] / np.where(size > 0, size, 1), -1, 1)))
        phi = np.degrees(np.arctan2(m[:, 1], m[:, 0]))
        angles = [(5.0 + s / 2, 5.0 - s / 2, t, p) for s, t, p in zip(size, theta, phi)]
        _write_scfout((runs / f"r{n}").mkdir(parents=True) or runs / f"r{n}" / "nibri.scfout",
                      ham, NIBRI_SPECIES, version=0 if n % 2 else 3, angles=angles)
    assert [p.parent.name for p in find_source_files(runs, "openmx")] == ["r0", "r1"]
    assert main(["dataset", "convert", "--from", "openmx", str(runs), "--out",
                 str(tmp_path / "omx"), "--cutoff", str(ref.cutoff), "--seed", "3"]) == 0
    assert "wrote 2 records" in capsys.readouterr().out
    manifest = read_manifest(tmp_path / "omx")
    assert manifest["synthetic"] is False and "OpenMX" in manifest["description"]
    assert manifest["generation"]["sources"] == ["r0/nibri.scfout", "r1/nibri.scfout"]
    # OpenMX cells are periodic in 3D: compare with the reference dataset of 3D-periodic cells
    periodic = []
    for a in confs[:2]:
        a = a.copy()
        a.pbc = True
        periodic.append(a)
    write_dataset(ref, periodic, tmp_path / "ref", rng=3, progress=False)
    ref_hams = [ref.predict(a) for a in periodic]
    assert manifest["split"] == read_manifest(tmp_path / "ref")["split"]
    _same_records(tmp_path / "omx", tmp_path / "ref", 2, ref_hams)


def test_cli_convert_hamgnn(tmp_path, source, capsys):
    _, ref, confs, hams = source
    write_hamgnn(hams[:2], tmp_path / "src" / "a" / "graph_data.npz")
    write_hamgnn(hams[2:3], tmp_path / "src" / "b" / "graph_data.npz")
    assert main(["dataset", "convert", "--from", "hamgnn", str(tmp_path / "src"), "--out",
                 str(tmp_path / "hg"), "--cutoff", str(ref.cutoff), "--seed", "3"]) == 0
    assert "wrote 3 records" in capsys.readouterr().out
    manifest = read_manifest(tmp_path / "hg")
    assert manifest["generation"]["sources"] == ["a/graph_data.npz#0", "a/graph_data.npz#1",
                                                 "b/graph_data.npz#0"]
    assert manifest["generation"]["length_unit"] == "bohr"
    periodic = []
    for a in confs[:3]:
        a = a.copy()
        a.pbc = True
        periodic.append(a)
    write_dataset(ref, periodic, tmp_path / "ref", rng=3, progress=False)
    _same_records(tmp_path / "hg", tmp_path / "ref", 3, [ref.predict(a) for a in periodic])
    # one file as the source works too, with the default cutoff
    single = convert_dataset(tmp_path / "src" / "b" / "graph_data.npz", tmp_path / "one",
                             source_format="hamgnn", progress=False)
    assert single["n_records"] == 1 and single["generation"]["sources"] == ["graph_data.npz#0"]


def test_no_source_files(tmp_path):
    with pytest.raises(DatasetError, match="no .scfout file"):
        convert_dataset(tmp_path, tmp_path / "o", source_format="openmx", progress=False)
    with pytest.raises(DatasetError, match="does not exist"):
        convert_dataset(tmp_path / "x.npz", tmp_path / "o", source_format="hamgnn",
                        progress=False)
    with pytest.raises(ValueError, match="unknown source format"):
        convert_dataset(tmp_path, tmp_path / "o", source_format="siesta", progress=False)


def test_cli_converts_a_real_deeph_folder(tmp_path, capsys):
    """MoTe2 from OpenMX 3.9.9 via DeepH-pack (fixtures/PROVENANCE.md): the converted record
    gives the eigenvalues OpenMX printed."""
    folder = FIXTURES / "mote2_deeph"
    assert main(["dataset", "convert", "--from", "deeph", str(folder), "--out",
                 str(tmp_path / "mote2")]) == 0
    assert "wrote 1 records" in capsys.readouterr().out
    ham = record_to_hamiltonian(record_path(tmp_path / "mote2", 0))
    _, kpoints, reference = eigenvalues(FIXTURES / "mote2_openmx.out")
    for n in (0, 17, 40):
        np.testing.assert_allclose(ham.eigvalsh(grid_point(kpoints[n], (9, 9, 1))),
                                   np.repeat(reference[n][:, 0], 2) * OPENMX_HARTREE_IN_EV,
                                   rtol=0, atol=1e-6)


def test_cli_reads_stored_inputs_written_like_openmx_examples(tmp_path, source, capsys):
    """Comments on block lines and FRAC coordinates, as in OpenMX's own example inputs."""
    from test_openmx import _input_lines, _write_scfout

    _, ref, _, hams = source
    lines = _input_lines(hams[0], NIBRI_SPECIES, unit="FRAC", comments=True)
    (tmp_path / "run").mkdir()
    path = _write_scfout(tmp_path / "run" / "nibri.scfout", hams[0], NIBRI_SPECIES,
                         lines=lines)
    assert main(["dataset", "convert", "--from", "openmx", str(path), "--out",
                 str(tmp_path / "omx"), "--cutoff", str(ref.cutoff)]) == 0
    assert "wrote 1 records" in capsys.readouterr().out
    back = record_to_hamiltonian(record_path(tmp_path / "omx", 0))
    assert [int(z) for z in back.geometry.numbers] == [int(z) for z in hams[0].geometry.numbers]


def test_cli_errors_are_one_line(tmp_path, capsys):
    """A DatasetError ends the command with its message on one line and a non-zero status."""
    assert main(["dataset", "convert", "--from", "openmx", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "does not exist" in captured.err and "Traceback" not in captured.err
    (tmp_path / "bad.npz").write_bytes(b"not an archive")
    assert main(["dataset", "convert", "--from", "hamgnn", str(tmp_path / "bad.npz"),
                 "--out", str(tmp_path / "o")]) == 1
    assert "not an .npz file" in capsys.readouterr().err
