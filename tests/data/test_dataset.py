"""Datasets: configurations, records on disk, lazy torch-geometric loading, resume, CLI.

All Hamiltonians come from the SYNTHETIC reference model (ReferenceTB), not from DFT.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from ase_hamgnn import keys as K
from ase_hamgnn.cli import build_parser, main
from ase_hamgnn.data import (
    OOD_KINDS,
    HamiltonianDataset,
    ReferenceTB,
    generate_configurations,
    read_manifest,
    read_record,
    record_to_hamiltonian,
    split_indices,
    write_dataset,
)
from ase_hamgnn.data.configurations import SYSTEMS, ood_configurations
from ase_hamgnn.data.dataset import record_path
from ase_hamgnn.errors import DatasetError


class CountingPredictor:
    """Wraps a predictor and counts ``predict`` calls (not a ReferenceTB instance)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.basis, self.cutoff = inner.basis, inner.cutoff

    def predict(self, atoms):
        self.calls += 1
        return self.inner.predict(atoms)


@pytest.fixture(scope="module")
def ref() -> ReferenceTB:
    return ReferenceTB("nibri", overlap=True)


@pytest.fixture(scope="module")
def confs():
    return generate_configurations("nibri", "1x1", 10, rng=7)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, ref, confs):
    root = tmp_path_factory.mktemp("nibri")
    write_dataset(ref, confs, root, rng=3, progress=False)
    return root


# -- configurations -------------------------------------------------------------------------------
def test_displacements_and_moment_directions():
    ideal = ReferenceTB("nibri").structure((2, 2, 1))
    confs = generate_configurations("nibri", "2x2", 40, rng=1)
    ni = np.array(ideal.get_chemical_symbols()) == "Ni"
    dirs = []
    for atoms in confs:
        u = np.linalg.norm(atoms.positions - ideal.positions, axis=1)
        assert u.max() <= 0.1 and u.max() > 0.02
        m = atoms.get_initial_magnetic_moments()
        assert m.shape == (len(atoms), 3) and m.dtype == np.float64
        assert np.allclose(np.linalg.norm(m[ni], axis=1), 2.0, rtol=0, atol=1e-12)
        assert np.all(m[~ni] == 0)
        dirs.append(m[ni] / 2.0)
    dirs = np.concatenate(dirs)
    assert np.allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-12)
    assert np.linalg.norm(dirs.mean(axis=0)) < 0.2  # 160 uniform directions: |mean| ~ 0.05
    rnd = generate_configurations("nibri", "2x2", 5, rng=1, random_magnitudes=True)
    lengths = np.concatenate([np.linalg.norm(a.get_initial_magnetic_moments()[ni], axis=1)
                              for a in rnd])
    assert lengths.min() >= 1.0 and lengths.max() <= 3.0 and lengths.std() > 0.05


def test_same_seed_same_data_other_seed_differs():
    a = generate_configurations("nibr2", "1x1", 3, rng=5)
    b = generate_configurations("nibr2", "1x1", 3, rng=5)
    c = generate_configurations("nibr2", "1x1", 3, rng=6)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.positions, y.positions)
        assert np.array_equal(x.get_initial_magnetic_moments(), y.get_initial_magnetic_moments())
    assert not np.allclose(a[0].positions, c[0].positions)
    assert split_indices(50, (0.8, 0.1, 0.1), 4) == split_indices(50, (0.8, 0.1, 0.1), 4)
    assert split_indices(50, (0.8, 0.1, 0.1), 4) != split_indices(50, (0.8, 0.1, 0.1), 5)


def test_same_seed_gives_identical_records(tmp_path):
    ref = ReferenceTB("nibr2")
    for name in ("a", "b"):
        confs = generate_configurations("nibr2", "1x1", 2, rng=11)
        write_dataset(ref, confs, tmp_path / name, rng=11, progress=False)
    for i in range(2):
        ra = read_record(record_path(tmp_path / "a", i))
        rb = read_record(record_path(tmp_path / "b", i))
        assert ra.keys() == rb.keys()
        assert all(np.array_equal(ra[k], rb[k]) for k in ra)
    assert read_manifest(tmp_path / "a") == read_manifest(tmp_path / "b")


