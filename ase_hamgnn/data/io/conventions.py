"""Real-orbital conventions of foreign formats and the matrices that convert them to ours.

Our orbitals (see :mod:`ase_hamgnn.basis`) are e3nn's real spherical harmonics, whose polar
axis is ``y`` for ``l >= 2``.  Codes built on OpenMX (and the DeepH folder format, which keeps
OpenMX's order for every DFT code it converts) use the common ``z``-polar real orbitals with
positive Cartesian prefactors, ordered per ``l`` as

* ``l = 0``: ``s``
* ``l = 1``: ``px, py, pz``
* ``l = 2``: ``d(3z^2-r^2), d(x^2-y^2), dxy, dxz, dyz``
* ``l = 3``: ``f(z(5z^2-3r^2)), f(x(5z^2-r^2)), f(y(5z^2-r^2)), f(z(x^2-y^2)), fxyz,
  f(x(x^2-3y^2)), f(y(3x^2-y^2))``

Both sets are orthonormal real functions of the same ``l``, so they are related by a real
orthogonal matrix ``T`` per ``l`` with ``Y_ours = T Y_foreign``.  For ``l <= 1`` it is the
identity; for ``l >= 2`` it is *not* a signed permutation, because the polar axes differ
(e.g. our ``d(3y^2-r^2) = -1/2 d(3z^2-r^2) - sqrt(3)/2 d(x^2-y^2)``).  A block converts as

    H_ours = T_i H_foreign T_j^T,    T_atom = kron(1_spin, blockdiag_shells(T_l)),

the spin part being untouched (both layouts are spin-major per atom).  Inverse: ``T^T``.

The matrices are written out below and tested against the functions themselves, and by the
physics test ``T D_foreign(g) T^T == D_ours(g)`` for random rotations ``g``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg

__all__ = [
    "CONVENTIONS",
    "atom_transform",
    "convert_block",
    "foreign_orbitals",
    "orbital_names",
    "orbital_transform",
]

_S3 = np.sqrt(3.0) / 2.0
_F15, _F6, _F10 = np.sqrt(15.0) / 4.0, np.sqrt(6.0) / 4.0, np.sqrt(10.0) / 4.0

# Y_ours = T @ Y_openmx, rows: our orbitals (e3nn order), columns: OpenMX's orbitals.
_OPENMX_TO_OURS = {
    0: np.eye(1),
    1: np.eye(3),
    2: np.array([
        # dz2    dx2-y2  dxy  dxz  dyz
        [0.0,    0.0,    0.0, 1.0, 0.0],  # dxz
        [0.0,    0.0,    1.0, 0.0, 0.0],  # dxy
        [-0.5,   -_S3,   0.0, 0.0, 0.0],  # d(3y^2-r^2)
        [0.0,    0.0,    0.0, 0.0, 1.0],  # dyz
        [_S3,    -0.5,   0.0, 0.0, 0.0],  # d(z^2-x^2)
    ]),
    3: np.array([
        # z3    xz2    yz2    zx2-zy2 xyz   x3     y3
        [0.0,   _F15,  0.0,   0.0,    0.0,  -0.25, 0.0],
        [0.0,   0.0,   0.0,   0.0,    1.0,  0.0,   0.0],
        [0.0,   -0.25, 0.0,   0.0,    0.0,  -_F15, 0.0],
        [0.0,   0.0,   -_F6,  0.0,    0.0,  0.0,   -_F10],
        [-_F6,  0.0,   0.0,   -_F10,  0.0,  0.0,   0.0],
        [0.0,   0.0,   _F10,  0.0,    0.0,  0.0,   -_F6],
        [_F10,  0.0,   0.0,   -_F6,   0.0,  0.0,   0.0],
    ]),
}
for _t in _OPENMX_TO_OURS.values():
    _t.setflags(write=False)

#: Conventions this module converts, name -> largest supported ``l``.
CONVENTIONS = {"openmx": 3, "e3nn": 5}

_NAMES = {
    "openmx": {
        0: ("s",),
        1: ("px", "py", "pz"),
        2: ("d3z2-r2", "dx2-y2", "dxy", "dxz", "dyz"),
        3: ("fz(5z2-3r2)", "fx(5z2-r2)", "fy(5z2-r2)", "fz(x2-y2)", "fxyz", "fx(x2-3y2)",
            "fy(3x2-y2)"),
    },
}


def _check(convention: str, l: int) -> None:  # noqa: E741
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown orbital convention {convention!r}; choose one of "
                         f"{', '.join(CONVENTIONS)}")
    if not 0 <= int(l) <= CONVENTIONS[convention]:
        raise ValueError(f"the {convention} convention is defined for l = 0..."
                         f"{CONVENTIONS[convention]}, got l = {l}; such shells cannot be "
                         "converted")


def orbital_transform(convention: str, l: int) -> np.ndarray:  # noqa: E741
    """Orthogonal matrix ``T`` (read-only, ``(2l+1, 2l+1)``) with ``Y_ours = T Y_foreign``.

    Parameters
    ----------
    convention : {"openmx", "e3nn"}
        Real-orbital convention of the foreign data (``"e3nn"`` is ours: the identity).
    l : int
        Angular momentum of the shell.

    Examples
    --------
    >>> t = orbital_transform("openmx", 2)
    >>> bool(np.allclose(t @ t.T, np.eye(5)))
    True
    """
    _check(convention, l)
    if convention == "e3nn":
        out = np.eye(2 * int(l) + 1)
        out.setflags(write=False)
        return out
    return _OPENMX_TO_OURS[int(l)]


def orbital_names(convention: str, l: int) -> tuple[str, ...]:  # noqa: E741
    """Names of the orbitals of one shell in the order of ``convention``."""
    _check(convention, l)
    if convention == "e3nn":
        from ase_hamgnn.basis import Shell, orbital_labels

        return tuple(name[1:] for name in orbital_labels(Shell(int(l) + 1, int(l))))
    return _NAMES[convention][int(l)]


def atom_transform(convention: str, ls: Sequence[int], spinful: bool = True) -> np.ndarray:
    """Matrix ``T_atom`` converting one atom's orbitals (shells ``ls`` in order) to ours.

    With ``spinful`` it acts on spin-major spin-orbitals, ``kron(1_2, blockdiag(T_l))``,
    shape ``(2 n, 2 n)``; otherwise on the ``n`` spatial orbitals.
    """
    spatial = scipy.linalg.block_diag(*[orbital_transform(convention, l) for l in ls])
    return np.kron(np.eye(2), spatial) if spinful else spatial


def convert_block(block: np.ndarray, ls_i: Sequence[int], ls_j: Sequence[int],
                  convention: str, *, to_ours: bool = True) -> np.ndarray:
    """Convert one atom-pair block between ``convention`` and ours.

    Parameters
    ----------
    block : ndarray
        ``(n_i, n_j)`` (spatial) or ``(2 n_i, 2 n_j)`` (spin-major) block, eV.
    ls_i, ls_j : sequence of int
        Shell angular momenta of atoms ``i`` and ``j``, in order.
    convention : str
        Convention of the foreign side.
    to_ours : bool
        ``True``: foreign -> ours (``T_i B T_j^T``); ``False``: ours -> foreign.
    """
    b = np.asarray(block)
    n_i = sum(2 * l + 1 for l in ls_i)
    n_j = sum(2 * l + 1 for l in ls_j)
    if b.shape == (n_i, n_j):
        spinful = False
    elif b.shape == (2 * n_i, 2 * n_j):
        spinful = True
    else:
        raise ValueError(f"block of shape {b.shape} fits neither ({n_i}, {n_j}) nor "
                         f"({2 * n_i}, {2 * n_j}) for shells {list(ls_i)} x {list(ls_j)}")
    t_i = atom_transform(convention, ls_i, spinful)
    t_j = atom_transform(convention, ls_j, spinful)
    if to_ours:
        return t_i @ b @ t_j.T
    return t_i.T @ b @ t_j


def foreign_orbitals(convention: str, l: int, vectors: np.ndarray) -> np.ndarray:  # noqa: E741
    """The real orbitals of ``convention`` on unit ``vectors`` (shape ``(P, 3)``), with
    e3nn's "component" normalization (mean square 1 over the sphere); shape ``(P, 2l+1)``.

    This is the definition the matrices of :func:`orbital_transform` are tested against.
    """
    _check(convention, l)
    v = np.asarray(vectors, dtype=np.float64)
    if convention == "e3nn":
        from ase_hamgnn.symmetry import real_harmonics

        return real_harmonics(int(l), v)
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    l = int(l)  # noqa: E741
    if l == 0:
        cols = [np.ones_like(x)]
    elif l == 1:
        cols = [np.sqrt(3.0) * x, np.sqrt(3.0) * y, np.sqrt(3.0) * z]
    elif l == 2:
        c = np.sqrt(15.0)
        cols = [np.sqrt(5.0) / 2 * (3 * z**2 - 1), c / 2 * (x**2 - y**2), c * x * y, c * x * z,
                c * y * z]
    else:
        a, b = np.sqrt(7.0) / 2, np.sqrt(42.0) / 4
        c, d = np.sqrt(105.0) / 2, np.sqrt(70.0) / 4
        cols = [a * z * (5 * z**2 - 3), b * x * (5 * z**2 - 1), b * y * (5 * z**2 - 1),
                c * z * (x**2 - y**2), 2 * c * x * y * z, d * x * (x**2 - 3 * y**2),
                d * y * (3 * x**2 - y**2)]
    return np.stack(cols, axis=1)
