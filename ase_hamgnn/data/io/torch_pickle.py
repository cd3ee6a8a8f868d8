"""Read the pickled graphs of a HamGNN ``graph_data.npz`` without running code from the file.

HamGNN saves ``np.savez(path, graph={index: torch_geometric.data.Data})``: the ``.npz`` holds
one object array, i.e. a pickle, whose tensors are pickled by torch (each storage as the
bytes of a legacy ``torch.save`` stream).  Unpickling such a file with ``allow_pickle=True``
imports and calls whatever the file names.  This module unpickles it with a closed list of
names instead (the ones numpy, torch and torch_geometric write for these graphs), each mapped
to a local stand-in that only builds data: numpy arrays and dtypes are rebuilt from checked
states (numeric dtypes and object arrays of the stated size, never numpy's own
``__setstate__``), tensors become numpy arrays, ``Data`` objects become plain dicts of their
fields.  The stand-ins cannot be modified by the pickle (no attribute of them can be set), the
number of tensor elements is bounded by the size of the file, and the result is checked for
shared or self-referencing parts before use.  This module imports neither torch nor
torch_geometric, and a file that names anything else is refused with a
:class:`~ase_hamgnn.errors.DatasetError`.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zlib import error as zlib_error

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
#: dtype strings numpy pickles for the arrays a graph may hold: numeric and object.
_DTYPE_SPEC = re.compile(r"^(b1|[iu][1248]|f[248]|c(8|16)|O[48]?)$")
#: Tensor elements allowed beyond the byte size of the pickle (small broadcast views).
_SPARE_ELEMENTS = 1 << 20
#: Deepest nesting of containers accepted in the unpickled graphs.
_MAX_DEPTH = 64
_FIX = "generate the file again"


def _refuse_setattr(*_: Any) -> None:
    raise DatasetError("the pickle sets an attribute of a reader's stand-in object, which a "
                       f"graph_data.npz never does; the file is corrupted or crafted ({_FIX})")


class _Frozen(type):
    """Metaclass of the stand-in classes: a pickle cannot set their attributes (``BUILD`` on
    a class), so one file cannot change how the next one is read."""

    __setattr__ = _refuse_setattr
    __delattr__ = _refuse_setattr


class _Call:
    """A stand-in function the pickle may call, and nothing else (no attribute can be set)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "fn", fn)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    __setattr__ = _refuse_setattr
    __delattr__ = _refuse_setattr


