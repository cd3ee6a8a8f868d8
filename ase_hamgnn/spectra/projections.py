"""Spin and orbital projections of eigenstates: the one place where the spin density of a
state is computed.

For an S-orthonormal state ``c`` of ``H(k) c = E S(k) c`` the Mulliken charge on a spatial
orbital ``mu`` is ``Re[c_mu,up^* (S c)_mu,up + c_mu,dn^* (S c)_mu,dn]`` and its spin is the same
sum with a Pauli matrix between the spin components.  Summed over orbitals they are 1 and
``<sigma>`` (:meth:`ase_hamgnn.TBHamiltonian.spin_expectation`); the projected DOS, the band
structure's local spin and the state maps use the per-orbital values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["axis_vector", "local_axes", "mulliken_charge_spin", "orbital_axes",
           "orbital_spin_density"]


def axis_vector(axis: Any) -> np.ndarray:
    """Unit vector of ``'x'``, ``'y'``, ``'z'`` or a 3-vector.

    Examples
    --------
    >>> axis_vector("y").tolist(), axis_vector([0, 3, 4]).tolist()
    ([0.0, 1.0, 0.0], [0.0, 0.6, 0.8])
    """
    if isinstance(axis, str):
        try:
            return np.eye(3)["xyz".index(axis)]
        except ValueError:
            raise ValueError(f"axis must be 'x', 'y', 'z' or a 3-vector, got {axis!r}") from None
    v = np.asarray(axis, dtype=np.float64).reshape(3)
    norm = np.linalg.norm(v)
    if norm == 0:
        raise ValueError("axis vector must be non-zero")
    return v / norm


def local_axes(geometry) -> np.ndarray:
    """Unit spin-quantization axis of every atom, shape (N, 3): the direction of its moment;
    an atom without a moment takes the axis of the nearest atom with one (periodic images
    included).

    Raises
    ------
    ValueError
        If no atom has a moment.
    """
    mom = np.asarray(geometry.moments, dtype=np.float64)
    norm = np.linalg.norm(mom, axis=1)
    has = norm > 1e-8
    if not has.any():
        raise ValueError("spin_axis='local' needs magnetic moments; these atoms have none "
                         "(use a global axis such as 'z')")
    axes = np.zeros_like(mom)
    axes[has] = mom[has] / norm[has, None]
    if has.all():
        return axes
    cell = geometry.cell
    frac = geometry.scaled_positions.copy()
    frac[:, geometry.pbc] %= 1.0
    pos = frac @ cell
    ranges = [(-1, 0, 1) if p else (0,) for p in geometry.pbc]
    shifts = np.array([(a, b, c) for a in ranges[0] for b in ranges[1] for c in ranges[2]],
                      dtype=np.float64) @ cell
    targets = (pos[has][:, None, :] + shifts[None]).reshape(-1, 3)  # (n_mag * n_img, 3)
    owner = np.repeat(np.flatnonzero(has), len(shifts))
    lonely = np.flatnonzero(~has)
    for start in range(0, len(lonely), 256):
        chunk = lonely[start:start + 256]
        d = np.linalg.norm(pos[chunk][:, None, :] - targets[None], axis=2)
        axes[chunk] = axes[owner[np.argmin(d, axis=1)]]
    return axes


def orbital_axes(ham, spin_axis: Any) -> np.ndarray | None:
    """Spin axis per spatial orbital (n_orb, 3) for ``spin_axis`` (``'local'``, ``'x'``,
    ``'y'``, ``'z'`` or a 3-vector); ``None`` for ``None``."""
    if spin_axis is None:
        return None
    counts = np.diff(ham.offsets) // 2
    if isinstance(spin_axis, str) and spin_axis == "local":
        return np.repeat(local_axes(ham.geometry), counts, axis=0)
    return np.broadcast_to(axis_vector(spin_axis), (int(counts.sum()), 3))


def orbital_spin_density(ham, k: Any, states: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mulliken charge ``q`` (n_orb, n_states) and spin ``s`` (3, n_orb, n_states) of the
    columns of ``states`` on every spatial orbital at ``k`` (``S(k)`` enters when the basis is
    non-orthogonal)."""
    c = np.asarray(states)
    if c.ndim == 1:
        c = c[:, None]
    sc = c if ham.orthogonal else ham.sk(k) @ c
    up, dn = ham.spin_indices
    cu, cd, su, sd = c[up].conj(), c[dn].conj(), sc[up], sc[dn]
    q = np.real(cu * su + cd * sd)
    s = np.stack([np.real(cu * sd + cd * su), np.real(-1j * cu * sd + 1j * cd * su),
                  np.real(cu * su - cd * sd)])
    return q, s


def mulliken_charge_spin(ham, k: Any, states: Any, axes: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """Mulliken charge and spin of ``states`` (columns) on every spatial orbital at ``k``.

    Returns ``q`` (n_orb, n_states), summing to 1 over orbitals for S-normalized states, and,
    with ``axes`` ((n_orb, 3) unit vectors), the spin ``m = <sigma> . axis`` per orbital
    (same shape), else ``None``.
    """
    q, s = orbital_spin_density(ham, k, states)
    if axes is None:
        return q, None
    return q, np.einsum("ai,iab->ab", np.asarray(axes, dtype=np.float64), s)
