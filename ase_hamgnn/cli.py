"""Thin command line over the library: ``ase-hamgnn COMMAND ...``.

Every command only parses arguments and calls public functions of the package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    import ase_hamgnn

    print(f"ase-hamgnn {ase_hamgnn.__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ase-hamgnn``."""
    parser = argparse.ArgumentParser(prog="ase-hamgnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print the version")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ase-hamgnn`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