class _Graph(metaclass=_Frozen):
    """Stand-in for ``torch_geometric`` ``Data`` and its ``GlobalStorage``."""

    __slots__ = ("state",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = kwargs or None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def fields(self) -> dict[str, Any]:
        graph, seen = self, set()
        while True:  # torch_geometric >= 2.0: Data._store is a GlobalStorage with _mapping
            if id(graph) in seen:
                raise DatasetError("a pickled graph refers to itself as its own storage")
            seen.add(id(graph))
            state = graph.state
            if isinstance(state, tuple) and len(state) == 2:
                state = state[1]
            if not isinstance(state, dict):
                return {}
            store = state.get("_store")
            if not isinstance(store, _Graph):
                break
            graph = store
        mapping = state.get("_mapping")
        if isinstance(mapping, dict):
            return dict(mapping)
        return {k: v for k, v in state.items()
                if not (isinstance(k, str) and k.startswith("_"))}  # torch_geometric 1.x


class _Marker(metaclass=_Frozen):
    """Stand-in for classes the pickle names but whose instances hold no data."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        pass


class _Tensor(metaclass=_Frozen):
    """Stand-in for the class ``torch.Tensor`` (named by ``_rebuild_from_type_v2``)."""

    __slots__ = ()


class _NDArray(metaclass=_Frozen):
    """Stand-in for the class ``numpy.ndarray`` (named by numpy's ``_reconstruct``)."""

    __slots__ = ()


class _DType:
    """A numpy dtype rebuilt from a checked pickle state (numeric or object, no fields)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) >= 5 and state[0] in (3, 4)
                and state[1] in ("<", ">", "|", "=") and state[2:5] == (None, None, None)):
            raise DatasetError(f"a pickled numpy dtype has the state {state!r:.80}, which is "
                               "not that of a plain numeric or object dtype")
        if state[1] in "<>" and self.dtype.kind != "O":
            self.dtype = self.dtype.newbyteorder(state[1])


def _dtype(spec: Any, *_: Any) -> _DType:
    """``numpy.dtype(spec, align, copy)`` for the numeric and object dtypes only."""
    if not (isinstance(spec, str) and _DTYPE_SPEC.match(spec)):
        raise DatasetError(f"the file holds a numpy array of dtype {spec!r:.40}; this reader "
                           "loads numeric and object arrays only")
    return _DType(np.dtype(spec))


class _Array:
    """A numpy array rebuilt from a checked ``ndarray.__reduce__`` state (numpy's own
    ``__setstate__`` trusts the state: an object array with a short list crashes Python)."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4):
            raise DatasetError("a pickled numpy array has a malformed state")
        shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and len(shape) <= 32
                and all(type(n) is int and n >= 0 for n in shape)):
            raise DatasetError(f"a pickled numpy array has the shape {shape!r:.80}")
        if not isinstance(dtype, _DType) or not isinstance(fortran, bool):
            raise DatasetError("a pickled numpy array has no valid dtype")
        dtype, size = dtype.dtype, math.prod(shape)
        if dtype.kind == "O":
            if not isinstance(raw, list) or len(raw) != size:
                raise DatasetError(f"a pickled object array of shape {shape} does not hold "
                                   f"{size} objects")
            flat = np.empty(size, dtype=object)
            for k, item in enumerate(raw):
                flat[k] = item
            self.array = flat.reshape(shape)
        else:
            if not isinstance(raw, bytes) or len(raw) != size * dtype.itemsize:
                raise DatasetError(f"a pickled {dtype} array of shape {shape} does not hold "
                                   f"{size * dtype.itemsize} bytes")
            self.array = np.frombuffer(raw, dtype=dtype).reshape(
                shape, order="F" if fortran else "C").astype(dtype.newbyteorder("="))


def _reconstruct(subtype: Any, *_: Any) -> _Array:
    """numpy's ``_reconstruct(ndarray, shape, dtype)``: an empty array its state fills."""
    if subtype is not _NDArray:
        raise DatasetError("a pickled numpy array is of a subclass, not numpy.ndarray")
    return _Array()


class _Budget:
    """Tensor elements a file may still unpickle: the byte size of its pickle, plus a
    little, so that absurd sizes or strides fail before anything is allocated."""

    def __init__(self, n_bytes: int) -> None:
        self.left = n_bytes + _SPARE_ELEMENTS

    def take(self, n: int) -> None:
        if n > self.left:
            raise DatasetError(f"a pickled tensor claims {n} elements, more than the file "
                               "holds; the file is corrupted")
        self.left -= n


def _tensor(budget: _Budget, storage: Any, offset: Any, size: Any, stride: Any,
            *_: Any) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2``: a strided view, gathered with bounds checks."""
    if not (isinstance(storage, np.ndarray) and isinstance(size, tuple)
            and isinstance(stride, tuple) and type(offset) is int and len(size) == len(stride)
            and len(size) <= 32 and all(type(x) is int for x in (*size, *stride))
            and min((*size, *stride, offset)) >= 0):
        raise DatasetError("a pickled tensor has an invalid storage, size or stride")
    shape, steps = size, stride
    n = math.prod(shape)
    budget.take(n)
    if n and offset + sum((m - 1) * step for m, step in zip(shape, steps)) >= storage.size:
        raise DatasetError("a pickled tensor reaches past the end of its storage")
    index = np.full(shape, offset, dtype=np.int64)
    for axis, (m, step) in enumerate(zip(shape, steps)):
        view = [1] * len(shape)
        view[axis] = m
        index = index + (np.arange(m, dtype=np.int64) * step).reshape(view)
    return storage[index] if n else np.zeros(shape, storage.dtype)


def _from_type(rebuild: Any) -> Callable[..., Any]:
    def from_type(func: Any, new_type: Any, args: Any, state: Any = None) -> Any:
        """``torch._tensor._rebuild_from_type_v2`` for plain tensors."""
        if new_type is not _Tensor:
            raise DatasetError("the file holds a tensor subclass, not a plain torch tensor")
        if func is not rebuild or not isinstance(args, tuple):
            raise DatasetError("a pickled tensor is rebuilt by other than "
                               "torch._utils._rebuild_tensor_v2")
        return func(*args)
    return from_type


#: The unpickler the readers below build on: Python's own pure-Python one, whose memo is a
#: dict (the C unpickler allocates an array up to the largest memo index a file names, so one
#: corrupted index of 1e9 makes it allocate and clear gigabytes), which reads counted byte
#: strings without allocating their claimed size first and does not recurse.
_Unpickler = pickle._Unpickler


class _StorageUnpickler(_Unpickler):
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
    if not isinstance(data, bytes):
        raise DatasetError("a pickled tensor storage is not a byte string")
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


class _Closed(_Unpickler):
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


def _graph_names(budget: _Budget) -> dict[tuple[str, str], Any]:
    """The closed list of names, each resolved to a stand-in (fresh for each file)."""
    rebuild = _Call(lambda *args: _tensor(budget, *args))
    names: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NDArray,
        ("numpy", "dtype"): _Call(_dtype),
        ("collections", "OrderedDict"): dict,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild,
        ("torch._utils", "_rebuild_tensor"): rebuild,
        ("torch._tensor", "_rebuild_from_type_v2"): _Call(_from_type(rebuild)),
        ("torch", "Tensor"): _Tensor,
        ("torch.storage", "_load_from_bytes"): _Call(_storage),
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        names[(module, "_reconstruct")] = _Call(_reconstruct)
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
        If the file is no ``.npz``, lacks ``entry``, or pickles anything outside the list,
        or anything malformed (absurd sizes, shared or self-referencing parts).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            if f"{entry}.npy" not in members:
                names = ", ".join(m.removesuffix(".npy") for m in members)
                raise DatasetError(f"{path} has no '{entry}' entry (keys: {names}); it is not "
                                   "a HamGNN graph_data.npz")
            info = archive.getinfo(f"{entry}.npy")
            if info.file_size > 1100 * info.compress_size + 4096:  # deflate packs <= 1032:1
                raise DatasetError(f"{path}: '{entry}' claims {info.file_size} bytes from "
                                   f"{info.compress_size} compressed ones; the file is "
                                   f"corrupted ({_FIX})")
            data = archive.read(f"{entry}.npy")
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError,
            RuntimeError, zlib_error) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path} is truncated or not an .npz file ({exc}); generate it "
                           "again") from None
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
            else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    except Exception as exc:  # numpy's header parser (tokenize, literal_eval) on garbage
        raise DatasetError(f"{path}: '{entry}' is not a numpy array ({type(exc).__name__}: "
                           f"{exc!s:.200}); {_FIX}") from None
    if dtype.kind != "O":
        raise DatasetError(f"{path}: '{entry}' is a {dtype} array, not the pickled dict of "
                           "graphs HamGNN writes")
    try:
        obj = _plain(_Closed(f, _graph_names(_Budget(len(data)))).load(), {}, 0)
        if isinstance(obj, np.ndarray) and obj.shape == ():
            obj = obj.item()
        elif shape != () and isinstance(obj, np.ndarray):
            obj = obj.reshape(shape)
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, OverflowError, MemoryError, RecursionError, struct.error) as exc:
        raise DatasetError(f"{path}: the pickled graphs are truncated or corrupted "
                           f"({type(exc).__name__}: {exc!s:.200}); {_FIX}") from None
    return obj


_BUSY = object()


def _plain(obj: Any, memo: dict[int, Any], depth: int) -> Any:
    """The unpickled object with graph stand-ins replaced by dicts of their fields and array
    stand-ins by numpy arrays, recursively through containers; refuses nesting deeper than
    :data:`_MAX_DEPTH` and containers that contain themselves.  Shared parts are converted
    once (``memo``), so a pickle of repeated references cannot blow up the work."""
    if not isinstance(obj, (_Graph, _Array, dict, list, tuple, np.ndarray)):
        return obj
    if depth > _MAX_DEPTH:
        raise DatasetError(f"the pickled graphs nest more than {_MAX_DEPTH} levels deep")
    key = id(obj)
    done = memo.get(key)
    if done is _BUSY:
        raise DatasetError("the pickled graphs contain themselves")
    if done is not None:
        return done[1]
    memo[key] = _BUSY
    if isinstance(obj, _Graph):
        out: Any = {k: _plain(v, memo, depth + 1) for k, v in obj.fields().items()}
    elif isinstance(obj, _Array):
        if obj.array is None:
            raise DatasetError("a pickled numpy array has no data")
        out = _plain(obj.array, memo, depth + 1)
    elif isinstance(obj, dict):
        out = {k: _plain(v, memo, depth + 1) for k, v in obj.items()}
    elif isinstance(obj, (list, tuple)):
        out = type(obj)(_plain(v, memo, depth + 1) for v in obj)
    elif obj.dtype == object:
        out = np.empty(obj.shape, dtype=object)
        flat = out.reshape(-1)
        for k, v in enumerate(obj.reshape(-1)):
            flat[k] = _plain(v, memo, depth + 1)
    else:
        out = obj
    memo[key] = (obj, out)  # obj kept alive: its id stays unique while memo is in use
    return out
