"""Training: a tiny run lowers the loss, resumes after interruption, writes loadable
checkpoints; corrupted or incompatible checkpoints raise clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SMALL

from ase_hamgnn.errors import CheckpointError
from ase_hamgnn.model import HamGNNModel, ModelConfig, load_model
from ase_hamgnn.train import TrainConfig, load_train_config, train

TINY_MODEL = {k: v for k, v in SMALL.items() if k not in ("basis", "cutoff", "magnetic", "valence")}


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from ase_hamgnn.data import make_reference_dataset

    root = tmp_path_factory.mktemp("data") / "nibr2"
    make_reference_dataset(root, "nibr2", "1x1", 10, seed=3, progress=False)
    return root


def _config(dataset, out, epochs):
    return TrainConfig(dataset=str(dataset), out=str(out), model=dict(TINY_MODEL), epochs=epochs,
                       batch_size=4, lr=1e-2, lr_min=1e-3, seed=0)


def test_training_lowers_the_loss_and_resumes(tiny_dataset, tmp_path):
    cfg = _config(tiny_dataset, tmp_path / "a", 3)
    first = train(cfg, progress=False, max_epochs=2)  # interrupted after 2 epochs
    assert [h["epoch"] for h in first["history"]] == [0, 1]
    assert (tmp_path / "a" / "best.pt").exists() and (tmp_path / "a" / "last.pt").exists()
    resumed = train(cfg, progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2]
    losses = [h["loss"] for h in resumed["history"]]
    assert losses[-1] < losses[0]
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    assert len(history) == 3 and "val_mae_magnetic_meV" in history[0]

    # another configuration in the same folder is refused
    other = TrainConfig(**{**cfg.to_dict(), "lr": 5e-3})
    with pytest.raises(ValueError, match="another configuration"):
        train(other, progress=False)

    model = load_model(tmp_path / "a" / "best.pt")
    assert model.config.magnetic == ("Ni",)
    from ase_hamgnn.data import HamiltonianDataset, record_to_hamiltonian

    ds = HamiltonianDataset(tiny_dataset, "test")
    reference = record_to_hamiltonian(ds.paths[0])
    assert model.predict(reference.to_atoms()).basis == reference.basis
    # the trained model is closer to held-out reference Hamiltonians than the untrained one
    untrained = HamGNNModel(model.config, seed=0)
    assert _mae(model, reference) < _mae(untrained, reference)


def _mae(model, reference):
    from ase_hamgnn.graph import BlockLayout, neighbor_graph

    geometry = reference.geometry
    layout = BlockLayout(model.basis, geometry.numbers, neighbor_graph(geometry, model.cutoff))
    pred = np.concatenate(layout.from_matrices(model.predict(reference.to_atoms()).h_r))
    ref = np.concatenate(layout.from_matrices(reference.h_r))
    return float(np.mean(np.abs(pred - ref)))


def test_checkpoint_round_trip_and_errors(tmp_path):
    model = HamGNNModel(ModelConfig(**SMALL), dtype=torch.float64, seed=5)
    path = model.save(tmp_path / "m.pt")
    again = load_model(path, dtype=torch.float64)
    assert again.config == model.config
    for a, b in zip(model.network.state_dict().values(), again.network.state_dict().values()):
        torch.testing.assert_close(a.double(), b.double())

    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_model(tmp_path / "cut.pt")
    torch.save({"format": "something else"}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an ase-hamgnn"):
        load_model(tmp_path / "foreign.pt")
    state = torch.load(path, weights_only=True)
    state["config"]["node_irreps"] = "4x0e"
    del state["checksum"]  # as written by a version without checksums
    torch.save(state, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(tmp_path / "mismatch.pt")
    with pytest.raises(FileNotFoundError, match="shipped"):
        load_model("no-such-model")


def test_toml_config(tmp_path):
    (tmp_path / "run.toml").write_text(
        'dataset = "data"\nout = "run"\nepochs = 3\n[model]\nn_layers = 1\n')
    cfg = load_train_config(tmp_path / "run.toml")
    assert cfg.epochs == 3 and cfg.model == {"n_layers": 1}
    assert cfg.dataset == str(tmp_path / "data")
    (tmp_path / "bad.toml").write_text('dataset = "d"\nout = "o"\nepoch = 3\n')
    with pytest.raises(ValueError, match="epoch"):
        load_train_config(tmp_path / "bad.toml")


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tiny_dataset, tmp_path):
    full = train(_config(tiny_dataset, tmp_path / "full", 4), progress=False)
    cfg = _config(tiny_dataset, tmp_path / "parts", 4)
    train(cfg, progress=False, max_epochs=2)
    resumed = train(cfg, progress=False)
    np.testing.assert_allclose([h["loss"] for h in resumed["history"]],
                               [h["loss"] for h in full["history"]], rtol=1e-6)


def test_onsite_bias_starts_at_the_mean_onsite_block(tiny_dataset, tmp_path):
    from ase_hamgnn.data import HamiltonianDataset, record_to_hamiltonian
    from ase_hamgnn.train import mean_onsite_h0

    ds = HamiltonianDataset(tiny_dataset, "train")
    model = HamGNNModel(ModelConfig(**SMALL, onsite_bias=True), dtype=torch.float64, seed=0)
    means = mean_onsite_h0(ds, model.basis)
    # literal reference: average the on-site blocks of the full Hamiltonians
    blocks: dict[int, list[np.ndarray]] = {}
    for path in ds.paths:
        ham = record_to_hamiltonian(path)
        for i, z in enumerate(ham.geometry.numbers):
            b = ham.block(i, i)
            n = b.shape[0] // 2
            blocks.setdefault(int(z), []).append(0.5 * (b[:n, :n] + b[n:, n:]).real)
    assert sorted(means) == sorted(blocks)
    for z, mats in blocks.items():
        np.testing.assert_allclose(means[z], np.mean(mats, axis=0), atol=1e-12)
    assert np.ptp(np.diag(means[35])) > 0.5  # Br 4s and 4p levels lie eV apart

    # with zero heads, the predicted on-site block is the shell average of the mean
    net = model.network
    for head in net.node_heads.values():
        torch.nn.init.zeros_(head.weight)
    net.set_onsite_bias(means)
    ham = model.predict(record_to_hamiltonian(ds.paths[0]).to_atoms())
    for i, z in enumerate(ham.geometry.numbers):
        b = ham.block(i, i)
        n = b.shape[0] // 2
        h0 = 0.5 * (b[:n, :n] + b[n:, n:]).real
        for shell, sl in zip(model.basis.shells(int(z)), model.basis.shell_slices(int(z))):
            level = np.trace(means[int(z)][sl, sl]) / shell.size
            np.testing.assert_allclose(np.diag(h0)[sl], level, atol=1e-10)

    # a training run with onsite_bias starts from the mean and stores the bias
    cfg = TrainConfig(dataset=str(tiny_dataset), out=str(tmp_path / "b"),
                      model={**TINY_MODEL, "onsite_bias": True}, epochs=1, batch_size=4,
                      lr=1e-2, lr_min=1e-3, seed=0)
    train(cfg, progress=False)
    trained = load_model(tmp_path / "b" / "best.pt")
    assert trained.config.onsite_bias
    levels = trained.network.onsite_bias["35"].detach().double().numpy()
    assert np.allclose(np.diag(levels), [means[35][0, 0], np.trace(means[35][1:, 1:]) / 3],
                       atol=0.1)

    with pytest.raises(ValueError, match="onsite_bias"):
        ModelConfig(**SMALL, onsite_bias=True, form="general")


def test_exchange_channel_options_are_checked_and_survive_a_checkpoint(tmp_path):
    for bad in (dict(exchange_channels=0), dict(exchange_channels=1.5),
                dict(onsite_weight="full"), dict(exchange_channels=2, form="general")):
        with pytest.raises(ValueError, match="exchange_channels|onsite_weight"):
            ModelConfig(**SMALL, **bad)
    config = ModelConfig(**SMALL, exchange_channels=2, onsite_weight="orbital")
    model = HamGNNModel(config, dtype=torch.float64, seed=6)
    assert model.network.onsite_weight["28"].shape == (2, 2, 2)
    model.save(tmp_path / "c.pt")
    again = load_model(tmp_path / "c.pt")
    assert again.config == config
    for name, value in model.network.state_dict().items():
        torch.testing.assert_close(again.network.state_dict()[name].double(), value.double())


def test_checkpoints_store_the_trained_moment_range_and_predict_warns_outside(tiny_dataset,
                                                                             tmp_path):
    import warnings

    import textures
    from ase_hamgnn.data import HamiltonianDataset, record_to_hamiltonian
    from ase_hamgnn.errors import MomentRangeWarning
    from ase_hamgnn.train import moment_range

    ds = HamiltonianDataset(tiny_dataset, "train")
    sizes = np.concatenate([
        np.linalg.norm(h.geometry.moments[h.geometry.numbers == 28], axis=1)
        for h in map(record_to_hamiltonian, ds.paths)])
    expected = moment_range(ds, ("Ni",))
    assert expected["Ni"] == pytest.approx((sizes.min(), sizes.max()), abs=1e-6)
    train(_config(tiny_dataset, tmp_path / "m", 1), progress=False)
    model = load_model(tmp_path / "m" / "best.pt")
    assert list(model.moment_range) == ["Ni"]
    assert model.moment_range["Ni"] == pytest.approx(expected["Ni"])
    atoms = record_to_hamiltonian(ds.paths[0]).to_atoms()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MomentRangeWarning)
        model.predict(atoms)  # a training structure: no warning
    lo, hi = expected["Ni"]
    far = textures.random_moments(atoms, magnitude=hi + 1.0, rng=0)
    with pytest.warns(MomentRangeWarning, match="Ni moments .* trained on"):
        model.predict(far)


def test_shipped_model_knows_its_moment_size():
    import textures
    from ase_hamgnn.data import nibri
    from ase_hamgnn.errors import MomentRangeWarning

    model = load_model("nibri-reference")
    assert model.moment_range.keys() == {"Ni"}
    assert model.moment_range["Ni"] == pytest.approx((2.0, 2.0), abs=1e-12)
    atoms = textures.random_moments(nibri((2, 2)), rng=0, magnetic=("Ni",), magnitude=1.0)
    with pytest.warns(MomentRangeWarning, match="Ni moments of 1.00 μB, but this model was "
                      "trained on 2.00 μB"):
        model.predict(atoms)


def test_moment_range_warning_formats_sizes_and_ranges(small_model):
    import textures
    from ase_hamgnn.data import nibr2
    from ase_hamgnn.errors import MomentRangeWarning

    model = HamGNNModel(small_model.config, dtype=torch.float64, seed=1)
    atoms = nibr2((2, 2))
    model.moment_range = {"Ni": (1.5, 2.5)}
    with pytest.warns(MomentRangeWarning) as caught:
        model.check_moment_range(textures.ferromagnet(atoms, magnitude=1.0))
    assert "Ni moments of 1.00 μB, but this model was trained on 1.50–2.50 μB" in str(
        caught[0].message)
    sizes = np.where(atoms.numbers == 28, np.linspace(3.0, 3.5, len(atoms)), 0.0)
    with pytest.warns(MomentRangeWarning) as caught:
        model.check_moment_range(textures.ferromagnet(atoms, magnitude=sizes))
    lo, hi = sizes[atoms.numbers == 28].min(), sizes[atoms.numbers == 28].max()
    assert f"Ni moments of {lo:.2f}–{hi:.2f} μB, but" in str(caught[0].message)


def test_resuming_with_more_epochs_never_raises_the_learning_rate(tiny_dataset, tmp_path):
    out = tmp_path / "lr"
    first = train(_config(tiny_dataset, out, 2), progress=False, max_epochs=1)
    last_lr = first["history"][-1]["lr"]
    assert 1e-3 < last_lr < 1e-2  # halfway down the first cosine
    longer = train(_config(tiny_dataset, out, 5), progress=False)  # like --epochs 5
    lrs = [h["lr"] for h in longer["history"]]
    assert [h["epoch"] for h in longer["history"]] == [0, 1, 2, 3, 4]
    assert lrs[0] == last_lr
    assert all(b <= a * (1 + 1e-12) for a, b in zip(lrs, lrs[1:])), lrs
    assert lrs[-1] == pytest.approx(1e-3)  # lr_min at the new last epoch
    # interrupted again with the new length: the continued schedule is resumed, not rebuilt
    train(_config(tiny_dataset, tmp_path / "lr2", 2), progress=False, max_epochs=1)
    train(_config(tiny_dataset, tmp_path / "lr2", 5), progress=False, max_epochs=2)
    again = train(_config(tiny_dataset, tmp_path / "lr2", 5), progress=False)
    np.testing.assert_allclose([h["lr"] for h in again["history"]], lrs, rtol=1e-12)


def test_one_plain_line_per_epoch_when_stderr_is_not_a_terminal(tiny_dataset, tmp_path, capsys):
    train(_config(tiny_dataset, tmp_path / "log", 2), progress=False)
    assert capsys.readouterr().err == ""  # progress=False is silent
    result = train(_config(tiny_dataset, tmp_path / "log2", 2))  # progress=None: captured
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2
    row = result["history"][1]
    assert lines[1].startswith("epoch 2/2  loss ")
    for text in (f"{row['loss']:.4e}", f"val MAE {row['val_mae_meV']:.3f} meV",
                 f"magnetic {row['val_mae_magnetic_meV']:.3f} meV", f"lr {row['lr']:.3e}"):
        assert text in lines[1]
    assert lines[1].endswith(" s")


def test_unknown_config_keys_name_the_closest_allowed_key(tmp_path):
    from ase_hamgnn.errors import ConfigError

    (tmp_path / "model.toml").write_text(
        'dataset = "d"\nout = "o"\n[model]\nn_layer = 1\nmoment_max = 3.0\n')
    with pytest.raises(ConfigError) as info:
        load_train_config(tmp_path / "model.toml")
    message = str(info.value)
    assert "unknown key 'n_layer' (did you mean 'n_layers'?)" in message
    assert "[model] table of" in message and "model.toml" in message
    assert "allowed keys: avg_neighbors, bond_moment_term, exchange_channels, form," in message
    allowed = message.split("allowed keys: ")[1].split(", ")
    assert "n_layers" in allowed and "basis" not in allowed and "cutoff" not in allowed
    (tmp_path / "top.toml").write_text('dataset = "d"\nout = "o"\nepoch = 3\nlr_mim = 1e-4\n')
    with pytest.raises(ConfigError) as info:
        load_train_config(tmp_path / "top.toml")
    assert str(info.value).startswith(
        "unknown keys 'epoch' (did you mean 'epochs'?), 'lr_mim' (did you mean 'lr_min'?) in ")
    assert ("top.toml; allowed keys: allow_dataset_change, batch_size, dataset, device, dtype, "
            "eigen_weight, eigen_window, ema_decay, epochs,") in str(info.value)
    with pytest.raises(ConfigError, match="'cutoff'.*come from the dataset"):
        TrainConfig(dataset="d", out="o", model={"cutoff": 5.0})
    with pytest.raises(ValueError):  # a ConfigError is a ValueError
        TrainConfig(dataset="d", out="o", model={"magnetics": ("Ni",)})


def test_weight_average_is_validated_saved_and_resumed(tiny_dataset, tmp_path):
    """ema_decay: best.pt holds the averaged weights, last.pt the raw ones and the average,
    and an interrupted run resumes to the same history as an uninterrupted one."""
    cfg = TrainConfig(**{**_config(tiny_dataset, tmp_path / "ema", 3).to_dict(),
                         "ema_decay": 0.9})
    train(cfg, progress=False, max_epochs=2)
    resumed = train(cfg, progress=False)
    whole = train(TrainConfig(**{**cfg.to_dict(), "out": str(tmp_path / "whole")}),
                  progress=False)
    np.testing.assert_allclose([h["val_mae_meV"] for h in resumed["history"]],
                               [h["val_mae_meV"] for h in whole["history"]], rtol=1e-5)
    last = torch.load(tmp_path / "ema" / "last.pt", weights_only=True)
    average = last["train"]["weight_average"]
    assert average["steps"] == 3 * 2  # 8 training records, batch 4, three epochs
    name = next(iter(average["average"]))
    assert not torch.equal(last["weights"][name], average["average"][name])
    # the average is what validation measured: the saved best model reproduces its MAE
    from torch_geometric.loader import DataLoader

    from ase_hamgnn.data import HamiltonianDataset
    from ase_hamgnn.train import evaluate

    model = load_model(tmp_path / "ema" / "best.pt")
    val = evaluate(model, DataLoader(HamiltonianDataset(tiny_dataset, "val"), batch_size=4))
    assert val["mae_meV"] == pytest.approx(min(h["val_mae_meV"] for h in resumed["history"]),
                                           rel=1e-4)
    # a config without the option still matches checkpoints written before it existed
    from ase_hamgnn.train.loop import _resumable

    assert "ema_decay" not in _resumable(_config(tiny_dataset, tmp_path / "x", 1))
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(**{**cfg.to_dict(), "ema_decay": 1.0})
