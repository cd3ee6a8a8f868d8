"""One process of the data-parallel training test, launched by ``torchrun`` from
``test_distributed.py``: ``python _ddp_worker.py CONFIG.toml REPORT_DIR``.

Runs the ``ase-hamgnn train`` command exactly as a user would under ``torchrun`` and records
every file this process moved into place (the last step of an atomic write) in
``REPORT_DIR/rank<RANK>.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_replace = os.replace
moved: list[str] = []


def _recording_replace(src, dst, *args, **kwargs):
    moved.append(Path(dst).name)
    return _replace(src, dst, *args, **kwargs)


if __name__ == "__main__":
    os.replace = _recording_replace
    from ase_hamgnn.cli import main

    code = main(["train", sys.argv[1]])
    os.replace = _replace
    report = {"exit": code, "moved": moved, "world_size": int(os.environ["WORLD_SIZE"])}
    Path(sys.argv[2], f"rank{os.environ['RANK']}.json").write_text(json.dumps(report))
