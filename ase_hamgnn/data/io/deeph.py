"""Read and write the DeepH folder format (one folder per structure).

Folder layout (as written by DeepH-pack's preprocessing, units eV and Å)
------------------------------------------------------------------------
``element.dat``
    Atomic number of each atom, one per line.
``lat.dat``
    3 x 3 matrix whose *columns* are the lattice vectors, Å (so ``cell = lat.T``).
``site_positions.dat``
    3 x N matrix whose columns are the Cartesian positions, Å.
``orbital_types.dat``
    One line per atom: the ``l`` of each shell, in orbital order (e.g. ``0 0 1 1 2``).
    DeepH keeps no principal quantum numbers.
``info.json``
    ``{"isspinful": bool, "fermi_level": eV, ...}``; ``isspinful`` is required here.
``hamiltonians.h5``
    One dataset per atom pair and lattice vector, named ``"[Rx, Ry, Rz, i, j]"`` with
    1-based atom indices ``i``, ``j``: the block ``<i, 0 | H | j, R>`` in eV, rows the
    orbitals of ``i``.  Spinless folders hold real ``(n_i, n_j)`` blocks.  Spinful
    (non-collinear) folders hold complex ``(2 n_i, 2 n_j)`` blocks laid out spin-major per
    atom, ``[[H_uu, H_ud], [H_du, H_dd]]``, i.e. rows ``[orbitals up, orbitals down]`` --
    the layout DeepH-pack's OpenMX preprocessing writes and its E3 / xDeepH training reads
    (the same as ours, so no spin reordering is done).
``overlaps.h5`` (optional)
    Same keys, real spinless ``(n_i, n_j)`` overlap blocks (also for spinful folders).
``magmom.txt`` (optional; xDeepH's convention)
    One line per atom: ``flag |M| theta phi``, flag 1 for magnetic atoms, ``|M|`` in μB,
    polar and azimuthal angles in degrees, ``M = |M| (sin t cos p, sin t sin p, cos t)``.
    On reading the flag is ignored (every atom keeps its moment); on writing it is 1 where
    ``|M| > 0``.

Orbital order inside a shell is OpenMX's (see :mod:`ase_hamgnn.data.io.conventions`), which
DeepH keeps for every DFT code it converts; blocks are converted to ours with the explicit
matrices of that module.  ``info.json`` may carry ``"pbc"`` (written by us, ignored by
DeepH); without it every direction is periodic, as DeepH assumes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import chemical_symbols

from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.data.io.blocks import (
    Z_MAX,
    basis_from_orbital_types,
    blocks_to_hamiltonian,
    checked_geometry,
    pair_blocks,
)
from ase_hamgnn.data.io.conventions import atom_transform
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.hamiltonian import HERMITICITY_TOL, TBHamiltonian

__all__ = [
    "DEEPH_CONVENTION",
    "DEEPH_FILES",
    "basis_from_orbital_types",
    "blocks_to_hamiltonian",
    "is_deeph_folder",
    "read_deeph",
    "read_deeph_geometry",
    "write_deeph",
]

#: Real-orbital convention of DeepH folders (see :mod:`ase_hamgnn.data.io.conventions`).
DEEPH_CONVENTION = "openmx"
#: Files a DeepH folder must contain.
DEEPH_FILES = ("element.dat", "lat.dat", "site_positions.dat", "orbital_types.dat",
               "info.json", "hamiltonians.h5")
logger = logging.getLogger(__name__)
BLOCK_KEY = re.compile(r"^\[\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]$")


def import_h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("the DeepH format needs h5py; install it with `pip install h5py`") \
            from None
    return h5py


def is_deeph_folder(folder: str | os.PathLike) -> bool:
    """True if ``folder`` holds every file of :data:`DEEPH_FILES`."""
    folder = Path(folder)
    return all((folder / name).is_file() for name in DEEPH_FILES)


# -- small text files ---------------------------------------------------------------------------
_REGENERATE = "regenerate it with the DeepH preprocessing step"


def _load_matrix(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path} is missing; a DeepH folder needs {what}")
    try:
        data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (ValueError, OSError) as exc:  # UnicodeDecodeError is a ValueError
        raise DatasetError(f"{path} is truncated or malformed ({exc!s:.200}); "
                           f"{_REGENERATE}") from None
    if not np.isfinite(data).all():
        raise DatasetError(f"{path} holds NaN or infinite values; {_REGENERATE}")
    return data


def _lines(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """``(line number, words)`` of the non-blank lines of a text file (``#`` starts a
    comment, as for numpy.loadtxt)."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing; a DeepH folder needs {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not a text file ({exc!s:.200}); {_REGENERATE}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if words:
            out.append((number, words))
    return out


