"""Read and write HamGNN's ``graph_data.npz`` (one file, many structures).

File layout (as written by HamGNN's OpenMX interface)
-----------------------------------------------------
``np.savez(path, graph=graphs)`` with ``graphs`` a dict ``{index: torch_geometric Data}``,
i.e. a pickle.  It is read without running code from the file and without torch: only the
names numpy, torch and torch_geometric pickle for these graphs are resolved, to local
stand-ins (:mod:`ase_hamgnn.data.io.torch_pickle`); a file naming anything else is refused.
Per structure (``N`` atoms, ``E`` directed edges, ``n = nao_max``):

``z`` ``(N,)``
    Atomic numbers.
``pos`` ``(N, 3)``, ``cell`` ``(1, 3, 3)`` (rows are lattice vectors)
    Bohr in HamGNN's OpenMX scripts (``length_unit="bohr"``, the default here); the
    non-collinear script of its newer magnetism interface stores Å
    (``length_unit="angstrom"``).  Check a file you did not write before converting it.
``edge_index`` ``(2, E)``, ``cell_shift`` ``(E, 3)``, ``inv_edge_idx`` ``(E,)``, ``nbr_shift``
    Edge ``e`` carries the block ``<src, 0 | H | tar, R>`` with ``src, tar = edge_index[:, e]``
    (0-based) and the integer lattice vector ``R = cell_shift[e]``; ``inv_edge_idx[e]`` is the
    reverse edge ``(tar, src, -R)``; ``nbr_shift = R @ cell`` (Cartesian).  The on-site block
    ``(i, i, 0)`` is not an edge.
``Hon`` ``(N, ...)``, ``Hoff`` ``(E, ...)``
    Hamiltonian blocks in Hartree, each flattened row-major from a zero-padded square of
    ``n`` orbitals (below).  Non-collinear data (spin-orbit coupling, the magnetic scripts)
    store the real parts of the spin-major ``(2n, 2n)`` block ``[[H_uu, H_ud], [H_du, H_dd]]``
    in ``Hon``/``Hoff`` and the imaginary parts in ``iHon``/``iHoff``, each ``(., 4 n^2)``.
    Collinear data store ``(., 2, n^2)`` (up, down); spinless data ``(., n^2)``.
``Son`` ``(N, n^2)``, ``Soff`` ``(E, n^2)``
    Overlap blocks (spinless, real).
``spin_length`` ``(N,)``, ``spin_vec`` ``(N, 3)`` (magnetism scripts only)
    Moment size (``n_up - n_down``, μB) and unit direction; ``M = spin_length * spin_vec``.

Padding.  Orbitals sit in fixed slots of the ``n``-orbital square: for ``n = 14`` the shells
``s s s p p d``, for ``19`` ``s s s p p d d``, for ``26`` ``s s s p p d d f``
(:data:`HAMGNN_LAYOUTS`).  The ``k``-th shell of angular momentum ``l`` of an atom occupies
the ``k``-th slot shell of that ``l``; unused slots are zero.  Inside a shell the orbitals
follow OpenMX's real-orbital order (:mod:`ase_hamgnn.data.io.conventions`), which this module
converts to ours with the explicit matrices of that module; Hartree and Bohr become eV and Å
(:mod:`ase_hamgnn.data.io.units`).

The down-up quarter.  HamGNN's scripts fill ``H_du`` of each block as the element-wise
complex conjugate of ``H_ud`` of the same block; that is the Hermitian partner only when the
up-down part is symmetric (no spin-orbit coupling).  By default (``down_up="hermitian"``)
this reader ignores the stored ``H_du`` and takes it from Hermiticity, ``H_du,ij(R) =
H_ud,ji(-R)^dagger``, as OpenMX itself does; ``down_up="stored"`` keeps the stored quarter
(and fails the Hermiticity check where it is inconsistent).  :func:`write_hamgnn` writes the
Hermitian ``H_du``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from math import isqrt
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import chemical_symbols, covalent_radii

from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.data.io.blocks import (
    Z_MAX,
    basis_from_orbital_types,
    blocks_to_hamiltonian,
    checked_geometry,
    pair_blocks,
)
from ase_hamgnn.data.io.conventions import atom_transform
from ase_hamgnn.data.io.torch_pickle import load_pickled_graphs
from ase_hamgnn.data.io.units import BOHR_IN_ANGSTROM, HARTREE_IN_EV
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.hamiltonian import HERMITICITY_TOL, TBHamiltonian

__all__ = ["HAMGNN_CONVENTION", "HAMGNN_LAYOUTS", "orbital_slots", "read_hamgnn",
           "write_hamgnn"]

#: Real-orbital convention inside a shell (see :mod:`ase_hamgnn.data.io.conventions`).
HAMGNN_CONVENTION = "openmx"
#: ``nao_max`` -> the ``l`` of the slot shells of the padded square, in order.
HAMGNN_LAYOUTS = {14: (0, 0, 0, 1, 1, 2), 19: (0, 0, 0, 1, 1, 2, 2),
                  26: (0, 0, 0, 1, 1, 2, 2, 3)}
_LENGTH = {"bohr": BOHR_IN_ANGSTROM, "angstrom": 1.0}
_ENERGY = {"hartree": HARTREE_IN_EV, "ev": 1.0}
_REQUIRED = ("z", "pos", "cell", "edge_index", "cell_shift", "Hon", "Hoff")


def orbital_slots(ls: Sequence[int], nao_max: int) -> np.ndarray:
    """Slot (index in the padded ``nao_max`` square) of each orbital of an atom.

    Parameters
    ----------
    ls : sequence of int
        The atom's shells (their ``l``), in our basis order.
    nao_max : {14, 19, 26}
        HamGNN's padded size.

    Returns
    -------
    ndarray of int
        One slot per orbital, shells in the order of ``ls``, m in OpenMX's order.

    Raises
    ------
    DatasetError
        If the layout has too few shells of some ``l`` for the atom.

    Examples
    --------
    >>> orbital_slots([0, 0, 1], 19).tolist()
    [0, 1, 3, 4, 5]
    """
    if nao_max not in HAMGNN_LAYOUTS:
        raise DatasetError(f"nao_max = {nao_max} is not one of HamGNN's OpenMX layouts "
                           f"{sorted(HAMGNN_LAYOUTS)}")
    layout = HAMGNN_LAYOUTS[nao_max]
    starts = np.concatenate([[0], np.cumsum([2 * l + 1 for l in layout])])
    seen: dict[int, int] = {}
    out = []
    for l in ls:  # noqa: E741
        k = seen.get(l, 0)
        where = [s for s, ll in enumerate(layout) if ll == l]
        if k >= len(where):
            raise DatasetError(
                f"the basis sizes do not match: HamGNN's nao_max = {nao_max} layout holds "
                f"{len(where)} shell(s) of l = {l}, the atom has more (shells l = {list(ls)}); "
                "write with a larger nao_max")
        out.extend(range(starts[where[k]], starts[where[k]] + 2 * l + 1))
        seen[l] = k + 1
    return np.array(out, dtype=np.int64)


def _shells_from_slots(occupied: np.ndarray, nao_max: int, where: str) -> tuple[int, ...]:
    layout = HAMGNN_LAYOUTS[nao_max]
    ls, start = [], 0
    for l in layout:  # noqa: E741
        used = occupied[start:start + 2 * l + 1]
        if used.all():
            ls.append(l)
        elif used.any():
            raise DatasetError(f"{where}: the overlap diagonal fills part of a shell (l = {l}) "
                               "of the padded square; pass basis= and check nao_max")
        start += 2 * l + 1
    return tuple(sorted(ls))  # OpenMX order: by l, then multiplicity


def _array(graph: Any, key: str, where: str = "the graph") -> np.ndarray | None:
    """Field ``key`` of a graph as a real numeric array (None when absent)."""
    value = graph.get(key) if isinstance(graph, Mapping) else getattr(graph, key, None)
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged lists
        array = np.zeros(0, dtype=object)
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"{where}: {key} holds {type(value).__name__} of {array.dtype}, not "
                           "a real numeric array; the file is corrupted or no HamGNN graph")
    return array


def _load_graphs(path: Path) -> list[tuple[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    graphs = load_pickled_graphs(path, "graph")
    if isinstance(graphs, Mapping):
        return [(str(k), g) for k, g in graphs.items()]
    if isinstance(graphs, np.ndarray) and graphs.dtype == object:
        return [(str(k), g) for k, g in enumerate(graphs.ravel())]
    raise DatasetError(f"{path}: 'graph' holds {type(graphs).__name__}, expected a dict of "
                       "graphs")


def _layout_of(where: str, hon, hoff, ihon, ihoff, son) -> tuple[str, int]:
    """Spin kind ("noncollinear", "collinear", "spinless") and nao_max of one graph."""
    if (ihon is None) != (ihoff is None):
        raise DatasetError(f"{where}: only one of iHon / iHoff is present; the imaginary spin "
                           "components are missing")
    if ihon is not None:
        width = hon.shape[-1]
        nao = isqrt(width) // 2
        if hon.ndim != 2 or (2 * nao) ** 2 != width or ihon.shape != hon.shape \
                or ihoff.shape != hoff.shape:
            raise DatasetError(f"{where}: non-collinear blocks need Hon, iHon of shape (N, 4 "
                               f"nao_max^2) and Hoff, iHoff of shape (E, 4 nao_max^2); got "
                               f"{hon.shape}, {ihon.shape}, {hoff.shape}, {ihoff.shape}")
        return "noncollinear", nao
    if hon.ndim == 3:
        nao = isqrt(hon.shape[2])
        if hon.shape[1] != 2 or nao * nao != hon.shape[2] or hoff.shape[1:] != hon.shape[1:]:
            raise DatasetError(f"{where}: collinear blocks need Hon (N, 2, nao_max^2), got "
                               f"{hon.shape} and Hoff {hoff.shape}")
        return "collinear", nao
    width = hon.shape[-1]
    nao = isqrt(width)
    if son is not None and son.ndim == 2 and son.shape[1] * 4 == width:
        raise DatasetError(f"{where}: Hon has spin-doubled blocks ({width} = 4 x {son.shape[1]}"
                           " entries) but iHon / iHoff are absent; the imaginary spin "
                           "components are missing")
    if nao * nao != width or hoff.ndim != 2 or hoff.shape[1] != width:
        raise DatasetError(f"{where}: Hon {hon.shape} and Hoff {hoff.shape} are not flattened "
                           "square blocks")
    return "spinless", nao


def _graph_moments(where: str, graph: Any, kind: str, n_atoms: int, given: Any) -> np.ndarray:
    if given is not None:
        m = np.asarray(given, dtype=np.float64)
        if m.shape != (n_atoms, 3) or not np.isfinite(m).all():
            raise ValueError(f"{where}: moments must be a finite ({n_atoms}, 3) array in μB, "
                             f"got shape {m.shape}")
        return m
    length, vec = _array(graph, "spin_length", where), _array(graph, "spin_vec", where)
    if length is not None and vec is not None:
        length = np.asarray(length, np.float64).reshape(-1)
        vec = np.asarray(vec, np.float64)
        if length.shape != (n_atoms,) or vec.shape != (n_atoms, 3):
            raise DatasetError(f"{where}: spin_length {length.shape} / spin_vec {vec.shape} "
                               f"do not fit {n_atoms} atoms")
        return length[:, None] * vec
    if kind == "spinless":
        return np.zeros((n_atoms, 3))
    raise DatasetError(f"{where} is spin-polarized ({kind}) but stores no spin_length / "
                       "spin_vec; pass moments= (one (N, 3) array in μB per graph)")


def read_hamgnn(
    path: str | os.PathLike,
    *,
    basis: OrbitalBasis | None = None,
    moments: Sequence[Any] | None = None,
    length_unit: str = "bohr",
    energy_unit: str = "hartree",
    down_up: str = "hermitian",
    overlap: bool = True,
    pbc: Sequence[bool] = (True, True, True),
    hermiticity_tol: float = HERMITICITY_TOL,
) -> list[TBHamiltonian]:
    """Read every structure of a HamGNN ``graph_data.npz`` (see the module docstring).

    Parameters
    ----------
    path : path
        The ``.npz`` file (no code from it is run; see the module docstring).
    basis : OrbitalBasis, optional
        Basis; shells per element in any order (each ``k``-th shell of an ``l`` takes the
        ``k``-th slot shell of that ``l``).  Default: from the slots the overlap diagonal
        fills, labelled as in :func:`~ase_hamgnn.data.io.deeph.basis_from_orbital_types`.
    moments : sequence of array_like, optional
        One ``(N, 3)`` array (μB) per structure; default ``spin_length * spin_vec`` from the
        file (required when those are absent and the data are spin-polarized).
    length_unit : {"bohr", "angstrom"}
        Unit of ``pos`` and ``cell``.
    energy_unit : {"hartree", "ev"}
        Unit of the Hamiltonian blocks.
    down_up : {"hermitian", "stored"}
        Where ``H_du`` of non-collinear blocks comes from (see the module docstring).
    overlap : bool
        Read ``Son``/``Soff`` when present.
    pbc : (bool, bool, bool)
        Periodic directions (HamGNN graphs carry none).
    hermiticity_tol : float
        Largest accepted ``|H_ij(R) - H_ji(-R)^dagger|`` of the stored blocks, eV, raised to
        4 ulp of the largest entry for float32 files (HamGNN's scripts write float32); what
        is read is symmetrized (see :func:`~ase_hamgnn.data.io.deeph.blocks_to_hamiltonian`).

    Warns (``UserWarning``) when a graph holds ``Hon``/``Hoff`` equal to ``Hon0``/``Hoff0``
    (a prediction input, not a converged Hamiltonian), and when the nearest neighbours are
    closer than 0.5 Å or farther than 5 Å, or outside 0.6 to 1.7 times the sum of their
    covalent radii (``length_unit`` is probably wrong).

    Returns
    -------
    list of TBHamiltonian
        In the order of the file's dict.

    Raises
    ------
    DatasetError
        Truncated or foreign files, missing fields or spin components, blocks whose sizes
        do not fit the basis, edges without their reverse edge.

    Examples
    --------
    >>> hams = read_hamgnn("graph_data.npz")  # doctest: +SKIP
    """
    path = Path(path)
    if length_unit not in _LENGTH:
        raise ValueError(f"length_unit must be one of {', '.join(_LENGTH)}, got {length_unit!r}")
    if energy_unit not in _ENERGY:
        raise ValueError(f"energy_unit must be one of {', '.join(_ENERGY)}, got {energy_unit!r}")
    if down_up not in ("hermitian", "stored"):
        raise ValueError(f"down_up must be 'hermitian' or 'stored', got {down_up!r}")
    graphs = _load_graphs(path)
    if moments is not None and len(moments) != len(graphs):
        raise ValueError(f"moments has {len(moments)} entries, {path} holds {len(graphs)} "
                         "graphs")
    out = []
    for n, (name, graph) in enumerate(graphs):
        where = f"{path} (graph {name:.40})"
        try:
            out.append(_read_graph(where, graph, basis,
                                   None if moments is None else moments[n],
                                   _LENGTH[length_unit], _ENERGY[energy_unit], down_up, overlap,
                                   pbc, hermiticity_tol))
        except DatasetError:
            raise
        except (ValueError, TypeError, IndexError, KeyError) as exc:  # any other malformation
            raise DatasetError(f"{where} is malformed ({type(exc).__name__}: {exc!s:.200}); "
                               "generate the file again") from None
    return out


def _read_graph(where, graph, basis, moments, length, energy, down_up, overlap, pbc, tol):
    if not isinstance(graph, Mapping):
        raise DatasetError(f"{where} is a {type(graph).__name__}, not a graph; it is not a "
                           "HamGNN graph_data.npz")
    fields = {key: _array(graph, key, where) for key in
              (*_REQUIRED, "iHon", "iHoff", "Son", "Soff", "Hon0", "Hoff0")}
    missing = [key for key in _REQUIRED if fields[key] is None]
    if missing:
        raise DatasetError(f"{where} lacks {', '.join(missing)}; it is not a HamGNN graph")
    for key, value in fields.items():
        if value is not None and not np.isfinite(value).all():
            raise DatasetError(f"{where}: {key} holds NaN or infinite values; the DFT run "
                               "diverged or the file is corrupted: generate it again")
    z = fields["z"].reshape(-1)
    if z.size == 0 or (z != np.round(z)).any() or (z < 1).any() or (z > Z_MAX).any():
        raise DatasetError(f"{where}: z holds {z[:8].tolist()}, not atomic numbers (integers "
                           f"from 1 to {Z_MAX}); the file is corrupted")
    numbers = z.astype(np.int64)
    n_atoms = len(numbers)
    if fields["cell"].size != 9 or fields["pos"].size != 3 * n_atoms:
        raise DatasetError(f"{where}: cell {fields['cell'].shape} and pos {fields['pos'].shape}"
                           f" do not fit {n_atoms} atoms (a 3 x 3 cell, ({n_atoms}, 3) "
                           "positions)")
    edges = fields["edge_index"].astype(np.int64)
    shifts = fields["cell_shift"].astype(np.int64)
    hon, hoff = fields["Hon"].astype(np.float64), fields["Hoff"].astype(np.float64)
    ihon, ihoff, son, soff = (None if fields[k] is None else fields[k].astype(np.float64)
                              for k in ("iHon", "iHoff", "Son", "Soff"))
    n_edges = edges.shape[1] if edges.ndim == 2 else -1
    if edges.shape != (2, n_edges) or shifts.shape != (n_edges, 3) or len(hon) != n_atoms \
            or len(hoff) != n_edges or ((edges < 0) | (edges >= n_atoms)).any():
        raise DatasetError(f"{where}: edge_index {edges.shape}, cell_shift {shifts.shape}, Hon "
                           f"{hon.shape}, Hoff {hoff.shape} do not fit {n_atoms} atoms")
    kind, nao = _layout_of(where, hon, hoff, ihon, ihoff, son)
    if nao not in HAMGNN_LAYOUTS:
        raise DatasetError(f"{where}: blocks of nao_max = {nao} orbitals; the supported HamGNN "
                           f"layouts are nao_max = {sorted(HAMGNN_LAYOUTS)}")
    if son is not None and (son.shape != (n_atoms, nao * nao)
                            or soff is None or soff.shape != (n_edges, nao * nao)):
        raise DatasetError(f"{where}: Son / Soff need shapes ({n_atoms}, {nao * nao}) and "
                           f"({n_edges}, {nao * nao}); the basis sizes do not match")
    occupied = None if son is None else np.abs(son.reshape(n_atoms, nao, nao)
                                               .diagonal(axis1=1, axis2=2)) > 0
    if basis is None:
        if occupied is None:
            raise DatasetError(f"{where} has no overlap to tell the shells from; pass basis=")
        basis = basis_from_orbital_types(
            numbers, [_shells_from_slots(o, nao, where) for o in occupied])
    try:
        ls = [tuple(s.l for s in basis.shells(int(z))) for z in numbers]
    except KeyError as exc:
        raise DatasetError(f"{where}: {exc}") from None
    slots = [orbital_slots(la, nao) for la in ls]
    if occupied is not None:
        for a, (z, sl) in enumerate(zip(numbers, slots)):
            if set(sl.tolist()) != set(np.flatnonzero(occupied[a]).tolist()):
                raise DatasetError(
                    f"{where}: atom {a + 1} ({chemical_symbols[z]}) fills slots "
                    f"{np.flatnonzero(occupied[a]).tolist()} of the padded blocks but the basis "
                    f"(shells l = {list(ls[a])}) needs {sl.tolist()}; the basis sizes do not "
                    "match")
    cell = fields["cell"].astype(np.float64).reshape(3, 3) * length
    pos = fields["pos"].astype(np.float64).reshape(n_atoms, 3) * length
    m = _graph_moments(where, graph, kind, n_atoms, moments)
    geometry = checked_geometry(where, cell, pos, numbers, pbc, m)
    _warn_if_not_converged(where, fields)
    _warn_if_implausible_bonds(where, geometry, edges, shifts)

    keys = [(i, i, (0, 0, 0)) for i in range(n_atoms)]
    keys += [(int(a), int(b), tuple(int(x) for x in r)) for a, b, r in zip(*edges, shifts)]
    if len(set(keys)) != len(keys):
        raise DatasetError(f"{where}: an edge repeats (or repeats an on-site block); the file "
                           "is corrupted")
    rows = np.concatenate([hon, hoff])
    irows = None if ihon is None else np.concatenate([ihon, ihoff])
    srows = None if son is None else np.concatenate([son, soff])
    raw = {}
    for row, (i, j, r) in enumerate(keys):
        si, sj = slots[i], slots[j]
        if kind == "noncollinear":
            full = (rows[row] + 1j * irows[row]).reshape(2 * nao, 2 * nao)
            b = full[np.ix_(np.concatenate([si, si + nao]), np.concatenate([sj, sj + nao]))]
        elif kind == "collinear":
            up, dn = (rows[row, s].reshape(nao, nao)[np.ix_(si, sj)] for s in (0, 1))
            b = np.block([[up, np.zeros_like(up)], [np.zeros_like(dn), dn]]).astype(complex)
        else:
            b = np.kron(np.eye(2), rows[row].reshape(nao, nao)[np.ix_(si, sj)]).astype(complex)
        raw[(i, j, r)] = b * energy
    if kind == "noncollinear" and down_up == "hermitian":
        for (i, j, r), b in raw.items():
            partner = raw.get((j, i, tuple(-x for x in r)))
            if partner is None:
                raise DatasetError(f"{where}: edge ({i}, {j}, R={r}) has no reverse edge; the "
                                   "file is incomplete")
            n_i, n_j = len(slots[i]), len(slots[j])
            b[n_i:, :n_j] = partner[:n_j, n_i:].conj().T
    t = [atom_transform(HAMGNN_CONVENTION, la, spinful=True) for la in ls]
    ts = [atom_transform(HAMGNN_CONVENTION, la, spinful=False) for la in ls]
    h_blocks = {(i, j, r): t[i] @ b @ t[j].T for (i, j, r), b in raw.items()}
    s_blocks = None
    if overlap and srows is not None:
        s_blocks = {}
        for row, (i, j, r) in enumerate(keys):
            s = srows[row].reshape(nao, nao)[np.ix_(slots[i], slots[j])]
            s_blocks[(i, j, r)] = np.kron(np.eye(2), ts[i] @ s @ ts[j].T)
    return blocks_to_hamiltonian(where, basis, geometry, h_blocks, s_blocks,
                                 max(tol, _rounding(fields, energy)))


def _rounding(fields: Mapping[str, Any], energy: float) -> float:
    """Asymmetry (eV) that rounding to the stored precision alone can make: 4 ulp of the
    largest stored H entry for float32 files (HamGNN's scripts write float32), else 0."""
    stored = [fields[k] for k in ("Hon", "Hoff", "iHon", "iHoff") if fields[k] is not None]
    if all(np.dtype(a.dtype).itemsize >= 8 for a in stored):
        return 0.0
    eps = max(float(np.finfo(a.dtype).eps) for a in stored
              if np.issubdtype(a.dtype, np.floating) and a.dtype.itemsize < 8)
    largest = max(float(np.abs(a).max()) if a.size else 0.0 for a in stored)
    return 4.0 * eps * largest * energy


def _warn_if_not_converged(where: str, fields: Mapping[str, Any]) -> None:
    """HamGNN's scripts store the non-self-consistent H0 of a structure as ``Hon0``/``Hoff0``
    and, for structures that only are to be predicted, copy it into ``Hon``/``Hoff``."""
    h0, h0_off = fields["Hon0"], fields["Hoff0"]
    if h0 is None or h0_off is None:
        return
    if np.array_equal(h0, fields["Hon"]) and np.array_equal(h0_off, fields["Hoff"]):
        warnings.warn(f"{where}: Hon/Hoff equal Hon0/Hoff0, the non-self-consistent starting "
                      "Hamiltonian HamGNN predicts from; this graph is a prediction input, not "
                      "a converged DFT Hamiltonian, so do not train on it (make the graph from "
                      "the .scfout of a converged OpenMX run)", UserWarning, stacklevel=4)


#: Nearest-neighbour distances outside these bounds (Å), or outside these multiples of the
#: sum of the two atoms' covalent radii, mean pos/cell were read in the wrong unit.
_NN_RANGE = (0.5, 5.0)
_NN_RATIO = (0.6, 1.7)


def _warn_if_implausible_bonds(where: str, geometry: Geometry, edges: np.ndarray,
                               shifts: np.ndarray) -> None:
    """Warn when the shortest edge of the graph is no plausible bond (a wrong length unit:
    Bohr read as Å stretches bonds by 1.89, Å read as Bohr shrinks them by 0.53)."""
    if edges.shape[1] == 0:
        return
    src, dst = edges
    vectors = geometry.positions[dst] + shifts @ geometry.cell - geometry.positions[src]
    lengths = np.linalg.norm(vectors, axis=1)
    real = lengths > 0
    if not real.any():
        return
    e = int(np.flatnonzero(real)[np.argmin(lengths[real])])
    d = float(lengths[e])
    z_a, z_b = int(geometry.numbers[src[e]]), int(geometry.numbers[dst[e]])
    bond = float(covalent_radii[z_a] + covalent_radii[z_b])
    if not (_NN_RANGE[0] <= d <= _NN_RANGE[1] and _NN_RATIO[0] <= d / bond <= _NN_RATIO[1]):
        a, b = chemical_symbols[z_a], chemical_symbols[z_b]
        warnings.warn(f"{where}: the nearest neighbours ({a}-{b}) are {d:.3f} Å apart, "
                      f"{d / bond:.2f} times the sum of their covalent radii; pos and cell "
                      "were probably read in the wrong unit (length_unit / --length-unit: "
                      "'bohr' for HamGNN's OpenMX scripts, 'angstrom' for its non-collinear "
                      "magnetism script)", UserWarning, stacklevel=4)


def _smallest_layout(ls_all: Sequence[Sequence[int]]) -> int:
    for nao in sorted(HAMGNN_LAYOUTS):
        try:
            for ls in ls_all:
                orbital_slots(ls, nao)
        except DatasetError:
            continue
        return nao
    raise ValueError("the basis has more shells of some l than HamGNN's largest layout "
                     f"(nao_max = {max(HAMGNN_LAYOUTS)}) holds")


def write_hamgnn(
    hams: Sequence[TBHamiltonian],
    path: str | os.PathLike,
    *,
    nao_max: int | None = None,
) -> Path:
    """Write Hamiltonians as a HamGNN ``graph_data.npz`` (non-collinear layout).

    Values are float64 (HamGNN's own scripts write float32), Hartree and Bohr; the overlap
    is written as ``Son``/``Soff`` (identity and zeros for an orthogonal basis); moments as
    ``spin_length``/``spin_vec``.  Needs ``torch_geometric``.

    Parameters
    ----------
    hams : sequence of TBHamiltonian
        Structures to write, keys ``0, 1, ...`` of the file's dict.
    path : path
        Output file (``.npz``).
    nao_max : {14, 19, 26}, optional
        Padded size; default: the smallest layout that holds every basis.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> write_hamgnn([ham], "graph_data.npz")  # doctest: +SKIP
    """
    import torch
    from torch_geometric.data import Data

    hams = list(hams)
    if not hams:
        raise ValueError("hams is empty; give at least one TBHamiltonian")
    all_ls = [tuple(s.l for s in h.basis.shells(int(z))) for h in hams
              for z in h.geometry.numbers]
    nao = _smallest_layout(all_ls) if nao_max is None else int(nao_max)
    graphs = {}
    for index, ham in enumerate(hams):
        geo = ham.geometry
        n_atoms = len(geo.numbers)
        ls = [tuple(s.l for s in ham.basis.shells(int(z))) for z in geo.numbers]
        slots = [orbital_slots(la, nao) for la in ls]
        t = [atom_transform(HAMGNN_CONVENTION, la, spinful=True) for la in ls]
        ts = [atom_transform(HAMGNN_CONVENTION, la, spinful=False) for la in ls]
        h_blocks = pair_blocks(ham, ham.h_r)
        s_blocks = {} if ham.s_r is None else pair_blocks(ham, ham.s_r)
        onsite = [(i, i, (0, 0, 0)) for i in range(n_atoms)]
        edges = sorted((set(h_blocks) | set(s_blocks)) - set(onsite))
        where = {key: e for e, key in enumerate(edges)}
        inv = [where[(j, i, tuple(-x for x in r))] for i, j, r in edges]
        h_rows = np.zeros((n_atoms + len(edges), 2 * nao, 2 * nao), np.complex128)
        s_rows = np.zeros((n_atoms + len(edges), nao, nao))
        for row, (i, j, r) in enumerate(onsite + edges):
            si, sj = slots[i], slots[j]
            n_i = len(si)
            if (i, j, r) in h_blocks:
                f = t[i].T @ h_blocks[(i, j, r)] @ t[j] / HARTREE_IN_EV
                h_rows[row][np.ix_(np.concatenate([si, si + nao]),
                                   np.concatenate([sj, sj + nao]))] = f
            if ham.s_r is None:
                if i == j and r == (0, 0, 0):
                    s_rows[row][si, si] = 1.0
            elif (i, j, r) in s_blocks:
                s = ts[i].T @ s_blocks[(i, j, r)][:n_i, :len(sj)].real @ ts[j]
                s_rows[row][np.ix_(si, sj)] = s
        h_rows = h_rows.reshape(len(h_rows), -1)
        s_rows = s_rows.reshape(len(s_rows), -1)
        cell_bohr = geo.cell / BOHR_IN_ANGSTROM
        shift = np.array([r for _, _, r in edges], np.int64).reshape(-1, 3)
        mag = np.linalg.norm(geo.moments, axis=1)
        direction = geo.moments / np.where(mag > 0, mag, 1.0)[:, None]

        def tensor(a, dtype=torch.float64):
            return torch.tensor(np.array(a), dtype=dtype)

        graphs[index] = Data(
            z=tensor(geo.numbers, torch.long),
            cell=tensor(cell_bohr[None]),
            pos=tensor(geo.positions / BOHR_IN_ANGSTROM),
            node_counts=tensor([n_atoms], torch.long),
            edge_index=tensor(np.array([[i for i, _, _ in edges], [j for _, j, _ in edges]],
                                       np.int64).reshape(2, -1), torch.long),
            inv_edge_idx=tensor(inv, torch.long),
            cell_shift=tensor(shift, torch.long),
            nbr_shift=tensor(shift @ cell_bohr),
            Hon=tensor(h_rows[:n_atoms].real), Hoff=tensor(h_rows[n_atoms:].real),
            iHon=tensor(h_rows[:n_atoms].imag), iHoff=tensor(h_rows[n_atoms:].imag),
            Son=tensor(s_rows[:n_atoms]), Soff=tensor(s_rows[n_atoms:]),
            overlap=tensor(s_rows),
            spin_length=tensor(mag), spin_vec=tensor(direction),
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, graph=np.array(graphs, dtype=object))
    os.replace(tmp, path)
    return path
