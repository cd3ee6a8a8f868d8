"""HamGNN++: the equivariant network, its config, checkpoints and shipped models."""

from ase_hamgnn.model.config import ModelConfig
from ase_hamgnn.model.hamgnn_model import (
    HamGNNModel,
    list_models,
    load_model,
    resolve_device,
    resolve_dtype,
)
from ase_hamgnn.model.network import HamGNNPP

__all__ = ["HamGNNModel", "HamGNNPP", "ModelConfig", "list_models", "load_model", "resolve_device",
           "resolve_dtype"]