def test_ood_sets():
    spirals = ood_configurations("spirals", 2, rng=0)
    assert len(spirals) == 2 and len(spirals[0]) == 24  # NiBr2 8x1x1
    afm = ood_configurations("afm120", 2, rng=0)
    m = afm[0].get_initial_magnetic_moments()
    assert np.allclose(m.sum(axis=0), 0, atol=1e-12)
    ni = np.array(afm[0].get_chemical_symbols()) == "Ni"
    assert ni.sum() == 3 and np.allclose(np.linalg.norm(m[ni], axis=1), 2.0)
    sk = ood_configurations("skyrmion", 1, rng=0, size="4x4")
    assert len(sk[0]) == 48
    with pytest.raises(ValueError, match="spirals"):
        ood_configurations("vortex")


# -- records --------------------------------------------------------------------------------------
def test_round_trip_is_exact(dataset_dir, ref, confs):
    for i in (0, 5):
        ham = record_to_hamiltonian(record_path(dataset_dir, i))
        expected = ref.predict(confs[i])
        assert not ham.orthogonal
        assert ham.max_abs_difference(expected) == 0.0
        assert ham.geometry.equals(expected.geometry, atol=0.0)


def test_round_trip_orthogonal_model(tmp_path):
    ref = ReferenceTB("feir")
    confs = generate_configurations("feir", "1x1", 1, rng=0)
    write_dataset(ref, confs, tmp_path, rng=0, progress=False)
    record = read_record(record_path(tmp_path, 0))
    assert K.S_ONSITE not in record and record[K.H_EDGE].dtype == np.complex128
    assert record_to_hamiltonian(record).max_abs_difference(ref.predict(confs[0])) == 0.0
    assert read_manifest(tmp_path)["overlap"] is False


def test_manifest_and_split_sizes(dataset_dir):
    manifest = read_manifest(dataset_dir)
    assert manifest["counts"] == {"train": 8, "val": 1, "test": 1}
    assert "synthetic reference model" in manifest["description"] and manifest["synthetic"]
    assert manifest["cutoff"] == 5.5 and manifest["overlap"] is True
    # the fingerprint names the predictor by its stable path, not the file it lives in, so
    # data sets written before the package's layout change keep their fingerprint
    assert manifest["predictor"] == "ase_hamgnn.data.reference.ReferenceTB"
    everything = sorted(sum(manifest["split"].values(), []))
    assert everything == list(range(10))
    assert [len(HamiltonianDataset(dataset_dir, s)) for s in ("train", "val", "test")] == [8, 1, 1]
    assert {k: len(v) for k, v in split_indices(1000, (0.8, 0.1, 0.1), 0).items()} == {
        "train": 800, "val": 100, "test": 100}


