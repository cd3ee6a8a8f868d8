"""The DFT readers on hostile, broken and unusual input, through their public entry points.

* HamGNN ``graph_data.npz`` files are pickles: crafted ones must run no code in
  ``read_hamgnn``, ``convert_dataset(source_format="hamgnn")`` or
  ``ase-hamgnn dataset convert --from hamgnn``, whether given as the file or found below a
  folder; each payload below would create a marker file if anything from it ran.
* Converting sources whose stored matrices are read-only (graphs of different elements,
  dropping the overlap).
* Values no element or no number has (Z = 200, NaN blocks), one-word input lines.
* Fuzzing: byte flips and truncations of a ``.scfout``, a DeepH folder and a HamGNN file give
  a DatasetError or a valid, finite Hamiltonian, never a raw library exception or a hang.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import pickletools
import shutil
import signal
import subprocess
import warnings
import zipfile
from collections import Counter

import h5py
import numpy as np
import pytest
import torch
from ase import Atoms
from tb_helpers import random_tb
from test_openmx import SPECIES, _input_lines, _write_scfout

from ase_hamgnn import OrbitalBasis, TBHamiltonian
from ase_hamgnn.cli import main
from ase_hamgnn.data import read_manifest, record_to_hamiltonian
from ase_hamgnn.data.dataset import record_path
from ase_hamgnn.data.io.convert import convert_dataset
from ase_hamgnn.data.io.deeph import read_deeph, write_deeph
from ase_hamgnn.data.io.hamgnn_npz import read_hamgnn, write_hamgnn
from ase_hamgnn.data.io.openmx import read_openmx
from ase_hamgnn.data.io.units import HARTREE_IN_EV
from ase_hamgnn.errors import DatasetError

BASIS = OrbitalBasis({"Ni": ["4s", "3d"], "Br": ["4s", "4p"], "I": ["5s", "5p"]})


def _atoms(symbols: str = "NiBr") -> Atoms:
    atoms = Atoms(symbols, positions=[[0, 0, 0], [1.3, 1.3, 1.0]], cell=[2.6, 2.6, 12],
                  pbc=[True, False, False])
    atoms.set_initial_magnetic_moments([[0.3, -0.4, 1.9], [0, 0, 0]])
    return atoms


@pytest.fixture(scope="module")
def ham() -> TBHamiltonian:
    """A small random Hamiltonian with overlap (two atoms, s+d and s+p)."""
    return random_tb(np.random.default_rng(11), _atoms(), BASIS, overlap=True)


# -- 1. crafted HamGNN pickles run no code --------------------------------------------------------
class _Reduce:
    """Pickles as the call ``func(*args)`` (then ``BUILD`` with ``state``), as a crafted file
    would; writing it calls nothing."""

    def __init__(self, func, args, state=None):
        self.rv = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.rv


def _raw_call(module: str, name: str, *args) -> bytes:
    """Pickle bytes of ``module.name(*args)`` for names pickle would not write itself (such
    as ``os.system``, which it spells ``posix.system``)."""
    call_args = pickle.dumps(tuple(args), protocol=2)[2:-1]  # without PROTO and STOP
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + call_args + b"R."


def _graph_npz(path, body: bytes, entry: str = "graph"):
    """A ``.npz`` whose ``entry`` is an object array with the pickle ``body``, as np.save
    writes object arrays (what np.load(allow_pickle=True) would unpickle)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": ()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{entry}.npy", header.getvalue() + body)
    return path