def _integer(word: str, low: int, high: int) -> int | None:
    """``word`` as an integer in ``low..high`` (``"26"`` or ``"26.0"``), else None."""
    try:
        x = float(word)
    except ValueError:
        return None
    if not math.isfinite(x) or x != round(x) or not low <= x <= high:
        return None
    return int(x)


#: Largest atomic number (ase.data knows the elements 1..118).
def read_atomic_numbers(folder: Path) -> np.ndarray:
    """The atomic numbers of ``element.dat``; a DatasetError names the file and the line
    of a value that is no element."""
    path = folder / "element.dat"
    numbers = []
    for number, words in _lines(path, "the atomic numbers"):
        for word in words:
            z = _integer(word, 1, Z_MAX)
            if z is None:
                raise DatasetError(f"{path}, line {number}: {word!r:.40} is not an atomic "
                                   f"number (an integer from 1 to {Z_MAX}); {_REGENERATE}")
            numbers.append(z)
    if not numbers:
        raise DatasetError(f"{path} lists no atomic numbers; {_REGENERATE}")
    return np.array(numbers, dtype=np.int64)


def read_orbital_types(folder: Path, n_atoms: int) -> list[tuple[int, ...]]:
    path = folder / "orbital_types.dat"
    lines = _lines(path, "the shells of each atom")
    if len(lines) != n_atoms:
        raise DatasetError(f"{path} has {len(lines)} lines but element.dat lists {n_atoms} "
                           "atoms; the file is truncated or belongs to another structure")
    out = []
    for number, words in lines:
        ls = tuple(_integer(w, 0, 3) for w in words)
        if None in ls:
            raise DatasetError(f"{path}, line {number}: {' '.join(words)!r:.80} is not a list "
                               f"of l values from 0 to 3 (DeepH shells); {_REGENERATE}")
        out.append(ls)
    return out


def _info(folder: Path) -> dict[str, Any]:
    path = folder / "info.json"
    if not path.is_file():
        raise DatasetError(f"{path} is missing; write it with at least {{\"isspinful\": ...}}")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise DatasetError(f"{path} is not valid JSON ({exc!s:.200}); regenerate it") from None
    if not isinstance(info, dict) or "isspinful" not in info:
        raise DatasetError(f"{path} lacks the key \"isspinful\"; add it (true for "
                           "non-collinear / spin-orbit data)")
    return info


def _moments(folder: Path, n_atoms: int, spinful: bool, moments: Any) -> np.ndarray:
    if moments is not None:
        m = np.asarray(moments, dtype=np.float64)
        if m.shape != (n_atoms, 3) or not np.isfinite(m).all():
            raise ValueError(f"moments must be a finite ({n_atoms}, 3) array in μB, got shape "
                             f"{m.shape}")
        return m
    path = folder / "magmom.txt"
    if not path.is_file():
        if spinful:
            raise DatasetError(
                f"{path} is missing: a spinful DeepH folder needs the constrained moments; "
                "write magmom.txt (xDeepH format: flag |M|/μB theta/deg phi/deg per atom) or "
                "pass moments= (an (N, 3) array, zeros for non-magnetic data)")
        return np.zeros((n_atoms, 3))
    data = _load_matrix(path, "the magnetic moments")
    if data.shape != (n_atoms, 4):
        raise DatasetError(f"{path} has shape {data.shape}; xDeepH's magmom.txt has one line "
                           f"'flag |M| theta phi' per atom ({n_atoms}, 4)")
    mag, theta, phi = data[:, 1], np.radians(data[:, 2]), np.radians(data[:, 3])
    return mag[:, None] * np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1)


