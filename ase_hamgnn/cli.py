"""Thin command line over the library: ``ase-hamgnn COMMAND ...``.

Every command only parses arguments and calls public functions of the package.  An error
of the input (a typed ase-hamgnn error, a missing file, a refused permission, a bad value)
is printed as one line ``error: ...`` on stderr with exit status 1; ``--traceback`` (or the
environment variable ``ASE_HAMGNN_TRACEBACK=1``) shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    import ase_hamgnn

    print(f"ase-hamgnn {ase_hamgnn.__version__}")
    return 0


def _cmd_dataset(args: argparse.Namespace) -> int:
    from ase_hamgnn.data import make_reference_dataset

    if args.out is None:
        args.dataset_parser.error("the following arguments are required: --out")
    manifest = make_reference_dataset(
        args.out, args.system, args.size, args.n, args.seed, ood=args.ood,
        overlap=args.overlap, random_magnitudes=args.random_magnitudes,
    )
    counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    print(f"wrote {manifest['n_records']} records ({counts}) to {args.out}")
    print(f"source: {manifest['description']}")
    return 0


def _cmd_dataset_convert(args: argparse.Namespace) -> int:
    from ase_hamgnn.data.io.convert import convert_dataset

    manifest = convert_dataset(args.source, args.out, source_format=args.source_format,
                               cutoff=args.cutoff, rng=args.seed, length_unit=args.length_unit)
    counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    print(f"wrote {manifest['n_records']} records ({counts}) to {args.out}")
    print(f"source: {manifest['description']}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ase_hamgnn.train.distributed import launch_environment
    from ase_hamgnn.train.loop import load_train_config, train

    cfg = load_train_config(args.config)  # ConfigError names the key, the file and the fix
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    if args.allow_dataset_change:
        cfg = replace(cfg, allow_dataset_change=True)
    result = train(cfg)  # also under torchrun, one process per GPU: ase_hamgnn.train.distributed
    if launch_environment()[0] == 0:  # rank 0 alone reports
        best = Path(result["best"])
        if best.is_file():
            print(f"best validation MAE {result['best_val_mae_meV']:.3f} meV; model: {best}")
        else:
            print(f"no model was written ({best} does not exist)")
    return 0


_CONVERT_EPILOG = (
    "What is checked: every file is validated as it is read.  Truncated or corrupted files, "
    "sizes a header claims beyond what the file holds, atomic numbers that are no element, "
    "NaN or infinite values in H, S, cell, positions or moments, blocks that do not fit the "
    "basis and missing spin components stop the command with one line, 'error: ...' (a "
    "DatasetError naming the file, the line of a text file, and what to do), and status 1.  "
    "DFT blocks are Hermitian only to the code's rounding: each pair H_ij(R), H_ji(-R) (and "
    "S) is replaced by its Hermitian part, and a file further from Hermitian than 1 μeV is "
    "refused.  HamGNN graph_data.npz files are pickles: they are read by a restricted "
    "reader that runs no code from the file (only the numpy, torch and torch_geometric "
    "names such files hold are resolved, to stand-ins that build data; any other name is "
    "refused), the file given as well as every *.npz below a folder."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ase-hamgnn``."""
    parser = argparse.ArgumentParser(prog="ase-hamgnn", description=__doc__.splitlines()[0])
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, show the full traceback instead of one line (also "
                        "ASE_HAMGNN_TRACEBACK=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print the version")
    info.set_defaults(func=_cmd_info)
    ds = sub.add_parser("dataset", help="write a dataset of the SYNTHETIC reference "
                        "tight-binding model (not DFT): random moments or an OOD texture set")
    ds.add_argument("--system", choices=("nibri", "nibr2", "feir"), default=None,
                    help="system (default nibri, or the OOD set's own)")
    ds.add_argument("--size", default=None, help="supercell such as 2x2 (default 2x2)")
    ds.add_argument("-n", type=int, default=None, help="number of configurations")
    ds.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ds.add_argument("--out", default=None, help="output folder, required (re-run to resume)")
    ds.add_argument("--ood", choices=("spirals", "afm120", "skyrmion"), default=None,
                    help="out-of-distribution set instead of random moments")
    ds.add_argument("--overlap", action="store_true", help="non-orthogonal overlap S")
    ds.add_argument("--random-magnitudes", action="store_true", help="random moment lengths")
    ds.set_defaults(func=_cmd_dataset, dataset_parser=ds)
    ds_sub = ds.add_subparsers(dest="dataset_action", required=False)
    cv = ds_sub.add_parser("convert", help="convert DFT Hamiltonians (DeepH folders, OpenMX "
                           ".scfout files or HamGNN graph_data.npz) into a dataset folder for "
                           "`ase-hamgnn train`", epilog=_CONVERT_EPILOG)
    cv.add_argument("--from", dest="source_format", choices=("deeph", "openmx", "hamgnn"),
                    required=True, help="format of the source")
    cv.add_argument("source", help="deeph: folder holding the structure folders; openmx / "
                    "hamgnn: a .scfout / .npz file or a folder holding them")
    cv.add_argument("--out", required=True, help="output dataset folder (re-run to resume)")
    cv.add_argument("--cutoff", type=float, default=None,
                    help="graph cutoff in Å (default: covers every stored block)")
    cv.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    cv.add_argument("--length-unit", choices=("bohr", "angstrom"), default="bohr",
                    help="hamgnn only: unit of pos and cell in the file (default bohr, as "
                    "HamGNN's OpenMX scripts write)")
    cv.set_defaults(func=_cmd_dataset_convert)
    tr = sub.add_parser("train", help="train (or resume) a HamGNN++ model from a TOML config")
    tr.add_argument("config", help="TOML file with dataset, out, [model] and training keys")
    tr.add_argument("--epochs", type=int, default=None,
                    help="override the number of epochs (a resumed run continues its learning "
                    "rate from where it stopped, down to lr_min at the new last epoch)")
    tr.add_argument("--allow-dataset-change", action="store_true",
                    help="resume although the dataset was written again with other data (the "
                    "checkpoint remembers the dataset's fingerprint and split)")
    tr.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ase-hamgnn`` command.

    Returns the exit status: 0, or 1 after printing ``error: <message>`` to stderr for an
    error of the input (:class:`~ase_hamgnn.errors.HamGNNError`, ``FileNotFoundError``,
    ``PermissionError``, ``ValueError``)."""
    from ase_hamgnn.errors import HamGNNError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (HamGNNError, FileNotFoundError, PermissionError, ValueError) as exc:
        if args.traceback or os.environ.get("ASE_HAMGNN_TRACEBACK", "") not in ("", "0"):
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (an OSError's text names its file)."""
    text = str(exc) if str(exc) else type(exc).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


if __name__ == "__main__":
    sys.exit(main())
