"""Atoms -> network inputs (a mapping with the keys of :mod:`ase_hamgnn.keys`)."""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from torch_geometric.data import Data

from ase_hamgnn import keys as K
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.graph import NeighborGraph, neighbor_graph

__all__ = ["HamiltonianData", "graph_inputs"]


class HamiltonianData(Data):
    """torch-geometric ``Data`` whose reverse-edge indices are shifted when batching."""

    def __inc__(self, key, value, *args, **kwargs):
        if key == K.EDGE_REVERSE:
            return self[K.EDGE_INDEX].shape[1]
        return super().__inc__(key, value, *args, **kwargs)


def graph_inputs(atoms: Atoms | Geometry, cutoff: float, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu") -> tuple[HamiltonianData, NeighborGraph]:
    """Neighbour graph of ``atoms`` within ``cutoff`` Å and the tensors the network reads."""
    geometry = atoms if isinstance(atoms, Geometry) else Geometry.from_atoms(atoms)
    graph = neighbor_graph(geometry, cutoff)
    data = HamiltonianData(**{
        K.ATOMIC_NUMBERS: torch.as_tensor(np.array(geometry.numbers), dtype=torch.long),
        K.POSITIONS: torch.as_tensor(np.array(geometry.positions), dtype=dtype),
        K.MOMENTS: torch.as_tensor(np.array(geometry.moments), dtype=dtype),
        K.EDGE_INDEX: torch.as_tensor(graph.edge_index, dtype=torch.long),
        K.CELL_SHIFTS: torch.as_tensor(graph.cell_shifts, dtype=torch.long),
        K.EDGE_VECTORS: torch.as_tensor(graph.vectors, dtype=dtype),
        K.EDGE_REVERSE: torch.as_tensor(graph.reverse, dtype=torch.long),
    })
    data.num_nodes = len(geometry)
    return data.to(device), graph
