"""The command line: ``python -m ase_hamgnn``, training logs of batch jobs, config errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tb_helpers import TINY_MODEL_TOML

from ase_hamgnn.cli import main


def _run(*args, cwd=None, stdout=subprocess.PIPE):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ase_hamgnn", *args], cwd=cwd, env=env,
                          stdout=stdout, stderr=subprocess.STDOUT, text=True, timeout=600)


def test_python_dash_m_runs_the_command_line():
    done = _run("--help")
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("usage: ase-hamgnn") and "train" in done.stdout
    import ase_hamgnn

    info = _run("info")
    assert info.returncode == 0 and info.stdout.strip() == f"ase-hamgnn {ase_hamgnn.__version__}"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from ase_hamgnn.data import make_reference_dataset

    root = tmp_path_factory.mktemp("cli")
    make_reference_dataset(root / "data", "nibr2", "1x1", 10, seed=3, progress=False)
    (root / "run.toml").write_text('dataset = "data"\nout = "run"\nepochs = 1\nbatch_size = 4\n'
                                   + TINY_MODEL_TOML)
    return root


def test_training_logs_one_line_per_epoch_into_a_file(tiny_run):
    log = tiny_run / "train.log"
    with log.open("w") as fh:  # ase-hamgnn train run.toml --epochs 2 > train.log 2>&1
        done = _run("train", "run.toml", "--epochs", "2", cwd=tiny_run, stdout=fh)
    text = log.read_text()
    assert done.returncode == 0, text
    epochs = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"], text
    for line in epochs:
        assert " loss " in line and " val MAE " in line and "(magnetic " in line
        assert " lr " in line and line.endswith(" s")
    assert "best validation MAE" in text
    assert (tiny_run / "run" / "best.pt").exists()


def test_a_typo_in_the_config_is_reported_with_the_fix(tiny_run, capsys):
    bad = tiny_run / "bad.toml"
    bad.write_text((tiny_run / "run.toml").read_text().replace("n_layers", "n_layer"))
    assert main(["train", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown key 'n_layer' (did you mean 'n_layers'?) in the "
                          "[model] table of ")
    assert "allowed keys: avg_neighbors," in err
