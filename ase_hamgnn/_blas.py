"""Dense products of tall complex blocks through SciPy's BLAS, without copies.

``a.conj().T @ b`` with NumPy first copies the conjugate of ``a`` (for an (n, m) block of
thousands of rows as costly as the product itself); ``zgemm`` takes the conjugate
transpose as an option.  Both helpers pass C-ordered blocks to BLAS as their Fortran-ordered
transposes, so nothing is copied.

They also keep the sparse products that follow at full speed: NumPy's bundled OpenBLAS
chooses AVX-512 kernels on AVX-512 machines, and on some of them (measured on a 2-core AMD
EPYC virtual machine) the SciPy sparse matrix products that follow a NumPy complex matrix
product ran up to 4x slower (fast again with ``OPENBLAS_CORETYPE=Haswell`` or after a SciPy
BLAS call).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.blas import zgemm

__all__ = ["ah_b", "a_b"]


def _ok(*arrays: np.ndarray) -> bool:
    return all(x.ndim == 2 and x.dtype == np.complex128 and x.flags.c_contiguous
               and x.size for x in arrays)


def ah_b(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^H b`` for (n, m) and (n, p) blocks.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal((5, 2)) + 1j * rng.standard_normal((5, 2))
    >>> b = rng.standard_normal((5, 3)) + 1j * rng.standard_normal((5, 3))
    >>> bool(np.allclose(ah_b(a, b), a.conj().T @ b))
    True
    """
    a, b = np.asarray(a), np.asarray(b)
    if not _ok(a, b):
        return a.conj().T @ b
    # (a^H b)^T = b^T conj(a): with B' = b.T and A' = a.T (Fortran order), B' A'^H
    return zgemm(1.0, b.T, a.T, trans_b=2).T


def a_b(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a b`` for (n, m) and (m, p) blocks.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> a = rng.standard_normal((6, 3)) + 1j * rng.standard_normal((6, 3))
    >>> b = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    >>> bool(np.allclose(a_b(a, b), a @ b))
    True
    """
    a, b = np.asarray(a), np.asarray(b)
    if not _ok(a, b):
        return a @ b
    return zgemm(1.0, b.T, a.T).T
