"""Training refuses what it cannot use: a diverging run stops with a typed error and never
writes NaN weights, a resumed run checks that its dataset is the one it was trained on, and
every configuration value is checked for its type and range."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import SMALL

from ase_hamgnn.errors import ConfigError, DatasetChangedError, TrainingDivergedError
from ase_hamgnn.model import load_model
from ase_hamgnn.train import TrainConfig, load_train_config, train

TINY_MODEL = {k: v for k, v in SMALL.items() if k not in ("basis", "cutoff", "magnetic", "valence")}


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from ase_hamgnn.data import make_reference_dataset

    root = tmp_path_factory.mktemp("guards") / "nibr2"
    make_reference_dataset(root, "nibr2", "1x1", 10, seed=3, progress=False)
    return root


def _config(dataset, out, **kw):
    values = dict(dataset=str(dataset), out=str(out), model=dict(TINY_MODEL), epochs=1,
                  batch_size=4, lr=1e-2, lr_min=1e-3, seed=0, max_train=4, max_val=1)
    return TrainConfig(**{**values, **kw})


# -- divergence -------------------------------------------------------------------------------
def test_a_diverging_run_stops_and_writes_no_nan_weights(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    cfg = _config(tiny_dataset, out, lr=1e30, lr_min=0.0, epochs=2)
    with pytest.raises(TrainingDivergedError, match="diverged in epoch 1") as info:
        train(cfg, progress=False)
    assert "lr" in str(info.value)
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()


def test_a_loss_that_becomes_infinite_stops_the_run_and_keeps_the_finite_checkpoint(
        tiny_dataset, tmp_path):
    from ase_hamgnn import keys as K
    from ase_hamgnn.data import HamiltonianDataset, read_record
    from ase_hamgnn.data.records import write_record

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    out = tmp_path / "run"
    cfg = _config(data, out, epochs=2)
    train(cfg, progress=False, max_epochs=1)
    before = (out / "last.pt").read_bytes()
    for path in HamiltonianDataset(data, split="all").paths:  # blocks beyond float32's range
        arrays = dict(read_record(path))
        for key in (K.H_ONSITE, K.H_EDGE):
            arrays[key] = arrays[key] * 1e25
        write_record(path, arrays)
    with pytest.raises(TrainingDivergedError, match="diverged in epoch 2") as info:
        train(cfg, progress=False)
    assert str(out / "last.pt") in str(info.value)
    assert (out / "last.pt").read_bytes() == before
    model = load_model(out / "best.pt")
    assert all(torch.isfinite(p).all() for p in model.network.parameters())


# -- the dataset of a resumed run ---------------------------------------------------------------
def test_resuming_on_a_rewritten_dataset_is_refused_unless_allowed(tiny_dataset, tmp_path):
    from ase_hamgnn.data import make_reference_dataset

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    cfg = _config(data, tmp_path / "run", epochs=2)
    train(cfg, progress=False, max_epochs=1)
    shutil.rmtree(data)  # the dataset is written again, with other configurations
    make_reference_dataset(data, "nibr2", "1x1", 10, seed=4, progress=False)
    with pytest.raises(DatasetChangedError, match="allow_dataset_change") as info:
        train(cfg, progress=False)
    assert str(data) in str(info.value)
    resumed = train(TrainConfig(**{**cfg.to_dict(), "allow_dataset_change": True}),
                    progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [0, 1]


# -- configuration values -----------------------------------------------------------------------
BASE = 'dataset = "data"\nout = "run"\n'


@pytest.mark.parametrize("line, key, expected", [
    ("magnetic_weight = -1.0", "magnetic_weight", ">= 0"),
    ("onsite_loss_weight = 0.0", "onsite_loss_weight", "> 0"),
    ("max_train = -3", "max_train", "integer >= 0"),
    ("max_val = 1.5", "max_val", "integer >= 0"),
    ("epochs = \"3\"", "epochs", "integer >= 1"),
    ("epochs = 0", "epochs", "integer >= 1"),
    ("batch_size = true", "batch_size", "integer >= 1"),
    ("lr = inf", "lr", "finite number > 0"),
    ("lr = nan", "lr", "finite number > 0"),
    ("lr = -0.1", "lr", "finite number > 0"),
    ("lr = \"fast\"", "lr", "finite number > 0"),
    ("lr_min = 1.0", "lr_min", "between 0 and lr"),
    ("seed = -1", "seed", "integer >= 0"),
    ("dtype = \"float16\"", "dtype", "'float32'"),
    ("device = 3", "device", "'cpu'"),
    ("dataset = 5", "dataset", "non-empty string"),
    ("allow_dataset_change = 1", "allow_dataset_change", "true or false"),
    ("model = 3", "model", "table"),
])
def test_a_bad_value_names_the_key_the_file_and_the_range(tmp_path, line, key, expected):
    path = tmp_path / "run.toml"
    text = BASE.replace(f"{line.split(' = ')[0]} = ", "#") if line.startswith("dataset") else BASE
    path.write_text(f"{text}{line}\n")
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    message = str(info.value)
    assert message.startswith(f"{key} = "), message
    assert str(path) in message and expected in message
    assert line.split(" = ")[1].strip('"').lower() in message.lower()


@pytest.mark.parametrize("line, key", [
    ("n_layers = \"2\"", "n_layers"),
    ("n_radial = 0", "n_radial"),
    ("moment_max = -4.0", "moment_max"),
    ("avg_neighbors = nan", "avg_neighbors"),
    ("moment_coupling = \"yes\"", "moment_coupling"),
    ("form = \"other\"", "form"),
    ("exchange_channels = 1.5", "exchange_channels"),
    ("valence = {Ni = -10.0}", "valence.Ni"),
    ("magnetic = \"Ni\"", "magnetic"),
])
def test_a_bad_model_value_names_the_key_and_the_file(tmp_path, line, key):
    path = tmp_path / "run.toml"
    path.write_text(f"{BASE}[model]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    message = str(info.value)
    assert message.startswith(f"{key} = "), message
    assert f"[model] table of {path}" in message and "expected" in message


def test_a_file_that_is_not_toml_is_a_config_error(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("dataset = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_train_config(path)
    assert str(path) in str(info.value)


# -- loss weights -------------------------------------------------------------------------------
def test_onsite_loss_weight_scales_the_onsite_squared_errors_only(tiny_dataset, tmp_path):
    from torch_geometric.loader import DataLoader

    from ase_hamgnn.data import HamiltonianDataset
    from ase_hamgnn.keys import H_ONSITE
    from ase_hamgnn.train import block_errors
    from ase_hamgnn.train.loop import _Partners

    run = train(_config(tiny_dataset, tmp_path / "w5", onsite_loss_weight=5.0), progress=False)
    model = load_model(run["best"])
    batch = next(iter(DataLoader(HamiltonianDataset(tiny_dataset, "train"),
                                 batch_size=2)))
    with torch.no_grad():
        out = model.network(batch)
    partners = _Partners(model)(batch)
    one = block_errors(out, batch, partners)
    five = block_errors(out, batch, partners, 5.0)
    onsite = torch.view_as_real(out["onsite"] - batch[H_ONSITE].to(out["onsite"].dtype))
    expected = one["sq_sum"] + 4.0 * (onsite**2).sum()
    assert float(five["sq_sum"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(five["sq_sum_magnetic"]) > float(one["sq_sum_magnetic"])
    for key in ("mse", "mse_magnetic", "abs_sum", "abs_sum_magnetic", "count"):
        assert float(five[key]) == float(one[key])  # reported errors count every entry once
