"""Training HamGNN++ on Hamiltonian datasets: loss, metrics, checkpoints, resume.

``train(TrainConfig(...))`` (or ``ase-hamgnn train config.toml``) fits a model to a folder
written by :func:`ase_hamgnn.data.write_dataset`.  The loss is the mean squared error of the
real and imaginary parts of every on-site and edge block, plus ``magnetic_weight`` times the
same error on the magnetic (time-reversal-odd) parts, which are orders of magnitude smaller
than the rest and would otherwise be ignored.  Each epoch is validated; ``last.pt`` (with
optimizer, scheduler, RNG states and history) and ``best.pt`` are written atomically, and a
run started again with the same configuration resumes from ``last.pt``.
"""

from __future__ import annotations

import json
import math
import os
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from ase_hamgnn import keys as K
from ase_hamgnn._atomic import atomic_write_bytes
from ase_hamgnn.errors import CheckpointError
from ase_hamgnn.model import HamGNNModel, ModelConfig
from ase_hamgnn.model.assembly import time_reversal_odd, time_reversal_partner

__all__ = ["TrainConfig", "block_errors", "evaluate", "load_train_config", "train"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; stored in its checkpoints.

    Attributes
    ----------
    dataset : folder written by ``write_dataset`` (``manifest.json`` inside).
    out : folder for ``last.pt``, ``best.pt`` and ``history.json``.
    model : keyword arguments of :class:`ModelConfig` other than ``basis``/``cutoff``
        (taken from the dataset); ``magnetic`` and ``valence`` default to the reference
        model's for reference datasets.
    epochs, batch_size, lr, lr_min : Adam with a cosine schedule from ``lr`` to ``lr_min``.
    magnetic_weight : weight of the magnetic-part loss.
    seed : seeds the initial weights and the shuffling.
    device, dtype : ``"cpu"``/``"cuda"``/``"auto"``; ``"float32"`` or ``"float64"``.
    max_train, max_val : use only the first records of each split (0 = all).
    """

    dataset: str
    out: str
    model: dict[str, Any] = field(default_factory=dict)
    epochs: int = 50
    batch_size: int = 4
    lr: float = 5e-3
    lr_min: float = 1e-4
    magnetic_weight: float = 100.0
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    max_train: int = 0
    max_val: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr):
            raise ValueError("need lr > 0 and 0 <= lr_min <= lr")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_train_config(path: str | os.PathLike) -> TrainConfig:
    """Read a training configuration from TOML (``[model]`` table for the network).

    Relative ``dataset`` and ``out`` paths are taken relative to the file's folder."""
    path = Path(path)
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    names = {f.name for f in fields(TrainConfig)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(names)}")
    for key in ("dataset", "out"):
        if key in data and not os.path.isabs(data[key]):
            data[key] = str(path.parent / data[key])
    return TrainConfig(**data)


def _model_config(cfg: TrainConfig, manifest: dict[str, Any]) -> ModelConfig:
    kwargs = dict(cfg.model)
    system = manifest.get("system")
    if system and ("magnetic" not in kwargs or "valence" not in kwargs):
        from ase_hamgnn.data import ReferenceTB

        ref = ReferenceTB(system)
        kwargs.setdefault("magnetic", ref.magnetic_elements)
        kwargs.setdefault("valence", {el: float(v) for el, v in ref.valence.items()})
    return ModelConfig(basis=manifest["basis"], cutoff=float(manifest["cutoff"]), **kwargs)


class _Partners:
    """Caches time-reversal partner maps per batch layout."""

    def __init__(self, model: HamGNNModel) -> None:
        zs = max(int(z) for z in _atomic_numbers(model.basis.elements)) + 1
        table = torch.zeros(zs, dtype=torch.long)
        for s, z in zip(model.basis.elements, _atomic_numbers(model.basis.elements)):
            table[z] = model.basis.n_orbitals(s)
        self.table = table

    def __call__(self, batch):
        n = self.table[batch[K.ATOMIC_NUMBERS].cpu()]
        src, dst = batch[K.EDGE_INDEX].cpu()
        dev = batch[K.ATOMIC_NUMBERS].device
        on = time_reversal_partner(n, n)
        ed = time_reversal_partner(n[src], n[dst])
        return tuple(t.to(dev) for t in on), tuple(t.to(dev) for t in ed)


def _atomic_numbers(symbols):
    from ase.data import atomic_numbers

    return [atomic_numbers[s] for s in symbols]


def block_errors(out: dict[str, torch.Tensor], batch, partners) -> dict[str, torch.Tensor]:
    """Squared and absolute errors (eV) of all entries and of the magnetic parts."""
    (on_i, on_s), (ed_i, ed_s) = partners
    target_on = batch[K.H_ONSITE].to(out["onsite"].dtype)
    target_ed = batch[K.H_EDGE].to(out["edge"].dtype)
    diff = torch.cat([out["onsite"] - target_on, out["edge"] - target_ed])
    mag_target = torch.cat([time_reversal_odd(target_on, on_i, on_s),
                            time_reversal_odd(target_ed, ed_i, ed_s)])
    mag_diff = torch.cat([out["onsite_magnetic"], out["edge_magnetic"]]) - mag_target
    real = torch.view_as_real(diff)
    real_mag = torch.view_as_real(mag_diff)
    return {
        "mse": (real**2).mean(),
        "mse_magnetic": (real_mag**2).mean(),
        "abs_sum": real.abs().sum(),
        "abs_sum_magnetic": real_mag.abs().sum(),
        "count": torch.tensor(real.numel(), dtype=torch.float64),
    }


def evaluate(model: HamGNNModel, loader, partners=None) -> dict[str, float]:
    """Mean absolute errors (meV) over real and imaginary parts of all block entries, and
    of their magnetic parts, on ``loader``."""
    partners = partners or _Partners(model)
    model.network.eval()
    tot = {"abs": 0.0, "abs_mag": 0.0, "n": 0.0}
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(model.device)
            err = block_errors(model.network(batch), batch, partners(batch))
            tot["abs"] += float(err["abs_sum"])
            tot["abs_mag"] += float(err["abs_sum_magnetic"])
            tot["n"] += float(err["count"])
    n = max(tot["n"], 1.0)
    return {"mae_meV": 1e3 * tot["abs"] / n, "mae_magnetic_meV": 1e3 * tot["abs_mag"] / n}


def _subset(ds, limit: int):
    return ds if not limit or limit >= len(ds) else ds[:limit]


def train(cfg: TrainConfig, progress: bool | None = None, max_epochs: int | None = None
          ) -> dict[str, Any]:
    """Run (or resume) a training run; returns the history and the best validation MAE.

    ``max_epochs`` limits the epochs run by this call (a time-boxed chunk of a longer run:
    calling again resumes from ``last.pt`` with the same schedule).

    Raises
    ------
    ValueError
        If ``out`` holds a run with a different configuration.
    """
    from ase_hamgnn.data import HamiltonianDataset

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_ds = _subset(HamiltonianDataset(cfg.dataset, "train"), cfg.max_train)
    val_ds = _subset(HamiltonianDataset(cfg.dataset, "val"), cfg.max_val)
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise ValueError(f"dataset {cfg.dataset} needs non-empty train and val splits")
    model_cfg = _model_config(cfg, train_ds.manifest if hasattr(train_ds, "manifest")
                              else HamiltonianDataset(cfg.dataset, "train").manifest)
    model = HamGNNModel(model_cfg, device=cfg.device, dtype=_DTYPES[cfg.dtype], seed=cfg.seed)
    optimizer = torch.optim.Adam(model.network.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs,
                                                           eta_min=cfg.lr_min)
    generator = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    best = math.inf
    start_epoch = 0
    last = out / "last.pt"
    if last.exists():
        state = _read(last)
        saved = state.get("train", {})
        if saved.get("config") != _resumable(cfg):
            raise ValueError(
                f"{out} holds a run with another configuration; use a new 'out' folder or "
                "delete its checkpoints")
        model.network.load_state_dict(state["weights"])
        model.network.refresh_constants()
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        history = list(saved["history"])
        best = float(saved["best"])
        start_epoch = int(saved["epoch"]) + 1
    partners = _Partners(model)
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True,
                              generator=generator)
    val_loader = DataLoader(val_ds, batch_size=cfg.batch_size)
    stop = cfg.epochs if max_epochs is None else min(cfg.epochs, start_epoch + max_epochs)
    bar = tqdm(range(start_epoch, stop), desc="training", unit="epoch",
               disable=None if progress is None else not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        model.network.train()
        losses = []
        for batch in train_loader:
            batch = batch.to(model.device)
            err = block_errors(model.network(batch), batch, partners(batch))
            loss = err["mse"] + cfg.magnetic_weight * err["mse_magnetic"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        scheduler.step()
        metrics = evaluate(model, val_loader, partners)
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0,
               "lr": optimizer.param_groups[0]["lr"], **{f"val_{k}": v for k, v in metrics.items()}}
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.2e}", val_mae=f"{metrics['mae_meV']:.2f} meV")
        improved = metrics["mae_meV"] < best
        best = min(best, metrics["mae_meV"])
        train_state = {"config": _resumable(cfg), "epoch": epoch, "history": history,
                       "best": best, "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "generator": generator.get_state()}
        if improved:
            model.save(out / "best.pt", metrics=metrics, epoch=epoch)
        model.save(last, train=train_state)
        atomic_write_bytes(out / "history.json", json.dumps(history, indent=1).encode())
    return {"history": history, "best_val_mae_meV": best, "best": str(out / "best.pt")}


def _resumable(cfg: TrainConfig) -> dict[str, Any]:
    """The parts of a config that must match to resume (more epochs may be asked for)."""
    d = cfg.to_dict()
    d.pop("epochs")
    return json.loads(json.dumps(d))


def _read(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}; delete it to start over"
                              ) from exc
