"""Reference values printed by OpenMX itself, for the fixtures in ``fixtures/``.

``eigenvalues(path)`` reads the block "Eigenvalues (Hartree) of SCF KS-eq." of an OpenMX
``.out`` file; ``grid_point`` turns the k-point OpenMX prints (5 decimals) back into the exact
point it diagonalized: OpenMX puts its grid at ``-1/2 + (2 i + 1) / (2 n)`` and shifts the
three components by ``+1e-6, -1e-6, +2e-6`` (``Shift_K_Point``) for numerical stability.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"
#: OpenMX's own Hartree in eV (what DeepH-pack's OpenMX preprocessing converts with).
OPENMX_HARTREE_IN_EV = 27.2113845
_SHIFT = (1e-6, -1e-6, 2e-6)


def eigenvalues(path: Path) -> tuple[float, np.ndarray, list[np.ndarray]]:
    """Chemical potential (Hartree), printed k-points ``(nk, 3)`` and per k-point the
    eigenvalues ``(n_bands, n_spin_columns)`` in Hartree."""
    text = Path(path).read_text()
    section = text.split("Eigenvalues (Hartree) of SCF KS-eq.", 1)[1]
    mu = float(re.search(r"Chemical Potential \(Hartree\)\s*=\s*(\S+)", section).group(1))
    kpoints, values = [], []
    for chunk in re.split(r"\n\s*kloop=\d+\s*\n", section)[1:]:
        head = re.match(r"\s*k1=\s*(\S+)\s+k2=\s*(\S+)\s+k3=\s*(\S+)", chunk)
        kpoints.append([float(x) for x in head.groups()])
        rows = []
        for line in chunk.splitlines()[1:]:
            words = line.split()
            if not words:
                if rows:
                    break
                continue
            if not words[0].isdigit():
                break
            rows.append([float(x) for x in words[1:]])
        values.append(np.array(rows))
    return mu, np.array(kpoints), values


def grid_point(printed: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """The exact k-point (fractional) of OpenMX's ``grid`` printed as ``printed``."""
    out = []
    for axis, (k, n) in enumerate(zip(printed, grid)):
        if n == 1:
            out.append(0.0)
            continue
        i = round((k + 0.5) * n - 0.5)
        out.append(-0.5 + (2 * i + 1) / (2 * n) + _SHIFT[axis])
    return np.array(out)
