"""Hamiltonians written by other codes: OpenMX ``.scfout`` (:mod:`~ase_hamgnn.data.io.openmx`),
DeepH folders (:mod:`~ase_hamgnn.data.io.deeph`), HamGNN ``.npz`` graphs
(:mod:`~ase_hamgnn.data.io.hamgnn_npz`), their orbital conventions
(:mod:`~ase_hamgnn.data.io.conventions`), units, the shared block helpers
(:mod:`~ase_hamgnn.data.io.blocks`) and dataset conversion (:mod:`~ase_hamgnn.data.io.convert`).
Nothing read here is unpickled or executed."""

from ase_hamgnn.data.io.convert import convert_dataset
from ase_hamgnn.data.io.deeph import read_deeph, write_deeph
from ase_hamgnn.data.io.hamgnn_npz import read_hamgnn, write_hamgnn
from ase_hamgnn.data.io.openmx import read_openmx

__all__ = ["convert_dataset", "read_deeph", "read_hamgnn", "read_openmx", "write_deeph",
           "write_hamgnn"]