def read_deeph_geometry(folder: str | os.PathLike, *, moments: Any = None) -> Geometry:
    """The structure and moments of a DeepH folder (no Hamiltonian is read).

    Parameters
    ----------
    folder : path
        DeepH folder.
    moments : array_like, optional
        ``(N, 3)`` moments in μB; default: ``magmom.txt`` (required for spinful folders).
    """
    folder = Path(folder)
    numbers = read_atomic_numbers(folder)
    n = len(numbers)
    lat = _load_matrix(folder / "lat.dat", "the lattice vectors")
    if lat.shape != (3, 3):
        raise DatasetError(f"{folder / 'lat.dat'} has shape {lat.shape}, expected (3, 3) with "
                           "lattice vectors as columns (Å)")
    pos = _load_matrix(folder / "site_positions.dat", "the positions")
    if pos.shape != (3, n):
        raise DatasetError(f"{folder / 'site_positions.dat'} has shape {pos.shape}, expected "
                           f"(3, {n}): one column per atom of element.dat, Å")
    info = _info(folder)
    pbc = info.get("pbc", [True, True, True])
    m = _moments(folder, n, bool(info["isspinful"]), moments)
    return checked_geometry(folder, lat.T, pos.T, numbers, pbc, m)


# -- hamiltonians.h5 ----------------------------------------------------------------------------
#: What h5py raises for a corrupted file (besides OSError: KeyError for an unreadable
#: object, RuntimeError and ValueError from the HDF5 library, TypeError for unknown types).
H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


def _read_blocks(path: Path, sizes: Sequence[int]) -> dict[tuple[int, int, tuple[int, int, int]],
                                                           np.ndarray]:
    """The blocks of ``path``, each of the spinless ``(n_i, n_j)`` or spin-doubled shape of
    the atoms' orbital counts ``sizes`` (checked before the data are read, so that a
    corrupted header cannot make it allocate an absurd size)."""
    h5py = import_h5py()
    if not path.is_file():
        raise DatasetError(f"{path} is missing")
    n_atoms = len(sizes)
    out = {}
    try:
        with h5py.File(path, "r") as f:
            for key in f.keys():
                match = BLOCK_KEY.match(key)
                if match is None:
                    raise DatasetError(f"{path}: dataset name {key!r:.80} is not "
                                       "'[Rx, Ry, Rz, i, j]'")
                rx, ry, rz, i, j = (int(x) for x in match.groups())
                if not (1 <= i <= n_atoms and 1 <= j <= n_atoms):
                    raise DatasetError(f"{path}: block {key} names an atom outside 1..{n_atoms} "
                                       "(DeepH atom indices are 1-based)")
                data = f[key]
                plain = (sizes[i - 1], sizes[j - 1])
                shapes = (plain, (2 * plain[0], 2 * plain[1]))
                if not isinstance(data, h5py.Dataset) or data.shape not in shapes:
                    raise DatasetError(
                        f"{path}: block {key} has shape {getattr(data, 'shape', None)}, but "
                        f"orbital_types.dat gives {plain} (or {shapes[1]} with spin) for atoms "
                        f"{i} and {j}; the file and the basis sizes do not match (another basis "
                        "set or a corrupted file)")
                if data.dtype.kind not in "iufc":
                    raise DatasetError(f"{path}: block {key} holds {data.dtype} values, not "
                                       "numbers; the file is corrupted: regenerate it")
                out[(i - 1, j - 1, (rx, ry, rz))] = np.asarray(data[()])
    except DatasetError:
        raise
    except H5_ERRORS as exc:
        raise DatasetError(f"{path} is truncated or not an HDF5 file ({exc!s:.200}); "
                           "regenerate it") from None
    if not out:
        raise DatasetError(f"{path} holds no blocks")
    return out


