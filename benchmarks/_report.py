"""Shared writer of benchmark reports: a JSON file and a short markdown table, atomically."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from ase_hamgnn._atomic import atomic_write_bytes


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import os

    import torch

    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def write_report(name: str, data: dict[str, Any], rows: list[dict[str, Any]],
                 out: str | Path = "benchmarks/reports", notes: str = "") -> Path:
    """Write ``<out>/<name>.json`` (``data`` plus ``rows``) and ``<out>/<name>.md``."""
    out = Path(out)
    payload = {**data, "rows": rows, "machine": machine()}
    atomic_write_bytes(out / f"{name}.json", json.dumps(payload, indent=1, default=str).encode())
    lines = [f"# {name}", ""]
    if rows:
        cols = list(rows[0])
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for row in rows:
            cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()]
            lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", notes]
    md = out / f"{name}.md"
    atomic_write_bytes(md, ("\n".join(lines) + "\n").encode())
    return md


def entry_errors(pred, ref, basis, cutoff: float):
    """Prediction minus reference on every H entry the graph holds, and its magnetic
    (time-reversal-odd) part: two complex arrays in eV, on-site blocks then edges."""
    import numpy as np
    import torch

    from ase_hamgnn.graph import BlockLayout, neighbor_graph
    from ase_hamgnn.model.assembly import time_reversal_odd, time_reversal_partner

    geom = ref.geometry
    layout = BlockLayout(basis, geom.numbers, neighbor_graph(geom, cutoff))

    def flat(ham):
        on, ed = layout.from_matrices(ham.h_r)
        return np.concatenate([on, ed])

    n = torch.as_tensor(layout.sizes // 2)
    src, dst = layout.graph.edge_index
    on_i, on_s = time_reversal_partner(n, n)
    ed_i, ed_s = time_reversal_partner(n[src], n[dst])
    index = torch.cat([on_i, ed_i + int(4 * (n**2).sum())])
    sign = torch.cat([on_s, ed_s])
    diff = torch.as_tensor(flat(pred) - flat(ref))
    return diff.numpy(), time_reversal_odd(diff, index, sign).numpy()


def spinless_errors(pred, ref, basis, cutoff: float):
    """Prediction minus reference (real, eV) on every element of the spin-up blocks (the
    spin-less Hamiltonian h of a model without spin dependence) of the on-site blocks and
    of every directed edge within ``cutoff``: the elements a spin-less code predicts."""
    import numpy as np

    from ase_hamgnn.graph import BlockLayout, neighbor_graph

    layout = BlockLayout(basis, ref.geometry.numbers, neighbor_graph(ref.geometry, cutoff))

    def flat(ham):
        on, ed = layout.from_matrices(ham.h_r)
        return np.concatenate([on, ed])

    m = layout.sizes
    src, dst = (np.asarray(x) for x in layout.graph.edge_index)
    picks = []
    for start, mi, mj in ((layout.onsite_start, m, m),
                          (layout.edge_start + int(layout.onsite_len.sum()), m[src], m[dst])):
        for s0, a, b in zip(start, mi, mj, strict=True):
            rows, cols = np.meshgrid(np.arange(a // 2), np.arange(b // 2), indexing="ij")
            picks.append(s0 + (rows * b + cols).ravel())
    diff = flat(pred) - flat(ref)
    return diff[np.concatenate(picks)].real
