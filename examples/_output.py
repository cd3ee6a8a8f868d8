"""Output paths of the examples: created and checked before any work is done, so that a
typo or a read-only folder fails at once instead of at the first ``savefig`` minutes later."""

from __future__ import annotations

import tempfile
from pathlib import Path


def output_folder(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents) and check that files can be written in it.

    Raises ``SystemExit`` with the reason when it cannot be created or written to.
    """
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise SystemExit(f"cannot write figures to {str(out)!r}: {err.strerror or err}; "
                         "choose another output folder") from None
    return out


def output_file(path: str | Path) -> Path:
    """Check that the file ``path`` can be written (its folder is created if missing)."""
    path = Path(path)
    if path.is_dir():
        raise SystemExit(f"{str(path)!r} is a folder; give a file name such as "
                         f"{str(path / 'figure.png')!r}")
    output_folder(path.parent)
    return path