def read_deeph(
    folder: str | os.PathLike,
    *,
    basis: OrbitalBasis | None = None,
    moments: Any = None,
    overlap: bool = True,
    hermiticity_tol: float = HERMITICITY_TOL,
) -> TBHamiltonian:
    """Read one DeepH folder as a :class:`~ase_hamgnn.TBHamiltonian` (eV, Å, our orbitals).

    Parameters
    ----------
    folder : path
        Folder with the files of :data:`DEEPH_FILES` (see the module docstring).
    basis : OrbitalBasis, optional
        Basis to use; its shells' ``l`` must match ``orbital_types.dat``.  Default: built by
        :func:`basis_from_orbital_types`.
    moments : array_like, optional
        ``(N, 3)`` moments in μB; default ``magmom.txt`` (required when spinful).
    overlap : bool
        Read ``overlaps.h5`` when present.
    hermiticity_tol : float
        Largest accepted ``|H_ji(-R) - H_ij(R)^dagger|`` of the stored blocks, eV (and the
        same for S); what is read is symmetrized (see :func:`blocks_to_hamiltonian`).  A
        block whose partner ``(j, i, -R)`` is absent from the file is completed by
        Hermitian conjugation.

    Returns
    -------
    TBHamiltonian
        Spinless folders give ``kron(1_spin, H)`` per block.

    Raises
    ------
    DatasetError
        Missing, truncated or inconsistent files, blocks whose size does not match
        ``orbital_types.dat`` or the basis, spinless blocks in a spinful folder (missing
        spin components), or a basis whose shells differ from the file's.

    Examples
    --------
    >>> ham = read_deeph("dft/config_000")  # doctest: +SKIP
    >>> ham.eigvalsh([0, 0, 0])  # doctest: +SKIP
    """
    folder = Path(folder)
    geometry = read_deeph_geometry(folder, moments=moments)
    numbers = geometry.numbers
    n_atoms = len(numbers)
    ls = read_orbital_types(folder, n_atoms)
    if basis is None:
        basis = basis_from_orbital_types(numbers, ls)
    else:
        for a, (z, l_atom) in enumerate(zip(numbers, ls)):
            try:
                ours = tuple(s.l for s in basis.shells(int(z)))
            except KeyError as exc:
                raise DatasetError(f"{folder}: {exc}") from None
            if ours != l_atom:
                raise DatasetError(
                    f"{folder}: atom {a + 1} ({chemical_symbols[z]}) has shells l = "
                    f"{list(l_atom)} in orbital_types.dat but the basis gives {list(ours)}; "
                    "use a basis with the same shells as the DFT calculation")
    spinful = bool(_info(folder)["isspinful"])
    sizes = [sum(2 * l + 1 for l in la) for la in ls]
    t = [atom_transform(DEEPH_CONVENTION, la, spinful=True) for la in ls]

    def convert(raw, what: str, spin_blocks: bool):
        blocks = {}
        for (i, j, r), b in raw.items():
            spin_shape = (2 * sizes[i], 2 * sizes[j])
            plain_shape = (sizes[i], sizes[j])
            key = f"[{r[0]}, {r[1]}, {r[2]}, {i + 1}, {j + 1}]"
            if spin_blocks and b.shape == plain_shape:
                raise DatasetError(
                    f"{folder / what}: block {key} has shape {b.shape}, the spinless size, but "
                    f"info.json says isspinful; the spin components are missing (expected "
                    f"{spin_shape}, spin-major [up, down])")
            if b.shape == spin_shape and (spin_blocks or what == "overlaps.h5"):
                full = b.astype(np.complex128)
            elif b.shape == plain_shape and not spin_blocks:
                full = np.kron(np.eye(2), b.astype(np.complex128))
            else:
                want = spin_shape if spin_blocks else plain_shape
                raise DatasetError(
                    f"{folder / what}: block {key} has shape {b.shape}, but orbital_types.dat "
                    f"gives {want} for atoms {i + 1} and {j + 1}; the file and the basis sizes "
                    "do not match (another basis set or a corrupted file)")
            blocks[(i, j, r)] = t[i] @ full @ t[j].T
        for (i, j, r), b in list(blocks.items()):
            partner = (j, i, tuple(-x for x in r))
            if partner not in blocks:
                blocks[partner] = b.conj().T
        return blocks

    h_blocks = convert(_read_blocks(folder / "hamiltonians.h5", sizes), "hamiltonians.h5",
                       spinful)
    s_blocks = None
    if overlap and (folder / "overlaps.h5").is_file():
        s_blocks = convert(_read_blocks(folder / "overlaps.h5", sizes), "overlaps.h5", False)
    return blocks_to_hamiltonian(folder, basis, geometry, h_blocks, s_blocks, hermiticity_tol)


# -- writing ------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return repr(float(x))


