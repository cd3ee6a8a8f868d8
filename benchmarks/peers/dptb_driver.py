"""DeePTB side of benchmarks/peers.py; run by the DeePTB environment's python, never imported.

    benchmarks/peers/.venv/bin/python benchmarks/peers/dptb_driver.py JOB.json RESULT.json

JOB.json (written by benchmarks/peers.py): DeepH folders of spin-less NiBrI configurations
(``train``, ``test``: lists of folders), ``basis`` (element -> DeePTB basis string),
``r_max`` (Å), ``budget_s`` (training wall-clock budget), ``predict`` (atoms -> a JSON file
with ``numbers``, ``positions``, ``cell``, ``pbc``), ``threads``.

Steps, each recorded in RESULT.json with its time or the exact error:

1. convert the folders to DeePTB's ``DefaultDataset`` layout (see :func:`stage`);
2. train DeePTB's E3 model (SLEM embedding, e3tb prediction) with ``dptb train`` until the
   budget is spent (the run is stopped then; checkpoints are saved every step);
3. held-out MAE of the spin-less Hamiltonian blocks from the last checkpoint (eV, every
   element of the reference blocks, as the ase-hamgnn side measures it), and the prediction
   CPU time per structure size.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path


def stage(folders: list[str], root: Path, pbc) -> Path:
    """DeepH folders as DeePTB ``DefaultDataset`` frames: ``cell.dat``, ``positions.dat``,
    ``atomic_numbers.dat`` and ``hamiltonians.h5`` (group ``"0"``, keys ``i_j_Rx_Ry_Rz``,
    0-based atoms), blocks turned from OpenMX's real orbitals to DeePTB's with DeePTB's own
    matrices.  (DeePTB 2.2.1 reads DeepH folders as ``DeePHDataset`` too, but its training
    then fails: ``DeePHE3Dataset.E3statistics() got an unexpected keyword argument
    'model'``.)  One shared ``info.json``: DeePTB checks its keys strictly."""
    import h5py
    import numpy as np
    import torch
    from dptb.utils.constants import OPENMX2DeePTB

    root.mkdir(parents=True, exist_ok=True)
    key = re.compile(r"\[\s*(-?\d+),\s*(-?\d+),\s*(-?\d+),\s*(\d+),\s*(\d+)\s*\]")
    letter = "spdf"
    for i, folder in enumerate(folders):
        src, dest = Path(folder), root / f"frame.{i}"
        dest.mkdir(exist_ok=True)
        numbers = np.loadtxt(src / "element.dat", ndmin=1).astype(int)
        np.savetxt(dest / "cell.dat", np.loadtxt(src / "lat.dat").T)
        np.savetxt(dest / "positions.dat", np.loadtxt(src / "site_positions.dat").T)
        np.savetxt(dest / "atomic_numbers.dat", numbers, fmt="%d")
        rot = []
        for line in (src / "orbital_types.dat").read_text().splitlines():
            ls = [int(x) for x in line.split()]
            rot.append(torch.block_diag(*[OPENMX2DeePTB[letter[lv]] for lv in ls])
                       .double().numpy())
        with h5py.File(src / "hamiltonians.h5", "r") as fin, \
                h5py.File(dest / "hamiltonians.h5", "w") as fout:
            group = fout.create_group("0")
            for name in fin:
                rx, ry, rz, a, b = (int(x) for x in key.match(name).groups())
                block = rot[a - 1] @ np.asarray(fin[name]) @ rot[b - 1].T
                group[f"{a - 1}_{b - 1}_{rx}_{ry}_{rz}"] = block
    (root / "info.json").write_text(json.dumps({"nframes": 1, "pos_type": "cart",
                                                "pbc": pbc}))
    return root


def train_input(job: dict, train_root: Path, test_root: Path) -> dict:
    return {
        "common_options": {"basis": job["basis"], "device": "cpu", "dtype": "float32",
                           "overlap": False, "seed": 0},
        "model_options": {
            "embedding": {"method": "slem", "r_max": job["r_max"],
                          "irreps_hidden": "32x0e+16x1o+8x2e+8x3o+8x4e", "n_layers": 2,
                          "avg_num_neighbors": job.get("avg_num_neighbors", 18),
                          "n_radial_basis": 8, "tp_radial_emb": True},
            "prediction": {"method": "e3tb", "neurons": [32, 32]},
        },
        "train_options": {"num_epoch": 100000, "batch_size": 1,
                          "optimizer": {"type": "Adam", "lr": 5e-3},
                          "lr_scheduler": {"type": "exp", "gamma": 0.999},
                          "loss_options": {"train": {"method": "hamil_abs"}},
                          "save_freq": 1, "validation_freq": 100000, "display_freq": 1,
                          "max_ckpt": 2},
        "data_options": {"train": {"type": "DefaultDataset", "root": str(train_root),
                                   "prefix": "frame", "get_Hamiltonian": True}},
    }


def run_training(job: dict, work: Path, inp: dict) -> dict:
    (work / "input.json").write_text(json.dumps(inp, indent=1))
    out = work / "out"
    cmd = [sys.executable, "-m", "dptb", "train", str(work / "input.json"), "-o", str(out)]
    log = open(work / "train.log", "w")  # noqa: SIM115
    t0, c0 = time.perf_counter(), os.times()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        proc.wait(timeout=job["budget_s"])
        stopped = False
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait()
        stopped = True
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    log.close()
    text = (work / "train.log").read_text(errors="replace")
    if not stopped and proc.returncode != 0:
        raise RuntimeError(f"dptb train exited with {proc.returncode}:\n{text[-3000:]}")
    steps = max((int(n) for n in re.findall(r"iteration:(\d+)", text)), default=0)
    ckpts = sorted(glob.glob(str(out / "checkpoint" / "*.pth")), key=os.path.getmtime)
    if not ckpts:
        raise RuntimeError(f"no checkpoint after {wall:.0f} s of training:\n{text[-3000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "steps": steps, "checkpoint": ckpts[-1],
            "log_tail": text[-1500:]}


def _reference_blocks(test_root: Path) -> list[tuple]:
    """Positions and the spin-less reference blocks (``"i_j_Rx_Ry_Rz"`` -> array, DeePTB's
    orbital order) of every staged test frame."""
    import h5py
    import numpy as np

    frames = []
    for folder in sorted(test_root.glob("frame.*"), key=lambda p: int(p.suffix[1:])):
        with h5py.File(folder / "hamiltonians.h5", "r") as f:
            blocks = {k: np.asarray(v) for k, v in f["0"].items()}
        frames.append((np.loadtxt(folder / "positions.dat", ndmin=2), blocks))
    return frames


def _block_mae(pred: dict, ref: dict) -> tuple[float, int, int]:
    """Sum of |pred - ref| over every element of the reference blocks that ``pred`` holds
    (one orientation of each pair: DeePTB returns i <= j), the element count, and the
    number of reference blocks with no prediction."""
    import numpy as np

    total, count, missing = 0.0, 0, 0
    for key, block in pred.items():
        if key not in ref:
            continue
        total += float(np.abs(np.asarray(block, dtype=np.float64) - ref[key]).sum())
        count += ref[key].size
    keys = set(pred)
    for key in ref:
        i, j, *r = key.split("_")
        mirror = "_".join([j, i] + [str(-int(x)) for x in r])
        if key not in keys and mirror not in keys:
            missing += 1
    return total, count, missing


def evaluate(job: dict, ckpt: str, test_root: Path) -> dict:
    """Held-out MAE over the elements of the spin-less Hamiltonian blocks (the model's block
    features turned into blocks by DeePTB's own ``feature_to_block``, compared with the
    reference blocks of the test folders), and the prediction CPU time per size."""
    import numpy as np
    import torch
    from ase import Atoms
    from dptb.data import AtomicData, AtomicDataDict
    from dptb.data.build import build_dataset
    from dptb.data.interfaces.ham_to_feature import feature_to_block
    from dptb.nn.build import build_model

    torch.set_num_threads(int(job.get("threads", 1)))
    model = build_model(checkpoint=ckpt)
    model.eval()
    dataset = build_dataset(root=str(test_root), type="DefaultDataset", prefix="frame",
                            get_Hamiltonian=True, basis=job["basis"], r_max=job["r_max"],
                            er_max=None, oer_max=None)
    frames = _reference_blocks(test_root)
    err, count, missing, roundtrip = 0.0, 0, 0, 0.0
    for i in range(len(dataset)):
        data = AtomicData.to_AtomicDataDict(dataset[i])
        pos = data[AtomicDataDict.POSITIONS_KEY].detach().double().numpy()
        match = [f for f in frames if f[0].shape == pos.shape and np.allclose(f[0], pos,
                                                                               atol=1e-5)]
        if len(match) != 1:
            raise RuntimeError(f"test frame {i} matches {len(match)} staged folders")
        ref = match[0][1]
        # the conversion itself, checked on the reference features
        ref_blocks = feature_to_block(data, model.idp)
        for key, block in ref_blocks.items():
            if key in ref:
                roundtrip = max(roundtrip, float(np.abs(block.double().numpy() - ref[key])
                                                 .max()))
        with torch.no_grad():
            out = model(data)
        pred = {k: v.detach().double().numpy() for k, v in
                feature_to_block(out, model.idp).items()}
        e, c, m = _block_mae(pred, ref)
        err, count, missing = err + e, count + c, missing + m
    predict = {}
    for n, path in job["predict"].items():
        s = json.loads(Path(path).read_text())
        atoms = Atoms(numbers=s["numbers"], positions=s["positions"], cell=s["cell"],
                      pbc=s["pbc"])
        times = []
        for _ in range(int(job.get("repeats", 1))):
            c0 = time.process_time()
            data = AtomicData.from_ase(atoms, r_max=job["r_max"])
            data = model.idp(AtomicData.to_AtomicDataDict(data))
            with torch.no_grad():
                model(data)
            times.append(time.process_time() - c0)
        predict[n] = float(np.median(times))
    return {"mae_eV": err / max(count, 1), "mae_elements": count,
            "mae_missing_blocks": missing, "reference_roundtrip_eV": roundtrip,
            "predict_s": predict}


def main(job_path: str, result_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    work = Path(job_path).parent / "dptb"
    work.mkdir(exist_ok=True)
    res: dict = {"stage": "import"}
    try:
        import dptb
        import torch

        torch.set_num_threads(int(job.get("threads", 1)))
        res["versions"] = {"dptb": getattr(dptb, "__version__", "?"), "torch": torch.__version__}
        res["stage"] = "stage data"
        train_root = stage(job["train"], work / "train", job["pbc"])
        test_root = stage(job["test"], work / "test", job["pbc"])
        res["stage"] = "train"
        tr = run_training(job, work, train_input(job, train_root, test_root))
        res.update({"train_wall_s": tr["wall_s"], "train_cpu_s": tr["cpu_s"],
                    "steps": tr["steps"], "log_tail": tr["log_tail"]})
        res["train_s_per_config_step"] = tr["cpu_s"] / max(tr["steps"], 1)
        res["stage"] = "evaluate"
        res.update(evaluate(job, tr["checkpoint"], test_root))
        res["stage"] = "done"
        res.update({"n_train": len(job["train"]), "n_test": len(job["test"]),
                    "train_atoms": job["train_atoms"], "budget_s": job["budget_s"]})
    except Exception:  # noqa: BLE001 - the report carries the exact error
        res["error"] = traceback.format_exc()[-4000:]
    Path(result_path).write_text(json.dumps(res, indent=1))
    if "error" in res:
        print(res["error"], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
