"""Atoms with the same environment share the network's work.

Everything the network computes for an atom (node features, on-site blocks, the SOC and
single-ion tensors) and for a bond (``h0_ij``, ``h^α_ij``, ``J_ij``, ``w_ij``) depends only
on the species, the moment sizes ``|M|`` and the relative positions of the atoms within a
few cutoffs; the moment *directions* enter only the final spin assembly, and, with
``moment_coupling``, the pair network through one invariant per bond (``cos θ_ij`` or
``M_i·M_j``), which is then part of the bond's class (``edge_extra``).  In a supercell of
an ideal crystal carrying a spin texture of constant ``|M|`` (a skyrmion, a spiral), every
unit-cell site therefore has the same network output as its translated copies (with
``moment_coupling``: wherever the angles between neighbouring moments agree too, as in a
ferromagnetic background), and the network only needs to run on one representative of each
class.  The assembly ``H0 + H_mag`` still runs over every atom and bond with its own
moments, so the result is the full, exact Hamiltonian.

Classes come from colour refinement (Weisfeiler–Lehman) of the neighbour graph: level 0
colours atoms by species and ``|M|``; level ``t`` by the level ``t - 1`` colour and the
multiset of (neighbour colour, bond vector) over its bonds.  After ``n_layers`` levels, two
atoms of one colour have equal node features (the message passing cannot tell them apart);
one more level decides the on-site features, which sum the pair features of every bond.
Bond vectors and ``|M|`` are compared after rounding to ``tol`` (Å, μB), so atoms displaced
by more than that get classes of their own and a structure without translational
redundancy (relaxed, disordered) simply gets no reduction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EnvironmentClasses", "environment_classes"]

_EXTRA_TOL = 1e-12  # rounding of the bond invariants of ``edge_extra``


@dataclass(frozen=True)
class EnvironmentClasses:
    """Class ids of atoms at refinement levels ``0..levels`` and of bonds.

    Attributes
    ----------
    node : ``node[t][i]`` is the class of atom ``i`` after ``t`` refinement steps.
    node_reps : ``node_reps[t][c]`` is one atom of class ``c`` at level ``t``.
    edge : class of each directed edge (level ``levels - 1`` classes of its two atoms and
        its vector).
    edge_reps : one edge of each edge class.
    bond_invariants : whether the bonds' moment invariants (``edge_extra``) were part of
        the classes, as a model with ``moment_coupling`` needs.
    """

    node: tuple[np.ndarray, ...]
    node_reps: tuple[np.ndarray, ...]
    edge: np.ndarray
    edge_reps: np.ndarray
    bond_invariants: bool = False

    @property
    def n_atoms(self) -> int:
        return len(self.node[0])

    @property
    def n_edges(self) -> int:
        return len(self.edge)

    def reduction(self) -> float:
        """Edges per edge class: the factor by which the edge work shrinks."""
        return self.n_edges / max(len(self.edge_reps), 1)

    def __repr__(self) -> str:
        return (f"EnvironmentClasses(atoms={self.n_atoms}, atom classes="
                f"{[len(r) for r in self.node_reps]}, edges={self.n_edges}, "
                f"edge classes={len(self.edge_reps)})")


def _ids(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class id per row (equal rows, equal ids) and the first row of each class."""
    rows = np.asarray(rows)
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort(rows.T[::-1])  # stable: each class's first row comes first
    ordered = rows[order]
    starts = np.ones(len(rows), dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    ids = np.empty(len(rows), dtype=np.int64)
    ids[order] = np.cumsum(starts) - 1
    return ids, order[starts].astype(np.int64)


def environment_classes(numbers, moments, edge_index, vectors, levels: int,
                        tol: float = 1e-6, edge_extra=None) -> EnvironmentClasses:
    """Refine atom classes ``levels`` times over the graph (``edge_index`` = ``(src, dst)``,
    the messages of atom ``src`` come from ``dst``); see the module docstring.

    Parameters
    ----------
    numbers : (N,) atomic numbers.
    moments : (N, 3) moments (μB); only their sizes matter.
    edge_index : (2, E) source and destination atoms.
    vectors : (E, 3) bond vectors ``r_dst - r_src`` (Å, float64).
    levels : refinement steps (``n_layers + 1`` for the network).
    tol : rounding of bond vectors (Å) and moment sizes (μB) before comparison.
    edge_extra : (E, k) further bond inputs of the pair network (``moment_coupling``: the
        invariant moment product), compared after rounding to 1e-12 (so only values equal
        up to floating-point noise share, and the result stays exact); they split the bond
        classes and, through the bond sum, the last level of atom classes (the on-site
        features), not the message passing, which does not see them.
    """
    if levels < 1:
        raise ValueError(f"levels must be at least 1, got {levels}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    numbers = np.asarray(numbers, dtype=np.int64)
    n = len(numbers)
    src, dst = (np.asarray(a, dtype=np.int64) for a in edge_index)
    qvec = np.rint(np.asarray(vectors, dtype=np.float64) / tol).astype(np.int64)
    size = np.rint(np.linalg.norm(np.asarray(moments, dtype=np.float64), axis=1) / tol)
    colour, reps = _ids(np.stack([numbers, size.astype(np.int64)], axis=1))
    extra = np.zeros((len(src), 0), dtype=np.int64) if edge_extra is None else np.rint(
        np.asarray(edge_extra, dtype=np.float64).reshape(len(src), -1) / _EXTRA_TOL
    ).astype(np.int64)
    node, node_reps = [colour], [reps]
    for level in range(levels):
        tokens = np.concatenate([colour[dst, None], qvec]
                                + ([extra] if level == levels - 1 else []), axis=1)
        order = np.lexsort((*tokens.T[::-1], src))
        tokens = np.ascontiguousarray(tokens[order])
        bounds = np.searchsorted(src[order], np.arange(n + 1))
        table: dict[tuple[int, bytes], int] = {}
        new = np.empty(n, dtype=np.int64)
        first = []
        for i in range(n):
            key = (int(colour[i]), tokens[bounds[i]:bounds[i + 1]].tobytes())
            c = table.get(key)
            if c is None:
                c = table[key] = len(first)
                first.append(i)
            new[i] = c
        colour = new
        node.append(colour)
        node_reps.append(np.asarray(first, dtype=np.int64))
    last = node[levels - 1]
    edge, edge_reps = _ids(np.concatenate([last[src, None], last[dst, None], qvec, extra],
                                          axis=1))
    return EnvironmentClasses(tuple(node), tuple(node_reps), edge, edge_reps,
                              bond_invariants=edge_extra is not None)
