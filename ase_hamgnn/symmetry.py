"""Symmetry operators of the physics contract: orbital Wigner matrices, SU(2) spin rotations,
inversion parities and time reversal, and their action on whole Hamiltonians.

Layout reminder (see :mod:`ase_hamgnn.basis`): an atom's spin-orbitals are spin-major, so the
operator written ``D (x) U`` in the design notes (orbital part ``D``, spin part ``U``) is the
matrix ``numpy.kron(U, D)`` on one atom, and the time-reversal operator
``Theta = 1_orb (x) i sigma_y`` is ``numpy.kron(i sigma_y, 1)`` followed by complex
conjugation.

A general element ``g`` of O(3) acts on orbitals with e3nn's ``D^l(g)`` (which carries the
parity ``(-1)^l`` when ``det g = -1``) and on spins with the SU(2) matrix of the proper part
``det(g) g``: magnetic moments and spins are axial vectors.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch
from ase import Atoms
from e3nn import o3

from ase_hamgnn.basis import OrbitalBasis

__all__ = [
    "PAULI",
    "check_rotation",
    "orbital_rotation",
    "random_rotation",
    "spin_orbital_rotation",
    "su2_from_rotation",
    "time_reversal_operator",
    "transform_atoms",
    "transform_hamiltonian",
    "wigner_d",
]

#: Pauli matrices (sigma_x, sigma_y, sigma_z), complex128, shape (3, 2, 2).
PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)
PAULI.setflags(write=False)

_ISIGMA_Y = np.array([[0.0, 1.0], [-1.0, 0.0]])


def check_rotation(rotation: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Return ``rotation`` as a float64 (3, 3) array after checking that it is orthogonal.

    Raises
    ------
    ValueError
        If the matrix is not 3x3 or not orthogonal to ``tol``.
    """
    g = np.asarray(rotation, dtype=np.float64)
    if g.shape != (3, 3):
        raise ValueError(f"a rotation must be a 3x3 matrix, got shape {g.shape}")
    err = np.abs(g @ g.T - np.eye(3)).max()
    if err > tol:
        raise ValueError(
            f"matrix is not orthogonal (|g g^T - 1| = {err:.2e}); pass a rotation or "
            "rotoinversion, e.g. from scipy.spatial.transform.Rotation.as_matrix()"
        )
    return g


@cache
def _sample_points(l: int) -> np.ndarray:  # noqa: E741
    """Fixed, well-spread unit vectors (Fibonacci sphere) for fitting ``D^l``."""
    n = 4 * (2 * l + 1) + 8
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def real_harmonics(l: int, vectors: np.ndarray) -> np.ndarray:  # noqa: E741
    vec = torch.as_tensor(vectors, dtype=torch.float64)
    return o3.spherical_harmonics(l, vec, normalize=True, normalization="component").numpy()


def wigner_d(l: int, rotation: np.ndarray) -> np.ndarray:  # noqa: E741
    """Real Wigner matrix ``D^l(g)`` of e3nn's real spherical harmonics, float64.

    ``Y_l(g r) = D^l(g) Y_l(r)`` for every unit vector ``r``; for an improper ``g`` the parity
    ``(-1)^l`` is included, matching e3nn's ``Irrep(l, (-1)**l).D_from_matrix``.  The matrix is
    obtained by a least-squares fit of e3nn's harmonics on fixed points, which is exact to
    machine precision (e3nn's Euler-angle route loses about 1e-7 in float64).

    Examples
    --------
    >>> import numpy as np
    >>> q = random_rotation(np.random.default_rng(0))
    >>> np.allclose(wigner_d(1, q), q)
    True
    """
    g = check_rotation(rotation)
    det = np.linalg.det(g)
    proper = g * det
    pts = _sample_points(l)
    y = real_harmonics(l, pts)
    y_rot = real_harmonics(l, pts @ proper.T)
    # y_rot = y D^T  ->  D^T = lstsq(y, y_rot)
    d = np.linalg.lstsq(y, y_rot, rcond=None)[0].T
    if det < 0 and l % 2:
        d = -d
    return d


def orbital_rotation(basis: OrbitalBasis, element: str | int, rotation: np.ndarray) -> np.ndarray:
    """Block-diagonal Wigner matrix of all spatial orbitals of ``element``, float64."""
    return scipy.linalg.block_diag(*[wigner_d(s.l, rotation) for s in basis.shells(element)])


