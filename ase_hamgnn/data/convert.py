"""Convert DFT Hamiltonians in foreign formats into an ase-hamgnn dataset folder.

The output is the same on-disk dataset that :func:`ase_hamgnn.data.write_dataset` writes for
the reference model (``manifest.json`` + ``records/NNNNNN.npz``), so ``ase-hamgnn train``
works on it unchanged.  The manifest's description names the source format and says the
data are not synthetic.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.data.dataset import write_dataset
from ase_hamgnn.data.deeph import (
    _KEY,
    _h5py,
    _orbital_types,
    basis_from_orbital_types,
    is_deeph_folder,
    read_deeph,
    read_deeph_geometry,
)
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.geometry import Geometry

__all__ = ["SOURCE_FORMATS", "convert_dataset", "find_deeph_folders"]

#: Formats :func:`convert_dataset` reads.
SOURCE_FORMATS = ("deeph",)


def find_deeph_folders(source: str | os.PathLike) -> list[Path]:
    """DeepH folders at or below ``source``, sorted by their path relative to it.

    Raises
    ------
    DatasetError
        If there is none.
    """
    root = Path(source)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; give the folder that holds the DeepH "
                           "structure folders")
    found = [Path(dirpath) for dirpath, _, _ in os.walk(root) if is_deeph_folder(dirpath)]
    if not found:
        raise DatasetError(f"no DeepH folder (with element.dat, lat.dat, site_positions.dat, "
                           f"orbital_types.dat, info.json, hamiltonians.h5) under {root}")
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _geometry_key(geo: Geometry) -> str:
    h = hashlib.sha256()
    for arr in (np.asarray(geo.numbers, np.int64), np.asarray(geo.positions, np.float64),
                np.asarray(geo.cell, np.float64), np.asarray(geo.pbc, bool),
                np.asarray(geo.moments, np.float64)):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _stored_range(folder: Path, geo: Geometry) -> float:
    """Longest distance (Å) between the atoms of a block stored in hamiltonians.h5."""
    h5py = _h5py()

    worst = 0.0
    try:
        with h5py.File(folder / "hamiltonians.h5", "r") as f:
            names = list(f.keys())
    except OSError as exc:
        raise DatasetError(f"{folder / 'hamiltonians.h5'} is truncated or not an HDF5 file "
                           f"({exc}); regenerate it") from None
    for key in names:
        m = _KEY.match(key)
        if m is None:
            continue  # read_deeph reports it
        rx, ry, rz, i, j = (int(x) for x in m.groups())
        if not (1 <= i <= len(geo.numbers) and 1 <= j <= len(geo.numbers)):
            continue  # read_deeph reports it
        d = geo.positions[j - 1] + np.array([rx, ry, rz], float) @ geo.cell \
            - geo.positions[i - 1]
        worst = max(worst, float(np.linalg.norm(d)))
    return worst


class _ConvertedHamiltonians:
    """A predictor over stored DFT Hamiltonians: ``predict(atoms)`` reads the folder whose
    geometry and moments are exactly those of ``atoms`` (what write_dataset needs)."""

    def __init__(self, folders: Sequence[Path], basis: OrbitalBasis, cutoff: float,
                 description: str, read_kwargs: dict[str, Any]) -> None:
        self.basis = basis
        self.cutoff = cutoff
        self.source_description = description
        self._kwargs = read_kwargs
        self._by_key: dict[str, Path] = {}
        self.atoms = []
        for folder in folders:
            geo = read_deeph_geometry(folder, moments=read_kwargs.get("moments"))
            atoms = geo.to_atoms()
            key = _geometry_key(Geometry.from_atoms(atoms))
            if key in self._by_key:
                raise DatasetError(f"{folder} and {self._by_key[key]} hold the same structure "
                                   "and moments; remove the duplicate")
            self._by_key[key] = folder
            self.atoms.append(atoms)

    def predict(self, atoms):
        folder = self._by_key[_geometry_key(Geometry.from_atoms(atoms))]
        ham = read_deeph(folder, basis=self.basis, **self._kwargs)
        if _geometry_key(ham.geometry) != _geometry_key(Geometry.from_atoms(atoms)):
            raise DatasetError(f"{folder} changed while converting; run again")
        return ham


def convert_dataset(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    source_format: str = "deeph",
    basis: OrbitalBasis | None = None,
    cutoff: float | None = None,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    rng: np.random.Generator | int | None = 0,
    overlap: bool = True,
    hermiticity_tol: float = 1e-6,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert every structure under ``source`` into a dataset folder at ``out_dir``.

    Parameters
    ----------
    source : path
        Folder holding one sub-folder per structure (or being one), in ``source_format``.
    out_dir : path
        Dataset folder to write (re-running resumes, see :func:`write_dataset`).
    source_format : {"deeph"}
        Format of the source (see :mod:`ase_hamgnn.data.deeph`).
    basis : OrbitalBasis, optional
        Basis of all structures; default: from the first folder's ``orbital_types.dat``.
    cutoff : float, optional
        Graph cutoff in Å; default: the longest distance between two atoms with a stored
        block, over all structures, plus 1e-6 Å (every stored block lies on the graph).
    split : (float, float, float)
        Train/val/test fractions.
    rng : numpy.random.Generator or int or None
        Generator or seed of the split.
    overlap : bool
        Keep the overlaps (``overlaps.h5``) when present.
    hermiticity_tol : float
        Largest allowed non-Hermiticity of a source Hamiltonian, eV.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    DatasetError
        If no structure is found, a structure is unreadable or inconsistent with the basis,
        or ``cutoff`` misses stored blocks (the message gives the cutoff needed).

    Examples
    --------
    >>> manifest = convert_dataset("dft_runs", "data/mine")  # doctest: +SKIP
    """
    if source_format not in SOURCE_FORMATS:
        raise ValueError(f"unknown source format {source_format!r}; choose one of "
                         f"{', '.join(SOURCE_FORMATS)}")
    root = Path(source)
    folders = find_deeph_folders(root)
    if basis is None:
        numbers, shells = [], []
        for folder in folders:
            z = _atomic_numbers(folder)
            numbers.extend(z.tolist())
            shells.extend(_orbital_types(folder, len(z)))
        basis = basis_from_orbital_types(numbers, shells)
    kwargs = {"overlap": overlap, "hermiticity_tol": hermiticity_tol}
    names = [p.relative_to(root).as_posix() for p in folders]
    description = (f"DFT Hamiltonians converted from {len(folders)} DeepH folders "
                   "(ase_hamgnn.data.convert); not synthetic")
    predictor = _ConvertedHamiltonians(folders, basis, 1.0, description, kwargs)
    if cutoff is None:
        cutoff = max(_stored_range(f, Geometry.from_atoms(a))
                     for f, a in zip(folders, predictor.atoms)) + 1e-6
    predictor.cutoff = float(cutoff)
    meta = {"kind": "converted", "source_format": source_format, "folders": names,
            "overlap": overlap}
    meta = json.loads(json.dumps(meta))
    return write_dataset(predictor, predictor.atoms, out_dir, cutoff=predictor.cutoff,
                         split=split, rng=rng, metadata=meta, progress=progress)


def _atomic_numbers(folder: Path) -> np.ndarray:
    try:
        numbers = np.loadtxt(folder / "element.dat", ndmin=1)
    except ValueError as exc:
        raise DatasetError(f"{folder / 'element.dat'} is malformed ({exc})") from None
    return np.round(numbers).astype(np.int64)
