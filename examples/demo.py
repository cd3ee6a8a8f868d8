"""The main job of ase-hamgnn, end to end on built-in data (what ``make demo`` runs).

Run: python examples/demo.py [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import handmade_tb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="folder for figures and reports")
    args = parser.parse_args()
    sys.argv = [sys.argv[0], "--out", args.out]
    handmade_tb.main()


if __name__ == "__main__":
    main()
