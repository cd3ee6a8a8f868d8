"""Read OpenMX's binary ``.scfout`` file (OpenMX 3.9 layout) as a TBHamiltonian.

Record layout (native-endian int32 and float64; atomic units), in order: six ints
``atomnum, SpinP_switch + 4 * version, Catomnum, Latomnum, Ratomnum, TCpyCell``; ``order_max``;
``atv[TCpyCell+1][4]`` (Bohr) and ``atv_ijk[TCpyCell+1][4]`` (cell indices, entries 1..3 are
``R``); ``Total_NumOrbs[atomnum]``; ``FNAN[atomnum]``; per atom ``natn[FNAN+1]`` (1-based
neighbour atoms, entry 0 the atom itself) and ``ncn[FNAN+1]`` (index into ``atv_ijk``);
``tv[3][4]``, ``rtv[3][4]``, ``Gxyz[atomnum][4]`` (Bohr, entries 1..3); then for every
component, atom ``i`` and neighbour ``h``, the dense ``Total_NumOrbs[i] x
Total_NumOrbs[natn[i][h]]`` block ``<i, 0| . |natn[i][h], R>`` (Hartree) of: ``Hks`` (SpinP_switch
+ 1 components), ``iHks`` (3, only for SpinP_switch = 3), ``OLP``, ``OLPpo`` (3 x order_max),
``OLPmo`` (3), ``DM`` (SpinP_switch + 1), ``iDM`` (2); then ``Solver``, ``ChemP``, ``E_Temp``,
two dipole vectors, ``Valence_Electrons``, ``Total_SpinS``, and ``num_lines`` lines of 256
bytes holding the input file.

Spin components (non-collinear, ``SpinP_switch = 3``): ``H_uu = Hks[0] + i iHks[0]``,
``H_dd = Hks[1] + i iHks[1]``, ``H_ud = Hks[2] + i (Hks[3] + iHks[2])`` (the ``iHks`` parts are
what spin-orbit coupling adds) and ``H_du`` from Hermiticity, ``H_du,ij(R) =
H_ud,ji(-R)^dagger``.  ``SpinP_switch = 1`` (collinear) gives ``H_uu = Hks[0]``, ``H_dd =
Hks[1]``; ``0`` gives ``kron(1, Hks[0])``.

Elements and shells are not in the binary part: they are parsed from the input file stored at
its end (``<Definition.of.Atomic.Species`` with basis strings such as ``Fe6.0S-s2p2d1`` and
the pseudopotential name ``Fe_PBE19``, and ``<Atoms.SpeciesAndCoordinates``); pass
``symbols`` and ``basis`` when that fails.  The constrained moments are not read from the
file: pass ``moments`` (required for spin-polarized data).  Orbitals are in OpenMX's order
(:mod:`ase_hamgnn.data.conventions`), converted to ours; Hartree and Bohr become eV and Å
(:mod:`ase_hamgnn.data.units`).  The 3.7/3.8 layout (version 0) is not read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_numbers

from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.data.conventions import atom_transform
from ase_hamgnn.data.deeph import basis_from_orbital_types, blocks_to_hamiltonian
from ase_hamgnn.data.units import bohr_to_angstrom, hartree_to_ev
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.hamiltonian import TBHamiltonian

__all__ = ["SCFOUT_VERSION", "read_openmx"]

#: The ``.scfout`` layout version read here (OpenMX 3.9).
SCFOUT_VERSION = 3
_L = {"s": 0, "p": 1, "d": 2, "f": 3}


class _Reader:
    def __init__(self, data: bytes, path: Path, endian: str) -> None:
        self.data, self.pos, self.path, self.endian = data, 0, path, endian

    def take(self, kind: str, count: int) -> np.ndarray:
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


def _parse_input(lines: Sequence[str], n_atoms: int):
    def block(name: str) -> list[list[str]]:
        start = [k for k, ln in enumerate(lines) if ln.strip().lower() == f"<{name}".lower()]
        stop = [k for k, ln in enumerate(lines) if ln.strip().lower() == f"{name}>".lower()]
        if not start or not stop or stop[0] < start[0]:
            raise DatasetError(f"the input file stored in the .scfout lacks <{name}; pass "
                               "symbols= and basis=")
        return [ln.split() for ln in lines[start[0] + 1:stop[0]] if ln.strip()]

    species = {}
    for words in block("Definition.of.Atomic.Species"):
        name, pao, vps = words[0], words[1], words[2] if len(words) > 2 else words[1]
        if "-" not in pao:
            raise DatasetError(f"cannot read the basis {pao!r} of species {name}")
        ls = []
        for letter, count in re.findall(r"([spdf])(\d+)", pao.split("-", 1)[1]):
            ls += [_L[letter]] * int(count)
        symbol = re.match(r"[A-Z][a-z]?", vps.split("_")[0])
        if symbol is None or symbol.group(0) not in atomic_numbers:
            raise DatasetError(f"cannot tell the element of species {name} ({vps}); pass "
                               "symbols=")
        species[name] = (atomic_numbers[symbol.group(0)], ls)
    atoms = block("Atoms.SpeciesAndCoordinates")
    if len(atoms) != n_atoms:
        raise DatasetError(f"the stored input lists {len(atoms)} atoms, the binary part "
                           f"{n_atoms}")
    try:
        return [species[w[1]][0] for w in atoms], [species[w[1]][1] for w in atoms]
    except KeyError as exc:
        raise DatasetError(f"species {exc} of Atoms.SpeciesAndCoordinates is not defined") \
            from None


def read_openmx(
    path: str | os.PathLike,
    *,
    moments: Any = None,
    symbols: Sequence[str] | None = None,
    basis: OrbitalBasis | None = None,
    pbc: Sequence[bool] = (True, True, True),
    hermiticity_tol: float = 1e-6,
) -> TBHamiltonian:
    """Read an OpenMX 3.9 ``.scfout`` file (see the module docstring for the layout).

    Parameters
    ----------
    path : path
        The ``.scfout`` file.
    moments : array_like, optional
        ``(N, 3)`` moments in μB (the constrained ones of the calculation); required when
        the file is spin-polarized (``SpinP_switch`` 1 or 3), zeros otherwise.
    symbols : sequence of str, optional
        Element of each atom; default: from the input file stored in the ``.scfout``.
    basis : OrbitalBasis, optional
        Basis; its shells' ``l`` must match the file.  Default: from the stored input, with
        labels as in :func:`~ase_hamgnn.data.deeph.basis_from_orbital_types`.
    pbc : (bool, bool, bool)
        Periodic directions (OpenMX cells are always periodic).
    hermiticity_tol : float
        Largest allowed non-Hermiticity, eV.

    Returns
    -------
    TBHamiltonian
        H and S in eV and our orbital order.

    Raises
    ------
    DatasetError
        Truncated file, an unsupported layout version (OpenMX 3.8 or older), a wrong
        ``SpinP_switch``, missing moments for spin-polarized data, or shells that do not
        match the orbital counts.
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
    if version != SCFOUT_VERSION:
        raise DatasetError(f"{path} has .scfout layout version {version} (OpenMX 3.8 or "
                           "older, or not a .scfout file); rerun the calculation with "
                           "OpenMX 3.9 or newer")
    if spinp == 2:
        raise DatasetError(f"{path} has SpinP_switch = 2, which OpenMX does not define "
                           "(0 spinless, 1 collinear, 3 non-collinear)")
    if atomnum <= 0 or tcpy < 0:
        raise DatasetError(f"{path} is corrupted (atomnum {atomnum}, TCpyCell {tcpy})")
    order_max = int(rd.take("i4", 1)[0])
    rd.take("f8", 4 * (tcpy + 1))  # atv, Bohr (not needed: R is in atv_ijk)
    atv_ijk = rd.take("i4", 4 * (tcpy + 1)).reshape(-1, 4)[:, 1:]
    sizes = rd.take("i4", atomnum).astype(int)
    fnan = rd.take("i4", atomnum).astype(int)
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
    for _ in range(3 * order_max + 3 + spinp + 1 + 2):  # OLPpo, OLPmo, DM, iDM
        _blocks(rd, sizes, natn)
    rd.take("i4", 1)
    rd.take("f8", 2 + 6 + 2)
    num_lines = int(rd.take("i4", 1)[0])
    raw = rd.take("u1", 256 * num_lines).tobytes()
    lines = [raw[k:k + 256].split(b"\0", 1)[0].decode("utf-8", "replace").rstrip("\n")
             for k in range(0, len(raw), 256)]

    if symbols is None or basis is None:
        numbers, ls = _parse_input(lines, atomnum)
    else:
        numbers, ls = None, None
    if symbols is not None:
        numbers = [atomic_numbers[s] for s in symbols]
        if len(numbers) != atomnum:
            raise ValueError(f"symbols has {len(numbers)} entries, the file {atomnum} atoms")
    if basis is None:
        basis = basis_from_orbital_types(numbers, ls)
    ls = [tuple(s.l for s in basis.shells(int(z))) for z in numbers]
    for a, (la, n) in enumerate(zip(ls, sizes)):
        if sum(2 * l + 1 for l in la) != n:
            raise DatasetError(f"{path}: atom {a + 1} has {n} orbitals in the file but its "
                               f"shells l = {list(la)} give {sum(2 * l + 1 for l in la)}; "
                               "the basis sizes do not match")
    if spinp in (1, 3) and moments is None:
        raise DatasetError(f"{path} is spin-polarized (SpinP_switch = {spinp}); pass "
                           "moments= (the constrained moments in μB, shape (N, 3))")
    m = np.zeros((atomnum, 3)) if moments is None else np.asarray(moments, np.float64)
    geometry = Geometry(bohr_to_angstrom(tv), bohr_to_angstrom(gxyz), numbers, pbc, m)

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
