"""`ase-hamgnn dataset convert`: DeepH folders -> the dataset format of write_dataset.

The DFT stand-in here is the SYNTHETIC reference model (ReferenceTB), written as DeepH folders.
"""

from __future__ import annotations

import numpy as np
import pytest

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
from ase_hamgnn.data.convert import convert_dataset, find_deeph_folders
from ase_hamgnn.data.dataset import record_path
from ase_hamgnn.data.deeph import write_deeph
from ase_hamgnn.errors import DatasetError


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
        main(["dataset", "convert", "--from", "openmx", str(root), "--out", str(tmp_path)])
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
