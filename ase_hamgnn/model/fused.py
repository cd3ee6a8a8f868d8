"""Fused evaluation of e3nn's depthwise tensor products and linear maps.

e3nn evaluates a ``TensorProduct`` one instruction (path) at a time and an ``o3.Linear`` one
irrep block at a time: hundreds of small operations per call, and in the backward pass a
zero-filled full-size gradient for every slice of the output.  The plans here compute the
same maps from the same parameters in a handful of large operations:

* :class:`LinearPlan`: an ``o3.Linear`` as one dense ``(dim_in, dim_out)`` matrix, built from
  the module's weights on every call (so gradients reach them) and applied with one
  matmul;
* :class:`TensorProductLinear`: one or more ``'uvu'`` tensor products ``x ⊗ Y`` with
  per-edge weights that share their instructions, followed by linear maps, summed (the pair
  features ``mix_i(tp(x_i, Y)) + mix_j(tp(x_j, Y))``, an interaction layer's messages
  ``lin_out(tp(h_j, Y))``).  The per-edge weights are folded into the linear maps, the
  channels are mixed before the Clebsch–Gordan step, and the Clebsch–Gordan coefficients of
  all paths come from one matmul ``Y @ G``; the wide tensor-product output is never formed.

The results equal the e3nn modules' to float rounding (``tests/model/test_fused.py``), the
parameters stay in the e3nn modules (checkpoints are unchanged), and every constant is
kept as a float64 master and re-created by :meth:`refresh` in the working dtype, so float64
evaluation stays exactly equivariant.
"""

from __future__ import annotations

import numpy as np
import torch
from e3nn import o3
from torch import nn

__all__ = ["CACHE_EDGES", "LinearPlan", "TensorProductLinear", "cache_chunk", "refresh_plans"]

#: edges per fused evaluation without gradients: the intermediates of about 500 edges (a
#: few MB) stay in cache, which halved the prediction time of 1200 atoms against 8192 edges
CACHE_EDGES = 512


def cache_chunk(chunk: int | None) -> int | None:
    """Edges per fused evaluation: ``chunk`` (the caller's memory cap), and at most
    :data:`CACHE_EDGES` when no gradients are recorded."""
    if torch.is_grad_enabled():
        return chunk
    return CACHE_EDGES if chunk is None else min(chunk, CACHE_EDGES)


def restore_masters(module: nn.Module, masters: dict[str, np.ndarray], dtype: torch.dtype
                    ) -> None:
    """Set every buffer of ``module`` named in ``masters`` to its float64 master in ``dtype``
    (on the buffer's device): casting float32 constants up would keep their rounding."""
    for name, master in masters.items():
        buf = getattr(module, name)
        setattr(module, name, torch.as_tensor(master, dtype=dtype, device=buf.device))


class _Plan(nn.Module):
    """A module of constant (non-persistent) buffers with float64 masters."""

    def __init__(self) -> None:
        super().__init__()
        self._masters: dict[str, np.ndarray] = {}

    def _float(self, name: str, value) -> None:
        self._masters[name] = np.asarray(value, dtype=np.float64)
        self.register_buffer(name, torch.as_tensor(self._masters[name], dtype=torch.float32),
                             persistent=False)

    def _index(self, name: str, value) -> None:
        self.register_buffer(name, torch.as_tensor(np.asarray(value, dtype=np.int64)),
                             persistent=False)

    def refresh(self, dtype: torch.dtype) -> None:
        """Re-create the float constants in ``dtype`` from their float64 masters."""
        restore_masters(self, self._masters, dtype)


def refresh_plans(module: nn.Module, dtype: torch.dtype) -> None:
    """:meth:`_Plan.refresh` every plan inside ``module``."""
    for sub in module.modules():
        if isinstance(sub, _Plan):
            sub.refresh(dtype)