def _in_graph(path, payload):
    """``payload`` as a graph of a dict of graphs, written by numpy's own np.savez."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, graph=np.array({0: payload}, dtype=object))
    return path


def _touch_code(marker) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _payloads(tmp_path, marker):
    """name -> file; each file creates ``marker`` when unpickled by plain pickle."""
    inner = tmp_path / "inner.pkl"  # what numpy.load(..., allow_pickle) would run
    inner.write_bytes(pickle.dumps(_Reduce(exec, (_touch_code(marker),))))
    touch = f"touch {marker}"
    return {
        "posix.system": _in_graph(tmp_path / "a.npz", _Reduce(os.system, (touch,))),
        "os.system": _graph_npz(tmp_path / "b.npz", _raw_call("os", "system", touch)),
        "builtins.exec": _in_graph(tmp_path / "c.npz", _Reduce(exec, (_touch_code(marker),))),
        "builtins.eval": _in_graph(tmp_path / "d.npz", _Reduce(eval, (_touch_code(marker),))),
        "subprocess.call": _in_graph(tmp_path / "e.npz",
                                     _Reduce(subprocess.call, (["touch", str(marker)],))),
        "subprocess.Popen": _in_graph(tmp_path / "f.npz",
                                      _Reduce(subprocess.Popen, (["touch", str(marker)],))),
        "numpy.save": _in_graph(tmp_path / "g.npz", _Reduce(np.save, (str(marker),
                                                                      np.zeros(1)))),
        "numpy.load": _in_graph(tmp_path / "h.npz", _Reduce(np.load, (str(inner), None, True))),
        "numpy.testing.measure": _in_graph(tmp_path / "i.npz",
                                           _Reduce(np.testing.measure, (_touch_code(marker),))),
        "builtins.__import__": _graph_npz(tmp_path / "j.npz",
                                          _raw_call("builtins", "__import__", "os")),
        "torch.load": _graph_npz(tmp_path / "k.npz", _raw_call("torch", "load", str(inner))),
        # INST: protocol 0 calls os.system(touch) while it builds the instance
        "INST os.system": _graph_npz(tmp_path / "l.npz",
                                     b"(V" + touch.encode() + b"\nios\nsystem\n."),
        # an allowed module, a name outside the list
        "torch_geometric.data.data.os": _graph_npz(
            tmp_path / "m.npz", _raw_call("torch_geometric.data.data", "os")),
    }


def _entry_points(tmp_path, path):
    """Every way a HamGNN file is read: the reader, the converter (the file, or a folder
    holding it as records/000000.npz) and the command line (file and folder)."""
    folder = tmp_path / f"src_{path.stem}"
    (folder / "records").mkdir(parents=True)
    shutil.copy(path, folder / "records" / "000000.npz")
    out = tmp_path / f"out_{path.stem}"
    return [
        lambda: read_hamgnn(path),
        lambda: convert_dataset(path, out, source_format="hamgnn", progress=False),
        lambda: convert_dataset(folder, out, source_format="hamgnn", progress=False),
        lambda: main(["dataset", "convert", "--from", "hamgnn", str(path), "--out", str(out)]),
        lambda: main(["dataset", "convert", "--from", "hamgnn", str(folder), "--out",
                      str(out)]),
    ]


def _names(path) -> set[str]:
    """The strings and global names of the pickle in an .npz (read with pickletools, which
    runs nothing): a payload must name the function it calls."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read("graph.npy")
    f = io.BytesIO(data)
    np.lib.format.read_magic(f)
    np.lib.format.read_array_header_1_0(f)
    names = set()
    for _, arg, _ in pickletools.genops(f):
        if isinstance(arg, str):
            names.update(arg.split())
    return names


def test_crafted_pickles_run_no_code_on_any_entry_point(tmp_path, capsys):
    marker = tmp_path / "ran.npy"
    for name, path in _payloads(tmp_path, marker).items():
        assert name.split(".")[-1] in _names(path), name
        for run in _entry_points(tmp_path, path):
            try:
                status = run()
            except DatasetError as exc:
                assert "runs no code" in str(exc) and ".npz" in str(exc), (name, exc)
            else:
                assert status == 1, name  # the command line: a one-line error, status 1
                err = capsys.readouterr().err
                assert err.startswith("error: ") and "runs no code" in err, (name, err)
            assert not marker.exists(), f"{name} ran code from the file"


