"""Module paths of earlier releases that moved when the package took its folder layout
(``spectra/``, ``transport/``, ``train/``, ``data/io/``, ``data/pyscf/``,
``data/reference/``).  Importing an old path gives the module at its new place and warns
once (``FutureWarning``, shown by default); the old paths go in the next release.

One table, :data:`MOVED`, is the whole record; :func:`install` puts the finder that reads it
at the end of ``sys.meta_path`` (so it is asked only when no real module has the name).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

__all__ = ["MOVED", "install"]

#: Old module path -> new module path.
MOVED: dict[str, str] = {
    "ase_hamgnn.training": "ase_hamgnn.train.loop",
    "ase_hamgnn.distributed": "ase_hamgnn.train.distributed",
    "ase_hamgnn.kpm": "ase_hamgnn.spectra.kpm",
    "ase_hamgnn.shift_invert": "ase_hamgnn.spectra.shift_invert",
    "ase_hamgnn.gap": "ase_hamgnn.spectra.gap",
    "ase_hamgnn.edge_bands": "ase_hamgnn.spectra.edge_bands",
    "ase_hamgnn.occupations": "ase_hamgnn.spectra.occupations",
    "ase_hamgnn.kinterp": "ase_hamgnn.spectra.kinterp",
    "ase_hamgnn.kwant_export": "ase_hamgnn.transport.export",
    "ase_hamgnn.orthogonalize": "ase_hamgnn.transport.orthogonalize",
    "ase_hamgnn.model.predictor": "ase_hamgnn.model.hamgnn_model",
    "ase_hamgnn.data.slater_koster": "ase_hamgnn.slater_koster",
    "ase_hamgnn.data.openmx": "ase_hamgnn.data.io.openmx",
    "ase_hamgnn.data.deeph": "ase_hamgnn.data.io.deeph",
    "ase_hamgnn.data.hamgnn_npz": "ase_hamgnn.data.io.hamgnn_npz",
    "ase_hamgnn.data.convert": "ase_hamgnn.data.io.convert",
    "ase_hamgnn.data.conventions": "ase_hamgnn.data.io.conventions",
    "ase_hamgnn.data.units": "ase_hamgnn.data.io.units",
    "ase_hamgnn.data.pyscf_gks": "ase_hamgnn.data.pyscf.gks",
    "ase_hamgnn.data.pyscf_dataset": "ase_hamgnn.data.pyscf.dataset",
}


class _Alias(importlib.abc.Loader):
    """Gives the module at its new path under the old name, keeping its own spec."""

    def __init__(self, new: str) -> None:
        self.new = new
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} moved to {self.new}; import it from there (the old path "
                      "goes in the next release)", FutureWarning, stacklevel=2)
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.spec  # the import machinery set the alias spec; restore


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Add the finder of :data:`MOVED` to ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
