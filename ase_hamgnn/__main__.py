"""``python -m ase_hamgnn``: the same command line as ``ase-hamgnn``."""

from __future__ import annotations

import sys

from ase_hamgnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
