"""Training HamGNN++ on Hamiltonian datasets: loss, metrics, checkpoints, resume.

``train(TrainConfig(...))`` (or ``ase-hamgnn train config.toml``) fits a model to a folder
written by :func:`ase_hamgnn.data.write_dataset`.  The loss is the mean squared error of the
real and imaginary parts of every on-site and edge block, plus ``magnetic_weight`` times the
same error on the magnetic (time-reversal-odd) parts, which are orders of magnitude smaller
than the rest and would otherwise be ignored.  Each epoch is validated; ``last.pt`` (with
optimizer, scheduler and history; the shuffling of each epoch is drawn from the seed and the
epoch number) and ``best.pt`` are written atomically, and a run started again with the
same configuration resumes from ``last.pt`` -- on the same dataset only: the checkpoint
holds the dataset's fingerprint (and split), and a dataset written again with other data
raises :class:`~ase_hamgnn.errors.DatasetChangedError` unless ``allow_dataset_change`` is
set.  A loss or weights that become NaN or infinite stop the run with
:class:`~ase_hamgnn.errors.TrainingDivergedError` before anything of that epoch is written.

The same :func:`train` runs data-parallel under ``torchrun`` (:mod:`ase_hamgnn.train.distributed`):
``batch_size`` is the global batch, split evenly over the processes by a
``DistributedSampler``, and the loss of every step is normalised by the number of block
entries of the whole global batch, so that the gradients ``DistributedDataParallel``
averages are those of one process holding the global batch.  Validation sums are
all-reduced; only rank 0 writes checkpoints and shows progress (a tqdm bar on a terminal,
one plain line per epoch in a log file).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from ase_hamgnn import keys as K
from ase_hamgnn._atomic import atomic_write_bytes
from ase_hamgnn.errors import ConfigError, DatasetChangedError, TrainingDivergedError
from ase_hamgnn.model import HamGNNModel, ModelConfig
from ase_hamgnn.model.assembly import time_reversal_odd, time_reversal_partner
from ase_hamgnn.model.baseline import fit_two_centre, residual_scales
from ase_hamgnn.model.config import (
    BOOLEAN,
    TEXT,
    Check,
    check_model_values,
    check_values,
    integer,
    number,
    one_of,
)
from ase_hamgnn.model.hamgnn_model import read_checkpoint
from ase_hamgnn.model.onsite import fit_onsite_environment
from ase_hamgnn.train.average import WeightAverage
from ase_hamgnn.train.distributed import DistributedContext, distributed_context

__all__ = ["TrainConfig", "block_errors", "dataset_fingerprint", "evaluate",
           "initial_fit", "load_train_config", "mean_onsite_h0", "moment_range", "train"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Keys a training configuration's ``[model]`` table may hold (``basis`` and ``cutoff`` come
#: from the dataset).
MODEL_KEYS = tuple(sorted(f.name for f in fields(ModelConfig) if f.name not in ("basis", "cutoff")))


def _check_model_keys(model: dict[str, Any], where: str) -> None:
    hint = ("basis and cutoff come from the dataset's manifest.json and cannot be set there"
            if {"basis", "cutoff"} & set(model) else "")
    ConfigError.check_keys(model, MODEL_KEYS, where, hint)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; stored in its checkpoints.

    Attributes
    ----------
    dataset : folder written by ``write_dataset`` (``manifest.json`` inside).
    out : folder for ``last.pt``, ``best.pt`` and ``history.json``.
    model : keyword arguments of :class:`ModelConfig` other than ``basis``/``cutoff``
        (taken from the dataset); ``magnetic`` and ``valence`` default to the reference
        model's for reference datasets.  An unknown key raises :class:`ConfigError`.
    epochs, lr, lr_min : Adam with a cosine schedule from ``lr`` to ``lr_min``.  A run
        resumed with another ``epochs`` continues the schedule from its current learning
        rate, falling by a cosine to ``lr_min`` over the epochs left (it never rises again).
    batch_size : structures per optimizer step, over all processes of a data-parallel run
        (it must be a multiple of their number).
    magnetic_weight : weight of the magnetic-part loss.
    onsite_loss_weight : weight of the on-site blocks' squared errors against the bond
        blocks' (default 1: every entry alike), in the entry and the magnetic-part loss.
        The on-site 3d blocks of an open-shell magnet carry its orbital polarization and,
        with spin-orbit coupling, its anisotropy, but they are a small share of the entries.
    seed : seeds the initial weights and the shuffling (a permutation of the training set
        per epoch, drawn from ``seed + epoch``, the same for any number of processes).
    device, dtype : ``"cpu"``/``"cuda"``/``"auto"`` (under ``torchrun``, ``"cuda"`` is the GPU
        of each process's local rank); ``"float32"`` or ``"float64"``.
    ema_decay : exponential moving average of the weights (0 = off, e.g. 0.999): after each
        step ``w_avg <- d w_avg + (1 - d) w`` with ``d = min(ema_decay, (1 + t) / (10 + t))``
        at step ``t``; validation and ``best.pt`` use the averaged weights, training goes on
        with the raw ones (both are in ``last.pt``).
    eigen_weight, eigen_window : weight (default 0, off; about 1e-3 to 1e-2 balances
        meV entry errors against tens of meV in eigenvalues) of the mean squared error of the
        eigenvalues at Γ within ``eigen_window`` eV (default 3) of the reference's mid-gap
        (:mod:`ase_hamgnn.train.eigen`).  The history's ``loss`` is the entry loss alone;
        ``loss_eigen`` is the eigenvalues' mean squared error (eV²).
    max_train, max_val : use only the first records of each split (0 = all).
    allow_dataset_change : resume even if the dataset's fingerprint or split differs from the
        one the checkpoint was trained on (default: refuse with ``DatasetChangedError``).

    Every value is checked for its type and range; a wrong one raises :class:`ConfigError`
    naming the key, the value and what it must be.
    """

    dataset: str
    out: str
    model: dict[str, Any] = field(default_factory=dict)
    epochs: int = 50
    batch_size: int = 4
    lr: float = 5e-3
    lr_min: float = 1e-4
    magnetic_weight: float = 100.0
    onsite_loss_weight: float = 1.0
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    ema_decay: float = 0.0
    eigen_weight: float = 0.0
    eigen_window: float = 3.0
    max_train: int = 0
    max_val: int = 0
    allow_dataset_change: bool = False

    def __post_init__(self) -> None:
        _check_train_values(self.to_dict(), "the training configuration")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_device(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if value == "auto":
        return True
    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        return False
    return True


#: Type and range of every TrainConfig value (``model`` is checked key by key).
TRAIN_CHECKS: dict[str, Check] = {
    "dataset": TEXT, "out": TEXT,
    "model": Check(lambda v: isinstance(v, dict), "a table of ModelConfig keys ([model])"),
    "epochs": integer(1), "batch_size": integer(1),
    "lr": number(0, strict=True), "lr_min": number(0, strict=False),
    "magnetic_weight": number(0, strict=False), "seed": integer(0),
    "onsite_loss_weight": number(0, strict=True),
    "device": Check(_is_device, "'cpu', 'cuda', 'cuda:N' or 'auto'"),
    "dtype": one_of(*_DTYPES), "max_train": integer(0), "max_val": integer(0),
    "ema_decay": Check(lambda v: isinstance(v, int | float) and not isinstance(v, bool)
                       and 0 <= v < 1, "a number in [0, 1) (0: no averaging)"),
    "eigen_weight": number(0, strict=False), "eigen_window": number(0, strict=True),
    "allow_dataset_change": BOOLEAN,
}


def _check_train_values(values: dict[str, Any], where: str,
                        model_where: str = "the model table") -> None:
    """Types and ranges of a training configuration's values (ConfigError naming ``where``)."""
    check_values(values, TRAIN_CHECKS, where)
    if "model" in values:
        _check_model_keys(values["model"], model_where)
        check_model_values(values["model"], model_where)
    lr, lr_min = values.get("lr", TrainConfig.lr), values.get("lr_min", TrainConfig.lr_min)
    if lr_min > lr:
        raise ConfigError(f"lr_min = {lr_min!r} in {where}: expected a finite number between 0 "
                          f"and lr = {lr!r}")

def load_train_config(path: str | os.PathLike) -> TrainConfig:
    """Read a training configuration from TOML (``[model]`` table for the network).

    Relative ``dataset`` and ``out`` paths are taken relative to the file's folder.

    Raises
    ------
    ConfigError
        For a file that is not valid TOML, an unknown key at the top level or in ``[model]``
        (the message names the closest allowed key and all allowed keys), or a value of the
        wrong type or range (the message names the key, the file, the value and what it must
        be)."""
    path = Path(path)
    with path.open("rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    ConfigError.check_keys(data, [f.name for f in fields(TrainConfig)], str(path))
    _check_train_values(data, str(path), f"the [model] table of {path}")
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


def block_errors(out: dict[str, torch.Tensor], batch, partners,
                 onsite_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Squared and absolute errors (eV) of all entries and of the magnetic parts.

    Means (``mse``, ``mse_magnetic``, eV²) and sums (``sq_sum``, ``sq_sum_magnetic``, eV²;
    ``abs_sum``, ``abs_sum_magnetic``, eV) over the real and imaginary parts of every block
    entry of ``batch``, and their number ``count`` (the same for both parts).  The squared
    sums (the training loss) count on-site entries ``onsite_weight`` times; the means and the
    absolute sums (the reported errors) count every entry once."""
    (on_i, on_s), (ed_i, ed_s) = partners
    target_on = batch[K.H_ONSITE].to(out["onsite"].dtype)
    target_ed = batch[K.H_EDGE].to(out["edge"].dtype)
    diff = torch.cat([out["onsite"] - target_on, out["edge"] - target_ed])
    mag_target = torch.cat([time_reversal_odd(target_on, on_i, on_s),
                            time_reversal_odd(target_ed, ed_i, ed_s)])
    mag_diff = torch.cat([out["onsite_magnetic"], out["edge_magnetic"]]) - mag_target
    real = torch.view_as_real(diff)
    real_mag = torch.view_as_real(mag_diff)
    sq, sq_mag = real**2, real_mag**2
    if onsite_weight != 1.0:
        n_on = len(target_on)
        sq_sum = onsite_weight * sq[:n_on].sum() + sq[n_on:].sum()
        sq_sum_mag = onsite_weight * sq_mag[:n_on].sum() + sq_mag[n_on:].sum()
    else:
        sq_sum, sq_sum_mag = sq.sum(), sq_mag.sum()
    return {
        "mse": sq.mean(),
        "mse_magnetic": sq_mag.mean(),
        "sq_sum": sq_sum,
        "sq_sum_magnetic": sq_sum_mag,
        "abs_sum": real.abs().sum(),
        "abs_sum_magnetic": real_mag.abs().sum(),
        "count": torch.tensor(real.numel(), dtype=torch.float64),
    }


def evaluate(model: HamGNNModel, loader, partners=None) -> dict[str, float]:
    """Mean absolute errors (meV) over real and imaginary parts of all block entries, and
    of their magnetic parts, on ``loader``."""
    return _maes(_error_sums(model, loader, partners or _Partners(model)))


def _error_sums(model: HamGNNModel, loader, partners) -> torch.Tensor:
    """``[sum |error|, sum |magnetic error|, count]`` (eV, float64) over ``loader``."""
    model.network.eval()
    tot = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(model.device)
            err = block_errors(model.network(batch), batch, partners(batch))
            tot += torch.stack([err["abs_sum"].detach().cpu().double(),
                                err["abs_sum_magnetic"].detach().cpu().double(),
                                err["count"]])
    return tot


def _maes(sums: torch.Tensor) -> dict[str, float]:
    n = max(float(sums[2]), 1.0)
    return {"mae_meV": 1e3 * float(sums[0]) / n, "mae_magnetic_meV": 1e3 * float(sums[1]) / n}


def _subset(ds, limit: int):
    return ds if not limit or limit >= len(ds) else ds[:limit]


def train(cfg: TrainConfig, progress: bool | None = None, max_epochs: int | None = None
          ) -> dict[str, Any]:
    """Run (or resume) a training run; returns the history and the best validation MAE.

    ``max_epochs`` limits the epochs run by this call (a time-boxed chunk of a longer run:
    calling again resumes from ``last.pt`` with the same schedule; resuming with another
    ``epochs`` continues the learning rate from where it stopped, see :class:`TrainConfig`).
    ``progress=None`` shows a tqdm bar when stderr is a terminal and otherwise prints one
    plain line per epoch to stderr (epoch, training loss, validation MAE of all entries and
    of the magnetic parts, learning rate, seconds), as a batch job's log wants; ``True``
    forces the bar, ``False`` is silent.  Launched by ``torchrun``
    (several processes), every process runs this function: each trains on its share of
    every global batch, and rank 0 alone writes the checkpoints and shows progress; the
    result is returned on every process.  A run may be resumed with another number of
    processes.  When the training set size is a multiple of the number of processes, a
    data-parallel run takes the same steps as one process (up to floating-point rounding).

    Raises
    ------
    ValueError
        If ``out`` holds a run with a different configuration, or ``batch_size`` is not a
        multiple of the number of processes.
    DatasetChangedError
        If ``out`` holds a run trained on other data than ``dataset`` holds now (unless
        ``allow_dataset_change``).
    TrainingDivergedError
        If the loss, the weights or the validation error become NaN or infinite; the
        checkpoints keep the last finite epoch.

    Examples
    --------
    >>> cfg = load_train_config("configs/nibri-reference.toml")  # doctest: +SKIP
    >>> train(cfg)["best_val_mae_meV"]  # doctest: +SKIP
    """
    with distributed_context(cfg.device) as ctx:
        return _train(cfg, ctx, progress, max_epochs)


def _train(cfg: TrainConfig, ctx: DistributedContext, progress: bool | None,
           max_epochs: int | None) -> dict[str, Any]:
    from ase_hamgnn.data import HamiltonianDataset

    if cfg.batch_size % ctx.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} (the global batch) must be a multiple "
                         f"of the number of processes, {ctx.world_size}")
    out = Path(cfg.out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    full_train = HamiltonianDataset(cfg.dataset, "train")
    train_ds = _subset(full_train, cfg.max_train)
    val_ds = _subset(HamiltonianDataset(cfg.dataset, "val"), cfg.max_val)
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise ValueError(f"dataset {cfg.dataset} needs non-empty train and val splits")
    model_cfg = _model_config(cfg, full_train.manifest)
    dataset_id = dataset_fingerprint(full_train.manifest)
    model = HamGNNModel(model_cfg, device=ctx.device, dtype=_DTYPES[cfg.dtype], seed=cfg.seed)
    optimizer = torch.optim.Adam(model.network.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs,
                                                           eta_min=cfg.lr_min)
    history: list[dict[str, float]] = []
    best = math.inf
    start_epoch = 0
    last = out / "last.pt"
    if last.exists():
        state = read_checkpoint(last)
        saved = state.get("train", {})
        if saved.get("config") != _resumable(cfg):
            raise ValueError(
                f"{out} holds a run with another configuration; use a new 'out' folder or "
                "delete its checkpoints")
        trained_on = saved.get("dataset_fingerprint")  # older checkpoints hold none
        if trained_on is not None and trained_on != dataset_id and not cfg.allow_dataset_change:
            raise DatasetChangedError(
                f"{cfg.dataset} is not the dataset {last} was trained on (it was written again "
                "with other data or another split); train into a new 'out' folder, or set "
                "allow_dataset_change = true in the config (ase-hamgnn train "
                "--allow-dataset-change) to continue this run on the new data")
        model.network.load_state_dict(state["weights"])
        model.network.refresh_constants()
        optimizer.load_state_dict(saved["optimizer"])
        history = list(saved["history"])
        best = float(saved["best"])
        start_epoch = int(saved["epoch"]) + 1
        # the schedule of the saved run ends at its own number of epochs (older checkpoints
        # hold no "epochs": their schedule's T_max is it)
        if saved.get("epochs", saved["scheduler"].get("T_max")) == cfg.epochs:
            scheduler.load_state_dict(saved["scheduler"])
        else:  # another length: a cosine from the current lr down to lr_min over what is left
            scheduler = _continued_schedule(optimizer, cfg.epochs - start_epoch, cfg.lr_min)
    else:  # a fresh run starts from the average on-site block and the two-centre fit
        initial_fit(model, train_ds)
    model.moment_range = moment_range(train_ds, model_cfg.magnetic)  # stored in checkpoints
    average = WeightAverage(model.network, cfg.ema_decay) if cfg.ema_decay else None
    if average is not None and start_epoch:
        average.load_state_dict(state["train"]["weight_average"])
    network = ctx.wrap(model.network)
    partners = _Partners(model)
    eigen = _eigen_term(model, cfg.eigen_window) if cfg.eigen_weight else None
    sampler = DistributedSampler(train_ds, num_replicas=ctx.world_size, rank=ctx.rank,
                                 shuffle=True, seed=cfg.seed)
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size // ctx.world_size,
                              sampler=sampler)
    # validation: a disjoint share per process (no padding), sums all-reduced
    val_loader = DataLoader(val_ds[ctx.rank::ctx.world_size], batch_size=cfg.batch_size)
    stop = cfg.epochs if max_epochs is None else min(cfg.epochs, start_epoch + max_epochs)
    show = ctx.is_main and (progress is None or progress)
    bar = tqdm(range(start_epoch, stop), desc="training", unit="epoch",
               disable=None if show and progress is None else not show)
    # no bar where stderr is not a terminal (a batch job's log): one plain line per epoch
    plain = show and bool(bar.disable)
    for epoch in bar:
        t0 = time.perf_counter()
        network.train()
        sampler.set_epoch(epoch)
        losses, eig_losses = [], []
        for batch in train_loader:
            batch = batch.to(ctx.device)
            pred = network(batch)
            err = block_errors(pred, batch, partners(batch), cfg.onsite_loss_weight)
            local = err["sq_sum"] + cfg.magnetic_weight * err["sq_sum_magnetic"]
            # entries and loss of the whole global batch; the local loss is scaled so that
            # the gradient average over processes is the gradient of the global-batch mean
            totals = ctx.all_reduce_sum(torch.stack([err["count"], local.detach().cpu().double()]))
            if not math.isfinite(float(totals[1])):  # the same on every process
                raise _diverged(f"the training loss became {float(totals[1])}", epoch,
                                optimizer, last)
            loss = local * (ctx.world_size / float(totals[0]))
            if eigen is not None:  # mean over the eigenvalues of the whole global batch
                eig_sq, eig_n = eigen.errors(pred, batch)
                eig_tot = ctx.all_reduce_sum(torch.tensor(
                    [float(eig_sq.detach()), float(eig_n)], dtype=torch.float64))
                if float(eig_tot[1]):
                    loss = loss + cfg.eigen_weight * eig_sq * (ctx.world_size / float(eig_tot[1]))
                    eig_losses.append(float(eig_tot[0] / eig_tot[1]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update()
            losses.append(float(totals[1] / totals[0]))
        scheduler.step()
        with average.swapped() if average is not None else contextlib.nullcontext():
            metrics = _maes(ctx.all_reduce_sum(_error_sums(model, val_loader, partners)))
        bad = [name for name, p in model.network.named_parameters()
               if not bool(torch.isfinite(p).all())]
        if bad or not all(math.isfinite(v) for v in metrics.values()):
            what = (f"the weights {', '.join(bad[:3])} became NaN or infinite" if bad else
                    f"the validation MAE became {metrics['mae_meV']}")
            raise _diverged(what, epoch, optimizer, last)
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0,
               "lr": optimizer.param_groups[0]["lr"], **{f"val_{k}": v for k, v in metrics.items()}}
        if eig_losses:  # mean squared eigenvalue error (eV²), not part of "loss"
            row["loss_eigen"] = float(np.mean(eig_losses))
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.2e}", val_mae=f"{metrics['mae_meV']:.2f} meV")
        if plain:
            print(_epoch_line(row, cfg.epochs), file=sys.stderr, flush=True)
        improved = metrics["mae_meV"] < best
        best = min(best, metrics["mae_meV"])
        if ctx.is_main:
            train_state = {"config": _resumable(cfg), "dataset_fingerprint": dataset_id,
                           "epoch": epoch, "epochs": cfg.epochs,
                           "history": history, "best": best, "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "processes": ctx.world_size}
            if average is not None:
                train_state["weight_average"] = average.state_dict()
            if improved:
                with average.swapped() if average is not None else contextlib.nullcontext():
                    model.save(out / "best.pt", metrics=metrics, epoch=epoch)
            model.save(last, train=train_state)
            atomic_write_bytes(out / "history.json", json.dumps(history, indent=1).encode())
    ctx.barrier()  # the checkpoints exist for every process when train returns
    return {"history": history, "best_val_mae_meV": best, "best": str(out / "best.pt")}


def _eigen_term(model: HamGNNModel, window: float):
    """The Γ eigenvalue term of ``model``'s basis and valence table."""
    from ase.data import atomic_numbers

    from ase_hamgnn.train.eigen import GammaEigenvalues

    cfg = model.config
    missing = [el for el in model.basis.elements if el not in cfg.valence]
    if missing:
        raise ConfigError(f"eigen_weight needs the valence electrons of every element of the "
                          f"basis; add {', '.join(missing)} to the valence table of [model] "
                          "(e.g. valence = { Fe = 8.0 })")
    sizes = {atomic_numbers[el]: 2 * model.basis.n_orbitals(el) for el in model.basis.elements}
    valence = {atomic_numbers[el]: float(v) for el, v in cfg.valence.items()}
    return GammaEigenvalues(sizes, valence, window=window)


def _continued_schedule(optimizer: torch.optim.Optimizer, remaining: int, lr_min: float
                        ) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """A cosine schedule from the optimizer's current learning rate down to ``lr_min`` in
    ``remaining`` epochs: resuming a run with another number of epochs never raises the
    learning rate again."""
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]  # the scheduler starts from initial_lr
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(remaining, 1),
                                                      eta_min=lr_min)


def _epoch_line(row: dict[str, float], epochs: int) -> str:
    """One plain log line of an epoch (``row`` of the history)."""
    return (f"epoch {row['epoch'] + 1}/{epochs}  loss {row['loss']:.4e}  "
            f"val MAE {row['val_mae_meV']:.3f} meV (magnetic {row['val_mae_magnetic_meV']:.3f} "
            f"meV)  lr {row['lr']:.3e}  {row['seconds']:.1f} s")


def initial_fit(model: HamGNNModel, dataset) -> None:
    """Start a fresh run from what a linear fit to ``dataset`` explains: the average on-site
    block (``onsite_bias``, :func:`mean_onsite_h0`) and the least-squares two-centre bond
    term (``two_centre``, :func:`~ase_hamgnn.model.baseline.fit_two_centre`) and the on-site
    levels' environment term (``onsite_environment``,
    :func:`~ase_hamgnn.model.onsite.fit_onsite_environment`); the network learns the rest."""
    network = model.network
    if model.config.onsite_bias:
        mean = mean_onsite_h0(dataset, model.basis)
        network.set_onsite_bias(mean)
        if model.config.onsite_environment:
            network.onsite_environment.set_coefficients(
                fit_onsite_environment(network.onsite_environment, dataset, mean))
    if model.config.two_centre:
        network.two_centre.set_coefficients(fit_two_centre(network.two_centre, dataset))
        if model.config.two_centre_scale:
            network.two_centre.set_scales(residual_scales(network.two_centre, dataset))


def moment_range(dataset, magnetic) -> dict[str, tuple[float, float]]:
    """Smallest and largest moment size (μB) of each magnetic element over the records of
    ``dataset``: what a model trained on it has seen (:meth:`HamGNNModel.check_moment_range`
    warns outside it)."""
    from ase.data import atomic_numbers

    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for record in dataset:
        z = record[K.ATOMIC_NUMBERS].numpy()
        sizes = np.linalg.norm(record[K.MOMENTS].numpy().astype(np.float64), axis=1)
        for element in magnetic:
            mine = sizes[z == atomic_numbers[element]]
            if len(mine):
                lo[element] = min(lo.get(element, np.inf), float(mine.min()))
                hi[element] = max(hi.get(element, -np.inf), float(mine.max()))
    return {element: (lo[element], hi[element]) for element in lo}


def mean_onsite_h0(dataset, basis) -> dict[int, np.ndarray]:
    """Average spin-independent on-site block ``h0 = Re(H_↑↑ + H_↓↓) / 2`` (eV) per atomic
    number over the records of ``dataset``."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for record in dataset:
        z = record[K.ATOMIC_NUMBERS].numpy()
        flat = record[K.H_ONSITE].numpy()
        n = np.array([basis.n_orbitals(int(zi)) for zi in z])
        starts = np.concatenate([[0], np.cumsum(4 * n * n)[:-1]])
        for zi in np.unique(z):
            ni = basis.n_orbitals(int(zi))
            sel = starts[z == zi]
            blocks = flat[sel[:, None] + np.arange(4 * ni * ni)].reshape(-1, 2 * ni, 2 * ni)
            h0 = 0.5 * (blocks[:, :ni, :ni] + blocks[:, ni:, ni:]).real
            sums[int(zi)] = sums.get(int(zi), 0.0) + h0.sum(0)
            counts[int(zi)] = counts.get(int(zi), 0) + len(sel)
    return {zi: sums[zi] / counts[zi] for zi in sums}


def _resumable(cfg: TrainConfig) -> dict[str, Any]:
    """The parts of a config that must match to resume (more epochs may be asked for)."""
    d = cfg.to_dict()
    d.pop("epochs")
    d.pop("allow_dataset_change")
    if not d.get("eigen_weight"):  # the window means nothing without the term
        d["eigen_window"] = _LATER_OPTIONS["eigen_window"]
    for name, default in _LATER_OPTIONS.items():  # runs from before they existed resume
        if d.get(name) == default:
            d.pop(name)
    return json.loads(json.dumps(d))


#: Training options added after runs were first checkpointed, with the value that means
#: "as before": a config at that value matches a checkpoint that does not name the option.
_LATER_OPTIONS: dict[str, Any] = {"ema_decay": 0.0, "eigen_weight": 0.0, "eigen_window": 3.0}


def dataset_fingerprint(manifest: dict[str, Any]) -> str:
    """What a checkpoint remembers of its dataset: a sha256 of the manifest's fingerprint
    (configurations, basis, cutoff, source) and of its split."""
    key = json.dumps({"fingerprint": manifest.get("fingerprint"), "split": manifest.get("split")},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def _diverged(what: str, epoch: int, optimizer: torch.optim.Optimizer, last: Path
              ) -> TrainingDivergedError:
    lr = optimizer.param_groups[0]["lr"]
    kept = (f"{last} still holds the last finite state" if last.exists()
            else "no checkpoint was written")
    return TrainingDivergedError(
        f"training diverged in epoch {epoch + 1}: {what} (learning rate {lr:.3g}); nothing of "
        f"this epoch was saved and {kept}. Lower lr (and lr_min) or magnetic_weight and train "
        "into a new 'out' folder (or delete its checkpoints)")