def test_other_entries_of_the_npz_are_not_unpickled(tmp_path, ham):
    """Only ``graph`` is read: a payload next to it never runs."""
    marker = tmp_path / "ran"
    good = write_hamgnn([ham], tmp_path / "good.npz")
    with zipfile.ZipFile(good, "a") as archive:
        archive.writestr("evil.npy", zipfile.ZipFile(
            _in_graph(tmp_path / "e.npz", _Reduce(os.system, (f"touch {marker}",)))
        ).read("graph.npy"))
    assert read_hamgnn(good)[0].max_abs_difference(read_hamgnn(tmp_path / "good.npz")[0]) == 0
    assert not marker.exists()


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]


def _misuse(tmp_path):
    """Files naming only allowed names, but abusing them: name -> (file, error pattern)."""
    cases = {}
    # an object array whose state lists fewer objects than its shape: numpy's own
    # __setstate__ accepts it and leaves NULL pointers that crash the interpreter
    short = _Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"),
                    (1, (1000,), np.dtype("O"), False, [1]))
    cases["short object array"] = (_graph_npz(tmp_path / "s.npz", pickle.dumps(short, 3)),
                                   "does not hold 1000 objects")
    # setting an attribute of a stand-in class (BUILD on the class): would change how every
    # later file is read
    build = (b"\x80\x02ctorch\nTensor\n"
             + pickle.dumps((None, {"fields": None}), protocol=2)[2:-1] + b"b.")
    cases["class attribute"] = (_graph_npz(tmp_path / "b.npz", build), "attribute")
    # numpy's array rebuilder with another class than ndarray
    sub = _Reduce(_RECONSTRUCT, (np.matrix, (0,), b"b"))
    cases["ndarray subclass"] = (_in_graph(tmp_path / "m.npz", sub), "numpy.matrix")
    # a structured dtype holding objects
    cases["structured dtype"] = (
        _in_graph(tmp_path / "d.npz", np.zeros(2, dtype=[("a", "O"), ("b", "f8")])),
        "dtype")
    # a tensor view of 1e12 elements on a one-element storage
    cases["absurd tensor"] = (_in_graph(tmp_path / "t.npz",
                                        torch.zeros(1, dtype=torch.float64).expand(10**6, 10**6)),
                              "more than the file holds")
    # a dict that contains itself, and 2^60 paths through shared dicts
    loop: dict = {}
    loop["z"] = loop
    cases["self-reference"] = (_in_graph(tmp_path / "l.npz", loop), "contain themselves")
    shared: dict = {"z": 1}
    for _ in range(60):
        shared = {"a": shared, "b": shared}
    cases["shared parts"] = (_in_graph(tmp_path / "p.npz", shared), "lacks")
    deep: list = []
    for _ in range(200):
        deep = [deep]
    cases["deep nesting"] = (_in_graph(tmp_path / "n.npz", deep), "levels deep")
    return cases


def test_allowed_names_cannot_be_abused(tmp_path, ham):
    for name, (path, pattern) in _misuse(tmp_path).items():
        with _deadline(20), pytest.raises(DatasetError, match=pattern):
            read_hamgnn(path)
        assert name  # (the name shows in a failure's traceback)
    # nothing of the reader was changed: a good file still reads exactly
    good = write_hamgnn([ham], tmp_path / "good.npz")
    back = read_hamgnn(good, basis=BASIS, pbc=ham.geometry.pbc)[0]
    assert back.max_abs_difference(ham) < 1e-12


# -- 2. read-only stored matrices ----------------------------------------------------------------
def test_constructor_copies_read_only_matrices(ham):
    again = TBHamiltonian(ham.basis, ham.geometry, dict(ham.h_r), dict(ham.s_r))
    assert again.max_abs_difference(ham) == 0
    for mat in (*again.h_r.values(), *again.s_r.values()):
        assert not mat.data.flags.writeable  # still immutable
    # a writable caller's matrix is not written into either
    r = (0, 0, 0)
    mine = ham.h_r[r].copy()
    mine.data[0] = 0.0  # an explicit zero, which the constructor drops from its own copy
    before = (mine.data.copy(), mine.indices.copy(), mine.nnz)
    TBHamiltonian(ham.basis, ham.geometry, {**ham.h_r, r: mine}, hermiticity_tol=None)
    assert mine.nnz == before[2] and (mine.data == before[0]).all()