def test_split_by_groups_keeps_each_group_in_one_split(tmp_path, ref, confs):
    # without groups the split is the per-configuration one, unchanged by the option; pinned,
    # because every dataset written so far holds it
    assert split_indices(12, (0.5, 0.25, 0.25), 4) == {
        "train": [0, 1, 2, 8, 9, 10], "val": [4, 6, 7], "test": [3, 5, 11]}
    assert split_indices(50, (0.8, 0.1, 0.1), 4, groups=range(50)) == \
        split_indices(50, (0.8, 0.1, 0.1), 4)
    labels = [i // 5 for i in range(60)]  # 12 geometries with 5 moment sets each
    split = split_indices(60, (0.7, 0.15, 0.15), 3, groups=labels)
    assert sorted(sum(split.values(), [])) == list(range(60))
    owners = {name: {labels[i] for i in idx} for name, idx in split.items()}
    assert not (owners["train"] & owners["val"] or owners["train"] & owners["test"]
                or owners["val"] & owners["test"])
    assert [len(owners[s]) for s in ("train", "val", "test")] == [8, 2, 2]  # counts groups
    with pytest.raises(ValueError, match="one label per configuration"):
        split_indices(60, (0.8, 0.1, 0.1), 0, groups=labels[:-1])
    manifest = write_dataset(ref, confs, tmp_path, rng=0, progress=False,
                             split_groups=[i // 2 for i in range(len(confs))])
    assert manifest["split_groups"] == [i // 2 for i in range(len(confs))]
    for idx in manifest["split"].values():
        assert all(i ^ 1 in idx for i in idx)  # 2k and 2k + 1 together


def test_dataloader_batches_two_records(dataset_dir):
    ds = HamiltonianDataset(dataset_dir, split="train")
    a, b = ds[0], ds[1]
    assert a[K.POSITIONS].dtype == torch.float64 and a[K.H_EDGE].dtype == torch.complex128
    batch = next(iter(DataLoader(ds, batch_size=2, shuffle=False)))
    assert batch.num_graphs == 2
    assert batch[K.POSITIONS].shape == (a.num_nodes + b.num_nodes, 3)
    assert batch[K.CELL].shape == (2, 3, 3) and batch[K.PBC].shape == (2, 3)
    assert batch[K.EDGE_INDEX].shape == (2, a.num_edges + b.num_edges)
    assert torch.equal(batch[K.EDGE_INDEX][:, a.num_edges:], b[K.EDGE_INDEX] + a.num_nodes)
    for key in (K.H_ONSITE, K.H_EDGE, K.S_ONSITE, K.S_EDGE):
        assert batch[key].dtype == torch.complex128
        assert torch.equal(batch[key], torch.cat([a[key], b[key]]))
    ei, rev = batch[K.EDGE_INDEX], batch[K.EDGE_REVERSE]
    assert torch.equal(ei[:, rev], ei.flip(0))
    assert torch.equal(batch[K.CELL_SHIFTS][rev], -batch[K.CELL_SHIFTS])
    vec = batch[K.EDGE_VECTORS]
    assert torch.allclose(vec[rev], -vec, atol=1e-12)


def test_truncated_and_corrupted_records_raise(tmp_path, dataset_dir):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(dataset_dir, root)
    ds = HamiltonianDataset(root, split="all")
    truncated, corrupted = record_path(root, 0), record_path(root, 1)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    data = bytearray(corrupted.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)
    corrupted.write_bytes(bytes(data))
    for index, path in ((0, truncated), (1, corrupted)):
        with pytest.raises(DatasetError, match=str(path.name)) as info:
            ds[index]
        assert str(path) in str(info.value) and "re-run" in str(info.value)
    with pytest.raises(DatasetError, match="manifest.json"):
        HamiltonianDataset(tmp_path / "nowhere")


def test_too_small_cutoff_raises(tmp_path, ref, confs):
    with pytest.raises(DatasetError, match=r"cutoff >= \d\.\d+ Å") as info:
        write_dataset(ref, confs[:1], tmp_path, cutoff=3.0, progress=False)
    assert "3.0000 Å" in str(info.value)


def test_resume_skips_existing_records(tmp_path, ref, confs):
    first = CountingPredictor(ref)
    write_dataset(first, confs[:4], tmp_path, rng=0, progress=False)
    assert first.calls == 4
    manifest = read_manifest(tmp_path)
    assert not manifest["synthetic"] and "synthetic reference" not in manifest["description"]
    # interrupted run: one record and the manifest missing
    record_path(tmp_path, 2).unlink()
    (tmp_path / "manifest.json").unlink()
    before = record_path(tmp_path, 0).stat().st_mtime_ns
    again = CountingPredictor(ref)
    assert write_dataset(again, confs[:4], tmp_path, rng=0, progress=False) == manifest
    assert again.calls == 2  # the missing record + one re-prediction to check the predictor
    assert record_path(tmp_path, 0).stat().st_mtime_ns == before
    # an unreadable record is rewritten on resume
    broken = record_path(tmp_path, 3)
    broken.write_bytes(broken.read_bytes()[:100])
    third = CountingPredictor(ref)
    write_dataset(third, confs[:4], tmp_path, rng=0, progress=False)
    assert third.calls == 2 and read_record(broken)[K.H_EDGE].size > 0
    # a different dataset into the same folder is refused
    with pytest.raises(DatasetError, match="differs in: seed, split") as info:
        write_dataset(CountingPredictor(ref), confs[:4], tmp_path, rng=1, progress=False)
    assert str(tmp_path) in str(info.value)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(DatasetError, match="belongs to a different dataset"):
        write_dataset(CountingPredictor(ref), confs[4:8], tmp_path, rng=0, progress=False)
    with pytest.raises(DatasetError, match="other settings"):
        write_dataset(CountingPredictor(ReferenceTB("nibri")), confs[:4], tmp_path, rng=0,
                      progress=False)


# -- command line ---------------------------------------------------------------------------------
def test_cli_writes_a_small_set(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["dataset", "--system", "nibri", "--size", "1x1", "-n", "3", "--seed", "0",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote 3 records" in text and "synthetic" in text and "not DFT" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["generation"]["size"] == "1x1"
    assert len(HamiltonianDataset(out, split="all")) == 3


def test_cli_choices_match_library():
    sub = build_parser()._subparsers._group_actions[0].choices["dataset"]
    actions = {a.dest: a for a in sub._actions}
    assert set(actions["system"].choices) == set(SYSTEMS)
    assert set(actions["ood"].choices) == set(OOD_KINDS)
