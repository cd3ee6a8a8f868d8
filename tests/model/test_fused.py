"""The fused evaluation (ase_hamgnn.model.fused) equals e3nn's modules: outputs and parameter
gradients, float64, for the test models and the shipped model's layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SMALL
from e3nn import o3

from ase_hamgnn.data.structures import nibri
from ase_hamgnn.model import HamGNNModel, ModelConfig, load_model
from ase_hamgnn.model.fused import LinearPlan, TensorProductLinear, refresh_plans
from ase_hamgnn.model.inputs import graph_inputs


def _structure():
    atoms = nibri((2, 2, 1))
    rng = np.random.default_rng(3)
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    moments = rng.normal(size=(len(atoms), 3))
    moments[atoms.numbers != 28] = 0.0
    atoms.set_initial_magnetic_moments(moments)
    return atoms


def _outputs_and_grads(model, data, fused):
    net = model.network
    net.fused = fused
    net.zero_grad(set_to_none=True)
    out = net(data)
    loss = sum((torch.view_as_real(out[k]) ** 2).sum() for k in
               ("onsite", "edge", "onsite_magnetic", "edge_magnetic"))
    loss.backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    net.fused = True
    return {k: v.detach() for k, v in out.items()}, grads


@pytest.mark.parametrize("extra", [{}, {"moment_coupling": True, "exchange_channels": 2,
                                        "onsite_weight": "orbital", "onsite_bias": True},
                                   {"moment_coupling": "normalized"}, {"form": "general"}])
def test_fused_network_equals_e3nn_modules(extra):
    model = HamGNNModel(ModelConfig(**{**SMALL, "basis": {"Ni": ["4s", "3d"], "Br": ["4s", "4p"],
                                                          "I": ["5s", "5p"]}}, **extra),
                        dtype=torch.float64, seed=11)
    data, _ = graph_inputs(_structure(), model.cutoff, dtype=torch.float64)
    out_f, grad_f = _outputs_and_grads(model, data, True)
    out_e, grad_e = _outputs_and_grads(model, data, False)
    for key in out_e:
        torch.testing.assert_close(out_f[key], out_e[key], rtol=1e-10, atol=1e-12)
    assert grad_f.keys() == grad_e.keys()
    for name in grad_e:
        torch.testing.assert_close(grad_f[name], grad_e[name], rtol=1e-9, atol=1e-11,
                                   msg=name)


def test_plans_reproduce_the_shipped_modules():
    net = load_model("nibri-reference").network.to(torch.float64).refresh_constants()
    gen = torch.Generator().manual_seed(0)
    n = 40
    x = [torch.randn(n, net.irreps_node.dim, generator=gen, dtype=torch.float64)
         for _ in range(2)]
    sh = o3.spherical_harmonics(net.irreps_sh, torch.randn(n, 3, generator=gen,
                                                           dtype=torch.float64),
                                normalize=True, normalization="component")
    n_i = net.pair_tp_i.weight_numel
    w = torch.randn(n, 2 * n_i, generator=gen, dtype=torch.float64)
    expected = (net.pair_mix_i(net.pair_tp_i(x[0], sh, w[:, :n_i]))
                + net.pair_mix_j(net.pair_tp_j(x[1], sh, w[:, n_i:])))
    plan = net.fused_pair
    got = plan(x, sh, plan.mixing(w, [net.pair_mix_i.weight, net.pair_mix_j.weight]))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    layer = net.layers[0]
    w1 = torch.randn(n, layer.tp.weight_numel, generator=gen, dtype=torch.float64)
    got = layer.fused_message([x[0]], sh, layer.fused_message.mixing(w1, [layer.lin_out.weight]))
    torch.testing.assert_close(got, layer.lin_out(layer.tp(x[0], sh, w1)), rtol=1e-12,
                               atol=1e-12)
    for name, lin in [("node_lift", net.node_lift), ("edge_28_35", net.edge_heads["28_35"])]:
        y = torch.randn(n, lin.irreps_in.dim, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(net.fused_linear[name](y, lin.weight), lin(y), rtol=1e-12,
                                   atol=1e-12)


def test_plans_hold_no_parameters_and_keep_float64_constants():
    """Checkpoints are unchanged (the plans add no state) and float64 constants come from
    float64 masters, not from float32 values cast up."""
    model = load_model("nibri-reference")
    state = model.network.state_dict()
    assert not any("fused" in key for key in state)
    net = model.network.to(torch.float64).refresh_constants()
    lin = o3.Linear(net.irreps_pair, net.irreps_pair)
    plan = LinearPlan(lin)
    refresh_plans(plan, torch.float64)
    assert plan.coef.dtype == torch.float64
    assert isinstance(net.fused_pair, TensorProductLinear)
    g = net.fused_pair.g
    assert g.dtype == torch.float64
    # w3j(1, 1, 0) entries are 1/sqrt(3): exact in float64, not float32-rounded
    assert torch.isclose(g.abs()[g.abs() > 0].max(), g.abs().max())
    assert (g.double() - g.float().double()).abs().max() > 0
