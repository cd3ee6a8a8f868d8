"""Dataset folders stay consistent: one writer at a time, records tied to their manifest,
every unreadable record or manifest reported as DatasetError (and rewritten on resume),
inconsistent edge maps and non-finite blocks refused on read.

All Hamiltonians come from the SYNTHETIC reference model (ReferenceTB), not from DFT.
"""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest

from ase_hamgnn import keys as K
from ase_hamgnn.data import (
    HamiltonianDataset,
    ReferenceTB,
    generate_configurations,
    make_reference_dataset,
    read_manifest,
    read_record,
    write_dataset,
)
from ase_hamgnn.data.dataset import record_path
from ase_hamgnn.data.records import write_record
from ase_hamgnn.errors import DatasetError


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    """A 1x1 NiBrI set of 4 configurations with an overlap."""
    root = tmp_path_factory.mktemp("integrity") / "ds"
    make_reference_dataset(root, "nibri", "1x1", 4, seed=1, overlap=True, progress=False)
    return root


def _copy(src, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(src, root)
    return root


# -- one writer at a time -------------------------------------------------------------------
class ReentrantPredictor:
    """On its first prediction, starts a second writer into the same folder (a concurrent
    run with other settings) and keeps what that writer raised."""

    def __init__(self, inner, root, confs):
        self.inner, self.root, self.confs = inner, root, confs
        self.basis, self.cutoff = inner.basis, inner.cutoff
        self.second: BaseException | None = None
        self.started = False

    def predict(self, atoms):
        if not self.started:
            self.started = True
            try:
                write_dataset(self.inner, self.confs, self.root, rng=5, progress=False)
            except BaseException as exc:  # noqa: BLE001 - inspected by the test
                self.second = exc
        return self.inner.predict(atoms)


def test_a_second_writer_into_the_same_folder_is_refused(tmp_path):
    ref = ReferenceTB("nibri")
    confs = generate_configurations("nibri", "1x1", 6, rng=2)
    other = generate_configurations("nibri", "1x1", 6, rng=9)
    root = tmp_path / "ds"
    predictor = ReentrantPredictor(ref, root, other)
    manifest = write_dataset(predictor, confs, root, rng=0, progress=False)
    assert isinstance(predictor.second, DatasetError), predictor.second
    text = str(predictor.second)
    assert str(root) in text and "another process" in text
    # the first writer's data alone: every record carries the manifest's fingerprint
    ds = HamiltonianDataset(root, split="all")
    assert len(ds) == 6 and read_manifest(root) == manifest
    for i in range(len(ds)):
        ds[i]
    # the lock is released when the writer finishes: resuming works
    assert write_dataset(predictor, confs, root, rng=0, progress=False) == manifest


def test_the_loader_refuses_a_record_of_another_dataset(tmp_path, small_dir):
    root = _copy(small_dir, tmp_path)
    other = tmp_path / "other"
    make_reference_dataset(other, "nibri", "1x1", 4, seed=2, overlap=True, progress=False)
    shutil.copyfile(record_path(other, 1), record_path(root, 1))
    ds = HamiltonianDataset(root, split="all")
    ds[0]
    with pytest.raises(DatasetError, match="different dataset") as info:
        ds[1]
    assert str(record_path(root, 1)) in str(info.value)


def test_resume_with_other_settings_is_refused(tmp_path, small_dir):
    root = _copy(small_dir, tmp_path)
    (root / "manifest.json").unlink()  # an interrupted run
    with pytest.raises(DatasetError, match="choose a new output folder or delete"):
        make_reference_dataset(root, "nibri", "1x1", 4, seed=7, overlap=True, progress=False)


# -- unreadable records ---------------------------------------------------------------------
def _set_compression_method(path, method):
    """Overwrite the compression method of every entry in the zip's central directory."""
    data = bytearray(path.read_bytes())
    start = data.find(b"PK\x01\x02")
    while start >= 0:
        data[start + 10:start + 12] = struct.pack("<H", method)
        start = data.find(b"PK\x01\x02", start + 4)
    path.write_bytes(bytes(data))


def test_a_corrupted_compression_byte_is_a_dataset_error_and_resume_rewrites_it(
        tmp_path, small_dir, capsys):
    root = _copy(small_dir, tmp_path)
    path = record_path(root, 2)
    before = read_record(path)
    _set_compression_method(path, 99)
    with pytest.raises(DatasetError, match=str(path.name)) as info:
        read_record(path)
    assert str(path) in str(info.value)
    with pytest.raises(DatasetError):
        HamiltonianDataset(root, split="all")[2]
    # the documented fix works: re-running the command resumes and rewrites the record
    make_reference_dataset(root, "nibri", "1x1", 4, seed=1, overlap=True, progress=False)
    assert str(path) in capsys.readouterr().err
    after = read_record(path)
    np.testing.assert_array_equal(after[K.H_EDGE], before[K.H_EDGE])


def test_every_byte_flip_of_a_record_reads_or_raises_dataset_error(tmp_path, small_dir):
    root = _copy(small_dir, tmp_path)
    path = record_path(root, 0)
    original = path.read_bytes()
    expected = read_record(path)
    for offset in range(0, len(original), max(1, len(original) // 80)):
        data = bytearray(original)
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            arrays = read_record(path)
        except DatasetError as exc:
            assert str(path) in str(exc)
            continue
        for key, value in expected.items():  # a flip in unused bytes: the same data
            np.testing.assert_array_equal(arrays[key], value, err_msg=f"offset {offset}")


def test_a_corrupted_manifest_is_rebuilt_on_resume(tmp_path, small_dir, capsys):
    root = _copy(small_dir, tmp_path)
    manifest = read_manifest(root)
    (root / "manifest.json").write_text('{"format": "ase-hamgnn-dataset", "n_rec')
    with pytest.raises(DatasetError) as info:
        HamiltonianDataset(root, split="all")
    assert "manifest.json" in str(info.value) and "re-run" in str(info.value)
    mtime = record_path(root, 3).stat().st_mtime_ns
    assert make_reference_dataset(root, "nibri", "1x1", 4, seed=1, overlap=True,
                                  progress=False) == manifest
    assert "manifest.json" in capsys.readouterr().err
    assert json.loads((root / "manifest.json").read_text()) == manifest
    assert record_path(root, 3).stat().st_mtime_ns == mtime  # records kept
    assert len(HamiltonianDataset(root, split="all")) == 4


# -- consistency of a record's contents -------------------------------------------------------
def _swap_first_two(rev):
    rev = rev.copy()
    rev[[0, 1]] = rev[[1, 0]]
    return rev


@pytest.mark.parametrize("change, what", [
    (lambda rev: np.where(np.arange(len(rev)) == 0, -1, rev), "out of range"),
    (lambda rev: np.where(np.arange(len(rev)) == 0, len(rev) + 3, rev), "out of range"),
    (lambda rev: np.full_like(rev, rev[0]), "edge_reverse"),
    (_swap_first_two, "edge_reverse"),
])
def test_a_bad_edge_reverse_is_refused(tmp_path, small_dir, change, what):
    arrays = dict(read_record(record_path(small_dir, 0)))
    arrays[K.EDGE_REVERSE] = change(np.asarray(arrays[K.EDGE_REVERSE])).astype(np.int64)
    path = write_record(tmp_path / "bad.npz", arrays)
    with pytest.raises(DatasetError, match=what) as info:
        read_record(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("key", [K.H_ONSITE, K.H_EDGE, K.S_ONSITE, K.S_EDGE])
@pytest.mark.parametrize("value", [np.nan, np.inf, complex(0, np.nan)])
def test_non_finite_blocks_are_refused(tmp_path, small_dir, key, value):
    arrays = dict(read_record(record_path(small_dir, 0)))
    arrays[key] = arrays[key].copy()
    arrays[key][3] = value
    path = write_record(tmp_path / "bad.npz", arrays)
    with pytest.raises(DatasetError, match="NaN or inf") as info:
        read_record(path)
    assert str(path) in str(info.value) and key in str(info.value)
