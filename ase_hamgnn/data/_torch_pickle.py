"""Read the pickled graphs of a HamGNN ``graph_data.npz`` without running code from the file.

HamGNN saves ``np.savez(path, graph={index: torch_geometric.data.Data})``: the ``.npz`` holds
one object array, i.e. a pickle, whose tensors are pickled by torch (each storage as the
bytes of a legacy ``torch.save`` stream).  Unpickling such a file with ``allow_pickle=True``
imports and calls whatever the file names.  This module unpickles it with a closed list of
names instead (the ones numpy, torch and torch_geometric write for these graphs), each mapped
to a local stand-in: tensors become numpy arrays, ``Data`` objects become plain dicts of their
fields.  This module imports neither torch nor torch_geometric, and a file that names
anything else is refused.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ase_hamgnn.errors import DatasetError

__all__ = ["load_pickled_graphs"]

#: The magic number and protocol version that open a legacy ``torch.save`` stream.
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "LongStorage": "i8",
    "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?", "ComplexDoubleStorage": "c16", "ComplexFloatStorage": "c8",
}


class _Graph:
    """Stand-in for ``torch_geometric`` ``Data`` and its ``GlobalStorage``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = kwargs or None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def fields(self) -> dict[str, Any]:
        state = self.state[1] if isinstance(self.state, tuple) and len(self.state) == 2 \
            else self.state
        if not isinstance(state, dict):
            return {}
        store = state.get("_store")
        if isinstance(store, _Graph):  # torch_geometric >= 2.0: Data._store._mapping
            return store.fields()
        mapping = state.get("_mapping")
        if isinstance(mapping, dict):
            return dict(mapping)
        return {k: v for k, v in state.items() if not k.startswith("_")}  # torch_geometric 1.x


class _Marker:
    """Stand-in for classes the pickle names but whose instances hold no data."""


class _Tensor:
    """Stand-in for the class ``torch.Tensor`` (named by ``_rebuild_from_type_v2``)."""


def _tensor(storage: np.ndarray, offset: int, size: Any, stride: Any, *_: Any) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2``: a strided view, gathered with bounds checks."""
    shape, steps = tuple(int(x) for x in size), tuple(int(x) for x in stride)
    if not isinstance(storage, np.ndarray) or len(shape) != len(steps) \
            or any(x < 0 for x in (*shape, *steps, int(offset))):
        raise DatasetError("a pickled tensor has an invalid storage, size or stride")
    index = np.full(shape, int(offset), dtype=np.int64)
    for axis, (n, step) in enumerate(zip(shape, steps)):
        view = [1] * len(shape)
        view[axis] = n
        index = index + (np.arange(n, dtype=np.int64) * step).reshape(view)
    if index.size and index.max() >= storage.size:
        raise DatasetError("a pickled tensor reaches past the end of its storage")
    return storage[index] if index.size else np.zeros(shape, storage.dtype)


def _from_type(func: Callable, new_type: Any, args: Any, state: Any = None) -> Any:
    """``torch._tensor._rebuild_from_type_v2`` for plain tensors."""
    if new_type is not _Tensor:
        raise DatasetError("the file holds a tensor subclass, not a plain torch tensor")
    return func(*args)


class _StorageUnpickler(pickle.Unpickler):
    """The object pickle of a legacy ``torch.save`` stream holding one storage."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise DatasetError(f"a pickled storage names {module}.{name}, which is not a "
                           "torch storage type this reader knows")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and pid[1] in _STORAGE_DTYPES):
            raise DatasetError(f"a pickled storage has the unknown reference {pid!r:.80}")
        return pid


