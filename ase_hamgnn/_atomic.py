"""Atomic file writes: a reader never sees a half-written file, an interrupted write leaves
the old file in place.  :func:`exclusive_lock` keeps a second writer out of a folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None

__all__ = ["atomic_write_bytes", "exclusive_lock"]


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` through a temporary file in the same folder, fsync, then
    ``os.replace``.  Creates the folder if needed; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


@contextmanager
def exclusive_lock(path: str | os.PathLike, busy: Exception | None = None) -> Iterator[Path]:
    """Hold an exclusive advisory lock (``fcntl.flock``) on the file ``path`` (created if
    needed; left in place afterwards) for the ``with`` block.

    Raises
    ------
    BlockingIOError
        At once, if another process (or another open of the file) holds the lock; ``busy``
        instead, if given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if busy is None:
                    raise
                raise busy from None
        yield path
    finally:
        os.close(fd)  # closing releases the lock
