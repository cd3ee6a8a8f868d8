"""The HamGNN++ network: structure + moments -> H0 + H_mag blocks.

Node and pair features are e3nn irreps; heads emit, per atom, the spin-independent block
``h0_ii``, the SOC block ``h^α_ii`` and the single-ion anisotropy ``A_i``; per directed edge
``h0_ij``, ``h^α_ij``, the exchange tensor ``J_ij`` and the weight block ``w_ij``.  Hermiticity
is exact by construction: each edge output is averaged with the transposed output of its
reverse edge (``h0_ji = h0_ijᵀ``, ``h^α_ji = -h^α_ijᵀ``, ``J_ji = J_ijᵀ``, ``w_ji = w_ijᵀ``).

The magnetic part uses the O(edges) form of Eq. (10) of the HamGNN++ paper
(see :mod:`ase_hamgnn.model.assembly`).  With ``ModelConfig.two_centre`` the bond blocks
``h0_ij`` add a two-centre (Slater–Koster-like) term of the bond vector alone, fitted before
training (see :mod:`ase_hamgnn.model.baseline`); the network's own ``h0_ij`` is its residual.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
from e3nn import nn as enn
from e3nn import o3
from torch import nn

from ase_hamgnn import keys as K
from ase_hamgnn.model.assembly import (
    assemble_blocks,
    flatten_blocks,
    time_reversal_odd,
    time_reversal_partner,
)
from ase_hamgnn.model.baseline import TwoCentreBaseline
from ase_hamgnn.model.config import ModelConfig, coupling_form
from ase_hamgnn.model.decoders import pair_decoders, tensor_decoder
from ase_hamgnn.model.fused import (
    LinearPlan,
    TensorProductLinear,
    cache_chunk,
    refresh_plans,
    restore_masters,
)
from ase_hamgnn.model.layers import (
    BesselBasis,
    GaussianBasis,
    Interaction,
    edge_slices,
    mlp_hidden,
    uvu_tensor_product,
)
from ase_hamgnn.model.onsite import OnsiteEnvironment, shell_levels, shell_pair_masks
from ase_hamgnn.model.sharing import EnvironmentClasses

__all__ = ["HamGNNPP"]

_W3J = re.compile(r"_w3j_(\d+)_(\d+)_(\d+)")


def _key(zi: int, zj: int) -> str:
    return f"{zi}_{zj}"


#: Edge inputs each kind of moment coupling adds to the radial network.
_COUPLING_INPUTS = {"off": 0, "raw": 1, "normalized": 2}


def moment_products(m_i: torch.Tensor, m_j: torch.Tensor, coupling: str, moment_max: float
                    ) -> torch.Tensor:
    """Invariant edge inputs from the moments (μB) of both ends, ``(E, 1)`` or ``(E, 2)``:
    ``M_i·M_j`` (``"raw"``), or ``cos θ_ij`` (0 where a moment vanishes) and
    ``|M_i||M_j| / moment_max²`` (``"normalized"``).  Both are unchanged by a rotation of the
    moments and by time reversal (``M -> -M`` at both ends)."""
    dot = (m_i * m_j).sum(1, keepdim=True)
    if coupling == "raw":
        return dot
    sizes = torch.linalg.vector_norm(m_i, dim=1, keepdim=True) * \
        torch.linalg.vector_norm(m_j, dim=1, keepdim=True)
    cos = torch.where(sizes > 1e-8, dot / sizes.clamp_min(1e-8), torch.zeros_like(dot))
    return torch.cat([cos, sizes / moment_max**2], 1)


class HamGNNPP(nn.Module):
    """The network.  ``forward(inputs)`` takes a mapping with the keys of
    :mod:`ase_hamgnn.keys` (atomic numbers, positions, moments, edge index, edge vectors,
    reverse edges) and returns the flattened complex on-site and edge blocks and their
    magnetic (time-reversal-odd) parts.  Parameters are float32 after construction; use
    ``.to(torch.float64)`` for physics checks."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # runtime knob, not part of the model: evaluate edge tensor products this many
        # edges at a time (None: all at once); results are identical, peak memory is capped
        self.edge_chunk: int | None = None
        # runtime knob: dtype of the spin assembly H0 + H_mag (None: the network's dtype);
        # float64 with a float32 network sums the exchange fields without float32 rounding
        self.assembly_dtype: torch.dtype | None = None
        # runtime knob: evaluate tensor products and linear maps with the fused plans of
        # :mod:`ase_hamgnn.model.fused` (the same parameters and results to float rounding,
        # far fewer operations) or, with False, with e3nn's modules
        self.fused = True
        basis = config.orbital_basis
        self.basis = basis
        zs = [int(o3_z) for o3_z in _numbers(basis.elements)]
        self.species = zs
        self.register_buffer("z_to_index", _lookup(zs), persistent=False)
        n_orb = [basis.n_orbitals(z) for z in zs]
        self.n_max = max(n_orb)
        self.register_buffer("n_orbitals", torch.tensor(n_orb), persistent=False)

        node_irreps = o3.Irreps(config.node_irreps)
        self.irreps_sh = o3.Irreps.spherical_harmonics(config.lmax_sh)
        n_scalar = sum(m for m, ir in node_irreps if ir.l == 0 and ir.p == 1)
        self.moment_basis = GaussianBasis(config.moment_max, config.n_moment_basis)
        self.embed = enn.FullyConnectedNet(
            [len(zs) + config.n_moment_basis, 2 * n_scalar, n_scalar], torch.nn.functional.silu
        )
        self.embed_out = o3.Linear(o3.Irreps(f"{n_scalar}x0e"), node_irreps)
        self.general = config.form == "general"
        if self.general:  # the ablation baseline sees the moment vector itself (axial, 1e)
            self.moment_in = o3.Linear(o3.Irreps("1x1e"), node_irreps)
        self.radial = BesselBasis(config.cutoff, config.n_radial)
        self.layers = nn.ModuleList()
        irreps = node_irreps
        for _ in range(config.n_layers):
            layer = Interaction(
                irreps, self.irreps_sh, config.n_radial, config.radial_hidden, config.avg_neighbors
            )
            self.layers.append(layer)
            irreps = layer.irreps_out
        self.irreps_node = irreps

        # decoders and the pair irreps they need
        self._decoders = {}
        needed: set[o3.Irrep] = set()
        j_dec = tensor_decoder()
        a_dec = tensor_decoder(symmetric_only=True)
        for zi in zs:
            for zj in zs:
                h0, soc = pair_decoders(basis, zi, zj)
                self._decoders[_key(zi, zj)] = (h0, soc)
                needed |= {ir for _, ir in h0.irreps} | {ir for _, ir in soc.irreps}
        needed |= {ir for _, ir in j_dec.irreps}
        pair_irreps = o3.Irreps(sorted((config.pair_multiplicity, ir) for ir in needed)).simplify()
        self.irreps_pair = pair_irreps
        edge_scalars = config.n_radial + _COUPLING_INPUTS[coupling_form(config.moment_coupling)]
        # pair features: V_i (x) Y(r_ij) and V_j (x) Y(r_ij), each weighted by an MLP of the
        # edge scalars (radial basis, and M_i.M_j with moment_coupling), mixed linearly
        self.pair_tp_i = uvu_tensor_product(irreps, self.irreps_sh, pair_irreps)
        self.pair_tp_j = uvu_tensor_product(irreps, self.irreps_sh, pair_irreps)
        self.pair_radial = enn.FullyConnectedNet(
            [
                edge_scalars,
                config.radial_hidden,
                self.pair_tp_i.weight_numel + self.pair_tp_j.weight_numel,
            ],
            torch.nn.functional.silu,
        )
        self.pair_mix_i = o3.Linear(self.pair_tp_i.irreps_out, pair_irreps)
        self.pair_mix_j = o3.Linear(self.pair_tp_j.irreps_out, pair_irreps)
        # on-site features: node features lifted by one self tensor product with Y-free paths
        self.node_lift = o3.Linear(irreps, pair_irreps)

        self.edge_heads = nn.ModuleDict()
        self.node_heads = nn.ModuleDict()
        for zi in zs:
            for zj in zs:
                h0, soc = self._decoders[_key(zi, zj)]
                if self.general:  # Re A, Im A, Re B, Im B of A (x) s0 + B.s
                    parts = [h0, h0, soc, soc]
                else:  # h0, SOC, then w and J per exchange channel, then h1
                    parts = [h0, soc] + [h0, j_dec] * config.exchange_channels
                    if config.bond_moment_term:
                        parts.append(h0)
                out = sum((d.irreps for d in parts[1:]), parts[0].irreps)
                self.edge_heads[_key(zi, zj)] = o3.Linear(pair_irreps, out)
                self._constant(f"dec_edge_{_key(zi, zj)}", _block_diag([d.matrix for d in parts]))
            h0, soc = self._decoders[_key(zi, zi)]
            if self.general:
                parts = [h0, h0, soc, soc]
            else:  # h0, SOC, A per channel, then (onsite_weight="orbital") w per channel
                parts = [h0, soc] + [a_dec] * config.exchange_channels
                if config.onsite_weight == "orbital":
                    parts += [h0] * config.exchange_channels
            out = sum((d.irreps for d in parts[1:]), parts[0].irreps)
            self.node_heads[str(zi)] = o3.Linear(pair_irreps, out)
            self._constant(f"dec_node_{zi}", _block_diag([d.matrix for d in parts]))
        # on-site weights w_ii: one learnable scalar per species and pair of shells with equal
        # l (per exchange channel; a channel axis only when there are several)
        self.onsite_weight = nn.ParameterDict()
        n_ch = config.exchange_channels
        for zi in zs:
            shells = basis.shells(zi)
            shape = (len(shells), len(shells)) if n_ch == 1 else (n_ch, len(shells), len(shells))
            self.onsite_weight[str(zi)] = nn.Parameter(torch.ones(shape))
            self._constant(f"wmask_{zi}", shell_pair_masks(basis, zi))
        # onsite_weight="orbital": the equivariant part enters through a gate per species
        # that starts at zero, so training starts from the paper's shell-scalar weights
        self.onsite_weight_gate = nn.ParameterDict()
        if config.onsite_weight == "orbital":
            for zi in zs:
                self.onsite_weight_gate[str(zi)] = nn.Parameter(torch.zeros(()))
        # on-site energies per species and pair of equal-l shells (config.onsite_bias)
        self.onsite_bias = nn.ParameterDict()
        if config.onsite_bias:
            for zi in zs:
                n_shells = len(basis.shells(zi))
                self.onsite_bias[str(zi)] = nn.Parameter(torch.zeros(n_shells, n_shells))
        # environment-dependent on-site levels (config.onsite_environment), fitted likewise
        self.onsite_environment = (OnsiteEnvironment(basis, zs, config.cutoff, config.n_radial,
                                                     config.moment_max)
                                   if config.onsite_environment else None)
        # two-centre term of the bond blocks h0_ij (config.two_centre), fitted before training
        self.two_centre = (TwoCentreBaseline(basis, zs, config.cutoff, config.n_radial,
                                             coupled=config.bond_moment_term,
                                             moment_max=config.moment_max)
                           if config.two_centre else None)
        # fused evaluation plans (constants only; the parameters stay in the e3nn modules)
        self.fused_pair = TensorProductLinear(self.pair_tp_i, [self.pair_mix_i, self.pair_mix_j])
        self.fused_linear = nn.ModuleDict({"embed_out": LinearPlan(self.embed_out),
                                           "node_lift": LinearPlan(self.node_lift)})
        for key, head in self.edge_heads.items():
            self.fused_linear[f"edge_{key}"] = LinearPlan(head)
        for key, head in self.node_heads.items():
            self.fused_linear[f"node_{key}"] = LinearPlan(head)
        self.refresh_constants()

    # ------------------------------------------------------------------------------------
    def _constant(self, name: str, value: np.ndarray) -> None:
        if not hasattr(self, "_masters"):
            self._masters: dict[str, np.ndarray] = {}
        self._masters[name] = np.asarray(value, dtype=np.float64)
        self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32), persistent=False)

    def refresh_constants(self) -> HamGNNPP:
        """Re-create every constant tensor (decoders, masks, e3nn's Clebsch–Gordan buffers)
        from float64 masters in the network's current dtype.

        Casting float32 constants up to float64 would keep float32 rounding (~1e-8), which
        breaks equivariance at float64 precision; call this after changing the dtype
        (:class:`~ase_hamgnn.model.HamGNNModel` does)."""
        dtype = self.embed_out.weight.dtype
        refresh_plans(self, dtype)
        if self.two_centre is not None:
            self.two_centre.refresh(dtype)
        if self.onsite_environment is not None:
            self.onsite_environment.refresh(dtype)
        restore_masters(self, self._masters, dtype)
        for module in self.modules():
            for name, buf in list(module.named_buffers(recurse=False)):
                match = _W3J.fullmatch(name)
                if match and buf.is_floating_point():
                    l1, l2, l3 = (int(x) for x in match.groups())
                    exact = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
                    if exact.shape == buf.shape:
                        setattr(module, name, exact.to(dtype=buf.dtype, device=buf.device))
        return self

    def set_onsite_bias(self, mean_h0: dict[int, np.ndarray]) -> None:
        """Set the on-site energies (``config.onsite_bias``) from average spin-independent
        on-site blocks ``h0`` (eV, real (n, n) per atomic number): each equal-l pair of
        shells gets the trace of its sub-block over the shell size, the part of ``h0`` that
        is the same in every orientation."""
        if not self.config.onsite_bias:
            raise ValueError("this model has no on-site bias (ModelConfig.onsite_bias=False)")
        for zi, mean in mean_h0.items():
            value = shell_levels(self.basis, int(zi), mean)
            param = self.onsite_bias[str(int(zi))]
            with torch.no_grad():
                param.copy_(torch.as_tensor(value, dtype=param.dtype))

    def _species(self, inputs) -> torch.Tensor:
        species = self.z_to_index[inputs[K.ATOMIC_NUMBERS]]
        if (species < 0).any():
            raise ValueError("structure has elements outside the model's species")
        return species

    def _embed(self, species: torch.Tensor, moments: torch.Tensor) -> torch.Tensor:
        """Initial node features from the species and the moment sizes."""
        dtype = self.embed_out.weight.dtype
        onehot = torch.nn.functional.one_hot(species, len(self.species)).to(dtype)
        m_abs = torch.linalg.norm(moments, dim=1)
        return self._linear("embed_out", self.embed_out,
                            self.embed(torch.cat([onehot, self.moment_basis(m_abs)], dim=1)))

    def _linear(self, name: str, lin: o3.Linear, x: torch.Tensor) -> torch.Tensor:
        """``lin(x)``, as one dense matmul when :attr:`fused`."""
        if self.fused:
            return self.fused_linear[name](x, lin.weight)
        return lin(x)

    def _head(self, kind: str, key: str, features: torch.Tensor) -> torch.Tensor:
        """Decoded outputs of the ``kind`` ("edge" or "node") head ``key``: the head's linear
        map followed by its decoder matrix (one matmul when :attr:`fused`)."""
        heads = self.edge_heads if kind == "edge" else self.node_heads
        dec = getattr(self, f"dec_{kind}_{key}")
        if self.fused:
            plan = self.fused_linear[f"{kind}_{key}"]
            return features @ (plan.matrix(heads[key].weight) @ dec)
        return heads[key](features) @ dec

    def _edge_geometry(self, vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spherical harmonics and radial basis of edge vectors."""
        vec = vec.to(self.embed_out.weight.dtype)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        return sh, self.radial(torch.linalg.norm(vec, dim=1))

    def node_features(self, inputs, moments: torch.Tensor) -> tuple[torch.Tensor, ...]:
        species = self._species(inputs)
        x = self._embed(species, moments)
        if self.general:
            x = x + self.moment_in(moments)
        src, dst = inputs[K.EDGE_INDEX]
        sh, radial = self._edge_geometry(inputs[K.EDGE_VECTORS])
        for layer in self.layers:
            x = layer(x, sh, radial, src, dst, self.edge_chunk, fused=self.fused)
        return x, sh, radial, species

    def _pair_features(self, x, sh, radial, moment_pairs, src, dst) -> torch.Tensor:
        """Pair features of the edges ``src -> dst`` (indices into ``x``); with
        ``moment_coupling``, ``moment_pairs`` are the moments (μB) at both ends of each
        edge."""
        edge_scalars = radial
        coupling = coupling_form(self.config.moment_coupling)
        if coupling != "off":
            edge_scalars = torch.cat(
                [radial, moment_products(*moment_pairs, coupling, self.config.moment_max)], 1)
        n_i = self.pair_tp_i.weight_numel
        if self.fused:
            plan, mixes = self.fused_pair, [self.pair_mix_i.weight, self.pair_mix_j.weight]
            parts = []
            for sl in edge_slices(len(src), cache_chunk(self.edge_chunk)):
                hidden, last = mlp_hidden(self.pair_radial, edge_scalars[sl])
                k = plan.mixing_from_hidden(hidden, last, mixes)
                parts.append(plan([x[src[sl]], x[dst[sl]]], sh[sl], k))
            return parts[0] if len(parts) == 1 else torch.cat(parts)
        pair = x.new_empty(len(src), self.irreps_pair.dim)
        for sl in edge_slices(len(src), self.edge_chunk):
            weights = self.pair_radial(edge_scalars[sl])
            pair[sl] = self.pair_mix_i(
                self.pair_tp_i(x[src[sl]], sh[sl], weights[:, :n_i])
            ) + self.pair_mix_j(self.pair_tp_j(x[dst[sl]], sh[sl], weights[:, n_i:]))
        return pair

    def _onsite_features(self, x, pair, src) -> torch.Tensor:
        """Node features lifted to the pair irreps, plus (``onsite_from_edges``) the
        normalized neighbour sum of the pair features."""
        out = self._linear("node_lift", self.node_lift, x)
        if self.config.onsite_from_edges:
            agg = torch.zeros_like(out).index_add_(0, src, pair)
            out = out + agg / math.sqrt(self.config.avg_neighbors)
        return out

    def forward(self, inputs, classes: EnvironmentClasses | None = None,
                magnetic: bool = True) -> dict[str, torch.Tensor]:
        """Blocks of the structure in ``inputs``.  ``classes`` (from
        :func:`~ase_hamgnn.model.sharing.environment_classes` with ``n_layers + 1`` levels)
        lets atoms and bonds with equal environments share the network's work; the result
        is the same (see :mod:`ase_hamgnn.model.sharing`).  ``magnetic=False`` skips the
        separate magnetic parts (``onsite_magnetic``, ``edge_magnetic``), which only the
        training loss needs (the ``"general"`` form always returns them)."""
        moments = inputs[K.MOMENTS].to(self.embed_out.weight.dtype)
        if self.general:
            return self._forward_general(inputs, moments)
        if classes is not None:
            return self._forward_shared(inputs, moments, classes, magnetic)
        x, sh, radial, species = self.node_features(inputs, moments)
        src, dst = inputs[K.EDGE_INDEX]
        pair = self._pair_features(x, sh, radial, (moments[src], moments[dst]), src, dst)
        edge_parts = self._edge_outputs(pair, species[src], species[dst], inputs[K.EDGE_REVERSE],
                                        inputs[K.EDGE_VECTORS])
        node_parts = self._node_outputs(self._onsite_features(x, pair, src), species)
        node_parts = self._with_environment(node_parts, inputs, moments, species)
        return self._assemble(node_parts, edge_parts, moments, src, dst, species, magnetic)

    def _forward_shared(self, inputs, moments, classes: EnvironmentClasses, magnetic: bool):
        if self.config.moment_coupling and not classes.bond_invariants:
            raise ValueError("a model with moment_coupling needs environment classes that "
                             "include the bonds' moment invariants (edge_extra); use "
                             "HamGNNModel.environment_classes")
        if len(classes.node) != self.config.n_layers + 2:
            raise ValueError(f"classes have {len(classes.node) - 1} refinement levels; the "
                             f"network needs n_layers + 1 = {self.config.n_layers + 1}")
        dev = moments.device
        as_t = lambda a: torch.as_tensor(a, device=dev)  # noqa: E731
        node = [as_t(c) for c in classes.node]
        reps = [as_t(r) for r in classes.node_reps]
        edge_cls, edge_reps = as_t(classes.edge), as_t(classes.edge_reps)
        src, dst = inputs[K.EDGE_INDEX]
        n_atoms = moments.shape[0]
        species = self._species(inputs)
        vec = inputs[K.EDGE_VECTORS]

        def edges_of(rep):  # edges leaving the atoms ``rep``, and their local source index
            local = torch.full((n_atoms,), -1, dtype=torch.long, device=dev)
            local[rep] = torch.arange(len(rep), device=dev)
            sel = torch.nonzero(local[src] >= 0).flatten()
            return sel, local[src[sel]]

        # node features per class: level-0 classes embed species and |M|, each layer t
        # updates one atom of each level-t class from the level-(t-1) features
        x = self._embed(species[reps[0]], moments[reps[0]])
        for t, layer in enumerate(self.layers, start=1):
            sel, local = edges_of(reps[t])
            sh, radial = self._edge_geometry(vec[sel])
            x = layer(x, sh, radial, local, node[t - 1][dst[sel]], self.edge_chunk,
                      self_index=node[t - 1][reps[t]], fused=self.fused)
        level = self.config.n_layers  # x is indexed by the level-L classes
        # pair features and bond outputs per edge class
        sh, radial = self._edge_geometry(vec[edge_reps])
        cls_src, cls_dst = node[level][src[edge_reps]], node[level][dst[edge_reps]]
        ends = (moments[src[edge_reps]], moments[dst[edge_reps]])
        pair = self._pair_features(x, sh, radial, ends, cls_src, cls_dst)
        reverse = edge_cls[inputs[K.EDGE_REVERSE][edge_reps]]
        edge_parts = self._edge_outputs(pair, species[src[edge_reps]],
                                        species[dst[edge_reps]], reverse, vec[edge_reps])
        # on-site features per level-(L+1) class: lifted node features plus the bond sum
        top = reps[level + 1]
        sel, local = edges_of(top)
        selfpair = self._linear("node_lift", self.node_lift, x[node[level][top]])
        if self.config.onsite_from_edges:
            agg = torch.zeros_like(selfpair).index_add_(0, local, pair[edge_cls[sel]])
            selfpair = selfpair + agg / math.sqrt(self.config.avg_neighbors)
        node_parts = self._node_outputs(selfpair, species[top])
        node_parts = tuple(p[node[level + 1]] for p in node_parts)
        node_parts = self._with_environment(node_parts, inputs, moments, species)
        edge_parts = tuple(p[edge_cls] for p in edge_parts)
        return self._assemble(node_parts, edge_parts, moments, src, dst, species, magnetic)

    def _edge_outputs(self, pair, si, sj, reverse, vec):
        """``h0``, SOC, ``w`` and ``J`` (the last two per exchange channel) of the edges with
        features ``pair``, species indices ``si``, ``sj`` and bond vectors ``vec`` (Å; the
        two-centre term of ``h0``), padded to ``n_max`` orbitals, symmetrized with the edges
        ``reverse``."""
        n_edges, nmax, n_ch = pair.shape[0], self.n_max, self.config.exchange_channels
        h0_e = pair.new_zeros(n_edges, nmax, nmax)
        soc_e = pair.new_zeros(n_edges, 3, nmax, nmax)
        w_e = pair.new_zeros(n_edges, n_ch, nmax, nmax)
        j_e = pair.new_zeros(n_edges, n_ch, 3, 3)
        h1_e = pair.new_zeros(n_edges, nmax, nmax) if self.config.bond_moment_term else None
        for a, zi in enumerate(self.species):
            for b, zj in enumerate(self.species):
                sel = torch.nonzero((si == a) & (sj == b)).flatten()
                if sel.numel() == 0:
                    continue
                ni, nj = int(self.n_orbitals[a]), int(self.n_orbitals[b])
                out = self._head("edge", _key(zi, zj), pair[sel])
                k = ni * nj
                h0 = out[:, :k]
                if self.two_centre is not None:
                    h0 = (h0 * self.two_centre.scale(zi, zj).to(h0.dtype)
                          + self.two_centre.blocks(zi, zj, vec[sel]))
                h0_e[sel, :ni, :nj] = h0.reshape(-1, ni, nj)
                soc_e[sel, :, :ni, :nj] = out[:, k : 4 * k].reshape(-1, 3, ni, nj)
                for c in range(n_ch):
                    at = 4 * k + c * (k + 9)
                    w_e[sel, c, :ni, :nj] = out[:, at : at + k].reshape(-1, ni, nj)
                    j_e[sel, c] = out[:, at + k : at + k + 9].reshape(-1, 3, 3)
                if h1_e is not None:
                    h1 = out[:, 4 * k + n_ch * (k + 9):]
                    if self.two_centre is not None:
                        h1 = (h1 * self.two_centre.scale(zi, zj).to(h1.dtype)
                              + self.two_centre.blocks(zi, zj, vec[sel], coupled=True))
                    h1_e[sel, :ni, :nj] = h1.reshape(-1, ni, nj)
        tr = lambda t: t.transpose(-1, -2)  # noqa: E731
        parts = (0.5 * (h0_e + tr(h0_e[reverse])), 0.5 * (soc_e - tr(soc_e[reverse])),
                 0.5 * (w_e + tr(w_e[reverse])), 0.5 * (j_e + tr(j_e[reverse])))
        if h1_e is not None:
            parts += (0.5 * (h1_e + tr(h1_e[reverse])),)
        return parts

    def _node_outputs(self, selfpair, species):
        """``h0``, SOC, ``w`` and ``A`` (the last two per exchange channel) of atoms with
        on-site features ``selfpair``."""
        n_nodes, nmax, dtype = selfpair.shape[0], self.n_max, selfpair.dtype
        n_ch = self.config.exchange_channels
        h0_n = selfpair.new_zeros(n_nodes, nmax, nmax)
        soc_n = selfpair.new_zeros(n_nodes, 3, nmax, nmax)
        w_n = selfpair.new_zeros(n_nodes, n_ch, nmax, nmax)
        a_n = selfpair.new_zeros(n_nodes, n_ch, 3, 3)
        for a, zi in enumerate(self.species):
            sel = torch.nonzero(species == a).flatten()
            if sel.numel() == 0:
                continue
            ni = int(self.n_orbitals[a])
            k = ni * ni
            out = self._head("node", str(zi), selfpair[sel])
            wmask = getattr(self, f"wmask_{zi}").to(dtype)  # (shells, shells, ni, ni)
            h0 = out[:, :k].reshape(-1, ni, ni)
            if str(zi) in self.onsite_bias:
                bias = self.onsite_bias[str(zi)].to(dtype)
                h0 = h0 + torch.einsum("ab,abij->ij", 0.5 * (bias + bias.T), wmask)
            h0_n[sel, :ni, :ni] = h0
            soc_n[sel, :, :ni, :ni] = out[:, k : 4 * k].reshape(-1, 3, ni, ni)
            a_n[sel] = out[:, 4 * k : 4 * k + 9 * n_ch].reshape(-1, n_ch, 3, 3)
            n_shells = wmask.shape[0]
            wpar = self.onsite_weight[str(zi)].to(dtype).reshape(n_ch, n_shells, n_shells)
            w = torch.einsum("cab,abij->cij", wpar + wpar.transpose(-1, -2), wmask) / 2
            if self.config.onsite_weight == "orbital":
                at = 4 * k + 9 * n_ch
                gate = self.onsite_weight_gate[str(zi)].to(dtype)
                w = w + gate * out[:, at : at + n_ch * k].reshape(-1, n_ch, ni, ni)
            w_n[sel, :, :ni, :ni] = w
        tr = lambda t: t.transpose(-1, -2)  # noqa: E731
        return (0.5 * (h0_n + tr(h0_n)), 0.5 * (soc_n - tr(soc_n)), 0.5 * (w_n + tr(w_n)),
                a_n)

    def _with_environment(self, node_parts, inputs, moments, species):
        """``node_parts`` with the fitted on-site environment term (``onsite_environment``)
        added to every atom's ``h0``."""
        if self.onsite_environment is None:
            return node_parts
        h0, *rest = node_parts
        extra = self.onsite_environment(species, moments, inputs[K.EDGE_INDEX],
                                        inputs[K.EDGE_VECTORS], self.n_max)
        return (h0 + extra.to(h0.dtype), *rest)

    def _assemble(self, node_parts, edge_parts, moments, src, dst, species, magnetic):
        if self.config.bond_moment_term:  # h0 + (M_i.M_j / moment_max^2) h1, per edge
            h0, soc, w, j, h1 = edge_parts
            dot = (moments[src] * moments[dst]).sum(1) / self.config.moment_max**2
            edge_parts = (h0 + dot.to(h1.dtype)[:, None, None] * h1, soc, w, j)
        parts = (*node_parts, *edge_parts, moments)
        if self.assembly_dtype is not None:
            parts = tuple(t.to(self.assembly_dtype) for t in parts)
        return assemble_blocks(*parts, src, dst, self.n_orbitals[species], self.n_max,
                               magnetic=magnetic)

    # -- the ablation baseline: the general form of the paper's Eq. (7) ---------------------
    def _general_blocks(self, inputs, moments):
        """Unconstrained spin blocks ``A (x) s0 + B.s`` (A, B complex), Hermitian."""
        x, sh, radial, species = self.node_features(inputs, moments)
        src, dst = inputs[K.EDGE_INDEX]
        reverse = inputs[K.EDGE_REVERSE]
        pair = self._pair_features(x, sh, radial, (moments[src], moments[dst]), src, dst)
        nmax = self.n_max

        def decode(features, groups, kind):
            n = features.shape[0]
            a_re, a_im = x.new_zeros(n, nmax, nmax), x.new_zeros(n, nmax, nmax)
            b_re, b_im = x.new_zeros(n, 3, nmax, nmax), x.new_zeros(n, 3, nmax, nmax)
            for key, sel, ni, nj in groups:
                if sel.numel() == 0:
                    continue
                out = self._head(kind, key, features[sel])
                k = ni * nj
                a_re[sel, :ni, :nj] = out[:, :k].reshape(-1, ni, nj)
                a_im[sel, :ni, :nj] = out[:, k : 2 * k].reshape(-1, ni, nj)
                b_re[sel, :, :ni, :nj] = out[:, 2 * k : 5 * k].reshape(-1, 3, ni, nj)
                b_im[sel, :, :ni, :nj] = out[:, 5 * k :].reshape(-1, 3, ni, nj)
            return torch.complex(a_re, a_im), torch.complex(b_re, b_im)

        si, sj = species[src], species[dst]
        edge_groups, node_groups = [], []
        for a_idx, zi in enumerate(self.species):
            ni = int(self.n_orbitals[a_idx])
            node_groups.append((str(zi), torch.nonzero(species == a_idx).flatten(), ni, ni))
            for b_idx, zj in enumerate(self.species):
                sel = torch.nonzero((si == a_idx) & (sj == b_idx)).flatten()
                edge_groups.append((_key(zi, zj), sel, ni, int(self.n_orbitals[b_idx])))
        a_e, b_e = decode(pair, edge_groups, "edge")
        a_n, b_n = decode(self._onsite_features(x, pair, src), node_groups, "node")
        herm = lambda t: t.transpose(-1, -2).conj()  # noqa: E731
        a_e, b_e = 0.5 * (a_e + herm(a_e[reverse])), 0.5 * (b_e + herm(b_e[reverse]))
        a_n, b_n = 0.5 * (a_n + herm(a_n)), 0.5 * (b_n + herm(b_n))

        def spin(a, b):
            bx, by, bz = b.unbind(-3)
            return torch.cat([torch.cat([a + bz, bx - 1j * by], -1),
                              torch.cat([bx + 1j * by, a - bz], -1)], -2)

        n_orb = self.n_orbitals[species]
        return (flatten_blocks(spin(a_n, b_n), n_orb, n_orb, nmax),
                flatten_blocks(spin(a_e, b_e), n_orb[src], n_orb[dst], nmax), n_orb)

    def _forward_general(self, inputs, moments) -> dict[str, torch.Tensor]:
        """Eq. (7): time reversal imposed by averaging ``H~(M)`` with ``Θ H~(-M)* Θ†``."""
        on_p, ed_p, n_orb = self._general_blocks(inputs, moments)
        on_m, ed_m, _ = self._general_blocks(inputs, -moments)
        src, dst = inputs[K.EDGE_INDEX]
        out = {}
        for kind, plus, minus, rows, cols in (("onsite", on_p, on_m, n_orb, n_orb),
                                               ("edge", ed_p, ed_m, n_orb[src], n_orb[dst])):
            index, sign = time_reversal_partner(rows, cols)
            full = 0.5 * (plus + sign.to(plus.real.dtype) * minus[index].conj())
            out[kind] = full
            out[f"{kind}_magnetic"] = time_reversal_odd(full, index, sign)
        return out


def _numbers(symbols) -> list[int]:
    from ase.data import atomic_numbers

    return [atomic_numbers[s] for s in symbols]


def _lookup(zs: list[int]) -> torch.Tensor:
    table = torch.full((119,), -1, dtype=torch.long)
    for n, z in enumerate(zs):
        table[z] = n
    return table


def _block_diag(mats) -> np.ndarray:
    rows = sum(m.shape[0] for m in mats)
    cols = sum(m.shape[1] for m in mats)
    out = np.zeros((rows, cols))
    r = c = 0
    for m in mats:
        out[r : r + m.shape[0], c : c + m.shape[1]] = m
        r += m.shape[0]
        c += m.shape[1]
    return out
