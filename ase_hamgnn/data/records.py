"""One dataset record: the arrays of one configuration's Hamiltonian, on disk and in torch.

Record format (version 1)
-------------------------
Field names are the data keys of :mod:`ase_hamgnn.keys` plus a few metadata entries:

=====================  ============  ==========  ==============================================
key                    shape         dtype       content
=====================  ============  ==========  ==============================================
``pos``                (N, 3)        float64     Cartesian positions, Å
``atomic_numbers``     (N,)          int64       atomic numbers
``moments``            (N, 3)        float64     magnetic moments, μB
``cell``               (3, 3)        float64     lattice vectors as rows, Å
``pbc``                (3,)          bool        periodic directions
``edge_index``         (2, E)        int64       directed edges ``i -> j`` within the cutoff
``cell_shifts``        (E, 3)        int64       lattice vector ``R`` of ``j``'s image
``edge_reverse``       (E,)          int64       index of the edge ``(j, i, -R)``
``h_onsite``           (L_on,)       complex128  on-site blocks ``H_ii(0)``, flattened, eV
``h_edge``             (L_e,)        complex128  edge blocks ``H_ij(R)``, flattened, eV
``s_onsite``           (L_on,)       complex128  overlap on-site blocks (only with an overlap)
``s_edge``             (L_e,)        complex128  overlap edge blocks (only with an overlap)
``basis``              ()            str         JSON of :meth:`OrbitalBasis.to_dict`
``cutoff``             ()            float64     graph cutoff, Å
``format``             ()            str         ``"ase-hamgnn-dataset"``
``format_version``     ()            int64       1
``fingerprint``        ()            str         identifies the dataset the record belongs to
``index``              ()            int64       configuration index
=====================  ============  ==========  ==============================================

Blocks are ``(2 n_i, 2 n_j)`` spin-major, flattened row-major and concatenated (on-site in
atom order, edges in edge order) exactly as :class:`ase_hamgnn.graph.BlockLayout` lays them
out; the graph is :func:`ase_hamgnn.graph.neighbor_graph` of the predictor's geometry.

In memory (:class:`HamiltonianDataset`) a record becomes a :class:`HamiltonianData`
(a ``torch_geometric.data.Data``) with the same keys as tensors, ``cell`` as (1, 3, 3) and
``pbc`` as (1, 3) so that they stack to (B, 3, 3) and (B, 3), plus ``edge_vectors`` (E, 3)
float64 in Å. Blocks stay complex128: torch-geometric's collation concatenates complex
tensors correctly (tested), so no real/imaginary split is needed.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ase_hamgnn import keys as K
from ase_hamgnn._atomic import atomic_write_bytes
from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.graph import BlockLayout, NeighborGraph, neighbor_graph
from ase_hamgnn.hamiltonian import TBHamiltonian
from ase_hamgnn.model.inputs import HamiltonianData, make_inputs

__all__ = [
    "RECORD_FORMAT",
    "RECORD_FORMAT_VERSION",
    "HamiltonianData",
    "block_range",
    "hamiltonian_to_record",
    "read_record",
    "record_to_data",
    "record_to_hamiltonian",
    "write_record",
]

#: Value of a record's ``format`` entry, and the newest version this code reads and writes.
RECORD_FORMAT = "ase-hamgnn-dataset"
RECORD_FORMAT_VERSION = 1

# record entries beyond the data keys of ase_hamgnn.keys
FORMAT_KEY = "format"
VERSION_KEY = "format_version"
BASIS_KEY = "basis"
CUTOFF_KEY = "cutoff"
FINGERPRINT_KEY = "fingerprint"
INDEX_KEY = "index"

_RERUN = (
    "re-run the command that wrote the dataset with the same arguments into the same folder: "
    "it resumes and rewrites only missing or unreadable records"
)


def block_range(ham: TBHamiltonian) -> float:
    """Longest distance (Å) between two atoms with a non-zero block in H or S."""
    geo = ham.geometry
    offsets = ham.offsets
    worst = 0.0
    for store in (ham.h_r, ham.s_r or {}):
        for r, mat in store.items():
            coo = mat.tocoo()
            if coo.nnz == 0:
                continue
            i = np.searchsorted(offsets, coo.row, side="right") - 1
            j = np.searchsorted(offsets, coo.col, side="right") - 1
            d = geo.positions[j] + np.asarray(r, np.float64) @ geo.cell - geo.positions[i]
            worst = max(worst, float(np.linalg.norm(d, axis=1).max()))
    return worst


# -- records ------------------------------------------------------------------------------------
def hamiltonian_to_record(
    ham: TBHamiltonian, cutoff: float, *, fingerprint: str = "", index: int = 0
) -> dict[str, np.ndarray]:
    """The record arrays of one Hamiltonian (see the module docstring for the format).

    The graph is :func:`~ase_hamgnn.graph.neighbor_graph` of ``ham.geometry`` with
    ``cutoff``; every non-zero block of H (and S) must lie on it.

    Raises
    ------
    DatasetError
        If ``cutoff`` (Å) misses blocks of the Hamiltonian; the message gives the cutoff
        that covers them.
    """
    geo = ham.geometry
    graph = neighbor_graph(geo, cutoff)
    layout = BlockLayout(ham.basis, geo.numbers, graph)
    stores = {"H": ham.h_r} if ham.s_r is None else {"H": ham.h_r, "S": ham.s_r}
    for what, store in stores.items():
        missed = layout.coverage(store)
        if missed > 0:
            need = block_range(ham)
            unit = " eV" if what == "H" else ""
            raise DatasetError(
                f"the graph cutoff {cutoff:.4f} Å misses {what} blocks (largest dropped entry "
                f"{missed:.3e}{unit}); the predictor couples atoms up to {need:.4f} Å apart, "
                f"so use cutoff >= {need + 1e-6:.6f} Å (or the predictor's own .cutoff)"
            )
    arrays: dict[str, np.ndarray] = {
        K.POSITIONS: np.array(geo.positions, np.float64),
        K.ATOMIC_NUMBERS: np.array(geo.numbers, np.int64),
        K.MOMENTS: np.array(geo.moments, np.float64),
        K.CELL: np.array(geo.cell, np.float64),
        K.PBC: np.array(geo.pbc, bool),
        K.EDGE_INDEX: np.array(graph.edge_index, np.int64).reshape(2, -1),
        K.CELL_SHIFTS: np.array(graph.cell_shifts, np.int64).reshape(-1, 3),
        K.EDGE_REVERSE: np.array(graph.reverse, np.int64),
        BASIS_KEY: np.array(ham.basis.to_json()),
        CUTOFF_KEY: np.array(cutoff, np.float64),
        FORMAT_KEY: np.array(RECORD_FORMAT),
        VERSION_KEY: np.array(RECORD_FORMAT_VERSION, np.int64),
        FINGERPRINT_KEY: np.array(fingerprint),
        INDEX_KEY: np.array(index, np.int64),
    }
    arrays[K.H_ONSITE], arrays[K.H_EDGE] = layout.from_matrices(ham.h_r)
    if ham.s_r is not None:
        arrays[K.S_ONSITE], arrays[K.S_EDGE] = layout.from_matrices(ham.s_r)
    return arrays


_REQUIRED = {
    K.POSITIONS: (np.floating, 2), K.ATOMIC_NUMBERS: (np.integer, 1),
    K.MOMENTS: (np.floating, 2), K.CELL: (np.floating, 2), K.PBC: (np.bool_, 1),
    K.EDGE_INDEX: (np.integer, 2), K.CELL_SHIFTS: (np.integer, 2),
    K.EDGE_REVERSE: (np.integer, 1), K.H_ONSITE: (np.complexfloating, 1),
    K.H_EDGE: (np.complexfloating, 1), BASIS_KEY: (np.str_, 0),
    CUTOFF_KEY: (np.floating, 0), FORMAT_KEY: (np.str_, 0),
    VERSION_KEY: (np.integer, 0), FINGERPRINT_KEY: (np.str_, 0),
    INDEX_KEY: (np.integer, 0),
}


def _bad(path: Any, what: str) -> DatasetError:
    return DatasetError(f"dataset record {path} is truncated or corrupted ({what}); delete it "
                        f"and {_RERUN}")


def _check_record(path: Any, arrays: Mapping[str, np.ndarray]) -> None:
    if FORMAT_KEY in arrays and str(arrays[FORMAT_KEY]) != RECORD_FORMAT:
        raise DatasetError(f"{path} is not an ase-hamgnn dataset record (format "
                           f"{str(arrays[FORMAT_KEY])!r}); point the dataset at a folder "
                           "written by write_dataset or `ase-hamgnn dataset`")
    for key, (kind, ndim) in _REQUIRED.items():
        if key not in arrays:
            raise _bad(path, f"entry {key!r} is missing")
        arr = np.asarray(arrays[key])
        if not np.issubdtype(arr.dtype, kind) or arr.ndim != ndim:
            raise _bad(path, f"entry {key!r} has dtype {arr.dtype} and {arr.ndim} dimensions")
    version = int(arrays[VERSION_KEY])
    if version > RECORD_FORMAT_VERSION:
        raise DatasetError(f"{path} has record format version {version}, newer than this "
                           f"ase-hamgnn reads ({RECORD_FORMAT_VERSION}); upgrade ase-hamgnn")
    try:
        basis = OrbitalBasis.from_json(str(arrays[BASIS_KEY]))
        sizes = 2 * basis.orbital_counts(arrays[K.ATOMIC_NUMBERS])
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad(path, f"basis does not fit the atoms: {exc}") from None
    n = len(arrays[K.ATOMIC_NUMBERS])
    ei = np.asarray(arrays[K.EDGE_INDEX])
    e = ei.shape[1]
    shapes = {K.POSITIONS: (n, 3), K.MOMENTS: (n, 3), K.CELL: (3, 3), K.PBC: (3,),
              K.EDGE_INDEX: (2, e), K.CELL_SHIFTS: (e, 3), K.EDGE_REVERSE: (e,)}
    for key, shape in shapes.items():
        if np.shape(arrays[key]) != shape:
            raise _bad(path, f"entry {key!r} has shape {np.shape(arrays[key])}, expected {shape}")
    rev = np.asarray(arrays[K.EDGE_REVERSE])
    if e and (ei.min() < 0 or ei.max() >= n or rev.min() < 0 or rev.max() >= e):
        raise _bad(path, "edge indices out of range")
    if e:
        shifts = np.asarray(arrays[K.CELL_SHIFTS])
        if (not np.array_equal(rev[rev], np.arange(e)) or not np.array_equal(ei[:, rev], ei[::-1])
                or not np.array_equal(shifts[rev], -shifts)):
            raise _bad(path, "entry 'edge_reverse' does not map every edge (i, j, R) to its "
                       "reverse (j, i, -R)")
    l_on = int(np.sum(sizes**2))
    l_e = int(np.sum(sizes[ei[0]] * sizes[ei[1]])) if e else 0
    pairs = [(K.H_ONSITE, K.H_EDGE)]
    if K.S_ONSITE in arrays or K.S_EDGE in arrays:
        pairs.append((K.S_ONSITE, K.S_EDGE))
    for on, ed in pairs:
        for key, length in ((on, l_on), (ed, l_e)):
            if key not in arrays or np.shape(arrays[key]) != (length,):
                got = np.shape(arrays[key]) if key in arrays else "missing"
                raise _bad(path, f"entry {key!r} is {got}; the basis and graph give ({length},)")
    finite = (K.POSITIONS, K.MOMENTS, K.CELL, CUTOFF_KEY) + tuple(k for pair in pairs
                                                                  for k in pair)
    bad = [key for key in finite if not np.isfinite(arrays[key]).all()]
    if bad:
        raise _bad(path, f"NaN or inf values in {', '.join(bad)}")


def read_record(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read and check one record file.

    Returns
    -------
    dict
        Key -> array, see the module docstring.

    Raises
    ------
    DatasetError
        If the file is missing, truncated, corrupted or inconsistent; the message names the
        file and how to regenerate it.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset record {path} is missing; {_RERUN}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
    except PermissionError as exc:
        raise DatasetError(f"dataset record {path} cannot be read ({exc}); give this user read "
                           "permission on the dataset folder") from None
    except Exception as exc:  # zip, zlib, header and dtype errors of a damaged file alike
        raise _bad(path, f"{type(exc).__name__}: {exc}") from None
    try:
        _check_record(path, arrays)
    except DatasetError:
        raise
    except Exception as exc:  # arrays too damaged for the checks themselves
        raise _bad(path, f"{type(exc).__name__}: {exc}") from None
    return arrays


def _arrays(record: str | os.PathLike | Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    if isinstance(record, str | os.PathLike):
        return read_record(record)
    if not isinstance(record, Mapping):
        raise TypeError(
            f"record must be a path or a mapping of arrays, not {type(record).__name__}"
        )
    _check_record("<in-memory record>", record)
    return record


def record_to_hamiltonian(record: str | os.PathLike | Mapping[str, np.ndarray]) -> TBHamiltonian:
    """Rebuild the exact :class:`~ase_hamgnn.hamiltonian.TBHamiltonian` of a record.

    Parameters
    ----------
    record : path or mapping
        A record file or the arrays of :func:`read_record` / :func:`hamiltonian_to_record`.

    Returns
    -------
    TBHamiltonian
        Equal, entry by entry, to the Hamiltonian the record was written from
        (``max_abs_difference == 0``), with the same geometry and moments.
    """
    arrays = _arrays(record)
    basis = OrbitalBasis.from_json(str(arrays[BASIS_KEY]))
    geometry = Geometry(arrays[K.CELL], arrays[K.POSITIONS], arrays[K.ATOMIC_NUMBERS],
                        arrays[K.PBC], arrays[K.MOMENTS])
    shifts = np.asarray(arrays[K.CELL_SHIFTS], np.int64)
    ei = np.asarray(arrays[K.EDGE_INDEX], np.int64)
    graph = NeighborGraph(ei, shifts, _edge_vectors(arrays), np.asarray(arrays[K.EDGE_REVERSE]),
                          float(arrays[CUTOFF_KEY]))
    layout = BlockLayout(basis, geometry.numbers, graph)
    h = layout.to_matrices(arrays[K.H_ONSITE], arrays[K.H_EDGE])
    s = None
    if K.S_ONSITE in arrays:
        s = layout.to_matrices(arrays[K.S_ONSITE], arrays[K.S_EDGE])
    return TBHamiltonian(basis, geometry, h, s)


def _edge_vectors(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    pos = np.asarray(arrays[K.POSITIONS], np.float64)
    i, j = np.asarray(arrays[K.EDGE_INDEX], np.int64)
    shifts = np.asarray(arrays[K.CELL_SHIFTS], np.float64)
    return pos[j] + shifts @ np.asarray(arrays[K.CELL], np.float64) - pos[i]


def write_record(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write record arrays to ``path`` atomically (``numpy.savez_compressed``)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


# -- torch-geometric ------------------------------------------------------------------------------
def record_to_data(record: str | os.PathLike | Mapping[str, np.ndarray]) -> HamiltonianData:
    """A record as :class:`~ase_hamgnn.model.inputs.HamiltonianData` (torch tensors under the
    keys of :mod:`ase_hamgnn.keys`; float64 positions, complex128 blocks), built by the same
    :func:`~ase_hamgnn.model.inputs.make_inputs` as a prediction's inputs."""
    arrays = _arrays(record)

    def t(key: str, dtype: torch.dtype, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        out = torch.from_numpy(np.ascontiguousarray(arrays[key])).to(dtype)
        return out.reshape(shape) if shape is not None else out

    extra = {
        K.CELL: t(K.CELL, torch.float64, (1, 3, 3)),
        K.PBC: t(K.PBC, torch.bool, (1, 3)),
        K.H_ONSITE: t(K.H_ONSITE, torch.complex128),
        K.H_EDGE: t(K.H_EDGE, torch.complex128),
    }
    if K.S_ONSITE in arrays:
        extra[K.S_ONSITE] = t(K.S_ONSITE, torch.complex128)
        extra[K.S_EDGE] = t(K.S_EDGE, torch.complex128)
    return make_inputs(arrays[K.ATOMIC_NUMBERS], arrays[K.POSITIONS], arrays[K.MOMENTS],
                       arrays[K.EDGE_INDEX], arrays[K.CELL_SHIFTS], _edge_vectors(arrays),
                       arrays[K.EDGE_REVERSE], torch.float64, **extra)
