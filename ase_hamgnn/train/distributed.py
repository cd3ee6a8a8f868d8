"""Data-parallel training on several processes (GPUs or nodes) with PyTorch's own engine.

The training entry point is the same with one process or many: ``ase-hamgnn train
CONFIG`` runs plainly, and ``torchrun --nproc_per_node=N -m ase_hamgnn.cli train CONFIG``
runs ``N`` copies that :func:`distributed_context` recognises from the variables ``torchrun``
sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``).  Each copy
joins one process group (``nccl`` on GPUs, ``gloo`` on CPUs), takes the GPU of its local rank
and wraps the network in :class:`~torch.nn.parallel.DistributedDataParallel`, which averages
the gradients of every step; a :class:`~torch.utils.data.DistributedSampler` gives each
process its share of every global batch.  Nothing here is a home-made parallel engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistributedContext", "distributed_context", "launch_environment"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in a (possibly one-process) data-parallel run.

    Attributes
    ----------
    rank : global index of this process, ``0 <= rank < world_size``.
    local_rank : index of this process on its node (picks its GPU).
    world_size : number of processes.
    device : the device this process computes on.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0, the one that writes files and prints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of ``values`` over all processes (a new tensor on ``values``' device;
        ``values`` itself when there is one process)."""
        if not self.is_distributed:
            return values
        out = values.detach().to(self.device, copy=True)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.to(values.device)

    def barrier(self) -> None:
        """Wait until every process gets here (nothing with one process)."""
        if self.is_distributed:
            dist.barrier()

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in :class:`DistributedDataParallel` when several processes take part
        (gradients averaged over processes at each backward pass), else ``module``."""
        if not self.is_distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def launch_environment(environ: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` from the variables a launcher such as ``torchrun``
    sets; ``(0, 0, 1)`` when they are absent.

    Raises
    ------
    ValueError
        If the variables are inconsistent (e.g. ``RANK`` without ``WORLD_SIZE``, or a rank
        outside ``[0, WORLD_SIZE)``).
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        if "RANK" in env:
            raise ValueError("RANK is set but WORLD_SIZE is not; launch with torchrun, which "
                             "sets both")
        return 0, 0, 1
    try:
        world = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ValueError(f"RANK, LOCAL_RANK and WORLD_SIZE must be integers: {exc}") from exc
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"inconsistent launcher variables RANK={rank}, LOCAL_RANK={local}, "
                         f"WORLD_SIZE={world}")
    return rank, local, world


def _rank_device(device: str | torch.device, local_rank: int, world_size: int
                 ) -> torch.device:
    """The device of one process: ``"cpu"``; ``"cuda"`` is the GPU of the local rank;
    ``"auto"`` that GPU when CUDA is available, else the CPU."""
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but no GPU is visible; use 'cpu' or 'auto'")
    if dev.index is not None:
        if world_size > 1:
            raise ValueError(f"device={str(device)!r} names one GPU, but {world_size} processes "
                             "run; give 'cuda' (each process takes the GPU of its local rank)")
        return dev
    if world_size == 1:
        return dev
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ValueError(f"local rank {local_rank} has no GPU of its own ({count} visible); "
                         f"start at most {count} processes per node (torchrun "
                         f"--nproc_per_node={count})")
    return torch.device("cuda", local_rank)


@contextmanager
def distributed_context(device: str | torch.device = "cpu",
                        environ: Mapping[str, str] | None = None
                        ) -> Iterator[DistributedContext]:
    """Join the process group of a ``torchrun`` launch (if any) for the duration of a block.

    With one process (no launcher variables) nothing is initialised.  With several, the
    default process group is initialised from the environment (``nccl`` when this process
    computes on a GPU, ``gloo`` on CPUs) and destroyed on exit, unless the caller had
    initialised it already, in which case it is used and left alone.

    Parameters
    ----------
    device : ``"cpu"``, ``"cuda"`` (the GPU of this process's local rank) or ``"auto"``.
    environ : launcher variables; default ``os.environ``.

    Yields
    ------
    DistributedContext

    Examples
    --------
    >>> with distributed_context("cpu", environ={}) as ctx:
    ...     (ctx.rank, ctx.world_size, ctx.is_main)
    (0, 1, True)
    """
    owns_group = False
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        env = os.environ if environ is None else environ
        local = int(env.get("LOCAL_RANK", str(rank)))
    else:
        rank, local, world = launch_environment(environ)
    ctx = DistributedContext(rank, local, world, _rank_device(device, local, world))
    if world > 1 and not dist.is_initialized():
        if ctx.device.type == "cuda":
            torch.cuda.set_device(ctx.device)
        backend = "nccl" if ctx.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world)
        owns_group = True
    try:
        yield ctx
    finally:
        if owns_group:
            dist.destroy_process_group()