def _records_match(out, sources):
    for n, src in enumerate(sources):
        back = record_to_hamiltonian(record_path(out, n))
        for k in ([0, 0, 0], [0.3, -0.2, 0.1]):
            np.testing.assert_allclose(back.hk(k).toarray(), src.hk(k).toarray(), atol=1e-12)


def test_convert_hamgnn_graphs_of_different_elements(tmp_path, ham, capsys):
    """Each graph gets the basis of all elements, built from the stored matrices."""
    other = random_tb(np.random.default_rng(12), _atoms("NiI"), BASIS, overlap=True)
    path = write_hamgnn([ham, other], tmp_path / "graph_data.npz")
    assert main(["dataset", "convert", "--from", "hamgnn", str(path), "--out",
                 str(tmp_path / "out")]) == 0
    assert "wrote 2 records" in capsys.readouterr().out
    assert read_manifest(tmp_path / "out")["basis"].keys() == {"Ni", "Br", "I"}
    _records_match(tmp_path / "out", [ham, other])


@pytest.mark.parametrize("source_format", ["deeph", "hamgnn"])
def test_convert_without_the_overlap(tmp_path, ham, source_format):
    if source_format == "deeph":
        write_deeph(ham, tmp_path / "src" / "a")
    else:
        write_hamgnn([ham], tmp_path / "src" / "graph_data.npz")
    manifest = convert_dataset(tmp_path / "src", tmp_path / "out", source_format=source_format,
                               overlap=False, progress=False)
    assert manifest["overlap"] is False
    back = record_to_hamiltonian(record_path(tmp_path / "out", 0))
    assert back.s_r is None
    _records_match(tmp_path / "out", [TBHamiltonian(ham.basis, ham.geometry, ham.h_r)])


# -- 3. values that are no element or no number; one-word lines ---------------------------------
@pytest.mark.parametrize("value", ["200", "0", "-3", "Fe", "26.5", "nan", "1e300"])
def test_deeph_element_that_is_no_atomic_number(tmp_path, ham, value):
    folder = write_deeph(ham, tmp_path / "a")
    (folder / "element.dat").write_text(f"28\n{value}\n")
    with pytest.raises(DatasetError, match=r"element\.dat, line 2: .* not an atomic number"):
        read_deeph(folder)
    with pytest.raises(DatasetError, match=r"element\.dat, line 2"):
        convert_dataset(tmp_path, tmp_path / "out", progress=False)


@pytest.mark.parametrize("line", ["1.5", "x", "inf", "4"])
def test_deeph_orbital_types_that_are_no_shells(tmp_path, ham, line):
    folder = write_deeph(ham, tmp_path / "a")
    (folder / "orbital_types.dat").write_text(f"0 2\n0 {line}\n")
    with pytest.raises(DatasetError, match=r"orbital_types\.dat, line 2"):
        read_deeph(folder)


@pytest.mark.parametrize("where, line_no, pattern", [
    ("species", 3, "has no basis"),
    ("atoms", 12, "names no species"),
])
def test_openmx_one_word_input_lines(tmp_path, ham, where, line_no, pattern):
    lines = _input_lines(ham, SPECIES)
    k = line_no - 1
    assert lines[k].split()[0 if where == "species" else 1] in ("Ni", "Br")
    lines[k] = lines[k].split()[0]
    path = _write_scfout(tmp_path / "a.scfout", ham, SPECIES, lines=lines)
    with pytest.raises(DatasetError, match=rf"a\.scfout: line {line_no} of .*{pattern}"):
        read_openmx(path, moments="input")


