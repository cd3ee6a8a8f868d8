"""Atoms -> network inputs: the one path from a structure (or a dataset record) to the tensors
the network reads (a mapping with the keys of :mod:`ase_hamgnn.keys`).

Prediction (:func:`graph_inputs`, from atoms) and training
(:func:`ase_hamgnn.data.record_to_data`, from a record that stores its graph) both build a
:class:`HamiltonianData` with :func:`make_inputs`, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ase import Atoms
from torch_geometric.data import Data

from ase_hamgnn import keys as K
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.graph import NeighborGraph, neighbor_graph

__all__ = ["HamiltonianData", "graph_inputs", "make_inputs"]


class HamiltonianData(Data):
    """A ``torch_geometric.data.Data`` of one structure; batching offsets ``edge_index`` by
    the number of atoms and ``edge_reverse`` by the number of edges of the preceding graphs."""

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == K.EDGE_REVERSE:
            return self.num_edges
        return super().__inc__(key, value, *args, **kwargs)


def make_inputs(numbers: Any, positions: Any, moments: Any, edge_index: Any, cell_shifts: Any,
                edge_vectors: Any, edge_reverse: Any, dtype: torch.dtype = torch.float64,
                **extra: torch.Tensor) -> HamiltonianData:
    """:class:`HamiltonianData` of one structure and its neighbour graph: atomic numbers
    (int64), positions and moments (``dtype``), the edges ``i -> j`` with their cell shifts,
    vectors (``dtype``) and reverse-edge indices; ``extra`` tensors (targets, cell) as given.
    """
    def real(x: Any) -> torch.Tensor:
        return torch.as_tensor(np.array(x), dtype=dtype)

    def index(x: Any) -> torch.Tensor:
        return torch.as_tensor(np.array(x), dtype=torch.long)

    data = HamiltonianData(**{
        K.ATOMIC_NUMBERS: index(numbers),
        K.POSITIONS: real(positions),
        K.MOMENTS: real(moments),
        K.EDGE_INDEX: index(edge_index),
        K.CELL_SHIFTS: index(cell_shifts),
        K.EDGE_VECTORS: real(edge_vectors),
        K.EDGE_REVERSE: index(edge_reverse),
        **extra,
    })
    data.num_nodes = len(data[K.ATOMIC_NUMBERS])
    return data


def graph_inputs(atoms: Atoms | Geometry, cutoff: float, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu") -> tuple[HamiltonianData, NeighborGraph]:
    """Neighbour graph of ``atoms`` within ``cutoff`` Å and the tensors the network reads."""
    geometry = atoms if isinstance(atoms, Geometry) else Geometry.from_atoms(atoms)
    graph = neighbor_graph(geometry, cutoff)
    data = make_inputs(geometry.numbers, geometry.positions, geometry.moments, graph.edge_index,
                       graph.cell_shifts, graph.vectors, graph.reverse, dtype)
    return data.to(device), graph
