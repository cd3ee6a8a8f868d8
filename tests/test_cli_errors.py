"""Errors of the input reach the command line as one line ``error: ...`` and exit status 1,
without a traceback (``--traceback`` shows it); a diverged run fails and names no model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from tb_helpers import TINY_MODEL_TOML

from ase_hamgnn.cli import main


def _run(*args, cwd=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ASE_HAMGNN_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", "ase_hamgnn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from ase_hamgnn.data import make_reference_dataset

    root = tmp_path_factory.mktemp("cli-errors") / "data"
    make_reference_dataset(root, "nibr2", "1x1", 10, seed=3, progress=False)
    return root


def _one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_a_missing_config_file_is_one_line_in_a_subprocess(tmp_path, monkeypatch):
    done = _run("train", "missing.toml", cwd=tmp_path)
    assert done.returncode == 1
    assert "missing.toml" in _one_error_line(done.stderr)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError):  # --traceback: the exception itself
        main(["--traceback", "train", "missing.toml"])
    monkeypatch.setenv("ASE_HAMGNN_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError):
        main(["train", "missing.toml"])


@pytest.mark.parametrize("config, words", [
    ('dataset = "nowhere"\nout = "run"\n', "manifest.json"),          # DatasetError
    ('dataset = "data"\nout = "run"\nlr = inf\n', "lr = inf"),      # ConfigError
    ('dataset = "data"\nout = "run"\nbatch_size = 3\n', None),       # fine config, see below
])
def test_errors_of_the_train_command_are_one_line(data, tmp_path, capsys, config, words):
    shutil.copytree(data, tmp_path / "data")
    path = tmp_path / "run.toml"
    if words is None:  # a corrupted checkpoint in the out folder
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "last.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
        words = "last.pt"
    path.write_text(config + TINY_MODEL_TOML)
    assert main(["train", str(path)]) == 1
    captured = capsys.readouterr()
    assert words in _one_error_line(captured.err)
    assert "best validation MAE" not in captured.out


def test_errors_of_the_dataset_command_are_one_line(data, tmp_path, capsys):
    out = tmp_path / "data"
    shutil.copytree(data, out)
    assert main(["dataset", "--system", "nibr2", "--size", "1x1", "-n", "10", "--seed", "4",
                 "--out", str(out)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert str(out) in line and "delete" in line
    assert main(["dataset", "convert", "--from", "deeph", str(tmp_path / "nothing"),
                 "--out", str(tmp_path / "converted")]) == 1
    _one_error_line(capsys.readouterr().err)


def test_a_diverged_run_exits_1_and_names_no_model(data, tmp_path, capsys):
    shutil.copytree(data, tmp_path / "data")
    path = tmp_path / "run.toml"
    path.write_text('dataset = "data"\nout = "run"\nepochs = 1\nlr = 1e30\nlr_min = 0.0\n'
                    'max_train = 4\nmax_val = 1\n' + TINY_MODEL_TOML)
    assert main(["train", str(path)]) == 1
    captured = capsys.readouterr()
    assert "diverged" in _one_error_line(captured.err)
    assert "best validation MAE" not in captured.out and "best.pt" not in captured.out
    assert not (tmp_path / "run" / "best.pt").exists()
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.slow
def test_allow_dataset_change_on_the_command_line(data, tmp_path, capsys):
    from ase_hamgnn.data import make_reference_dataset

    shutil.copytree(data, tmp_path / "data")
    path = tmp_path / "run.toml"
    path.write_text('dataset = "data"\nout = "run"\nepochs = 2\nmax_train = 4\nmax_val = 1\n'
                    + TINY_MODEL_TOML)
    assert main(["train", str(path), "--epochs", "1"]) == 0
    shutil.rmtree(tmp_path / "data")
    make_reference_dataset(tmp_path / "data", "nibr2", "1x1", 10, seed=4, progress=False)
    capsys.readouterr()
    assert main(["train", str(path), "--epochs", "2"]) == 1
    assert "--allow-dataset-change" in _one_error_line(capsys.readouterr().err)
    assert main(["train", str(path), "--epochs", "2", "--allow-dataset-change"]) == 0
    assert "best validation MAE" in capsys.readouterr().out
