"""Functions of ``k`` along a path of a large supercell, interpolated between a few
k-points.

Matrices such as ``Q^H H(k) Q`` for a k-independent basis ``Q`` in the atomic gauge are
trigonometric polynomials in ``k`` whose frequencies are the bond vectors ``R + t_j - t_i``
(fractional, in units of the cell).  In a supercell of thousands of atoms those are short,
so along a straight segment of a path a handful of Chebyshev nodes interpolates such a
function to about 1e-14; :func:`chebyshev_nodes_needed` says how many.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SegmentInterpolant", "bond_reach", "chebyshev_nodes_needed", "straight_segments"]


def bond_reach(ham: Any) -> np.ndarray:
    """Largest ``|R + t_j - t_i|`` per axis (fractional) over the non-zero blocks of ``H``
    and ``S``: the highest frequency of the projected matrices as functions of ``k``."""
    tau = np.asarray(ham.geometry.scaled_positions, dtype=np.float64)
    offsets = np.asarray(ham.offsets)
    reach = np.zeros(3)
    mats = dict(ham.h_r)
    for R, m in (ham.s_r or {}).items():
        mats[(R, "s")] = m
    for R, m in mats.items():
        R = np.asarray(R[0] if isinstance(R[1], str) else R, dtype=np.float64)
        coo = m.tocoo()
        if coo.nnz == 0:
            continue
        ai = np.searchsorted(offsets, coo.row, side="right") - 1
        aj = np.searchsorted(offsets, coo.col, side="right") - 1
        pairs = np.unique(ai * len(tau) + aj)
        d = R + tau[pairs % len(tau)] - tau[pairs // len(tau)]
        reach = np.maximum(reach, np.abs(d).max(axis=0))
    return reach


def chebyshev_nodes_needed(omega: float, tol: float = 1e-14) -> int:
    """Chebyshev nodes on a segment for functions ``exp(i w t)``, ``|w| <= 2 omega``
    (products of two ``H``), ``t`` in ``[0, 1]``: on ``[-1, 1]`` the frequency is
    ``beta = omega`` and the Chebyshev coefficients fall as ``2 (beta / 2)^n / n!``."""
    beta, n, term = max(float(omega), 1e-12), 1, 2.0
    while True:
        term *= 0.5 * beta / n
        if term <= tol and n >= 3:
            return n + 1
        n += 1


def straight_segments(kpts: np.ndarray) -> list[list[int]]:
    """Maximal runs of consecutive k-points on one straight line in one direction; the
    corner point between two runs belongs to both."""
    def straight(d1: np.ndarray, d2: np.ndarray) -> bool:
        n1, n2 = np.linalg.norm(d1), np.linalg.norm(d2)
        return n1 > 1e-12 and n2 > 1e-12 and float(d1 @ d2) > (1 - 1e-10) * n1 * n2

    segs, start = [], 0
    for i in range(1, len(kpts) - 1):
        if not straight(kpts[i] - kpts[i - 1], kpts[i + 1] - kpts[i]):
            segs.append(list(range(start, i + 1)))
            start = i
    segs.append(list(range(start, len(kpts))))
    return segs


class SegmentInterpolant:
    """Chebyshev interpolation (barycentric, first-kind nodes) of a dict of arrays given as
    a function of ``k`` on the straight segment from ``ka`` to ``kb``."""

    def __init__(self, ka: np.ndarray, kb: np.ndarray, n: int, func) -> None:
        self.ka, self.dk = ka, kb - ka
        j = np.arange(n)
        self.t = 0.5 * (1.0 - np.cos((2 * j + 1) * np.pi / (2 * n)))
        self.w = (-1.0) ** j * np.sin((2 * j + 1) * np.pi / (2 * n))
        self.values = [func(ka + t * self.dk) for t in self.t]

    def __call__(self, k: np.ndarray) -> dict:
        t = float((k - self.ka) @ self.dk) / float(self.dk @ self.dk)
        hit = np.flatnonzero(np.abs(t - self.t) < 1e-14)
        if len(hit):
            return self.values[int(hit[0])]
        c = self.w / (t - self.t)
        c = c / c.sum()
        return {key: sum(cj * v[key] for cj, v in zip(c, self.values, strict=True))
                for key in self.values[0]}
