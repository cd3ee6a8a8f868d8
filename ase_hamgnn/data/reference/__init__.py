"""The SYNTHETIC reference model: :class:`ReferenceTB`, a magnetic Slater–Koster tight-binding
model with invented parameters (:mod:`~ase_hamgnn.data.reference.params`) that stands in for
spin-constrained DFT in tests, examples and benchmarks.  It is not DFT."""

from ase_hamgnn.data.reference.tb import ReferenceTB

__all__ = ["ReferenceTB"]