def _nan_at(data: bytes, value: float, dtype: str = "<f8") -> bytes:
    old = np.asarray(value, dtype).tobytes()
    assert data.count(old) >= 1 and value != 0
    return data.replace(old, np.asarray(np.nan, dtype).tobytes())


def _s_value(ham):
    """An s-s overlap element (equal in every orbital convention) of atoms 0, 1."""
    return ham.block(0, 1, (0, 0, 0), overlap=True)[0, 0].real


def _h_value(ham):
    return ham.block(0, 1, (0, 0, 0))[0, 0].real


def _rezip(path, out, change):
    """``path`` with ``change`` applied to its graph.npy (a valid zip: CRCs recomputed)."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read("graph.npy")
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("graph.npy", change(data))
    return out


@pytest.mark.parametrize("what", ["S", "H"])
def test_nan_blocks_are_refused_by_every_reader(tmp_path, ham, what):
    value = _s_value(ham) if what == "S" else _h_value(ham)
    # DeepH
    folder = write_deeph(ham, tmp_path / "a")
    name = "overlaps.h5" if what == "S" else "hamiltonians.h5"
    with h5py.File(folder / name, "r+") as f:
        f["[0, 0, 0, 1, 2]"][0, 0] = np.nan
    with pytest.raises(DatasetError, match=rf"a: the {what} block .* NaN"):
        read_deeph(folder)
    # OpenMX (Hartree in the file)
    path = _write_scfout(tmp_path / "a.scfout", ham, SPECIES)
    path.write_bytes(_nan_at(path.read_bytes(),
                             value if what == "S" else value / HARTREE_IN_EV))
    with pytest.raises(DatasetError, match=rf"a\.scfout: the {what} block .* NaN"):
        read_openmx(path, moments="input")
    # HamGNN
    path = write_hamgnn([ham], tmp_path / "g.npz")
    bad = _rezip(path, tmp_path / "bad.npz", lambda data: _nan_at(
        data, value if what == "S" else value / HARTREE_IN_EV))
    with pytest.raises(DatasetError, match=rf"bad\.npz .*{'Soff' if what == 'S' else 'Hoff'} "
                                           "holds NaN"):
        read_hamgnn(bad)


# -- 4. fuzzing ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _deadline(seconds: float):
    """Fail (instead of hanging) when the body runs longer than ``seconds``."""
    def fail(*_):
        raise AssertionError(f"a reader ran longer than {seconds} s on a mutated file (a hang)")

    old = signal.signal(signal.SIGALRM, fail)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_ABSURD = [2**31 - 1, -1, -(2**31), 10**6, 10**9, 65536]


def _mutate(data: bytes, rng: np.random.Generator, header: int = 512) -> tuple[str, bytes]:
    """One mutation of ``data``: truncation, random bytes, or an absurd int32 near the start
    (where formats keep their counts)."""
    kind = int(rng.integers(4))
    if kind == 0 or len(data) < 8:
        cut = int(rng.integers(len(data)))
        return f"truncated at {cut}", data[:cut]
    out = bytearray(data)
    if kind == 1:
        at = rng.integers(len(data), size=int(rng.integers(1, 5)))
        for k in at:
            out[k] = int(rng.integers(256))
        return f"bytes at {sorted(at.tolist())}", bytes(out)
    if kind == 2:
        k = int(rng.integers(min(header, len(data))))
        out[k] ^= 1 << int(rng.integers(8))
        return f"bit flip at {k}", bytes(out)
    k = 4 * int(rng.integers(max(1, min(header, len(data) - 4) // 4)))
    value = _ABSURD[int(rng.integers(len(_ABSURD)))]
    out[k:k + 4] = np.asarray(value, "<i4").tobytes()
    return f"int32 {value} at {k}", bytes(out)


def _typed_or_valid(read, what: str) -> str:
    """Run ``read``: a DatasetError, or Hamiltonians with finite values; anything else fails
    the test (with ``what`` in the message)."""
    with _deadline(20), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = read()
        except DatasetError:
            return "error"
        except Exception as exc:
            raise AssertionError(f"{what}: {type(exc).__name__}: {exc}") from exc
    for h in out if isinstance(out, list) else [out]:
        for mat in (*h.h_r.values(), *(h.s_r or {}).values()):
            assert np.isfinite(mat.data).all(), what
    return "valid"


def _fuzz_openmx(tmp_path, ham, rng, n):
    clean = _write_scfout(tmp_path / "clean.scfout", ham, SPECIES).read_bytes()
    path = tmp_path / "m.scfout"
    seen: Counter = Counter()
    for _ in range(n):
        how, data = _mutate(clean, rng)
        path.write_bytes(data)
        seen[_typed_or_valid(lambda: read_openmx(path, moments="input"), f".scfout {how}")] += 1
    return seen


_TEXT_TOKENS = ["nan", "inf", "-1", "200", "1e308", "", "x", "[", "{", "9" * 400, "\0", "\xff"]


def _fuzz_deeph(tmp_path, ham, rng, n):
    clean = write_deeph(ham, tmp_path / "clean")
    names = sorted(p.name for p in clean.iterdir())
    seen: Counter = Counter()
    for trial in range(n):
        folder = tmp_path / f"m{trial}"
        shutil.copytree(clean, folder)
        name = names[int(rng.integers(len(names)))]
        data = (folder / name).read_bytes()
        if name.endswith((".dat", ".txt", ".json")) and rng.random() < 0.5:
            words = data.split(b" ")
            k = int(rng.integers(len(words)))
            words[k] = _TEXT_TOKENS[int(rng.integers(len(_TEXT_TOKENS)))].encode("latin-1")
            how, data = f"word {k}", b" ".join(words)
        else:
            how, data = _mutate(data, rng, header=2048)
        (folder / name).write_bytes(data)
        seen[_typed_or_valid(lambda f=folder: read_deeph(f), f"DeepH {name} {how}")] += 1
        shutil.rmtree(folder)
    return seen


def _fuzz_hamgnn(tmp_path, ham, rng, n):
    good = write_hamgnn([ham], tmp_path / "clean.npz")
    clean = good.read_bytes()
    path = tmp_path / "m.npz"
    seen: Counter = Counter()
    for trial in range(n):
        if trial % 2:  # the file as it is (zip CRCs catch most changes)
            how, data = _mutate(clean, rng)
            path.write_bytes(data)
        else:  # the pickle inside, zipped again with valid CRCs
            done = []

            def change(d, done=done):
                done.append(_mutate(d, rng, header=4096))
                return done[0][1]

            _rezip(good, path, change)
            how = f"pickle {done[0][0]}"
        seen[_typed_or_valid(lambda: read_hamgnn(path), f"graph_data.npz {how}")] += 1
    return seen


_FUZZ = {"openmx": _fuzz_openmx, "deeph": _fuzz_deeph, "hamgnn": _fuzz_hamgnn}


@pytest.mark.parametrize("reader", sorted(_FUZZ))
def test_fuzz_quick(tmp_path, ham, reader):
    seen = _FUZZ[reader](tmp_path, ham, np.random.default_rng(20260101), 12)
    assert seen["error"] > 0  # the mutations do break the files


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("reader", sorted(_FUZZ))
def test_fuzz_sweep(tmp_path, ham, reader, seed):
    seen = _FUZZ[reader](tmp_path, ham, np.random.default_rng(seed), 300)
    print(reader, dict(seen))


# -- 5. the promises, where users read them --------------------------------------------------------
def test_convert_help_states_what_is_checked(capsys):
    with pytest.raises(SystemExit):
        main(["dataset", "convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for promise in ("runs no code", "Hermitian", "NaN", "DatasetError"):
        assert promise in text, promise