def _linear_entries(lin: o3.Linear) -> list[tuple[int, int, int, float]]:
    """``(row, col, weight index, coefficient)`` of every nonzero of ``lin`` as a matrix."""
    if lin.bias.numel():
        raise NotImplementedError("linear maps with biases are not fused")
    entries = []
    offset = 0
    ins_in, ins_out = lin.irreps_in.slices(), lin.irreps_out.slices()
    for ins in lin.instructions:
        mul_in, ir_in = lin.irreps_in[ins.i_in]
        mul_out, _ = lin.irreps_out[ins.i_out]
        d = ir_in.dim
        r0, c0 = ins_in[ins.i_in].start, ins_out[ins.i_out].start
        for u in range(mul_in):
            for v in range(mul_out):
                widx = offset + u * mul_out + v
                for m in range(d):
                    entries.append((r0 + u * d + m, c0 + v * d + m, widx, ins.path_weight))
        offset += mul_in * mul_out
    return entries


class LinearPlan(_Plan):
    """``o3.Linear`` (no biases) as a dense matrix: ``x @ plan.matrix(lin.weight)``."""

    def __init__(self, lin: o3.Linear) -> None:
        super().__init__()
        self.shape = (lin.irreps_in.dim, lin.irreps_out.dim)
        e = np.array(_linear_entries(lin), dtype=np.float64).reshape(-1, 4)
        self._index("flat", e[:, 0].astype(np.int64) * self.shape[1] + e[:, 1].astype(np.int64))
        self._index("widx", e[:, 2].astype(np.int64))
        self._float("coef", e[:, 3])

    def matrix(self, weight: torch.Tensor) -> torch.Tensor:
        values = weight[self.widx] * self.coef
        out = values.new_zeros(self.shape[0] * self.shape[1])
        return out.index_put((self.flat,), values, accumulate=True).view(self.shape)

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return x @ self.matrix(weight)


