"""Two-centre baseline of the spin-independent bond blocks ``h0_ij`` (``ModelConfig.two_centre``).

Slater and Koster's two-centre approximation writes the block between a shell ``l_a`` on atom
``i`` and a shell ``l_b`` on atom ``j`` as a function of the bond vector ``d = r_j - r_i`` and
the two elements alone.  In equivariant form (see :mod:`ase_hamgnn.slater_koster`):

    E^{ab}(d) = Σ_L f^{ab}_L(|d|) Σ_M C^{l_a l_b L}_{m_a m_b M} Y_L^M(d / |d|),

summed over the ``min(l_a, l_b) + 1`` values of ``L`` in ``|l_a - l_b| .. l_a + l_b`` with
``(-1)^L = (-1)^(l_a + l_b)`` (``Y_L`` of one vector has parity ``(-1)^L``; the block has parity
``(-1)^(l_a + l_b)``), i.e. the σ, π, δ channels: s-s ``L = 0``; s-p ``1``; p-p ``0, 2``;
s-d ``2``; p-d ``1, 3``; d-d ``0, 2, 4``.  ``C`` is the network's own ``h0`` decoder
(:func:`~ase_hamgnn.model.decoders.pair_decoders`, e3nn's ``wigner_3j``) and ``Y`` e3nn's
real spherical harmonics with the network's ``"component"`` normalisation.  Each radial
function is linear in learnable coefficients on the network's radial basis (Bessel functions
times the smooth cutoff envelope, :class:`~ase_hamgnn.model.layers.BesselBasis`), so the
block vanishes smoothly at the cutoff:

    f^{ab}_L(r) = Σ_k c^{ab}_{L k} B_k(r).

Symmetries.  Rotations and inversion act on ``Y_L(d̂)`` as on the ``L`` irrep of the block, so
``E(g d) = D^{l_a}(g) E(d) D^{l_b}(g)ᵀ`` for every ``g`` in O(3).  The term is real and
independent of the moments: time-reversal even and spin-independent, as ``h0`` must be.
Hermiticity ``h0_ji(-d) = h0_ij(d)ᵀ`` holds by tying the coefficients of the two orientations
of a pair: e3nn's Clebsch–Gordan tensors satisfy ``C^{l_b l_a L}_{m_b m_a M} =
(-1)^(l_a + l_b + L) C^{l_a l_b L}_{m_a m_b M}`` and ``Y_L(-d̂) = (-1)^L Y_L(d̂)``, so the block
of shells ``(b, a)`` from ``j`` to ``i`` equals the transpose of the ``(a, b)`` block from ``i``
to ``j`` when its coefficients are those of ``(a, b)`` times ``(-1)^(l_a + l_b)`` (the
textbook ``E_{x,s} = -l V_spσ`` where ``E_{s,x} = l V_spσ``).  One coefficient set is stored
per unordered pair of (element, shell); its other orientation is derived.

The baseline is linear in its coefficients, so :func:`fit_two_centre` fits them by linear least
squares on a training set before training starts (normal equations per element pair and
shell pair, float64, small ridge); the network then learns the residual.

Moment-coupled bonds (``coupled=True``, the model's ``bond_moment_term``).  A hopping that
depends on the angle between the moments of its two atoms (double exchange) is, to first
order, ``E(d) + (M_i·M_j / M_max²) E'(d)`` with a second two-centre function ``E'`` of the
same form (:attr:`TwoCentreBaseline.coupled_coefficients`).  ``M_i·M_j`` is invariant under
rotations, inversion and time reversal and symmetric in ``i, j``, so every symmetry above
holds; both functions are fitted together (the design matrix ``[Φ, (M_i·M_j / M_max²) Φ]``).
The product multiplies ``E'`` per bond where the network assembles its blocks, so ``E'`` itself
is a function of the bond vector alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from e3nn import o3
from torch import nn

from ase_hamgnn import keys as K
from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.model.decoders import pair_decoders
from ase_hamgnn.model.fused import restore_masters
from ase_hamgnn.model.layers import BesselBasis

__all__ = ["TwoCentreBaseline", "TwoCentreFit", "fit_two_centre", "residual_scales",
           "two_centre_ls"]


def two_centre_ls(la: int, lb: int) -> list[int]:
    """The ``L`` of the two-centre channels between shells ``la`` and ``lb``: ``|la - lb| ..
    la + lb`` with ``(-1)^L = (-1)^(la + lb)``, one per σ, π, δ, ... bond integral.

    >>> two_centre_ls(1, 1), two_centre_ls(1, 2), two_centre_ls(2, 2)
    ([0, 2], [1, 3], [0, 2, 4])
    """
    return [L for L in range(abs(la - lb), la + lb + 1) if (L - la - lb) % 2 == 0]


def _key(zi: int, zj: int) -> str:
    return f"{zi}_{zj}"


class TwoCentreBaseline(nn.Module):
    """Learnable two-centre term of the bond blocks ``h0_ij`` (see the module docstring).

    Parameters
    ----------
    basis : the model's orbital basis.
    species : atomic numbers in the network's species order.
    cutoff : graph cutoff, Å (the radial basis vanishes there).
    n_radial : Bessel functions per channel.
    coupled : also a moment-coupled function ``E'`` (see the module docstring).
    moment_max : ``M_max`` of the product ``M_i·M_j / M_max²`` (μB).

    Attributes
    ----------
    coefficients : ``ParameterDict`` with one ``(n_channels, n_radial)`` tensor (eV·Å^1/2, the
        Bessel functions carry Å^-3/2) per unordered element pair ``"zi_zj"`` (``zi`` first in
        species order); :attr:`channels` names the rows.
    channels : per key, the ``(shell a of zi, shell b of zj, L)`` of each row; for ``zi == zj``
        only ``a <= b`` (the other orientation is derived).
    coupled_coefficients : the same for ``E'`` (empty unless ``coupled``).
    """

    def __init__(self, basis: OrbitalBasis, species: Sequence[int], cutoff: float,
                 n_radial: int, coupled: bool = False, moment_max: float = 4.0) -> None:
        super().__init__()
        self.basis = basis
        self.coupled = bool(coupled)
        self.moment_max = float(moment_max)
        self.species = [int(z) for z in species]
        self.radial = BesselBasis(cutoff, n_radial)
        self.n_radial = int(n_radial)
        self.lmax = 2 * max(s.l for z in self.species for s in basis.shells(z))
        self.irreps_sh = o3.Irreps.spherical_harmonics(self.lmax)
        self.channels: dict[str, list[tuple[int, int, int]]] = {}
        self.coefficients = nn.ParameterDict()
        self.coupled_coefficients = nn.ParameterDict()
        for p, zi in enumerate(self.species):
            for q, zj in enumerate(self.species[p:], start=p):
                chans = [(a, b, L)
                         for a, sa in enumerate(basis.shells(zi))
                         for b, sb in enumerate(basis.shells(zj)) if p < q or a <= b
                         for L in two_centre_ls(sa.l, sb.l)]
                self.channels[_key(zi, zj)] = chans
                self.coefficients[_key(zi, zj)] = nn.Parameter(torch.zeros(len(chans), n_radial))
                if self.coupled:
                    self.coupled_coefficients[_key(zi, zj)] = nn.Parameter(
                        torch.zeros(len(chans), n_radial))
        # per directed pair: which stored key, and for each component of the h0 decoder's
        # irreps the row of that key (-1: a slot of wrong parity), its sign and its Y index
        self.stored_key: dict[str, str] = {}
        self._masters: dict[str, np.ndarray] = {}
        for p, zi in enumerate(self.species):
            for q, zj in enumerate(self.species):
                canon = _key(*sorted((zi, zj), key=self.species.index))
                rows = {c: n for n, c in enumerate(self.channels[canon])}
                chan, sign, sh = [], [], []
                for a, sa in enumerate(basis.shells(zi)):
                    for b, sb in enumerate(basis.shells(zj)):
                        forward = (p, a) <= (q, b)
                        for L in range(abs(sa.l - sb.l), sa.l + sb.l + 1):
                            row = rows.get((a, b, L) if forward else (b, a, L), -1)
                            s = 0.0 if row < 0 else (1.0 if forward else (-1.0) ** (sa.l + sb.l))
                            chan += [max(row, 0)] * (2 * L + 1)
                            sign += [s] * (2 * L + 1)
                            sh += range(L * L, (L + 1) * (L + 1))
                key = _key(zi, zj)
                self.stored_key[key] = canon
                self.register_buffer(f"chan_{key}", torch.tensor(chan), persistent=False)
                self.register_buffer(f"sh_{key}", torch.tensor(sh), persistent=False)
                self._constant(f"sign_{key}", np.array(sign))
                self._constant(f"dec_{key}", pair_decoders(basis, zi, zj)[0].matrix)
                n_ij = basis.n_orbitals(zi) * basis.n_orbitals(zj)
                self.register_buffer(f"scale_{key}", torch.ones(n_ij))

    def _constant(self, name: str, value: np.ndarray) -> None:
        self._masters[name] = np.asarray(value, dtype=np.float64)
        self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32), persistent=False)

    def refresh(self, dtype: torch.dtype) -> TwoCentreBaseline:
        """Re-create the constant tensors from float64 masters in ``dtype`` (as
        :meth:`HamGNNPP.refresh_constants` does for the network's)."""
        restore_masters(self, self._masters, dtype)
        self.radial.reset_frequencies()
        return self

    def _geometry(self, vec: torch.Tensor, dtype: torch.dtype
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        vec = vec.to(dtype)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True,
                                    normalization="component")
        return sh, self.radial(torch.linalg.norm(vec, dim=1))

    def blocks(self, zi: int, zj: int, vec: torch.Tensor, coupled: bool = False) -> torch.Tensor:
        """Flattened ``(E, n_i n_j)`` blocks (eV) of bonds ``vec`` (E, 3), Å, from an atom of
        element ``zi`` to one of ``zj``: ``E(d)``, or with ``coupled`` the moment-coupled
        ``E'(d)`` (to be multiplied by ``M_i·M_j / M_max²``)."""
        key = _key(zi, zj)
        coef = (self.coupled_coefficients if coupled else self.coefficients)[self.stored_key[key]]
        sh, radial = self._geometry(vec, coef.dtype)
        f = radial @ coef.T  # (E, channels)
        x = f[:, getattr(self, f"chan_{key}")] * sh[:, getattr(self, f"sh_{key}")]
        return (x * getattr(self, f"sign_{key}")) @ getattr(self, f"dec_{key}")

    def design(self, zi: int, zj: int, vec: torch.Tensor) -> torch.Tensor:
        """The linear map of the coefficients to the blocks: ``(E, n_i n_j, n_channels
        n_radial)`` with ``blocks(zi, zj, vec) == design(...) @ coefficients[key].ravel()``,
        ``key = stored_key["zi_zj"]``; float64."""
        key = _key(zi, zj)
        n_ch = len(self.channels[self.stored_key[key]])
        sh, radial = self._geometry(vec, torch.float64)
        sign = torch.as_tensor(self._masters[f"sign_{key}"])
        dec = torch.as_tensor(self._masters[f"dec_{key}"])
        onehot = torch.nn.functional.one_hot(getattr(self, f"chan_{key}").cpu(), n_ch).double()
        g = sh.cpu()[:, getattr(self, f"sh_{key}").cpu()] * sign  # (E, D)
        per_channel = torch.einsum("em,mc,mn->enc", g, onehot, dec)
        return torch.einsum("enc,ek->enck", per_channel, radial.cpu()).reshape(
            len(vec), dec.shape[1], n_ch * self.n_radial)

    def scale(self, zi: int, zj: int) -> torch.Tensor:
        """Fixed scale ``(n_i n_j,)`` of the network's flattened ``h0`` output for bonds from
        ``zi`` to ``zj`` (one value per pair of shells; 1 unless set by
        :meth:`set_scales`)."""
        return getattr(self, f"scale_{_key(zi, zj)}")

    def set_scales(self, values: dict[str, np.ndarray]) -> None:
        """Set the per-block output scales (per directed key ``"zi_zj"``, ``(n_i, n_j)``)."""
        for key, value in values.items():
            buf = getattr(self, f"scale_{key}")
            buf.copy_(torch.as_tensor(np.asarray(value).ravel(), dtype=buf.dtype))

    def products(self, moments: torch.Tensor, edge_index) -> torch.Tensor:
        """``M_i·M_j / M_max²`` of the edges ``edge_index`` (2, E), moments (N, 3) in μB."""
        src, dst = edge_index
        return (moments[src] * moments[dst]).sum(1) / self.moment_max**2

    def set_coefficients(self, values: dict[str, np.ndarray]) -> None:
        """Set :attr:`coefficients` (per stored key, ``(n_channels, n_radial)``), and with
        ``coupled`` also :attr:`coupled_coefficients` (then ``(2, n_channels, n_radial)``, as
        :meth:`TwoCentreFit.solve` returns them)."""
        for key, value in values.items():
            value = np.asarray(value)
            params = [self.coefficients[key]]
            if self.coupled:
                params.append(self.coupled_coefficients[key])
            value = value.reshape(len(params), *params[0].shape)
            with torch.no_grad():
                for param, v in zip(params, value, strict=True):
                    param.copy_(torch.as_tensor(v, dtype=param.dtype))


class TwoCentreFit:
    """Normal equations of the least-squares fit of a :class:`TwoCentreBaseline` to bond blocks
    ``h0``, accumulated in float64 one structure at a time (:meth:`add`), solved by
    :meth:`solve`."""

    def __init__(self, baseline: TwoCentreBaseline) -> None:
        self.baseline = baseline
        parts = 2 if baseline.coupled else 1
        size = {k: parts * len(c) * baseline.n_radial for k, c in baseline.channels.items()}
        self.gram = {k: np.zeros((n, n)) for k, n in size.items()}
        self.rhs = {k: np.zeros(n) for k, n in size.items()}
        self.n_blocks = 0

    def add(self, numbers: np.ndarray, edge_index: np.ndarray, vectors: np.ndarray,
            h0: Sequence[np.ndarray], products: np.ndarray | None = None) -> None:
        """Add the directed edges ``edge_index`` (2, E) with bond vectors ``vectors`` (E, 3), Å,
        of a structure with atomic ``numbers`` and their real blocks ``h0`` (E blocks of shape
        ``(n_i, n_j)``, eV); a ``coupled`` baseline also needs the edges' ``products``
        ``M_i·M_j / M_max²`` (E,)."""
        if self.baseline.coupled and products is None:
            raise ValueError("a coupled two-centre fit needs the edges' moment products")
        numbers = np.asarray(numbers)
        src, dst = np.asarray(edge_index)
        zi_e, zj_e = numbers[src], numbers[dst]
        vec = torch.as_tensor(np.asarray(vectors, dtype=np.float64))
        for zi in self.baseline.species:
            for zj in self.baseline.species:
                sel = np.nonzero((zi_e == zi) & (zj_e == zj))[0]
                if not len(sel):
                    continue
                phi = self.baseline.design(zi, zj, vec[sel]).numpy()
                if self.baseline.coupled:
                    phi = np.concatenate([phi, np.asarray(products)[sel, None, None] * phi], -1)
                target = np.stack([np.asarray(h0[e], dtype=np.float64).ravel() for e in sel])
                key = self.baseline.stored_key[_key(zi, zj)]
                phi = phi.reshape(-1, phi.shape[-1])
                self.gram[key] += phi.T @ phi
                self.rhs[key] += phi.T @ target.ravel()
                self.n_blocks += len(sel)

    def add_record(self, record: Any) -> None:
        """Add the edges of a dataset record (:class:`~ase_hamgnn.data.HamiltonianData` with
        the keys of :mod:`ase_hamgnn.keys`), their ``h0 = Re(H↑↑ + H↓↓) / 2``."""
        numbers = record[K.ATOMIC_NUMBERS].numpy()
        edge_index = record[K.EDGE_INDEX].numpy()
        products = None
        if self.baseline.coupled:
            products = self.baseline.products(record[K.MOMENTS].double(),
                                              record[K.EDGE_INDEX]).numpy()
        self.add(numbers, edge_index, record[K.EDGE_VECTORS].numpy(),
                 edge_h0(record[K.H_EDGE].numpy(), numbers, edge_index, self.baseline.basis),
                 products)

    def solve(self, ridge: float = 1e-8) -> dict[str, np.ndarray]:
        """Coefficients per stored key, ``(n_channels, n_radial)``: the least-squares solution
        of each element pair and shell pair (their blocks share no entries) with a ridge of
        ``ridge`` times the mean diagonal of its normal matrix.  Channels without data get 0.
        A ``coupled`` baseline gets ``(2, n_channels, n_radial)``: ``E`` and ``E'``."""
        k = self.baseline.n_radial
        parts = 2 if self.baseline.coupled else 1
        out = {}
        for key, chans in self.baseline.channels.items():
            half = len(chans) * k
            coef = np.zeros(parts * half)
            pairs = sorted({(a, b) for a, b, _ in chans})
            for a, b in pairs:
                cols = np.concatenate([np.arange(n * k, (n + 1) * k)
                                       for n, c in enumerate(chans) if c[:2] == (a, b)])
                cols = np.concatenate([cols + part * half for part in range(parts)])
                gram = self.gram[key][np.ix_(cols, cols)]
                scale = float(np.mean(np.diag(gram)))
                if scale <= 0:
                    continue
                coef[cols] = np.linalg.solve(gram + ridge * scale * np.eye(len(cols)),
                                             self.rhs[key][cols])
            out[key] = coef.reshape(len(chans), k) if parts == 1 else coef.reshape(2, len(chans), k)
        return out


def residual_scales(baseline: TwoCentreBaseline, records: Iterable[Any], floor: float = 1e-4
                    ) -> dict[str, np.ndarray]:
    """Root mean square (eV) of ``h0 - baseline`` per element pair and shell pair over the
    bond blocks of ``records`` (both orientations of a pair pooled), at least ``floor``; per
    directed key ``"zi_zj"`` an ``(n_i, n_j)`` array constant on each shell-pair sub-block."""
    basis = baseline.basis
    sq: dict[str, np.ndarray] = {}
    count: dict[str, int] = {}
    for record in records:
        numbers = record[K.ATOMIC_NUMBERS].numpy()
        edge_index = record[K.EDGE_INDEX].numpy()
        h0 = edge_h0(record[K.H_EDGE].numpy(), numbers, edge_index, basis)
        vec = record[K.EDGE_VECTORS]
        products = (baseline.products(record[K.MOMENTS].double(), record[K.EDGE_INDEX]).numpy()
                    if baseline.coupled else None)
        for zi in baseline.species:
            for zj in baseline.species:
                sel = np.nonzero((numbers[edge_index[0]] == zi) & (numbers[edge_index[1]] == zj))[0]
                if not len(sel):
                    continue
                with torch.no_grad():
                    v = vec[sel].to(torch.float64)
                    pred = baseline.blocks(zi, zj, v).double().numpy()
                    if products is not None:
                        pred = pred + products[sel, None] * baseline.blocks(
                            zi, zj, v, coupled=True).double().numpy()
                diff = np.stack([h0[e] for e in sel]) - pred.reshape(len(sel), *h0[sel[0]].shape)
                key = _key(zi, zj)
                sq[key] = sq.get(key, 0.0) + (diff**2).sum(0)
                count[key] = count.get(key, 0) + len(sel)
    out = {}
    for zi in baseline.species:
        for zj in baseline.species:
            key, back = _key(zi, zj), _key(zj, zi)
            if key not in sq:
                continue
            both = sq[key] + sq[back].T
            n = count[key] + count[back]
            scale = np.zeros_like(both)
            for si, sa in zip(basis.shell_slices(zi), basis.shells(zi), strict=True):
                for sj, sb in zip(basis.shell_slices(zj), basis.shells(zj), strict=True):
                    rms = np.sqrt(both[si, sj].sum() / (n * sa.size * sb.size))
                    scale[si, sj] = max(rms, floor)
            out[key] = scale
    return out


def edge_h0(flat: np.ndarray, numbers: np.ndarray, edge_index: np.ndarray,
            basis: OrbitalBasis) -> list[np.ndarray]:
    """Spin-independent parts ``h0 = Re(H↑↑ + H↓↓) / 2`` (eV) of flattened spin-major edge blocks
    (:data:`ase_hamgnn.keys.H_EDGE`), one ``(n_i, n_j)`` array per edge."""
    n = np.array([basis.n_orbitals(int(z)) for z in numbers])
    ni, nj = n[edge_index[0]], n[edge_index[1]]
    sizes = 4 * ni * nj
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = []
    for s, a, b in zip(starts, ni, nj, strict=True):
        block = flat[s : s + 4 * a * b].reshape(2 * a, 2 * b)
        out.append(0.5 * (block[:a, :b] + block[a:, b:]).real)
    return out


def fit_two_centre(baseline: TwoCentreBaseline, records: Iterable[Any], ridge: float = 1e-8
                   ) -> dict[str, np.ndarray]:
    """Least-squares coefficients of ``baseline`` on the bond blocks of ``records`` (dataset
    records, e.g. a :class:`~ase_hamgnn.data.HamiltonianDataset`), streamed one at a time;
    set them with :meth:`TwoCentreBaseline.set_coefficients`.

    Examples
    --------
    >>> from ase_hamgnn.data import HamiltonianDataset               # doctest: +SKIP
    >>> base = model.network.two_centre                              # doctest: +SKIP
    >>> base.set_coefficients(fit_two_centre(base, HamiltonianDataset("data/nibri")))
    ... # doctest: +SKIP
    """
    fit = TwoCentreFit(baseline)
    for record in records:
        fit.add_record(record)
    return fit.solve(ridge)
