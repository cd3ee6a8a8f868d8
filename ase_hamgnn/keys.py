"""Registry of graph data keys: every field of a graph or dataset record is named once here,
with its shape and unit.  Use these constants instead of ad-hoc strings.

Shapes use ``N`` atoms, ``E`` directed edges (each unordered pair appears twice, once per
direction), ``B`` graphs in a batch, ``L_on``/``L_e`` the total number of complex entries of
the on-site/edge blocks (blocks flattened row-major, concatenated in atom/edge order).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KEYS", "Key"]


@dataclass(frozen=True)
class Key:
    """Name, shape, dtype and unit of one field."""

    name: str
    shape: str
    dtype: str
    unit: str
    doc: str


POSITIONS = "pos"  # (N, 3) Å
ATOMIC_NUMBERS = "atomic_numbers"  # (N,)
MOMENTS = "moments"  # (N, 3) μB
CELL = "cell"  # (B, 3, 3) Å, rows are lattice vectors
PBC = "pbc"  # (B, 3) bool
EDGE_INDEX = "edge_index"  # (2, E) source i, target j
CELL_SHIFTS = "cell_shifts"  # (E, 3) int, R of <i,0|H|j,R>
EDGE_VECTORS = "edge_vectors"  # (E, 3) Å, r_j + R.cell - r_i
EDGE_REVERSE = "edge_reverse"  # (E,) index of the edge (j, i, -R)
H_ONSITE = "h_onsite"  # (L_on,) complex, eV
H_EDGE = "h_edge"  # (L_e,) complex, eV
S_ONSITE = "s_onsite"  # (L_on,) complex
S_EDGE = "s_edge"  # (L_e,) complex

KEYS: dict[str, Key] = {
    k.name: k
    for k in [
        Key(POSITIONS, "(N, 3)", "float", "Å", "Cartesian positions"),
        Key(ATOMIC_NUMBERS, "(N,)", "int64", "", "atomic numbers"),
        Key(MOMENTS, "(N, 3)", "float", "μB", "magnetic moments (axial vectors)"),
        Key(CELL, "(B, 3, 3)", "float", "Å", "lattice vectors as rows"),
        Key(PBC, "(B, 3)", "bool", "", "periodic directions"),
        Key(EDGE_INDEX, "(2, E)", "int64", "", "directed edges i -> j within the cutoff"),
        Key(CELL_SHIFTS, "(E, 3)", "int64", "", "lattice vector R of the target image"),
        Key(EDGE_VECTORS, "(E, 3)", "float", "Å", "r_j + R.cell - r_i"),
        Key(EDGE_REVERSE, "(E,)", "int64", "", "index of the reverse edge (j, i, -R)"),
        Key(H_ONSITE, "(L_on,)", "complex", "eV", "on-site blocks H_ii(0), flattened"),
        Key(H_EDGE, "(L_e,)", "complex", "eV", "edge blocks H_ij(R), flattened"),
        Key(S_ONSITE, "(L_on,)", "complex", "", "on-site overlap blocks, flattened"),
        Key(S_EDGE, "(L_e,)", "complex", "", "edge overlap blocks, flattened"),
    ]
}
