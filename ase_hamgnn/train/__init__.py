"""Training HamGNN++: the loop (loss, metrics, atomic checkpoints, resume) in
:mod:`~ase_hamgnn.train.loop` and data-parallel training with ``torchrun`` in
:mod:`~ase_hamgnn.train.distributed`."""

from ase_hamgnn.train.average import WeightAverage
from ase_hamgnn.train.distributed import DistributedContext, distributed_context, launch_environment
from ase_hamgnn.train.loop import (
    TrainConfig,
    block_errors,
    dataset_fingerprint,
    evaluate,
    initial_fit,
    load_train_config,
    mean_onsite_h0,
    moment_range,
    train,
)

__all__ = [
    "DistributedContext",
    "TrainConfig",
    "WeightAverage",
    "block_errors",
    "dataset_fingerprint",
    "distributed_context",
    "evaluate",
    "initial_fit",
    "launch_environment",
    "load_train_config",
    "mean_onsite_h0",
    "moment_range",
    "train",
]
