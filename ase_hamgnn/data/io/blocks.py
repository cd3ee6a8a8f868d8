"""Block helpers shared by the readers and writers of other codes' files (OpenMX, DeepH,
HamGNN): a checked :class:`Geometry`, a basis from per-atom ``l`` lists, and the one path from
read blocks to a :class:`TBHamiltonian` (Hermitian part kept, asymmetry logged or refused)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from ase.data import chemical_symbols

from ase_hamgnn.basis import OrbitalBasis, Shell
from ase_hamgnn.errors import DatasetError
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.hamiltonian import HERMITICITY_TOL, TBHamiltonian

__all__ = ["Z_MAX", "basis_from_orbital_types", "blocks_to_hamiltonian", "checked_geometry",
           "pair_blocks"]

logger = logging.getLogger(__name__)

#: Largest atomic number.
Z_MAX = len(chemical_symbols) - 1


def basis_from_orbital_types(numbers: Sequence[int],
                             orbital_types: Sequence[Sequence[int]]) -> OrbitalBasis:
    """An :class:`OrbitalBasis` from DeepH's per-atom ``l`` lists.

    DeepH stores no principal quantum numbers, so shells are labelled in order with
    ``n = l + 1 + (number of earlier shells of the same l)`` (``0 0 1 1 2`` gives 1s 2s 2p
    3p 3d).  Only the labels are invented; the orbitals are the file's.  Pass your own basis
    to :func:`read_deeph` for meaningful labels.

    Raises
    ------
    DatasetError
        If two atoms of one element have different shells.
    """
    per_element: dict[int, tuple[int, ...]] = {}
    for z, ls in zip(numbers, orbital_types):
        z, ls = int(z), tuple(int(l) for l in ls)
        if per_element.setdefault(z, ls) != ls:
            raise DatasetError(f"atoms of {chemical_symbols[z]} have different shells "
                               f"({per_element[z]} and {ls}); every atom of an element "
                               "needs the same basis")
    shells = {}
    for z, ls in per_element.items():
        seen: dict[int, int] = {}
        out = []
        for l in ls:  # noqa: E741
            out.append(Shell(l + 1 + seen.get(l, 0), l))
            seen[l] = seen.get(l, 0) + 1
        shells[chemical_symbols[z]] = out
    return OrbitalBasis(shells)


def checked_geometry(origin: str | os.PathLike, cell: Any, positions: Any, numbers: Any, pbc: Any,
              moments: Any) -> Geometry:
    """The :class:`Geometry` of data read from ``origin``; atomic numbers that are no element,
    NaN or infinite values and malformed periodicity become a DatasetError naming it."""
    bad = [int(z) for z in np.asarray(numbers).reshape(-1) if not 1 <= z <= Z_MAX]
    if bad:
        raise DatasetError(f"{origin}: {bad[0]} is not an atomic number (1 to {Z_MAX}); the "
                           "file is corrupted: regenerate it")
    for name, value in (("cell", cell), ("positions", positions), ("moments", moments)):
        if not np.isfinite(np.asarray(value, dtype=np.float64)).all():
            raise DatasetError(f"{origin}: the {name} hold NaN or infinite values; the file is "
                               "corrupted or the DFT run diverged: regenerate it")
    try:
        return Geometry(cell, positions, numbers, pbc, moments)
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"{origin}: {exc}; the file is corrupted: regenerate it") from None


def pair_blocks(ham: TBHamiltonian, store: Mapping) -> dict:
    """Dense ``(i, j, R) -> block`` of every non-empty atom pair of ``store`` (``ham.h_r``
    or ``ham.s_r``), the form the file writers need."""
    offsets = ham.offsets
    out = {}
    for r, mat in store.items():
        coo = mat.tocoo()
        if coo.nnz == 0:
            continue
        ai = np.searchsorted(offsets, coo.row, side="right") - 1
        aj = np.searchsorted(offsets, coo.col, side="right") - 1
        csr = sp.csr_matrix(mat)
        for i, j in sorted(set(zip(ai.tolist(), aj.tolist()))):
            out[(i, j, r)] = csr[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]].toarray()
    return out


def _symmetrized(origin: str | os.PathLike, blocks: Mapping, what: str,
                 tol: float) -> dict:
    """``blocks`` with every pair replaced by its Hermitian part, ``(B_ij(R) + B_ji(-R)^dagger)
    / 2`` (exactly Hermitian in floating point); raises above ``tol``."""
    out, worst, where = {}, 0.0, None
    for (i, j, r), b in blocks.items():
        partner = blocks.get((j, i, tuple(-x for x in r)))
        if partner is None or np.shape(partner) != np.shape(b)[::-1]:
            out[(i, j, r)] = b  # TBHamiltonian reports the missing or misshapen partner
            continue
        diff = np.abs(b - np.conj(partner).T)
        dev = float(diff.max()) if diff.size else 0.0
        if dev > worst:
            worst, where = dev, (i, j, r)
        out[(i, j, r)] = 0.5 * (b + np.conj(partner).T)
    if where is not None:
        i, j, r = where
        place = f"atoms {i + 1}, {j + 1}, R = {r}"
        if worst > tol:
            raise DatasetError(
                f"{origin}: {what} is not Hermitian: |{what}_ij(R) - {what}_ji(-R)^dagger| = "
                f"{worst:.3e} (tolerance {tol:.1e}) at {place}; converged DFT output is "
                "Hermitian to ~1e-8 eV, so the file is corrupted, not converged, or laid out "
                "differently from what this reader expects.  If you trust it, pass a larger "
                "hermiticity_tol= (its Hermitian part is kept)")
        logger.info("%s: %s symmetrized; largest |%s_ij(R) - %s_ji(-R)^dagger| = %.3e at %s",
                    origin, what, what, what, worst, place)
    return out


def blocks_to_hamiltonian(origin: str | os.PathLike, basis: OrbitalBasis, geometry: Geometry,
                          h_blocks: Mapping, s_blocks: Mapping | None,
                          hermiticity_tol: float = HERMITICITY_TOL) -> TBHamiltonian:
    """``TBHamiltonian.from_blocks`` for data read from ``origin``.

    Every reader of DFT files ends here, with one policy: blocks are Hermitian only up to the
    rounding of the DFT code (~1e-9 Hartree), so each pair ``(i, j, R)``, ``(j, i, -R)`` of H
    (eV) and S is replaced by its Hermitian part; the largest asymmetry is logged (logger
    ``ase_hamgnn.data.io.blocks``, level INFO), and one above ``hermiticity_tol`` is refused.
    Shape or Hermiticity problems, and NaN or infinite values, become a
    :class:`DatasetError` that names ``origin``.
    """
    for what, blocks in (("H", h_blocks), ("S", s_blocks or {})):
        for (i, j, r), b in blocks.items():
            if not np.isfinite(b).all():
                raise DatasetError(
                    f"{origin}: the {what} block of atoms {i + 1}, {j + 1}, R = {r} holds NaN "
                    "or infinite values; the DFT run diverged or the file is corrupted: rerun "
                    "it or regenerate the file")
    try:
        h_blocks = _symmetrized(origin, h_blocks, "H", hermiticity_tol)
        if s_blocks is not None:
            s_blocks = _symmetrized(origin, s_blocks, "S", hermiticity_tol)
        return TBHamiltonian.from_blocks(basis, geometry, h_blocks, s_blocks)
    except ValueError as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{origin}: {exc}") from None
