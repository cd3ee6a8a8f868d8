"""Read OpenMX's binary ``.scfout`` file (layouts of OpenMX 3.9 and of 3.7/3.8) as a TBHamiltonian.

Record layout of OpenMX 3.9 (native-endian int32 and float64; atomic units), in order: six
ints ``atomnum, SpinP_switch + 4 * version, Catomnum, Latomnum, Ratomnum, TCpyCell``;
``order_max``; ``atv[TCpyCell+1][4]`` (Bohr) and ``atv_ijk[TCpyCell+1][4]`` (cell indices,
entries 1..3 are ``R``); ``Total_NumOrbs[atomnum]``; ``FNAN[atomnum]``; per atom
``natn[FNAN+1]`` (1-based neighbour atoms, entry 0 the atom itself) and ``ncn[FNAN+1]``
(index into ``atv_ijk``); ``tv[3][4]``, ``rtv[3][4]``, ``Gxyz[atomnum][4]`` (Bohr, entries
1..3); then for every component, atom ``i`` and neighbour ``h``, the dense ``Total_NumOrbs[i] x
Total_NumOrbs[natn[i][h]]`` block ``<i, 0| . |natn[i][h], R>`` (Hartree) of: ``Hks``
(SpinP_switch + 1 components), ``iHks`` (3, only for SpinP_switch = 3), ``OLP``, ``OLPpo``
(3 x order_max), ``OLPmo`` (3), ``DM`` (SpinP_switch + 1), ``iDM`` (2); then ``Solver``,
``ChemP``, ``E_Temp``, two dipole vectors, ``Valence_Electrons``, ``Total_SpinS``, and
``num_lines`` lines of 256 bytes holding the input file.

The layout of OpenMX 3.7 and 3.8 (version 0: the second int is ``SpinP_switch`` alone)
differs in three places: there is no ``order_max`` record; the position overlaps are three
blocks (x, y, z) instead of ``3 x order_max``; and neither ``OLPmo`` nor ``iDM`` is written.
Everything else, including ``iHks`` for SpinP_switch = 3, is laid out as in 3.9.  The version
is read from the header; versions 1 and 2 (development builds of 3.7) are refused, and so is
a file whose records do not end exactly where the file ends.  Big-endian files are detected
from the header.

Spin components (non-collinear, ``SpinP_switch = 3``): ``H_uu = Hks[0] + i iHks[0]``,
``H_dd = Hks[1] + i iHks[1]``, ``H_ud = Hks[2] + i (Hks[3] + iHks[2])`` (the ``iHks`` parts are
what spin-orbit coupling adds) and ``H_du`` from Hermiticity, ``H_du,ij(R) =
H_ud,ji(-R)^dagger``.  ``SpinP_switch = 1`` (collinear) gives ``H_uu = Hks[0]``, ``H_dd =
Hks[1]``; ``0`` gives ``kron(1, Hks[0])``.

Elements and shells are not in the binary part: they are parsed from the input file stored at
its end (``<Definition.of.Atomic.Species`` with basis strings such as ``Fe6.0S-s2p2d1`` and the
pseudopotential name ``Fe_PBE19``, and ``<Atoms.SpeciesAndCoordinates``), read as OpenMX reads
its input: text after ``#`` is a comment (``<Atoms.SpeciesAndCoordinates # Unit=Ang.`` as in
OpenMX's examples), keywords and block names are case-insensitive, and the coordinates are in
``Atoms.SpeciesAndCoordinates.Unit`` (Ang, AU or FRAC) with the cell in
``Atoms.UnitVectors.Unit`` (Ang or AU).  For a run that moves no atom (``MD.Type`` Nomd) the
stored coordinates are compared with the binary ones, and a mismatch is warned about.  Pass
``symbols`` and ``basis`` when the stored input cannot be used.  The converged moments are not
in the file: pass ``moments`` (required for spin-polarized data), or ``moments="input"`` for
the moments the stored input starts from, ``(up - down)`` electrons along the angles ``theta,
phi`` of each atom's line (for a run with ``scf.Constraint.NC.Spin`` these are the constrained
directions; the sizes are the initial ones).  Orbitals are in OpenMX's order
(:mod:`ase_hamgnn.data.io.conventions`), converted to ours; Hartree and Bohr become eV and Å
(:mod:`ase_hamgnn.data.io.units`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_numbers

from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.data.io.blocks import (
    basis_from_orbital_types,
    blocks_to_hamiltonian,
    checked_geometry,
)
from ase_hamgnn.data.io.conventions import atom_transform
from ase_hamgnn.data.io.units import BOHR_IN_ANGSTROM, bohr_to_angstrom, hartree_to_ev
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.hamiltonian import HERMITICITY_TOL, TBHamiltonian

__all__ = ["SCFOUT_VERSION", "SCFOUT_VERSIONS", "read_openmx"]

#: The newest ``.scfout`` layout version (OpenMX 3.9).
SCFOUT_VERSION = 3
#: Layout versions read here, version -> OpenMX releases that write it.
SCFOUT_VERSIONS = {0: "OpenMX 3.7/3.8", 3: "OpenMX 3.9"}
_UNSUPPORTED = {1: "a development build of OpenMX 3.7 (HWC)",
                2: "a development build of OpenMX 3.7 (HWF)"}
_L = {"s": 0, "p": 1, "d": 2, "f": 3}


class _Reader:
    def __init__(self, data: bytes, path: Path, endian: str) -> None:
        self.data, self.pos, self.path, self.endian = data, 0, path, endian

    def take(self, kind: str, count: int) -> np.ndarray:
        count = int(count)  # a Python int: absurd counts of a corrupted header cannot overflow
        size = np.dtype(kind).itemsize * count
        if count < 0 or self.pos + size > len(self.data):
            raise DatasetError(f"{self.path} is truncated (needs {self.pos + size} bytes, has "
                               f"{len(self.data)}); rerun OpenMX or copy the file again")
        out = np.frombuffer(self.data, dtype=np.dtype(kind).newbyteorder(self.endian),
                            count=count, offset=self.pos)
        self.pos += size
        return out


def _blocks(rd: _Reader, sizes, natn) -> list[list[np.ndarray]]:
    out = []
    for i, neigh in enumerate(natn):
        row = []
        for j in neigh:
            n_i, n_j = sizes[i], sizes[j - 1]
            row.append(rd.take("f8", n_i * n_j).reshape(n_i, n_j))
        out.append(row)
    return out


class _Words(list):
    """The words of one line of the stored input, with its line number (1-based)."""

    line = 0

    def where(self) -> str:
        return f"line {self.line} of the input stored in it ({' '.join(self)!r:.80})"


class _StoredInput:
    """The OpenMX input file stored at the end of a ``.scfout``, read as OpenMX reads it.

    Everything after ``#`` on a line is a comment; keywords and block names are
    case-insensitive (``<Atoms.SpeciesAndCoordinates`` opens the block and
    ``Atoms.SpeciesAndCoordinates>`` closes it, each possibly followed by a comment); a
    keyword's value is the rest of its line.
    """

    def __init__(self, path: Path, lines: Sequence[str]) -> None:
        self.path = path
        self.keywords: dict[str, list[str]] = {}
        self.blocks: dict[str, list[_Words]] = {}
        current: str | None = None
        rows: list[_Words] = []
        for number, line in enumerate(lines, 1):
            words = _Words(line.split("#", 1)[0].split())
            if not words:
                continue
            words.line = number
            head = words[0].lower()
            if current is None and head.startswith("<") and len(head) > 1:
                current, rows = head[1:], []
            elif current is not None and head == f"{current}>":
                self.blocks.setdefault(current, rows)
                current = None
            elif current is not None:
                rows.append(words)
            else:
                self.keywords.setdefault(head, words[1:])

    def block(self, name: str, fix: str) -> list[_Words]:
        rows = self.blocks.get(name.lower())
        if rows is None:
            raise DatasetError(f"{self.path}: the input file stored in it has no <{name} "
                               f"block; {fix}")
        return rows

    def word(self, name: str, default: str) -> str:
        words = self.keywords.get(name.lower())
        return words[0].lower() if words else default


def _shells(pao: str) -> list[int]:
    """``l`` of each shell of an OpenMX basis string such as ``Fe6.0S-s2p2d1`` (OpenMX order:
    all s, then p, d, f); ``s2>1`` (one orbital contracted from two) counts one shell."""
    if "-" not in pao:
        raise DatasetError(f"cannot read the basis {pao!r} (expected e.g. Fe6.0S-s2p2d1)")
    ls: list[int] = []
    for letter, count, contracted in re.findall(r"([spdf])(\d+)(?:>(\d+))?",
                                                pao.split("-", 1)[1]):
        ls += [_L[letter]] * int(contracted or count)
    return ls


_FIX = ("read it with read_openmx(path, symbols=..., basis=...) and write DeepH folders "
        "(write_deeph) to convert it")


def _parse_input(stored: _StoredInput, n_atoms: int):
    """Atomic numbers and shells (``l`` lists) of the atoms, from the stored input."""
    species = {}
    for words in stored.block("Definition.of.Atomic.Species", _FIX):
        if len(words) < 2:
            raise DatasetError(f"{stored.path}: {words.where()} of <Definition.of.Atomic."
                               "Species has no basis (expected: name, basis, pseudopotential); "
                               f"{_FIX}")
        name, pao, vps = words[0], words[1], words[2] if len(words) > 2 else words[1]
        symbol = re.match(r"[A-Z][a-z]?", vps.split("_")[0])
        if symbol is None or symbol.group(0) not in atomic_numbers:
            raise DatasetError(f"{stored.path}: cannot tell the element of species {name} "
                               f"({vps}) on {words.where()}; {_FIX}")
        try:
            species[name] = (atomic_numbers[symbol.group(0)], _shells(pao))
        except DatasetError as exc:
            raise DatasetError(f"{stored.path}: {exc}, on {words.where()}; {_FIX}") from None
    atoms = stored.block("Atoms.SpeciesAndCoordinates", _FIX)
    if len(atoms) != n_atoms:
        raise DatasetError(f"{stored.path}: the stored input lists {len(atoms)} atoms, the "
                           f"binary part {n_atoms}")
    for words in atoms:
        if len(words) < 2 or words[1] not in species:
            raise DatasetError(f"{stored.path}: {words.where()} of <Atoms.SpeciesAndCoordinates "
                               "names no species of <Definition.of.Atomic.Species (expected: "
                               f"index, species, x, y, z, ...); {_FIX}")
    return [species[w[1]][0] for w in atoms], [species[w[1]][1] for w in atoms]


_UNITS = {"ang": 1.0, "au": BOHR_IN_ANGSTROM}


def _check_stored_geometry(stored: _StoredInput, cell: np.ndarray,
                           positions: np.ndarray) -> None:
    """Warn when the stored input's coordinates (``Atoms.SpeciesAndCoordinates.Unit`` Ang,
    AU or FRAC; ``Atoms.UnitVectors.Unit`` Ang or AU) are not the binary part's, for a run
    that moves no atom (``MD.Type`` Nomd): the species read from the input would then be
    assigned to the wrong atoms."""
    if stored.word("MD.Type", "nomd") != "nomd":
        return
    unit = stored.word("Atoms.SpeciesAndCoordinates.Unit", "ang")
    cell_unit = stored.word("Atoms.UnitVectors.Unit", "ang")
    if unit not in (*_UNITS, "frac") or cell_unit not in _UNITS:
        raise DatasetError(f"{stored.path}: unknown unit {unit!r} / {cell_unit!r} of the "
                           "stored input's coordinates / unit vectors (OpenMX knows Ang, AU "
                           "and, for coordinates, FRAC)")
    try:
        coords = np.array([[float(x) for x in w[2:5]] for w in
                           stored.block("Atoms.SpeciesAndCoordinates", _FIX)])
        if unit == "frac":
            vectors = np.array([[float(x) for x in w[:3]] for w in
                                stored.blocks.get("atoms.unitvectors", [])])
            if vectors.shape != (3, 3):
                return  # OpenMX chose the cell itself
            coords = coords @ (vectors * _UNITS[cell_unit])
        else:
            coords = coords * _UNITS[unit]
    except (ValueError, IndexError):
        raise DatasetError(f"{stored.path}: cannot read the coordinates of the stored input's "
                           "<Atoms.SpeciesAndCoordinates") from None
    if coords.shape != positions.shape or not (np.isfinite(cell).all()
                                               and abs(np.linalg.det(cell)) > 1e-12):
        return  # a corrupted cell is reported when the geometry is built
    frac = (coords - positions) @ np.linalg.inv(cell)
    diff = (frac - np.round(frac)) @ cell
    worst = float(np.linalg.norm(diff, axis=1).max())
    if worst > 1e-3:
        warnings.warn(f"{stored.path}: the coordinates of the stored input differ from those "
                      f"of the binary part by up to {worst:.3g} Å although MD.Type is Nomd; "
                      "the species read from the input may belong to other atoms (check "
                      "the file, or pass symbols= and basis=)", UserWarning, stacklevel=3)


def _input_moments(stored: _StoredInput, n_atoms: int, spinp: int) -> np.ndarray:
    """Initial moments (μB) of the input stored in the file: ``up - down`` electrons along
    ``theta, phi`` (degrees; columns 6..9 of ``<Atoms.SpeciesAndCoordinates``)."""
    if spinp == 0:
        return np.zeros((n_atoms, 3))
    fix = "pass moments= (an (N, 3) array in μB)"
    rows = stored.block("Atoms.SpeciesAndCoordinates", fix)
    need = 9 if spinp == 3 else 7
    if len(rows) != n_atoms or any(len(w) < need for w in rows):
        raise DatasetError(f"{stored.path}: <Atoms.SpeciesAndCoordinates of the stored input "
                           f"does not give up/down electrons{' and angles' if spinp == 3 else ''}"
                           f" for all {n_atoms} atoms; {fix}")
    try:
        vals = np.array([[float(x) for x in w[5:need]] for w in rows])
    except ValueError as exc:
        raise DatasetError(f"{stored.path}: cannot read the initial moments ({exc}); {fix}") \
            from None
    size = vals[:, 0] - vals[:, 1]
    if spinp == 1:
        return np.stack([np.zeros(n_atoms), np.zeros(n_atoms), size], axis=1)
    theta, phi = np.radians(vals[:, 2]), np.radians(vals[:, 3])
    return size[:, None] * np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                                     np.cos(theta)], axis=1)


def read_openmx(
    path: str | os.PathLike,
    *,
    moments: Any = None,
    symbols: Sequence[str] | None = None,
    basis: OrbitalBasis | None = None,
    pbc: Sequence[bool] = (True, True, True),
    hermiticity_tol: float = HERMITICITY_TOL,
) -> TBHamiltonian:
    """Read an OpenMX ``.scfout`` file of version 3.7, 3.8 or 3.9 (see the module docstring).

    Parameters
    ----------
    path : path
        The ``.scfout`` file.
    moments : array_like or "input", optional
        ``(N, 3)`` moments in μB (the constrained ones of the calculation); required when
        the file is spin-polarized (``SpinP_switch`` 1 or 3), zeros otherwise.  ``"input"``
        takes the initial moments of the input stored in the file (see the module
        docstring).
    symbols : sequence of str, optional
        Element of each atom; default: from the input file stored in the ``.scfout``.
    basis : OrbitalBasis, optional
        Basis; its shells' ``l`` must match the file.  Default: from the stored input, with
        labels as in :func:`~ase_hamgnn.data.io.deeph.basis_from_orbital_types`.
    pbc : (bool, bool, bool)
        Periodic directions (OpenMX cells are always periodic).
    hermiticity_tol : float
        Largest accepted ``|H_ij(R) - H_ji(-R)^dagger|`` of the stored blocks, eV (and the
        same for S); what is read is symmetrized (see
        :func:`~ase_hamgnn.data.io.deeph.blocks_to_hamiltonian`).

    Returns
    -------
    TBHamiltonian
        H and S in eV and our orbital order.

    Raises
    ------
    DatasetError
        Truncated file or records that do not end where the file ends, an unsupported layout
        version, a wrong ``SpinP_switch``, missing moments for spin-polarized data, or
        shells that do not match the orbital counts.

    Examples
    --------
    >>> ham = read_openmx("nibr2.scfout", moments="input")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    data = path.read_bytes()
    endian = "<"
    head = _Reader(data, path, endian).take("i4", 6)
    if not 0 <= head[1] <= 4 * SCFOUT_VERSION + 3:
        endian = ">"
        head = _Reader(data, path, endian).take("i4", 6)
    rd = _Reader(data, path, endian)
    atomnum, spin_raw, _, _, _, tcpy = (int(x) for x in rd.take("i4", 6))
    version, spinp = spin_raw // 4, spin_raw % 4
    if version not in SCFOUT_VERSIONS:
        made_by = _UNSUPPORTED.get(version, "no known OpenMX release (or not a .scfout file)")
        raise DatasetError(f"{path} has .scfout layout version {version}, written by {made_by};"
                           " this reader supports the layouts of OpenMX 3.7/3.8 (version 0) "
                           "and 3.9 (version 3): rerun the calculation with OpenMX 3.9")
    if spinp == 2:
        raise DatasetError(f"{path} has SpinP_switch = 2, which OpenMX does not define "
                           "(0 spinless, 1 collinear, 3 non-collinear)")
    if atomnum <= 0 or tcpy < 0:
        raise DatasetError(f"{path} is corrupted (atomnum {atomnum}, TCpyCell {tcpy})")
    order_max = int(rd.take("i4", 1)[0]) if version == 3 else 1
    if order_max < 0:
        raise DatasetError(f"{path} is corrupted (order_max {order_max})")
    rd.take("f8", 4 * (tcpy + 1))  # atv, Bohr (not needed: R is in atv_ijk)
    atv_ijk = rd.take("i4", 4 * (tcpy + 1)).reshape(-1, 4)[:, 1:]
    sizes = rd.take("i4", atomnum).astype(int)
    fnan = rd.take("i4", atomnum).astype(int)
    if (sizes <= 0).any() or (fnan < 0).any():
        raise DatasetError(f"{path} is corrupted (orbital or neighbour counts below zero)")
    natn = [rd.take("i4", f + 1).astype(int) for f in fnan]
    ncn = [rd.take("i4", f + 1).astype(int) for f in fnan]
    if any((n < 1).any() or (n > atomnum).any() for n in natn) or \
            any((c < 0).any() or (c > tcpy).any() for c in ncn):
        raise DatasetError(f"{path} is corrupted (neighbour indices out of range)")
    tv = rd.take("f8", 12).reshape(3, 4)[:, 1:]
    rd.take("f8", 12)  # rtv
    gxyz = rd.take("f8", 4 * atomnum).reshape(-1, 4)[:, 1:]
    hks = [_blocks(rd, sizes, natn) for _ in range(spinp + 1)]
    ihks = [_blocks(rd, sizes, natn) for _ in range(3)] if spinp == 3 else None
    olp = _blocks(rd, sizes, natn)
    # OLPpo (3 x order_max), OLPmo (3, 3.9 only), DM (SpinP_switch + 1), iDM (2, 3.9 only)
    skip = 3 * order_max + spinp + 1 + (3 + 2 if version == 3 else 0)
    for _ in range(skip):
        _blocks(rd, sizes, natn)
    rd.take("i4", 1)
    rd.take("f8", 2 + 6 + 2)
    num_lines = int(rd.take("i4", 1)[0])
    raw = rd.take("u1", 256 * num_lines).tobytes()
    if rd.pos != len(data):
        raise DatasetError(
            f"{path}: the records of a {SCFOUT_VERSIONS[version]} file with SpinP_switch = "
            f"{spinp} end at byte {rd.pos}, but the file has {len(data)} bytes; it is "
            "corrupted, misses spin components, or has a layout this reader does not know")
    stored = _StoredInput(path, [raw[k:k + 256].split(b"\0", 1)[0].decode("utf-8", "replace")
                                 for k in range(0, len(raw), 256)])
    cell, positions = bohr_to_angstrom(tv), bohr_to_angstrom(gxyz)

    if symbols is None or basis is None:
        numbers, parsed_ls = _parse_input(stored, atomnum)
        _check_stored_geometry(stored, cell, positions)
    else:
        numbers, parsed_ls = None, None
    if symbols is not None:
        numbers = [atomic_numbers[s] for s in symbols]
        if len(numbers) != atomnum:
            raise ValueError(f"symbols has {len(numbers)} entries, the file {atomnum} atoms")
    if basis is None:
        basis = basis_from_orbital_types(numbers, parsed_ls)
    ls = [tuple(s.l for s in basis.shells(int(z))) for z in numbers]
    if parsed_ls is not None:
        for a, (la, lb) in enumerate(zip(ls, parsed_ls)):
            if tuple(la) != tuple(lb):
                raise DatasetError(f"{path}: atom {a + 1} has shells l = {list(lb)} in the "
                                   f"stored input but the basis gives {list(la)}; use a basis "
                                   "with the shells of the calculation, in OpenMX's order")
    for a, (la, n) in enumerate(zip(ls, sizes)):
        if sum(2 * l + 1 for l in la) != n:
            raise DatasetError(f"{path}: atom {a + 1} has {n} orbitals in the file but its "
                               f"shells l = {list(la)} give {sum(2 * l + 1 for l in la)}; "
                               "the basis sizes do not match")
    if spinp in (1, 3) and moments is None:
        raise DatasetError(f"{path} is spin-polarized (SpinP_switch = {spinp}); pass "
                           "moments= (the constrained moments in μB, shape (N, 3)) or "
                           "moments=\"input\" (the initial moments of the stored input)")
    if isinstance(moments, str):
        if moments != "input":
            raise ValueError(f"moments must be an (N, 3) array or \"input\", got {moments!r}")
        m = _input_moments(stored, atomnum, spinp)
    else:
        m = np.zeros((atomnum, 3)) if moments is None else np.asarray(moments, np.float64)
        if m.shape != (atomnum, 3) or not np.isfinite(m).all():
            raise ValueError(f"moments must be a finite ({atomnum}, 3) array in μB, got shape "
                             f"{m.shape}")
    geometry = checked_geometry(path, cell, positions, numbers, pbc, m)

    t = [atom_transform("openmx", la, spinful=True) for la in ls]
    spatial = [atom_transform("openmx", la, spinful=False) for la in ls]
    keys = {}
    for i in range(atomnum):
        for h, (j1, c) in enumerate(zip(natn[i], ncn[i])):
            keys[(i, j1 - 1, tuple(int(x) for x in atv_ijk[c]))] = h
    h_blocks, s_blocks = {}, {}
    for (i, j, r), h in keys.items():
        n_i, n_j = sizes[i], sizes[j]
        full = np.zeros((2 * n_i, 2 * n_j), np.complex128)
        if spinp == 0:
            full[:n_i, :n_j] = full[n_i:, n_j:] = hks[0][i][h]
        elif spinp == 1:
            full[:n_i, :n_j], full[n_i:, n_j:] = hks[0][i][h], hks[1][i][h]
        else:
            partner = keys.get((j, i, tuple(-x for x in r)))
            if partner is None:
                raise DatasetError(f"{path}: block ({i + 1}, {j + 1}, R={r}) has no partner "
                                   "(j, i, -R); the file is corrupted")
            full[:n_i, :n_j] = hks[0][i][h] + 1j * ihks[0][i][h]
            full[n_i:, n_j:] = hks[1][i][h] + 1j * ihks[1][i][h]
            full[:n_i, n_j:] = hks[2][i][h] + 1j * (hks[3][i][h] + ihks[2][i][h])
            ud_ji = hks[2][j][partner] + 1j * (hks[3][j][partner] + ihks[2][j][partner])
            full[n_i:, :n_j] = ud_ji.conj().T
        h_blocks[(i, j, r)] = hartree_to_ev(t[i] @ full @ t[j].T)
        s_blocks[(i, j, r)] = np.kron(np.eye(2), spatial[i] @ olp[i][h] @ spatial[j].T)
    return blocks_to_hamiltonian(path, basis, geometry, h_blocks, s_blocks, hermiticity_tol)
