"""Data sources of ase-hamgnn: structure builders and the SYNTHETIC reference tight-binding
model (a hand-parameterised stand-in for spin-constrained DFT, not DFT itself)."""

from ase_hamgnn.data.reference.tb import ReferenceTB
from ase_hamgnn.data.structures import fe_ir111, nibr2, nibri

__all__ = ["ReferenceTB", "fe_ir111", "nibr2", "nibri"]

# -- datasets: configurations, records on disk, torch-geometric loading ----------------------------
from ase_hamgnn.data.configurations import (  # noqa: E402
    OOD_KINDS,
    afm120_configurations,
    generate_configurations,
    ood_configurations,
    random_configuration,
    skyrmion_configurations,
    spiral_configurations,
)
from ase_hamgnn.data.dataset import (  # noqa: E402
    HamiltonianDataset,
    make_reference_dataset,
    read_manifest,
    split_indices,
    write_dataset,
)
from ase_hamgnn.data.records import (  # noqa: E402
    HamiltonianData,
    hamiltonian_to_record,
    read_record,
    record_to_data,
    record_to_hamiltonian,
)

__all__ += [
    "OOD_KINDS",
    "HamiltonianData",
    "HamiltonianDataset",
    "afm120_configurations",
    "generate_configurations",
    "hamiltonian_to_record",
    "make_reference_dataset",
    "ood_configurations",
    "random_configuration",
    "read_manifest",
    "read_record",
    "record_to_data",
    "record_to_hamiltonian",
    "skyrmion_configurations",
    "spiral_configurations",
    "split_indices",
    "write_dataset",
]
