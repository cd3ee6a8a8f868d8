"""HamGNN++: the equivariant network, its config, checkpoints and shipped models."""

from ase_hamgnn.model.config import ModelConfig
from ase_hamgnn.model.network import HamGNNPP
from ase_hamgnn.model.predictor import (
    HamGNNModel,
    list_models,
    load_model,
    resolve_device,
    resolve_dtype,
)

__all__ = ["HamGNNModel", "HamGNNPP", "ModelConfig", "list_models", "load_model", "resolve_device",
           "resolve_dtype"]