class TensorProductLinear(_Plan):
    """``Σ_c lins[c](tp(x_c, Y, w_c))`` for ``c < len(lins)`` copies of the e3nn tensor
    product ``tp`` (weighted ``'uvu'`` instructions, per-edge weights, ``Y`` of multiplicity
    one) followed by linear maps ``lins`` (no biases) with one output irreps.

    Per output degree ``l`` and edge the result is ``A_l @ X_l`` with

    * ``A_l[m, (l_in, i, l_Y)] = Σ_j Y_j C(l_in, l_Y, l)[i, j, m]``: the Clebsch–Gordan
      coefficients of every path from degree ``l_in`` (component ``i``) to ``l``, contracted
      with ``Y``; they depend on degrees only, so both parities share them, and all come
      from one matmul ``Y @ G``;
    * ``X_l[(l_in, i, l_Y), v] = Σ_{c,u} x_c[b, u, i] K[(c, u), (p, v)]`` summed over the
      paths ``p`` from blocks ``b`` of degree ``l_in`` through ``Y_{l_Y}`` to output channel
      ``v``: the input channels mixed by ``K``, the per-edge tensor-product weights folded
      into the linear maps (and the paths' normalization), one small batched matmul per
      input block.

    The wide tensor-product output (``Σ_p mul_p dim_p`` per edge) is never formed: the
    channels are contracted before the Clebsch–Gordan step instead of after it."""

    def __init__(self, tp: o3.TensorProduct, lins: list[o3.Linear]) -> None:
        super().__init__()
        irreps_in, irreps_sh, irreps_mid = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
        irreps_out = lins[0].irreps_out
        if any(mul != 1 for mul, _ in irreps_sh):
            raise NotImplementedError("the second input must have multiplicity one")
        if any(lin.irreps_out != irreps_out or lin.irreps_in != irreps_mid for lin in lins):
            raise ValueError("every linear map must read the tensor product's output and "
                             "share one output irreps")
        copies = len(lins)
        self.n_weights = tp.weight_numel
        dim_sh = irreps_sh.dim
        sh_sl, out_sl = irreps_sh.slices(), irreps_out.slices()
        w_off, offset = [], 0
        for ins in tp.instructions:
            if ins.connection_mode != "uvu" or not ins.has_weight:
                raise NotImplementedError("only weighted 'uvu' instructions are fused")
            w_off.append(offset)
            offset += int(np.prod(ins.path_shape))
        lin_off = np.cumsum([0] + [lin.weight.numel() for lin in lins])
        lin_paths = []  # per copy: (mid block, output block) -> (weight offset, path weight)
        for lin in lins:
            paths, offset = {}, 0
            for ins in lin.instructions:
                paths[ins.i_in, ins.i_out] = (offset, ins.path_weight)
                offset += int(np.prod(ins.path_shape))
            lin_paths.append(paths)
        # output groups: degrees l, each with its channels (output block, channel)
        degrees = sorted({ir.l for _, ir in irreps_out})
        chans = {l: [(o, v) for o, (mul, ir) in enumerate(irreps_out) if ir.l == l  # noqa: E741
                     for v in range(mul)] for l in degrees}  # noqa: E741
        rows = {l: sorted({(irreps_in[ins.i_in1].ir.l, ins.i_in2)  # noqa: E741
                           for ins in tp.instructions if irreps_mid[ins.i_out].ir.l == l})
                for l in degrees}  # noqa: E741
        row_start, x_dim = {}, 0  # (l, l_in, block of Y) -> first row of X_l; X's size
        self.groups: list[tuple[int, int, int]] = []  # (dim, Q, channels) per degree
        for l in degrees:  # noqa: E741
            q = 0
            for l_in, l_sh in rows[l]:
                row_start[l, l_in, l_sh] = q
                q += 2 * l_in + 1
            self.groups.append((2 * l + 1, q, len(chans[l])))
            x_dim += q * len(chans[l])
        group_start = dict(zip(degrees, np.cumsum([0] + [q * v for _, q, v in self.groups])))
        # per input block b: K's columns (path, channel) and entries, and where X'' goes
        self.blocks: list[tuple[int, int, int, int]] = []  # (start, mul, dim, K columns)
        k_entries = []  # (tp weight index, linear weight index, coefficient), K row-major
        x_target = []  # per column of the concatenated X'': its place in X
        for b, ((mul, ir), sl) in enumerate(zip(irreps_in, irreps_in.slices())):
            cols = []  # (instruction, output block, channel in the block, channel in X_l)
            for k, ins in enumerate(tp.instructions):
                ir_mid = irreps_mid[ins.i_out].ir
                if ins.i_in1 != b or ir_mid.l not in chans:
                    continue
                for v, (o, v_local) in enumerate(chans[ir_mid.l]):
                    if irreps_out[o].ir == ir_mid and all(
                            (ins.i_out, o) in paths for paths in lin_paths):
                        cols.append((k, o, v_local, v))
            if not cols:
                continue
            for c in range(copies):
                for u in range(mul):
                    for k, o, v_local, _ in cols:
                        off, pw = lin_paths[c][tp.instructions[k].i_out, o]
                        k_entries.append((c * self.n_weights + w_off[k] + u,
                                          int(lin_off[c]) + off + u * irreps_out[o].mul
                                          + v_local, pw * tp.instructions[k].path_weight))
            for i in range(ir.dim):
                for k, _, _, v in cols:
                    ins = tp.instructions[k]
                    l_out = irreps_mid[ins.i_out].ir.l
                    q = row_start[l_out, ir.l, ins.i_in2] + i
                    x_target.append(int(group_start[l_out]) + q * len(chans[l_out]) + v)
            self.blocks.append((sl.start, mul, ir.dim, len(cols)))
        g_cols, out_index = [], []
        for l in degrees:  # noqa: E741
            block = np.zeros((dim_sh, 2 * l + 1, self.groups[len(g_cols)][1]))
            for l_in, l_sh in rows[l]:
                l_y = irreps_sh[l_sh].ir.l
                w3j = o3.wigner_3j(l_in, l_y, l, dtype=torch.float64).numpy()  # [i, j, m]
                q0 = row_start[l, l_in, l_sh]
                block[sh_sl[l_sh], :, q0 : q0 + 2 * l_in + 1] = np.transpose(w3j, (1, 2, 0))
            g_cols.append(block.reshape(dim_sh, -1))
            for o, v_local in chans[l]:
                start = out_sl[o].start + v_local * (2 * l + 1)
                out_index.extend(range(start, start + 2 * l + 1))
        self.x_dim = int(x_dim)
        self._float("g", np.concatenate(g_cols, axis=1))
        self._index("k_tp", [e[0] for e in k_entries])
        self._index("k_lin", [e[1] for e in k_entries])
        self._float("k_coef", [e[2] for e in k_entries])
        self._index("x_target", x_target)
        # without repeated input irreps every place of X has at most one source: gather
        # (holes read an appended zero column) instead of scatter-adding
        self.gather_x = len(set(x_target)) == len(x_target)
        source = np.full(self.x_dim, len(x_target), dtype=np.int64)
        source[np.asarray(x_target, dtype=np.int64)] = np.arange(len(x_target))
        self._index("x_source", source)
        order = np.argsort(np.asarray(out_index))
        self.permute = not np.array_equal(order, np.arange(len(order)))
        self._index("order", order)

    def _factor(self, lin_weights: list[torch.Tensor]) -> torch.Tensor:
        lin = lin_weights[0] if len(lin_weights) == 1 else torch.cat(lin_weights)
        return lin[self.k_lin] * self.k_coef

    def mixing(self, w: torch.Tensor, lin_weights: list[torch.Tensor]) -> torch.Tensor:
        """``K`` (E, entries) from per-edge weights ``w`` (E, copies * weight_numel)."""
        return w.index_select(1, self.k_tp) * self._factor(lin_weights)

    def mixing_from_hidden(self, hidden: torch.Tensor, last: torch.Tensor,
                           lin_weights: list[torch.Tensor]) -> torch.Tensor:
        """``K`` for per-edge weights ``w = hidden @ last`` (the last, linear layer of an
        MLP), without forming ``w``: ``hidden @ (last[:, k] * factor)``."""
        return hidden @ (last.index_select(1, self.k_tp) * self._factor(lin_weights))

    def forward(self, xs: list[torch.Tensor], sh: torch.Tensor, k: torch.Tensor
                ) -> torch.Tensor:
        """Outputs (E, dim_out) for inputs ``xs`` (one (E, dim_in) array per copy), ``Y``
        ``sh`` and the mixing ``k`` (:meth:`mixing` or :meth:`mixing_from_hidden`)."""
        n = sh.shape[0]
        ks = k.split([len(xs) * mul * cols for _, mul, _, cols in self.blocks], 1)
        mixed = []
        for (start, mul, dim, cols), kb in zip(self.blocks, ks):
            parts = [x[:, start : start + mul * dim].view(n, mul, dim) for x in xs]
            xb = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
            mixed.append(torch.bmm(xb.transpose(1, 2), kb.view(n, -1, cols)).view(n, -1))
        if self.gather_x:
            x_all = torch.cat([*mixed, sh.new_zeros(n, 1)], 1).index_select(1, self.x_source)
        else:
            x_all = sh.new_zeros(n, self.x_dim).index_add(1, self.x_target, torch.cat(mixed, 1))
        a_parts = (sh @ self.g).split([d * q for d, q, _ in self.groups], 1)
        x_parts = x_all.split([q * v for _, q, v in self.groups], 1)
        out = []
        for (d, q, v), a, x in zip(self.groups, a_parts, x_parts):
            res = torch.bmm(a.reshape(n, d, q), x.reshape(n, q, v))  # (E, d, v)
            out.append(res.transpose(1, 2).reshape(n, v * d))
        out = torch.cat(out, 1)
        return out.index_select(1, self.order) if self.permute else out
