"""Building blocks of the HamGNN++ network: radial basis, embeddings, interaction layer."""

from __future__ import annotations

import math

import torch
from e3nn import nn as enn
from e3nn import o3
from torch import nn

from ase_hamgnn.model.fused import LinearPlan, TensorProductLinear, cache_chunk

__all__ = ["BesselBasis",
    "GaussianBasis",
    "Interaction",
    "edge_slices",
    "mlp_hidden",
    "polynomial_cutoff",
    "uvu_tensor_product",
]


def polynomial_cutoff(r: torch.Tensor, cutoff: float, p: int = 6) -> torch.Tensor:
    """Smooth envelope that goes to zero with ``p`` continuous derivatives at ``cutoff``."""
    x = r / cutoff
    env = (1.0 - 0.5 * (p + 1) * (p + 2) * x**p + p * (p + 2) * x ** (p + 1)
           - 0.5 * p * (p + 1) * x ** (p + 2))
    return env * (x < 1.0)


class BesselBasis(nn.Module):
    """``sqrt(2/r_c) sin(n pi r / r_c) / r`` times a smooth cutoff, n = 1..num."""

    def __init__(self, cutoff: float, num: int) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.register_buffer("freq", torch.arange(1, num + 1, dtype=torch.float64) * math.pi)

    def reset_frequencies(self) -> None:
        """Exact float64 frequencies again (after a dtype cast of the module)."""
        self.freq = torch.arange(1, len(self.freq) + 1, dtype=torch.float64,
                                 device=self.freq.device) * math.pi

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x = r[:, None] / self.cutoff
        basis = math.sqrt(2.0 / self.cutoff) * torch.sin(self.freq.to(r.dtype) * x) / r[:, None]
        return basis * polynomial_cutoff(r, self.cutoff)[:, None]


class GaussianBasis(nn.Module):
    """Gaussians on ``[0, stop]`` for scalar inputs such as ``|M|`` (μB)."""

    def __init__(self, stop: float, num: int) -> None:
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, stop, num, dtype=torch.float64))
        self.width = stop / max(num - 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * ((x[:, None] - self.centers.to(x.dtype)) / self.width) ** 2)


def edge_slices(n_edges: int, chunk: int | None) -> list[slice]:
    """Consecutive slices of at most ``chunk`` edges covering ``range(n_edges)``."""
    if chunk is None or chunk >= n_edges:
        return [slice(0, n_edges)]
    if chunk < 1:
        raise ValueError(f"edge chunk must be a positive number of edges, got {chunk}")
    return [slice(a, min(a + chunk, n_edges)) for a in range(0, n_edges, chunk)]


def mlp_hidden(mlp: enn.FullyConnectedNet, x: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The last hidden layer of ``mlp`` at ``x`` and the matrix of its (linear) output layer
    with e3nn's normalization: ``mlp(x) = hidden @ last``."""
    layers = list(mlp)
    for layer in layers[:-1]:
        x = layer(x)
    out = layers[-1]
    if out.act is not None:
        raise ValueError("the output layer of the MLP must be linear")
    return x, out.weight / (out.h_in * out.var_in / out.var_out) ** 0.5


def uvu_tensor_product(irreps_in: o3.Irreps, irreps_sh: o3.Irreps, keep: o3.Irreps
                       ) -> o3.TensorProduct:
    """Depthwise ('uvu') tensor product with per-edge weights, keeping outputs in ``keep``."""
    wanted = {ir for _, ir in keep}
    mid, instructions = [], []
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in wanted:
                    instructions.append((i, j, len(mid), "uvu", True))
                    mid.append((mul, ir_out))
    return o3.TensorProduct(irreps_in, irreps_sh, o3.Irreps(mid), instructions,
                            shared_weights=False, internal_weights=False)


class Interaction(nn.Module):
    """One orbital-convolution layer: messages ``V_j ⊗ Y(r_ij)`` weighted by an MLP of the
    radial basis, summed over neighbours, gated nonlinearity, residual update."""

    def __init__(self, irreps_node: o3.Irreps, irreps_sh: o3.Irreps, n_radial: int,
                 radial_hidden: int, avg_neighbors: float) -> None:
        super().__init__()
        self.avg_neighbors = float(avg_neighbors)
        self.lin_in = o3.Linear(irreps_node, irreps_node)
        self.tp = uvu_tensor_product(irreps_node, irreps_sh, irreps_node)
        self.radial = enn.FullyConnectedNet([n_radial, radial_hidden, self.tp.weight_numel],
                                            torch.nn.functional.silu)
        scalars = o3.Irreps([(m, ir) for m, ir in irreps_node if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in irreps_node if ir.l > 0])
        gates = o3.Irreps([(m, "0e") for m, _ in gated])
        acts = [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
        self.gate = enn.Gate(scalars, acts, gates, [torch.sigmoid] * len(gates), gated)
        self.lin_out = o3.Linear(self.tp.irreps_out, self.gate.irreps_in)
        self.skip = o3.Linear(irreps_node, self.gate.irreps_out)
        self.irreps_out = self.gate.irreps_out
        # fused evaluation (constants only, no parameters): messages lin_out(tp(...)) per
        # edge in a few large operations, and lin_in, skip as dense matrices
        self.fused_message = TensorProductLinear(self.tp, [self.lin_out])
        self.fused_in = LinearPlan(self.lin_in)
        self.fused_skip = LinearPlan(self.skip)

    def forward(self, x, sh, radial, src, dst, chunk: int | None = None,
                self_index: torch.Tensor | None = None, fused: bool = True) -> torch.Tensor:
        """``chunk``: evaluate the messages of at most this many edges at a time (caps the
        memory of the tensor products; the sum is accumulated in the same edge order).

        ``self_index``: update only the nodes ``x[self_index]`` (rows of the output), with
        ``src`` indexing the output rows and ``dst`` the rows of ``x``; the default updates
        every node.

        ``fused``: evaluate with :mod:`ase_hamgnn.model.fused` (the default; the same result
        to float rounding, with ``lin_out`` applied to each message before the sum) instead
        of e3nn's modules."""
        if fused:
            return self._forward_fused(x, sh, radial, src, dst, chunk, self_index)
        h = self.lin_in(x)
        x_self = x if self_index is None else x[self_index]
        agg = x.new_zeros(x_self.shape[0], self.tp.irreps_out.dim)
        for sl in edge_slices(len(src), chunk):
            msg = self.tp(h[dst[sl]], sh[sl], self.radial(radial[sl]))
            agg.index_add_(0, src[sl], msg)
        return self.skip(x_self) + self.gate(self.lin_out(agg / math.sqrt(self.avg_neighbors)))

    def _forward_fused(self, x, sh, radial, src, dst, chunk, self_index) -> torch.Tensor:
        h = self.fused_in(x, self.lin_in.weight)
        x_self = x if self_index is None else x[self_index]
        plan = self.fused_message
        agg = x.new_zeros(x_self.shape[0], self.gate.irreps_in.dim)
        for sl in edge_slices(len(src), cache_chunk(chunk)):
            hidden, last = mlp_hidden(self.radial, radial[sl])
            k = plan.mixing_from_hidden(hidden, last, [self.lin_out.weight])
            agg.index_add_(0, src[sl], plan([h[dst[sl]]], sh[sl], k))
        skip = self.fused_skip(x_self, self.skip.weight)
        return skip + self.gate(agg / math.sqrt(self.avg_neighbors))