def _storage(data: bytes) -> np.ndarray:
    """``torch.storage._load_from_bytes``: the storage of a legacy ``torch.save`` stream."""
    f = io.BytesIO(data)
    plain = _Closed(f, {})
    magic, protocol = plain.load(), _Closed(f, {}).load()
    info = _Closed(f, {}).load()
    if magic != _TORCH_MAGIC or protocol != _TORCH_PROTOCOL or not isinstance(info, dict):
        raise DatasetError("a pickled tensor storage is not a legacy torch.save stream")
    pid = _StorageUnpickler(f).load()
    keys = _Closed(f, {}).load()
    if not isinstance(pid, tuple) or keys != [pid[2]]:
        raise DatasetError("a pickled tensor storage holds other than one storage")
    dtype = np.dtype(_STORAGE_DTYPES[pid[1]]).newbyteorder(
        "<" if info.get("little_endian", True) else ">")
    head = f.read(8)
    if len(head) != 8:
        raise DatasetError("a pickled tensor storage is truncated")
    (count,) = struct.unpack("<q" if dtype.byteorder != ">" else ">q", head)
    raw = f.read()
    if count < 0 or len(raw) < count * dtype.itemsize:
        raise DatasetError("a pickled tensor storage is truncated")
    return np.frombuffer(raw, dtype=dtype, count=count).astype(dtype.newbyteorder("="))


class _Closed(pickle.Unpickler):
    """An unpickler that resolves only the names in ``allowed`` and refuses the rest."""

    def __init__(self, file: Any, allowed: dict[tuple[str, str], Any]) -> None:
        super().__init__(file)
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise DatasetError(
                f"the file holds a pickled {module}.{name}, which this reader does not load: "
                "it reads the graphs HamGNN's scripts write (numpy arrays, torch tensors, "
                "torch_geometric Data) and runs no code from the file") from None

    def persistent_load(self, pid: Any) -> Any:
        raise DatasetError("the file holds a pickled persistent reference, which a "
                           "graph_data.npz does not have")


def _graph_names() -> dict[tuple[str, str], Any]:
    reconstruct = np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own array rebuilder
    numpy_names = {(m, "_reconstruct"): reconstruct
                   for m in ("numpy.core.multiarray", "numpy._core.multiarray")}
    numpy_names.update({("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype})
    names: dict[tuple[str, str], Any] = {
        **numpy_names,
        ("collections", "OrderedDict"): dict,
        ("torch._utils", "_rebuild_tensor_v2"): _tensor,
        ("torch._utils", "_rebuild_tensor"): _tensor,
        ("torch._tensor", "_rebuild_from_type_v2"): _from_type,
        ("torch", "Tensor"): _Tensor,
        ("torch.storage", "_load_from_bytes"): _storage,
    }
    for module in ("torch_geometric.data.data", "torch_geometric.data.storage"):
        names[(module, "Data")] = _Graph
        names[(module, "GlobalStorage")] = _Graph
        for marker in ("DataEdgeAttr", "DataTensorAttr"):
            names[(module, marker)] = _Marker
    return names


def load_pickled_graphs(path: Path, entry: str = "graph") -> Any:
    """The object stored under ``entry`` of the ``.npz`` at ``path``, unpickled with
    :class:`_Closed` (``Data`` objects become dicts of numpy arrays and scalars).

    Raises
    ------
    DatasetError
        If the file is no ``.npz``, lacks ``entry``, or pickles anything outside the list.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            if f"{entry}.npy" not in members:
                names = ", ".join(m.removesuffix(".npy") for m in members)
                raise DatasetError(f"{path} has no '{entry}' entry (keys: {names}); it is not "
                                   "a HamGNN graph_data.npz")
            data = archive.read(f"{entry}.npy")
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path} is truncated or not an .npz file ({exc}); generate it "
                           "again") from None
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
            else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    except ValueError as exc:
        raise DatasetError(f"{path}: '{entry}' is not a numpy array ({exc})") from None
    if dtype.kind != "O":
        raise DatasetError(f"{path}: '{entry}' is a {dtype} array, not the pickled dict of "
                           "graphs HamGNN writes")
    try:
        obj = _Closed(f, _graph_names()).load()
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            AttributeError, struct.error) as exc:
        raise DatasetError(f"{path}: the pickled graphs are truncated or corrupted ({exc}); "
                           "generate the file again") from None
    if isinstance(obj, np.ndarray) and obj.shape == ():
        obj = obj.item()
    if shape != () and isinstance(obj, np.ndarray):
        obj = obj.reshape(shape)
    return _plain(obj)


def _plain(obj: Any) -> Any:
    """Graph stand-ins replaced by dicts of their fields, recursively through containers."""
    if isinstance(obj, _Graph):
        return {k: _plain(v) for k, v in obj.fields().items()}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        return np.array([_plain(v) for v in obj.ravel()], dtype=object).reshape(obj.shape) \
            if obj.size else obj
    return obj
