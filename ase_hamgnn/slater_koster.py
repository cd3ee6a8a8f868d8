"""Two-centre Slater–Koster blocks between shells, in e3nn's real-orbital order.

A two-centre integral between a shell of angular momentum ``l1`` on atom ``i`` and a shell
``l2`` on atom ``j`` at bond vector ``d = r_j - r_i`` depends on ``min(l1, l2) + 1``
numbers, the bond integrals ``V_sigma, V_pi, V_delta`` (Slater & Koster, Phys. Rev. 94, 1498
(1954)).  Here the block is written in the equivariant form

    E^{l1 l2}(d) = sum_L c_L  sum_M  C^{l1 l2 L}_{m1 m2 M}  Y_L^M(d / |d|),

with e3nn's real Clebsch–Gordan tensor ``C`` (``o3.wigner_3j``) and real spherical
harmonics ``Y`` (component normalisation), summed over the ``min(l1, l2) + 1`` values of
``L`` in ``|l1 - l2| .. l1 + l2`` with parity ``(-1)^L = (-1)^(l1 + l2)``.  The coefficients
``c_L`` are solved once per ``(l1, l2)`` so that for a bond along e3nn's polar axis (``y``)
the block is diagonal in ``m`` with the entries ``V_|m|``.  The form is therefore exactly
covariant,

    E^{l1 l2}(g d) = D^{l1}(g) E^{l1 l2}(d) D^{l2}(g)^T     for every g in O(3),

and the usual parity relation ``E^{l2 l1}(d) = (-1)^(l1 + l2) E^{l1 l2}(d)^T`` holds with
the same ``V`` (e.g. ``E_{x,s} = -l V_sp_sigma`` where ``E_{s,x} = l V_sp_sigma``).
Conventions: the bond integrals are the textbook ones (``V_sp_sigma`` with the s orbital on
one atom and the p orbital on the other, whichever is ``i``), signs as in Harrison's
*Electronic Structure and the Properties of Solids* (e.g. ``V_ss_sigma < 0``,
``V_pp_sigma > 0``, ``V_pd_sigma < 0`` for bonding).  Tested against the textbook table for
``l <= 2``.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from e3nn import o3

__all__ = ["CHANNEL_NAMES", "MAX_L", "n_channels", "sk_basis", "sk_block", "unit_vectors"]

#: Largest angular momentum supported (and tested): d shells.
MAX_L = 2

#: Names of the bond channels ``|m| = 0, 1, 2``.
CHANNEL_NAMES = ("sigma", "pi", "delta")


def _check_l(l1: int, l2: int) -> None:
    for l in (l1, l2):  # noqa: E741
        if not isinstance(l, (int, np.integer)) or not 0 <= l <= MAX_L:
            raise ValueError(f"angular momenta must be integers in 0..{MAX_L}, got {l1}, {l2}")


def n_channels(l1: int, l2: int) -> int:
    """Number of bond integrals (sigma, pi, delta, ...) between shells ``l1`` and ``l2``."""
    _check_l(l1, l2)
    return min(l1, l2) + 1


def _harmonics(unit: np.ndarray, lmax: int) -> np.ndarray:
    """e3nn real spherical harmonics ``l = 0..lmax`` concatenated, (E, (lmax + 1)^2)."""
    vec = torch.as_tensor(unit, dtype=torch.float64)
    ls = list(range(lmax + 1))
    return o3.spherical_harmonics(ls, vec, normalize=False, normalization="component").numpy()


@cache
def _channel_tensor(l1: int, l2: int) -> np.ndarray:
    """Tensor ``K`` (n_channels, 2 l1 + 1, 2 l2 + 1, (l1 + l2 + 1)^2) with
    ``G_ch(u)[a, b] = sum_k K[ch, a, b, k] Y_k(u)`` the block of unit bond integral ``ch``."""
    ls = [L for L in range(abs(l1 - l2), l1 + l2 + 1) if (L - l1 - l2) % 2 == 0]
    nch = min(l1, l2) + 1
    lmax = l1 + l2
    polar = _harmonics(np.array([[0.0, 1.0, 0.0]]), lmax)[0]
    cg = [o3.wigner_3j(l1, l2, L, dtype=torch.float64).numpy() for L in ls]
    # B_L(y-hat)[a, b]: the polar-axis block of each L; T[m, L] its channel-m diagonal entry.
    polar_blocks = [np.einsum("abM,M->ab", c, polar[L * L:(L + 1) * (L + 1)])
                    for c, L in zip(cg, ls, strict=True)]
    t = np.array([[b[l1 + m, l2 + m] for b in polar_blocks] for m in range(nch)])
    sign = (-1) ** (l1 + l2) if l1 > l2 else 1
    coeff = sign * np.linalg.inv(t)  # coeff[L, ch]
    k = np.zeros((nch, 2 * l1 + 1, 2 * l2 + 1, (lmax + 1) ** 2))
    for n, (c, L) in enumerate(zip(cg, ls, strict=True)):
        k[:, :, :, L * L:(L + 1) * (L + 1)] += np.einsum("c,abM->cabM", coeff[n], c)
    # Self-check of the polar-axis form: diagonal in m, channel |m| on both m and -m.
    ref = np.einsum("cabk,k->cab", k, polar)
    for ch in range(nch):
        want = np.zeros((2 * l1 + 1, 2 * l2 + 1))
        for m in (-ch, ch):
            want[l1 + m, l2 + m] = sign
        if not np.allclose(ref[ch], want, atol=1e-12, rtol=0):
            raise RuntimeError(  # pragma: no cover - guards against a change of e3nn convention
                f"Slater-Koster channel construction failed for l1={l1}, l2={l2}: e3nn's real "
                "harmonics do not have the polar axis y assumed by ase_hamgnn.basis"
            )
    k.setflags(write=False)
    return k


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """Bond vectors ``(E, 3)`` (Å) normalised to unit length, float64.

    Raises
    ------
    ValueError
        If a vector is shorter than 1e-8 Å or not finite.
    """
    d = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    norm = np.linalg.norm(d, axis=1)
    if not np.isfinite(norm).all() or (norm < 1e-8).any():
        raise ValueError("bond vectors must be finite and non-zero (two atoms on one site?)")
    return d / norm[:, None]


def sk_basis(l1: int, l2: int, vectors: np.ndarray) -> np.ndarray:
    """Blocks of unit bond integrals, one per channel.

    Parameters
    ----------
    l1, l2 : int
        Angular momenta of the shell on atom ``i`` (rows) and atom ``j`` (columns), 0..2.
    vectors : (E, 3) array
        Bond vectors ``d = r_j - r_i`` in Å (only the direction matters).

    Returns
    -------
    (E, n_channels, 2 l1 + 1, 2 l2 + 1) float64 array ``G``; the block with bond integrals
    ``V`` is ``sum_ch V[ch] G[:, ch]``.
    """
    _check_l(l1, l2)
    unit = unit_vectors(vectors)
    k = _channel_tensor(l1, l2)
    y = _harmonics(unit, l1 + l2)
    g = y @ k.reshape(-1, k.shape[-1]).T
    return g.reshape((len(unit),) + k.shape[:3])


def sk_block(l1: int, l2: int, vectors: np.ndarray, integrals: np.ndarray) -> np.ndarray:
    """Slater–Koster hopping (or overlap) blocks between shells ``l1`` and ``l2``.

    Parameters
    ----------
    l1, l2 : int
        Angular momenta of the shells on atom ``i`` (rows) and ``j`` (columns), 0..2.
    vectors : (E, 3) array
        Bond vectors ``d = r_j - r_i``, Å.
    integrals : (n_channels,) or (E, n_channels) array
        Bond integrals ``(V_sigma, V_pi, V_delta)[:min(l1, l2) + 1]`` in eV (or
        dimensionless for overlaps), per bond or shared.

    Returns
    -------
    (E, 2 l1 + 1, 2 l2 + 1) float64 array of blocks ``E_{m1, m2}(d)``, orbitals in e3nn order.

    Examples
    --------
    >>> import numpy as np
    >>> d = np.array([[1.0, 0.0, 0.0]])
    >>> sk_block(0, 1, d, [-1.5])          # E_{s,(x,y,z)} = (l, m, n) V_sp_sigma
    array([[[-1.5,  0. ,  0. ]]])
    """
    g = sk_basis(l1, l2, vectors)
    v = np.asarray(integrals, dtype=np.float64)
    nch = g.shape[1]
    if v.shape == (nch,):
        return np.einsum("c,ecab->eab", v, g)
    if v.shape == (len(g), nch):
        return np.einsum("ec,ecab->eab", v, g)
    raise ValueError(
        f"integrals for l1={l1}, l2={l2} need shape ({nch},) or ({len(g)}, {nch}), got {v.shape}"
    )
