"""Data-parallel training: two ``torchrun`` processes (CPU, gloo) take the same steps as one
process on the same global batch, resume a run started by one process, and only rank 0
writes checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import TINY_MODEL

from ase_hamgnn.train import TrainConfig, train
from ase_hamgnn.train.distributed import DistributedContext, distributed_context, launch_environment

WORKER = Path(__file__).with_name("_ddp_worker.py")


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory):
    """Ten NiBr2 structures of two sizes (1x1 and 2x1), so that the processes of a global
    batch hold different numbers of block entries: 8 train, 2 validation."""
    from ase_hamgnn.data import ReferenceTB, generate_configurations, write_dataset

    rng = np.random.default_rng(7)
    atoms = (generate_configurations("nibr2", "1x1", 5, rng)
             + generate_configurations("nibr2", "2x1", 5, rng))
    root = tmp_path_factory.mktemp("data") / "mixed"
    write_dataset(ReferenceTB("nibr2"), atoms, root, split=(0.8, 0.2, 0.0), rng=1,
                  progress=False)
    return root


def _toml(cfg: TrainConfig) -> str:
    def value(v):
        return json.dumps(v)  # strings, numbers and booleans read back the same in TOML

    top = [f"{k} = {value(v)}" for k, v in cfg.to_dict().items() if k != "model"]
    model = [f"{k} = {value(v)}" for k, v in cfg.model.items()]
    return "\n".join(top + ["", "[model]"] + model) + "\n"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["weights"]


def test_two_processes_take_the_steps_of_one(mixed_dataset, tmp_path):
    common = dict(dataset=str(mixed_dataset), model=dict(TINY_MODEL), epochs=3, batch_size=4,
                  lr=1e-2, lr_min=1e-3, seed=0, dtype="float64")
    cfg = TrainConfig(out=str(tmp_path / "ddp"), **common)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun worker (and fast on a busy machine)
    try:
        single = train(TrainConfig(out=str(tmp_path / "single"), **common), progress=False)
        train(cfg, progress=False, max_epochs=1)  # one process starts the run ...
    finally:
        torch.set_num_threads(threads)

    # ... and two torchrun processes resume it with the same command a user would run
    (tmp_path / "ddp.toml").write_text(_toml(cfg))
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(WORKER), str(tmp_path / "ddp.toml"), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the same parameters after 6 steps of Adam (float64, other reduction order)
    a, b = _weights(tmp_path / "single" / "last.pt"), _weights(tmp_path / "ddp" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-10, atol=1e-10, msg=key)
    ddp_history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    for h1, h2 in zip(single["history"], ddp_history, strict=True):
        for key in ("loss", "val_mae_meV", "val_mae_magnetic_meV"):
            assert h2[key] == pytest.approx(h1[key], rel=1e-10), key

    # one checkpoint writer: rank 0 moved every file into place, rank 1 none; one report
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["exit"] == 0 and r["world_size"] == 2 for r in reports)
    assert {"last.pt", "history.json"} <= set(reports[0]["moved"])
    assert reports[1]["moved"] == []
    assert proc.stdout.count("best validation MAE") == 1


def test_launch_environment_and_single_process_context():
    assert launch_environment({}) == (0, 0, 1)
    assert launch_environment({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}) == (3, 1, 4)
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        launch_environment({"RANK": "1"})
    with pytest.raises(ValueError, match="inconsistent"):
        launch_environment({"RANK": "2", "WORLD_SIZE": "2"})
    with distributed_context("cpu", environ={}) as ctx:
        assert ctx == DistributedContext(0, 0, 1, torch.device("cpu"))
        values = torch.tensor([1.0, 2.0])
        assert ctx.all_reduce_sum(values) is values
        module = torch.nn.Linear(2, 2)
        assert ctx.wrap(module) is module


def test_global_batch_must_split_evenly(mixed_dataset, tmp_path):
    cfg = TrainConfig(dataset=str(mixed_dataset), out=str(tmp_path / "x"),
                      model=dict(TINY_MODEL), epochs=1, batch_size=3)
    from ase_hamgnn.train.loop import _train

    with pytest.raises(ValueError, match="multiple of the number of processes"):
        _train(cfg, DistributedContext(0, 0, 2, torch.device("cpu")), False, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_device_per_local_rank():
    from ase_hamgnn.train.distributed import _rank_device

    assert _rank_device("cuda", 0, 1).type == "cuda"
    assert _rank_device("auto", 0, 2) == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="names one GPU"):
        _rank_device("cuda:0", 0, 2)