def su2_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """SU(2) matrix ``U = exp(-i theta n.sigma / 2)`` of the proper part of ``rotation``.

    ``U (m . sigma) U^dagger = (g' m) . sigma`` with ``g' = det(g) g``; ``U`` is defined up to
    sign (both signs are valid spin rotations and leave Hamiltonians unchanged).
    """
    g = check_rotation(rotation)
    q = g * np.linalg.det(g)
    # Quaternion (w, x, y, z) of q, Shepperd's method (stable for all angles).
    tr = np.trace(q)
    cands = np.array([tr, q[0, 0], q[1, 1], q[2, 2]])
    k = int(np.argmax(cands))
    if k == 0:
        w = 0.5 * np.sqrt(1 + tr)
        x, y, z = (
            (q[2, 1] - q[1, 2]) / (4 * w),
            (q[0, 2] - q[2, 0]) / (4 * w),
            (q[1, 0] - q[0, 1]) / (4 * w),
        )
    elif k == 1:
        x = 0.5 * np.sqrt(1 + 2 * q[0, 0] - tr)
        w, y, z = (
            (q[2, 1] - q[1, 2]) / (4 * x),
            (q[0, 1] + q[1, 0]) / (4 * x),
            (q[0, 2] + q[2, 0]) / (4 * x),
        )
    elif k == 2:
        y = 0.5 * np.sqrt(1 + 2 * q[1, 1] - tr)
        w, x, z = (
            (q[0, 2] - q[2, 0]) / (4 * y),
            (q[0, 1] + q[1, 0]) / (4 * y),
            (q[1, 2] + q[2, 1]) / (4 * y),
        )
    else:
        z = 0.5 * np.sqrt(1 + 2 * q[2, 2] - tr)
        w, x, y = (
            (q[1, 0] - q[0, 1]) / (4 * z),
            (q[0, 2] + q[2, 0]) / (4 * z),
            (q[1, 2] + q[2, 1]) / (4 * z),
        )
    return w * np.eye(2) - 1j * (x * PAULI[0] + y * PAULI[1] + z * PAULI[2])


def spin_orbital_rotation(
    basis: OrbitalBasis, element: str | int, rotation: np.ndarray
) -> np.ndarray:
    """Operator ``D (x) U`` on the spin-major spin-orbitals of one atom: ``kron(U, D)``."""
    return np.kron(su2_from_rotation(rotation), orbital_rotation(basis, element, rotation))


def time_reversal_operator(n_orbitals: int) -> np.ndarray:
    """Unitary part ``kron(i sigma_y, 1_n)`` of ``Theta = (1 (x) i sigma_y) K`` on one atom with
    ``n_orbitals`` spatial orbitals; real, and ``Theta^2 = -1``."""
    return np.kron(_ISIGMA_Y, np.eye(n_orbitals))


def random_rotation(
    rng: np.random.Generator | int | None = None, proper: bool = True
) -> np.ndarray:
    """Haar-random rotation matrix (``proper=False`` multiplies by -1 with probability 1/2)."""
    rng = np.random.default_rng(rng)
    a = rng.normal(size=(3, 3))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if not proper and rng.random() < 0.5:
        q = -q
    return q


def transform_atoms(
    atoms: Atoms, rotation: np.ndarray | None = None, time_reversal: bool = False
) -> Atoms:
    """Apply ``g`` in O(3) (and optionally time reversal) to positions, cell and moments.

    Positions and cell vectors become ``g r``; moments, being axial, become ``det(g) g M``;
    time reversal flips the moments.  Fractional coordinates are unchanged, so lattice
    vectors ``R`` keep their integer labels.  Moments are read from ``initial_magmoms``
    ((N, 3), or (N,) meaning along z) and written back as (N, 3).
    """
    from ase_hamgnn.geometry import read_moments

    out = atoms.copy()
    moments = read_moments(atoms)
    if rotation is not None:
        g = check_rotation(rotation)
        out.set_cell(atoms.cell.array @ g.T, scale_atoms=False)
        out.positions = atoms.positions @ g.T
        moments = np.linalg.det(g) * moments @ g.T
    if time_reversal:
        moments = -moments
    out.set_initial_magnetic_moments(moments)
    return out


def transform_hamiltonian(ham, rotation: np.ndarray | None = None, time_reversal: bool = False):
    """Apply ``g`` in O(3) and/or time reversal to a :class:`~ase_hamgnn.TBHamiltonian`.

    Every block becomes ``H_ij(R) -> T_i H_ij(R) T_j^dagger`` with ``T = kron(U(g), D(g))`` on
    each atom, then (time reversal) ``H -> Theta H^* Theta^dagger``; the geometry is moved with
    :func:`transform_atoms`.  This is the oracle of the equivariance tests: a symmetric
    predictor satisfies ``predict(transform_atoms(a, g, t)) == transform_hamiltonian(predict(a),
    g, t)``.
    """
    from ase_hamgnn.hamiltonian import TBHamiltonian

    geometry = ham.geometry
    numbers = geometry.numbers
    ops = []
    if rotation is not None:
        per_element = {z: spin_orbital_rotation(ham.basis, z, rotation) for z in np.unique(numbers)}
        ops.append(sp.block_diag([per_element[z] for z in numbers], format="csr"))
    theta = None
    if time_reversal:
        per_element = {
            z: time_reversal_operator(ham.basis.n_orbitals(z)) for z in np.unique(numbers)
        }
        theta = sp.block_diag([per_element[z] for z in numbers], format="csr")

    def apply(mat: sp.csr_matrix) -> sp.csr_matrix:
        for t in ops:
            mat = t @ mat @ t.conj().T
        if theta is not None:
            mat = theta @ mat.conj() @ theta.T
        return sp.csr_matrix(mat)

    new_geometry = geometry.transformed(rotation, time_reversal)
    h = {r: apply(m) for r, m in ham.h_r.items()}
    s = None if ham.s_r is None else {r: apply(m) for r, m in ham.s_r.items()}
    return TBHamiltonian(ham.basis, new_geometry, h, s)
