"""Checkpoints are untrusted files: a checksum catches changed bytes, NaN weights are
refused, torch's advice to load with ``weights_only=False`` is never passed on, and a
shipped-model name cannot reach outside the package's models folder."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import torch
from conftest import SMALL

from ase_hamgnn.data import nibri
from ase_hamgnn.errors import CheckpointError
from ase_hamgnn.model import HamGNNModel, ModelConfig, load_model
from ase_hamgnn.model.hamgnn_model import _shipped_dir


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = HamGNNModel(ModelConfig(**SMALL), seed=7)
    model.moment_range = {"Ni": (1.0, 2.0)}
    path = model.save(tmp_path_factory.mktemp("ckpt") / "m.pt")
    return model, path


def _same_weights(a, b):
    sa, sb = a.network.state_dict(), b.network.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].dtype == sb[k].dtype and torch.equal(sa[k].view(-1).view(torch.uint8),
                                                   sb[k].view(-1).view(torch.uint8))
        for k in sa)


def _a_weight(state):
    return next(k for k in sorted(state["weights"])
                if state["weights"][k].is_floating_point() and state["weights"][k].numel())


def _tensor_data_offsets(path):
    """Absolute file offsets of bytes of the stored tensor data: first, middle and last byte
    of every tensor record of the zip."""
    raw = path.read_bytes()
    offsets = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if "/data/" not in info.filename or info.file_size == 0:
                continue
            # stored uncompressed: the data follow the local header, its name and extra field
            header = raw[info.header_offset:info.header_offset + 30]
            name_len = int.from_bytes(header[26:28], "little")
            extra_len = int.from_bytes(header[28:30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            offsets += [start, start + info.file_size // 2, start + info.file_size - 1]
    offsets = sorted(set(offsets))
    return offsets[::max(1, len(offsets) // 30)]


def test_byte_flips_in_the_tensor_data_raise_or_change_nothing(saved, tmp_path):
    model, path = saved
    original = path.read_bytes()
    offsets = _tensor_data_offsets(path)
    assert len(offsets) >= 25
    changed = tmp_path / "flipped.pt"
    refused = 0
    for k, offset in enumerate(offsets):
        for mask in ((0x01, 0x80)[k % 2],):
            data = bytearray(original)
            data[offset] ^= mask
            changed.write_bytes(bytes(data))
            try:
                loaded = load_model(changed)
            except CheckpointError as exc:
                assert str(changed) in str(exc)
                refused += 1
                continue
            assert _same_weights(loaded, model), f"offset {offset} mask {mask:#x}"
    assert refused > 0


def test_a_checksum_mismatch_names_the_file(saved, tmp_path):
    _, path = saved
    state = torch.load(path, weights_only=True)
    name = _a_weight(state)
    state["weights"][name] = state["weights"][name] + 1e-3
    torch.save(state, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="checksum") as info:
        load_model(tmp_path / "edited.pt")
    assert str(tmp_path / "edited.pt") in str(info.value)
    state = torch.load(path, weights_only=True)
    state["config"]["n_radial"] = 5
    torch.save(state, tmp_path / "config.pt")
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(tmp_path / "config.pt")


def test_checkpoints_without_a_checksum_still_load(saved, tmp_path):
    model, path = saved
    state = torch.load(path, weights_only=True)
    del state["checksum"]
    torch.save(state, tmp_path / "old.pt")
    assert _same_weights(load_model(tmp_path / "old.pt"), model)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_on_load_and_never_saved(saved, tmp_path, value):
    model, path = saved
    state = torch.load(path, weights_only=True)
    del state["checksum"]  # as an older version would have written it
    name = _a_weight(state)
    state["weights"][name].view(-1)[0] = value
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN or infinite") as info:
        load_model(tmp_path / "nan.pt")
    assert str(tmp_path / "nan.pt") in str(info.value)

    broken = HamGNNModel(ModelConfig(**SMALL), seed=7)
    with torch.no_grad():
        next(broken.network.parameters()).view(-1)[0] = value
    with pytest.raises(CheckpointError, match="NaN or inf"):
        broken.save(tmp_path / "never.pt")
    assert not (tmp_path / "never.pt").exists()


class Payload:
    """Not a tensor or plain data: refused by ``torch.load(weights_only=True)``."""


def test_foreign_objects_are_refused_without_the_weights_only_advice(tmp_path):
    torch.save({"format": "ase-hamgnn-model", "weights": {}, "extra": Payload()},
               tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as info:
        load_model(tmp_path / "evil.pt")
    text = str(info.value)
    assert str(tmp_path / "evil.pt") in text and "Payload" in text
    assert "weights_only" not in text and "safe_globals" not in text
    assert info.value.__cause__ is None


def test_a_shipped_model_name_cannot_leave_the_models_folder(saved, tmp_path, monkeypatch):
    _, path = saved
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "stolen.pt").write_bytes(path.read_bytes())
    name = os.path.relpath(outside / "stolen", _shipped_dir())
    assert name.startswith("..")
    monkeypatch.chdir(outside)  # the name is not an existing path from here
    for bad in (name, "../../stolen", "/stolen", "./stolen", ".hidden"):
        with pytest.raises(FileNotFoundError, match="plain identifier"):
            load_model(bad)
    # a path that exists is a path
    assert load_model("stolen.pt").config == saved[0].config


def test_the_shipped_model_carries_a_checksum_and_loads_by_name():
    state = torch.load(_shipped_dir() / "nibri-reference.pt", weights_only=True)
    assert str(state.get("checksum", "")).startswith("sha256:")
    model = load_model("nibri-reference")  # the checksum is verified
    assert model.config.magnetic == ("Ni",)
    ham = model.predict(nibri((1, 1)))
    assert np.isfinite(np.concatenate([m.data for m in ham.h_r.values()])).all()
