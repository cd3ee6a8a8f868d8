"""Datasets of Hamiltonians on disk: one ``.npz`` record per configuration, loaded lazily.

Layout of a dataset folder
--------------------------
``manifest.json``
    Written last (atomically), so a folder without it is an unfinished run. Holds the format
    and version, the system, a description of where the Hamiltonians come from (the words
    "synthetic reference model" when they come from :class:`ase_hamgnn.data.ReferenceTB` --
    such data are synthetic, not DFT), the basis, the graph cutoff (Å), whether records hold
    an overlap, the counts and configuration indices of the ``train``/``val``/``test``
    splits, the seed, the generation parameters and a fingerprint of the records.
``records/NNNNNN.npz``
    One record per configuration (index ``NNNNNN`` in the order given to
    :func:`write_dataset`), written atomically with ``numpy.savez_compressed``.  Each holds
    the manifest's fingerprint; :class:`HamiltonianDataset` refuses a record of another
    dataset.
``.lock``
    Locked (``fcntl.flock``) while :func:`write_dataset` writes the folder: a second writer
    is refused at once.

The record format is described in :mod:`ase_hamgnn.data.records`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from torch_geometric.data import Dataset
from tqdm.auto import tqdm

from ase_hamgnn import keys as K
from ase_hamgnn._atomic import atomic_write_bytes, exclusive_lock
from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.data.records import (
    FINGERPRINT_KEY,
    RECORD_FORMAT,
    RECORD_FORMAT_VERSION,
    HamiltonianData,
    hamiltonian_to_record,
    read_record,
    record_to_data,
    write_record,
)
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.geometry import read_moments

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "SPLITS",
    "HamiltonianDataset",
    "make_reference_dataset",
    "read_manifest",
    "record_path",
    "split_indices",
    "write_dataset",
]

#: ``format`` of the manifest (the records have the same) and its version.
FORMAT = RECORD_FORMAT
FORMAT_VERSION = RECORD_FORMAT_VERSION
MANIFEST_NAME = "manifest.json"
RECORDS_DIR = "records"
LOCK_NAME = ".lock"
#: Names of the splits, in the order of the ``split`` fractions.
SPLITS = ("train", "val", "test")


_SYNTHETIC = (
    "synthetic reference model: Hamiltonians of ase_hamgnn.data.ReferenceTB, a magnetic "
    "Slater-Koster tight-binding model; synthetic data, not DFT"
)
# manifest entries that depend on the data and are not compared on resume
_DERIVED = ("overlap",)


# -- helpers ------------------------------------------------------------------------------------
def record_path(root: str | os.PathLike, index: int) -> Path:
    """Path of record ``index`` in the dataset folder ``root``."""
    return Path(root) / RECORDS_DIR / f"{int(index):06d}.npz"


def split_indices(
    n: int, fractions: Sequence[float], rng: np.random.Generator | int | None,
    groups: Sequence[int] | None = None,
) -> dict[str, list[int]]:
    """Random split of ``range(n)`` into ``train``/``val``/``test`` by ``fractions``.

    Counts are ``floor(n f)`` with the remainder given to the largest fractional parts (so
    they sum to ``n``); which configurations go where is a random permutation drawn from
    ``rng``. Indices are sorted inside each split.

    With ``groups`` (one label per configuration, e.g. the geometry it was displaced into)
    whole groups are split instead: the fractions count groups, and no group has members in
    two splits, so a held-out configuration never shares its geometry with a training one.

    Examples
    --------
    >>> {k: len(v) for k, v in split_indices(10, (0.8, 0.1, 0.1), rng=0).items()}
    {'train': 8, 'val': 1, 'test': 1}
    >>> s = split_indices(10, (0.6, 0.2, 0.2), rng=0, groups=[i // 2 for i in range(10)])
    >>> [i // 2 for i in s["test"]] in ([0, 0], [1, 1], [2, 2], [3, 3], [4, 4])
    True
    """
    f = _check_split(fractions)
    if groups is None:
        labels = np.arange(n)
    else:
        labels = np.asarray(groups)
        if labels.shape != (n,):
            raise ValueError(f"groups must have one label per configuration ({n}), got "
                             f"shape {labels.shape}")
    names, label_index = np.unique(labels, return_inverse=True)
    m = len(names)
    raw = m * f
    counts = np.floor(raw + 1e-9).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: m - int(counts.sum())]] += 1
    perm = np.random.default_rng(rng).permutation(m)
    edges = np.concatenate([[0], np.cumsum(counts)])
    out = {}
    for k, name in enumerate(SPLITS):
        chosen = np.zeros(m, dtype=bool)
        chosen[perm[edges[k]:edges[k + 1]]] = True
        out[name] = [int(i) for i in np.flatnonzero(chosen[label_index])]
    return out


def _check_split(split: Sequence[float]) -> np.ndarray:
    f = np.asarray(split, dtype=np.float64)
    if f.shape != (3,) or not np.isfinite(f).all() or (f < 0).any() or abs(f.sum() - 1) > 1e-9:
        raise ValueError(
            f"split must be three fractions (train, val, test) >= 0 summing to 1, got {split!r}"
        )
    return f


#: Modules whose classes a manifest names by the path they had when the format was fixed, so
#: that moving a file does not change the fingerprint of the data sets written before.
FINGERPRINT_MODULES = {"ase_hamgnn.data.reference.tb": "ase_hamgnn.data.reference",
                       "ase_hamgnn.model.hamgnn_model": "ase_hamgnn.model.predictor"}


def _source(predictor: Any) -> dict[str, Any]:
    cls = type(predictor)
    name = f"{FINGERPRINT_MODULES.get(cls.__module__, cls.__module__)}.{cls.__qualname__}"
    from ase_hamgnn.data.reference.tb import ReferenceTB

    if isinstance(predictor, ReferenceTB):
        return {"predictor": name, "synthetic": True, "description": _SYNTHETIC}
    description = getattr(predictor, "source_description", None)
    if isinstance(description, str):  # e.g. DFT data converted by ase_hamgnn.data.io.convert
        return {"predictor": name, "synthetic": False, "description": description}
    return {"predictor": name, "synthetic": False,
            "description": f"Hamiltonians predicted by {name}"}


def _resolve_cutoff(predictor: Any, cutoff: float | None) -> float:
    if cutoff is None:
        cutoff = getattr(predictor, "cutoff", None)
        if cutoff is None:
            raise ValueError(
                f"{type(predictor).__name__} has no .cutoff attribute; pass cutoff= (Å), at "
                "least the longest distance between atoms the predictor couples"
            )
    cutoff = float(cutoff)
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff must be a positive distance in Å, got {cutoff}")
    return cutoff


def _configurations_digest(atoms_list: Sequence[Atoms]) -> str:
    h = hashlib.sha256()
    for atoms in atoms_list:
        for arr in (np.asarray(atoms.numbers, np.int64), np.asarray(atoms.positions, np.float64),
                    np.asarray(atoms.cell.array, np.float64), np.asarray(atoms.pbc, bool),
                    read_moments(atoms)):
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


# -- manifest -----------------------------------------------------------------------------------
def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The ``manifest.json`` of a dataset folder.

    Raises
    ------
    DatasetError
        If it is missing (not a dataset, or an unfinished run), unreadable or of another
        format.
    """
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise DatasetError(
            f"{path} does not exist: {root} is not a dataset folder, or writing it did not "
            "finish. Re-run the command that writes it (it resumes where it stopped)."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except PermissionError as exc:
        raise DatasetError(f"{path} cannot be read ({exc}); give this user read permission "
                           "on the dataset folder") from None
    except (OSError, ValueError) as exc:
        raise _UnreadableManifest(
            f"{path} is unreadable ({exc}); re-run the command that wrote the dataset with the "
            "same arguments into the same folder: it keeps the records and rebuilds the "
            f"manifest (or delete {Path(root)} and write the dataset again)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path} is not an ase-hamgnn dataset manifest")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise DatasetError(f"{path} has format version {manifest['format_version']}, newer than "
                           f"this ase-hamgnn reads ({FORMAT_VERSION}); upgrade ase-hamgnn")
    return manifest


class _UnreadableManifest(DatasetError):
    """``manifest.json`` exists but is not valid JSON (a damaged file: rebuilt on resume)."""


def _resume_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of a folder being written again: ``None`` if there is none, or if it is
    damaged (it is rebuilt; the records' fingerprints still tie them to the new one)."""
    if not (root / MANIFEST_NAME).exists():
        return None
    try:
        return read_manifest(root)
    except _UnreadableManifest as exc:
        print(f"note: {exc.args[0].split(';')[0]}; rebuilding it from the records",
              file=sys.stderr)
        return None


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    names = sorted((set(old) | set(new)) - set(_DERIVED))
    return [name for name in names if old.get(name) != new.get(name)]


def _record_fingerprint(path: Path) -> str | None:
    """The fingerprint of an existing record, or None if it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return str(f[FINGERPRINT_KEY])
    except Exception:  # any unreadable record is rewritten
        return None


# -- writing ------------------------------------------------------------------------------------
def write_dataset(
    predictor: Any,
    atoms_list: Sequence[Atoms],
    out_dir: str | os.PathLike,
    cutoff: float | None = None,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    rng: np.random.Generator | int | None = None,
    *,
    split_groups: Sequence[int] | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Predict the Hamiltonian of every configuration and write one record each.

    Records are written atomically one by one (with a tqdm bar), ``manifest.json`` last.
    Re-running into a folder that holds part of the same dataset resumes: records already
    written (same configurations, basis, cutoff and predictor) are kept, unreadable ones
    are rewritten; a folder of a different dataset is refused.

    Parameters
    ----------
    predictor : Predictor
        ``predict(atoms) -> TBHamiltonian`` with a ``basis``; e.g. the synthetic reference
        model :class:`ase_hamgnn.data.ReferenceTB` (the manifest then says "synthetic
        reference model": its data are synthetic, not DFT).
    atoms_list : sequence of ase.Atoms
        Configurations with ``initial_magmoms`` (μB).
    out_dir : path
        Dataset folder (created if needed).
    cutoff : float, optional
        Graph cutoff (Å); default ``predictor.cutoff``. It must cover every block of H.
    split : (float, float, float)
        Fractions of train, validation and test configurations (see :func:`split_indices`).
    rng : numpy.random.Generator or int or None
        Random generator or seed of the split (an int is recorded as ``split_seed``).
    split_groups : sequence of int, optional
        One label per configuration; configurations with the same label (e.g. moment sets
        on one displaced geometry) all go to the same split (see :func:`split_indices`).
    metadata : mapping, optional
        JSON-serializable generation parameters stored under ``"generation"`` (``system``
        and ``seed`` also at the top level).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    DatasetError
        If the cutoff misses blocks of H (the message names the needed cutoff), or the
        folder holds a different dataset.

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, generate_configurations
    >>> confs = generate_configurations("nibri", "1x1", 10, rng=0)
    >>> manifest = write_dataset(ReferenceTB("nibri"), confs, "data/nibri", rng=0,
    ...                          progress=False)  # doctest: +SKIP
    """
    atoms_list = list(atoms_list)
    if not atoms_list or not all(isinstance(a, Atoms) for a in atoms_list):
        raise TypeError("atoms_list must be a non-empty sequence of ase.Atoms")
    basis = getattr(predictor, "basis", None)
    if not isinstance(basis, OrbitalBasis) or not callable(getattr(predictor, "predict", None)):
        raise TypeError(f"{type(predictor).__name__} is not a predictor: it needs .basis "
                        "(OrbitalBasis) and .predict(atoms) -> TBHamiltonian")
    cutoff = _resolve_cutoff(predictor, cutoff)
    fractions = _check_split(split)
    meta = json.loads(json.dumps(dict(metadata or {})))
    n = len(atoms_list)
    digest = _configurations_digest(atoms_list)
    source = _source(predictor)
    fingerprint = hashlib.sha256(json.dumps(
        {"format_version": FORMAT_VERSION, "basis": basis.to_dict(), "cutoff": cutoff,
         "predictor": source["predictor"], "configurations": digest}, sort_keys=True,
    ).encode()).hexdigest()
    split_seed = int(rng) if isinstance(rng, int | np.integer) else None
    if split_groups is not None:
        split_groups = [int(g) for g in split_groups]
    groups = split_indices(n, fractions, rng, groups=split_groups)
    manifest: dict[str, Any] = json.loads(json.dumps({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "description": source["description"],
        "synthetic": source["synthetic"],
        "predictor": source["predictor"],
        "system": meta.get("system", getattr(predictor, "system", None)),
        "seed": meta.get("seed", split_seed),
        "split_seed": split_seed,
        "basis": basis.to_dict(),
        "cutoff": cutoff,
        "overlap": None,
        "n_records": n,
        "split_fractions": fractions.tolist(),
        "counts": {name: len(idx) for name, idx in groups.items()},
        "split": groups,
        "records": f"{RECORDS_DIR}/{{index:06d}}.npz",
        "configurations_sha256": digest,
        "fingerprint": fingerprint,
        "generation": meta,
    }))
    if split_groups is not None:  # absent otherwise, so older manifests resume unchanged
        manifest["split_groups"] = split_groups
    root = Path(out_dir)
    busy = DatasetError(
        f"another process is writing the dataset folder {root} (it holds the lock "
        f"{root / LOCK_NAME}); wait for it to finish and re-run to resume, or write this "
        "dataset into another folder")
    with exclusive_lock(root / LOCK_NAME, busy=busy):
        return _write_locked(predictor, atoms_list, root, cutoff, manifest, progress)


def _write_locked(predictor: Any, atoms_list: Sequence[Atoms], root: Path, cutoff: float,
                  manifest: dict[str, Any], progress: bool) -> dict[str, Any]:
    """The body of :func:`write_dataset`, run while holding the folder's lock."""
    n = len(atoms_list)
    fingerprint = manifest["fingerprint"]
    old = _resume_manifest(root)
    if old is not None:
        diff = _differences(old, manifest)
        if diff:
            raise DatasetError(
                f"{root} already holds a different dataset (manifest differs in: "
                f"{', '.join(diff)}); choose a new output folder or delete this one"
            )
    for path in sorted((root / RECORDS_DIR).glob("*.npz")):
        found = _record_fingerprint(path)
        if found is not None and found != fingerprint:
            raise DatasetError(
                f"{path} belongs to a different dataset (other configurations, basis, cutoff "
                "or predictor); choose a new output folder or delete this one"
            )
    overlap: bool | None = None
    verified = False
    bar = tqdm(total=n, desc=f"dataset {root.name}", unit="record", disable=not progress)
    with bar:
        for index, atoms in enumerate(atoms_list):
            path = record_path(root, index)
            old_arrays = None
            if path.exists():
                try:
                    old_arrays = read_record(path)
                except DatasetError as exc:  # unreadable: rewrite it
                    print(f"note: {exc.args[0].split('; delete it')[0]}; writing it again",
                          file=sys.stderr)
                    old_arrays = None
            if old_arrays is not None and not verified:
                _verify_resume(predictor, atoms, cutoff, old_arrays, path)
                verified = True
            arrays = old_arrays
            if arrays is None:
                ham = predictor.predict(atoms)
                arrays = hamiltonian_to_record(ham, cutoff, fingerprint=fingerprint, index=index)
                write_record(path, arrays)
            has_s = K.S_ONSITE in arrays
            if overlap is not None and has_s != overlap:
                raise DatasetError(f"{path}: some records have an overlap S and others not; "
                                   "the predictor must be consistent")
            overlap = has_s
            bar.update(1)
    manifest["overlap"] = overlap
    # one top-level entry per line, values compact (split index lists stay one line each)
    text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                               for k, v in manifest.items()) + "\n}\n"
    atomic_write_bytes(root / MANIFEST_NAME, text.encode("utf-8"))
    return manifest


def _verify_resume(predictor: Any, atoms: Atoms, cutoff: float,
                   old: Mapping[str, np.ndarray], path: Path) -> None:
    """Re-predict one existing record: a resumed run must use the same predictor."""
    new = hamiltonian_to_record(predictor.predict(atoms), cutoff)
    keys = [k for k in (K.H_ONSITE, K.H_EDGE, K.S_ONSITE, K.S_EDGE) if k in old or k in new]
    same = all(
        k in old and k in new and old[k].shape == new[k].shape
        and (old[k].size == 0 or float(np.abs(old[k] - new[k]).max()) <= 1e-10)
        for k in keys
    )
    if not same:
        raise DatasetError(
            f"{path} was written by a predictor with other settings (its Hamiltonian differs "
            "from a fresh prediction); choose a new output folder or delete this one"
        )


# -- loading ------------------------------------------------------------------------------------
class HamiltonianDataset(Dataset):
    """Lazy torch-geometric dataset over a folder written by :func:`write_dataset`.

    Each ``dataset[i]`` reads one record file and returns a :class:`HamiltonianData`, so
    ``torch_geometric.loader.DataLoader`` batches them. Data from the reference model are
    synthetic (see ``dataset.manifest["description"]``).

    Parameters
    ----------
    root : path
        Dataset folder (with ``manifest.json``).
    split : {"train", "val", "test", "all"}
        Which configurations.
    transform : callable, optional
        Applied to each ``HamiltonianData`` on access.

    Raises
    ------
    DatasetError
        On access, if a record is truncated or corrupted (the message names the file); at
        construction, if the manifest is missing or unreadable.

    Examples
    --------
    >>> from torch_geometric.loader import DataLoader
    >>> ds = HamiltonianDataset("data/nibri", split="train")  # doctest: +SKIP
    >>> batch = next(iter(DataLoader(ds, batch_size=8)))      # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 transform: Any = None) -> None:
        manifest = read_manifest(root)
        if split == "all":
            idx = list(range(int(manifest["n_records"])))
        elif split in SPLITS:
            idx = [int(i) for i in manifest["split"][split]]
        else:
            raise ValueError(f"split must be one of {', '.join(SPLITS)} or 'all', got {split!r}")
        self.manifest = manifest
        self.split = split
        self._paths = [record_path(root, i) for i in idx]
        super().__init__(root=os.fspath(root), transform=transform, log=False)

    @property
    def basis(self) -> OrbitalBasis:
        """The orbital basis of the records."""
        return OrbitalBasis.from_dict(self.manifest["basis"])

    @property
    def cutoff(self) -> float:
        """The graph cutoff (Å)."""
        return float(self.manifest["cutoff"])

    @property
    def paths(self) -> list[Path]:
        """Record files of this split, in order."""
        return list(self._paths)

    def len(self) -> int:
        return len(self._paths)

    def get(self, idx: int) -> HamiltonianData:
        path = self._paths[idx]
        arrays = read_record(path)
        expected = self.manifest.get("fingerprint")
        found = str(arrays[FINGERPRINT_KEY])
        if expected is not None and found != expected:
            raise DatasetError(
                f"{path} belongs to a different dataset than {Path(self.root) / MANIFEST_NAME} "
                f"(record fingerprint {found[:12] or 'empty'}, manifest {str(expected)[:12]}): "
                "two runs wrote into this folder. Delete the folder and write the dataset again "
                "with one command (or copied the record from another dataset)")
        return record_to_data(arrays)


# -- the reference-model datasets ---------------------------------------------------------------
def make_reference_dataset(
    out_dir: str | os.PathLike,
    system: str | None = None,
    size: str | int | Sequence[int] | None = None,
    n: int | None = None,
    seed: int = 0,
    *,
    ood: str | None = None,
    overlap: bool = False,
    random_magnitudes: bool = False,
    max_displacement: float = 0.1,
    split: Sequence[float] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate configurations and write their Hamiltonians from the SYNTHETIC reference
    model :class:`ase_hamgnn.data.ReferenceTB` (not DFT); what ``ase-hamgnn dataset`` runs.

    Parameters
    ----------
    out_dir : path
        Dataset folder; re-running with the same arguments resumes an interrupted run.
    system : {"nibri", "nibr2", "feir"}, optional
        Default ``"nibri"``, or the default system of the ``ood`` set.
    size : str, int or sequence of int, optional
        Supercell, e.g. ``"2x2"``; default ``"2x2"``, or the default of the ``ood`` set.
    n : int, optional
        Number of configurations; required for random sets, default of the ``ood`` set.
    seed : int
        Seed of the configurations and of the split (one ``numpy`` generator, drawn in that
        order).
    ood : {"spirals", "afm120", "skyrmion"}, optional
        Write an out-of-distribution set (ideal positions, see
        :func:`~ase_hamgnn.data.configurations.ood_configurations`) instead of random
        moments.
    overlap : bool
        Reference model with a non-orthogonal overlap S (records get S blocks).
    random_magnitudes : bool
        Random moment lengths (random sets; see :func:`generate_configurations`).
    max_displacement : float
        Largest random displacement (Å) of random sets.
    split : (float, float, float), optional
        Train/val/test fractions; default (0.8, 0.1, 0.1), and (0, 0, 1) for ``ood`` sets.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    dict
        The manifest (see :func:`write_dataset`).

    Examples
    --------
    >>> manifest = make_reference_dataset("data/nibri", "nibri", "2x2", n=1000,
    ...                                   seed=0)  # doctest: +SKIP
    """
    from ase_hamgnn.data.configurations import (
        OOD_SYSTEMS,
        generate_configurations,
        ood_configurations,
    )
    from ase_hamgnn.data.reference.tb import ReferenceTB

    gen = np.random.default_rng(seed)
    if ood is None:
        if n is None:
            raise ValueError("give the number of configurations n (e.g. -n 1000)")
        system = "nibri" if system is None else system
        size = "2x2" if size is None else size
        atoms_list = generate_configurations(system, size, n, gen, max_displacement,
                                             random_magnitudes)
        split = (0.8, 0.1, 0.1) if split is None else split
    else:
        if ood not in OOD_SYSTEMS:
            raise ValueError(f"unknown out-of-distribution set {ood!r}; choose one of "
                             f"{', '.join(OOD_SYSTEMS)}")
        system = OOD_SYSTEMS[ood] if system is None else system
        atoms_list = ood_configurations(ood, n, gen, system=system, size=size)
        split = (0.0, 0.0, 1.0) if split is None else split
    meta = {
        "kind": "random" if ood is None else ood, "system": system,
        "size": size if size is None or isinstance(size, str | int) else list(size),
        "n": len(atoms_list), "seed": int(seed), "overlap": bool(overlap),
        "random_magnitudes": bool(random_magnitudes) if ood is None else False,
        "max_displacement": float(max_displacement) if ood is None else 0.0,
    }
    return write_dataset(ReferenceTB(system, overlap=overlap), atoms_list, out_dir, split=split,
                         rng=gen, metadata=meta, progress=progress)