def write_deeph(
    ham: TBHamiltonian,
    folder: str | os.PathLike,
    *,
    spinful: bool = True,
    fermi_level: float | None = None,
) -> Path:
    """Write ``ham`` as a DeepH folder (see the module docstring); returns the folder.

    Parameters
    ----------
    ham : TBHamiltonian
        Hamiltonian (eV) with its geometry and moments (written to ``magmom.txt``).
    folder : path
        Output folder (created; existing DeepH files in it are replaced).
    spinful : bool
        Write complex spin-major ``(2 n_i, 2 n_j)`` blocks (``isspinful: true``).  With
        ``False`` the Hamiltonian must be spin-independent (``H = kron(1_spin, h)``) and real
        ``h`` blocks are written.
    fermi_level : float, optional
        Stored as ``fermi_level`` (eV) in ``info.json``; omitted when not given.

    Raises
    ------
    ValueError
        If ``spinful=False`` but ``H`` depends on spin or is complex, or a shell has
        ``l > 3`` (DeepH has no such orbitals).

    Examples
    --------
    >>> write_deeph(ham, "out/config_000")  # doctest: +SKIP
    """
    h5py = import_h5py()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    geo = ham.geometry
    basis = ham.basis
    ls = [tuple(s.l for s in basis.shells(int(z))) for z in geo.numbers]
    if any(l > 3 for la in ls for l in la):
        raise ValueError("DeepH folders hold shells up to l = 3; this basis has higher l")
    t = [atom_transform(DEEPH_CONVENTION, la, spinful=True) for la in ls]
    sizes = [sum(2 * l + 1 for l in la) for la in ls]

    def foreign(blocks, spin_blocks: bool, what: str):
        out = {}
        for (i, j, r), b in blocks.items():
            f = t[i].T @ b @ t[j]
            if not spin_blocks:
                ni, nj = sizes[i], sizes[j]
                up = f[:ni, :nj]
                dev = max(np.abs(f[ni:, nj:] - up).max(), np.abs(f[:ni, nj:]).max(),
                          np.abs(f[ni:, :nj]).max(), np.abs(up.imag).max())
                if dev > 1e-12:
                    raise ValueError(f"{what} block ({i}, {j}, R={r}) depends on spin or is "
                                     f"complex (deviation {dev:.2e}); write with spinful=True")
                f = np.ascontiguousarray(up.real)
            out[f"[{r[0]}, {r[1]}, {r[2]}, {i + 1}, {j + 1}]"] = f
        return out

    def dump(name: str, blocks: Mapping[str, np.ndarray]) -> None:
        tmp = folder / f".{name}.tmp"
        with h5py.File(tmp, "w") as f:
            for key, b in blocks.items():
                f.create_dataset(key, data=b)
        os.replace(tmp, folder / name)

    dump("hamiltonians.h5", foreign(pair_blocks(ham, ham.h_r), spinful, "H"))
    if ham.s_r is not None:
        dump("overlaps.h5", foreign(pair_blocks(ham, ham.s_r), False, "S"))
    elif (folder / "overlaps.h5").exists():
        (folder / "overlaps.h5").unlink()
    (folder / "element.dat").write_text("".join(f"{int(z)}\n" for z in geo.numbers))
    (folder / "orbital_types.dat").write_text(
        "".join(" ".join(str(l) for l in la) + "\n" for la in ls))

    def matrix(m: np.ndarray) -> str:
        return "".join(" ".join(_fmt(x) for x in row) + "\n" for row in m)

    (folder / "lat.dat").write_text(matrix(geo.cell.T))
    (folder / "rlat.dat").write_text(matrix(2 * np.pi * np.linalg.inv(geo.cell)))
    (folder / "site_positions.dat").write_text(matrix(geo.positions.T))
    rs = sorted(ham.h_r)
    (folder / "R_list.dat").write_text("".join(f"{a} {b} {c}\n" for a, b, c in rs))
    mag = np.linalg.norm(geo.moments, axis=1)
    theta = np.degrees(np.arccos(np.clip(geo.moments[:, 2] / np.where(mag > 0, mag, 1), -1, 1)))
    phi = np.degrees(np.arctan2(geo.moments[:, 1], geo.moments[:, 0]))
    (folder / "magmom.txt").write_text("".join(
        f"{1.0 if m > 0 else 0.0} {_fmt(m)} {_fmt(th)} {_fmt(ph)}\n"
        for m, th, ph in zip(mag, theta, phi)))
    info: dict[str, Any] = {
        "nsites": len(geo.numbers),
        "isorthogonal": ham.s_r is None,
        "isspinful": bool(spinful),
        "norbits": int(sum(sizes)),  # spatial orbitals per cell
        "pbc": [bool(p) for p in geo.pbc],
    }
    if fermi_level is not None:
        info["fermi_level"] = float(fermi_level)
    (folder / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    return folder
