"""Convert DFT Hamiltonians in foreign formats into an ase-hamgnn dataset folder.

The output is the same on-disk dataset that :func:`ase_hamgnn.data.write_dataset` writes for
the reference model (``manifest.json`` + ``records/NNNNNN.npz``), so ``ase-hamgnn train``
works on it unchanged.  The manifest's description names the source format and says the
data are not synthetic.  Sources:

``deeph``
    A folder of DeepH folders (:mod:`ase_hamgnn.data.io.deeph`); moments from ``magmom.txt``.
``openmx``
    ``.scfout`` files (one file, or every ``*.scfout`` below a folder;
    :mod:`ase_hamgnn.data.io.openmx`).  The file holds no converged moments: each structure
    gets the initial moments of the input stored in it, ``up - down`` electrons along the
    angles ``theta, phi`` of its atom line (for ``scf.Constraint.NC.Spin`` runs these are
    the constrained directions).  For other moments, read with
    :func:`~ase_hamgnn.data.io.openmx.read_openmx` and write DeepH folders.
``hamgnn``
    HamGNN ``graph_data.npz`` files (one file, or every ``*.npz`` below a folder;
    :mod:`ase_hamgnn.data.io.hamgnn_npz`), every graph of each file one structure; all
    graphs are held in memory while converting.
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
from ase_hamgnn.data.io.deeph import (
    BLOCK_KEY,
    H5_ERRORS,
    basis_from_orbital_types,
    import_h5py,
    is_deeph_folder,
    read_atomic_numbers,
    read_deeph,
    read_deeph_geometry,
    read_orbital_types,
)
from ase_hamgnn.data.records import block_range
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.hamiltonian import HERMITICITY_TOL, TBHamiltonian

__all__ = ["SOURCE_FORMATS", "convert_dataset", "find_deeph_folders", "find_source_files"]

#: Formats :func:`convert_dataset` reads.
SOURCE_FORMATS = ("deeph", "openmx", "hamgnn")
_SUFFIX = {"openmx": ".scfout", "hamgnn": ".npz"}


def find_source_files(source: str | os.PathLike, source_format: str) -> list[Path]:
    """``source`` itself if it is a file, else the files of ``source_format`` below it
    (``*.scfout`` for ``"openmx"``, ``*.npz`` for ``"hamgnn"``), sorted by relative path.

    Raises
    ------
    DatasetError
        If there is none.
    """
    root = Path(source)
    suffix = _SUFFIX[source_format]
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DatasetError(f"{root} does not exist; give a {suffix} file or a folder holding "
                           "them")
    found = sorted((p for p in root.rglob(f"*{suffix}") if p.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())
    if not found:
        raise DatasetError(f"no {suffix} file under {root}")
    return found


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
    h5py = import_h5py()

    worst = 0.0
    try:
        with h5py.File(folder / "hamiltonians.h5", "r") as f:
            names = list(f.keys())
    except H5_ERRORS as exc:
        raise DatasetError(f"{folder / 'hamiltonians.h5'} is truncated or not an HDF5 file "
                           f"({exc!s:.200}); regenerate it") from None
    for key in names:
        m = BLOCK_KEY.match(key)
        if m is None:
            continue  # read_deeph reports it
        rx, ry, rz, i, j = (int(x) for x in m.groups())
        if not (1 <= i <= len(geo.numbers) and 1 <= j <= len(geo.numbers)):
            continue  # read_deeph reports it
        d = geo.positions[j - 1] + np.array([rx, ry, rz], float) @ geo.cell \
            - geo.positions[i - 1]
        worst = max(worst, float(np.linalg.norm(d)))
    return worst


def _common_basis(hams: Sequence[TBHamiltonian]) -> OrbitalBasis:
    numbers, shells = [], []
    for ham in hams:
        for z in ham.geometry.numbers:
            numbers.append(int(z))
            shells.append(tuple(s.l for s in ham.basis.shells(int(z))))
    return basis_from_orbital_types(numbers, shells)


def _with_basis(ham: TBHamiltonian, basis: OrbitalBasis, overlap: bool,
                tol: float) -> TBHamiltonian:
    """``ham`` with ``basis`` (same shells, maybe other labels) and without S unless
    ``overlap``."""
    if ham.basis == basis and (overlap or ham.s_r is None):
        return ham
    return TBHamiltonian(basis, ham.geometry, dict(ham.h_r),
                         dict(ham.s_r) if overlap and ham.s_r is not None else None,
                         hermiticity_tol=tol)


class _ConvertedHamiltonians:
    """A predictor over stored DFT Hamiltonians: ``predict(atoms)`` loads the structure whose
    geometry and moments are exactly those of ``atoms`` (what write_dataset needs).

    ``entries``: ``(name, atoms, load)`` with ``load(basis) -> TBHamiltonian``."""

    def __init__(self, entries: Sequence[tuple[str, Any, Any]], basis: OrbitalBasis,
                 cutoff: float, description: str) -> None:
        self.basis = basis
        self.cutoff = cutoff
        self.source_description = description
        self._by_key: dict[str, tuple[str, Any]] = {}
        self.atoms = []
        for name, atoms, load in entries:
            key = _geometry_key(Geometry.from_atoms(atoms))
            if key in self._by_key:
                raise DatasetError(f"{name} and {self._by_key[key][0]} hold the same structure "
                                   "and moments; remove the duplicate")
            self._by_key[key] = (name, load)
            self.atoms.append(atoms)

    def predict(self, atoms):
        key = _geometry_key(Geometry.from_atoms(atoms))
        name, load = self._by_key[key]
        ham = load(self.basis)
        if _geometry_key(ham.geometry) != key:
            raise DatasetError(f"{name} changed while converting; run again")
        return ham


def _deeph_entries(root: Path, basis, overlap, tol):
    folders = find_deeph_folders(root)
    if basis is None:
        numbers, shells = [], []
        for folder in folders:
            z = read_atomic_numbers(folder)
            numbers.extend(z.tolist())
            shells.extend(read_orbital_types(folder, len(z)))
        basis = basis_from_orbital_types(numbers, shells)
    entries, ranges = [], []
    for folder in folders:
        atoms = read_deeph_geometry(folder).to_atoms()
        ranges.append(lambda f=folder, a=atoms: _stored_range(f, Geometry.from_atoms(a)))
        entries.append((folder.relative_to(root).as_posix() if folder != root else ".", atoms,
                        lambda b, f=folder: read_deeph(f, basis=b, overlap=overlap,
                                                       hermiticity_tol=tol)))
    return entries, basis, ranges, f"{len(folders)} DeepH folders"


def _name(path: Path, root: Path) -> str:
    return path.name if path == root else path.relative_to(root).as_posix()


def _openmx_entries(root: Path, basis, overlap, tol):
    from ase_hamgnn.data.io.openmx import read_openmx

    files = find_source_files(root, "openmx")
    hams, entries = [], []
    for path in files:
        ham = read_openmx(path, moments="input", basis=basis, hermiticity_tol=tol)
        hams.append(ham)
        entries.append((_name(path, root), ham.to_atoms(),
                        lambda b, p=path: _with_basis(
                            read_openmx(p, moments="input", basis=b, hermiticity_tol=tol), b,
                            overlap, tol)))
    ranges = [lambda h=h: block_range(h) for h in hams]
    return entries, basis or _common_basis(hams), ranges, f"{len(files)} OpenMX .scfout files"


def _hamgnn_entries(root: Path, basis, overlap, tol, length_unit):
    from ase_hamgnn.data.io.hamgnn_npz import read_hamgnn

    files = find_source_files(root, "hamgnn")
    hams, entries = [], []
    for path in files:
        for k, ham in enumerate(read_hamgnn(path, basis=basis, length_unit=length_unit,
                                            hermiticity_tol=tol)):
            hams.append(ham)
            entries.append((f"{_name(path, root)}#{k}", ham.to_atoms(),
                            lambda b, h=ham: _with_basis(h, b, overlap, tol)))
    ranges = [lambda h=h: block_range(h) for h in hams]
    return (entries, basis or _common_basis(hams), ranges,
            f"{len(hams)} HamGNN graphs in {len(files)} graph_data files")


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
    hermiticity_tol: float = HERMITICITY_TOL,
    length_unit: str = "bohr",
    progress: bool = True,
) -> dict[str, Any]:
    """Convert every structure under ``source`` into a dataset folder at ``out_dir``.

    Parameters
    ----------
    source : path
        ``"deeph"``: folder holding one sub-folder per structure (or being one);
        ``"openmx"``: a ``.scfout`` file or a folder with them; ``"hamgnn"``: a
        ``graph_data.npz`` file or a folder with such files (see the module docstring).
    out_dir : path
        Dataset folder to write (re-running resumes, see :func:`write_dataset`).
    source_format : {"deeph", "openmx", "hamgnn"}
        Format of the source.
    basis : OrbitalBasis, optional
        Basis of all structures; default: from the source's shells (``orbital_types.dat``,
        the input stored in a ``.scfout``, the overlap diagonal of a HamGNN graph), with
        labels as in :func:`~ase_hamgnn.data.io.deeph.basis_from_orbital_types`.
    cutoff : float, optional
        Graph cutoff in Å; default: the longest distance between two atoms with a stored
        block, over all structures, plus 1e-6 Å (every stored block lies on the graph).
    split : (float, float, float)
        Train/val/test fractions.
    rng : numpy.random.Generator or int or None
        Generator or seed of the split.
    overlap : bool
        Keep the overlaps when present.
    hermiticity_tol : float
        Largest accepted ``|H_ij(R) - H_ji(-R)^dagger|`` of a source's stored blocks, eV; the
        readers symmetrize what they read (see
        :func:`~ase_hamgnn.data.io.deeph.blocks_to_hamiltonian`).
    length_unit : {"bohr", "angstrom"}
        Unit of positions and cells in HamGNN files (ignored for other formats).
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
    >>> manifest = convert_dataset("runs", "data/omx", source_format="openmx")  # doctest: +SKIP
    """
    if source_format not in SOURCE_FORMATS:
        raise ValueError(f"unknown source format {source_format!r}; choose one of "
                         f"{', '.join(SOURCE_FORMATS)}")
    root = Path(source)
    if source_format == "deeph":
        entries, basis, ranges, what = _deeph_entries(root, basis, overlap, hermiticity_tol)
    elif source_format == "openmx":
        entries, basis, ranges, what = _openmx_entries(root, basis, overlap, hermiticity_tol)
    else:
        entries, basis, ranges, what = _hamgnn_entries(root, basis, overlap, hermiticity_tol,
                                                       length_unit)
    description = (f"DFT Hamiltonians converted from {what} (ase_hamgnn.data.io.convert); "
                   "not synthetic")
    predictor = _ConvertedHamiltonians(entries, basis, 1.0, description)
    if cutoff is None:
        cutoff = max(r() for r in ranges) + 1e-6
    predictor.cutoff = float(cutoff)
    names = [name for name, _, _ in entries]
    meta: dict[str, Any] = {"kind": "converted", "source_format": source_format,
                            "overlap": overlap}
    if source_format == "deeph":
        meta["folders"] = names
    else:
        meta["sources"] = names
    if source_format == "openmx":
        meta["moments"] = ("initial moments of the input stored in each .scfout: up - down "
                           "electrons along theta, phi")
    if source_format == "hamgnn":
        meta["length_unit"] = length_unit
    meta = json.loads(json.dumps(meta))
    return write_dataset(predictor, predictor.atoms, out_dir, cutoff=predictor.cutoff,
                         split=split, rng=rng, metadata=meta, progress=progress)

