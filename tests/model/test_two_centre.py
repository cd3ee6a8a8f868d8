"""The two-centre baseline of the bond blocks (``ModelConfig.two_centre``): it is the
Slater–Koster form, exactly covariant and Hermitian; the least-squares step fits a pure
two-centre data set to rounding; the full model keeps every symmetry, sharing and the fused
path agree with the plain one; old checkpoints load unchanged."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import SMALL
from test_shipped_prediction import REFERENCE, _blocks, fixture_structure

import textures
from ase_hamgnn import keys as K
from ase_hamgnn.errors import ConfigError
from ase_hamgnn.model import HamGNNModel, ModelConfig, load_model
from ase_hamgnn.model.baseline import (
    TwoCentreBaseline,
    TwoCentreFit,
    edge_h0,
    fit_two_centre,
    residual_scales,
    two_centre_ls,
)
from ase_hamgnn.model.hamgnn_model import read_checkpoint
from ase_hamgnn.model.inputs import graph_inputs
from ase_hamgnn.slater_koster import sk_basis
from ase_hamgnn.symmetry import random_rotation, transform_atoms, transform_hamiltonian, wigner_d

TOL = 1e-10
DATA = REFERENCE.parent  # test data folder
#: Two s shells on Ni: same-element blocks of different shells (4s-5s, 4s-3d) are tied
#: between the two orientations of a bond.
BASIS = {"Ni": ["4s", "5s", "3d"], "Br": ["4s", "4p"]}


def _randomize(model: HamGNNModel, seed: int) -> HamGNNModel:
    """Random two-centre coefficients (eV scale) and output scales (one per shell pair)."""
    gen = np.random.default_rng(seed)
    base = model.network.two_centre
    base.set_coefficients({k: gen.normal(size=p.shape) for k, p in base.coefficients.items()})
    basis, scales = model.basis, {}
    for zi in base.species:
        for zj in base.species:
            scale = np.zeros((basis.n_orbitals(zi), basis.n_orbitals(zj)))
            for si in basis.shell_slices(zi):
                for sj in basis.shell_slices(zj):
                    scale[si, sj] = gen.uniform(0.2, 2.0)
            scales[f"{zi}_{zj}"] = scale
    base.set_scales(scales)
    return model


@pytest.fixture(scope="module")
def two_centre_model() -> HamGNNModel:
    config = ModelConfig(**{**SMALL, "basis": BASIS}, two_centre=True, two_centre_scale=True,
                         onsite_bias=True)
    model = HamGNNModel(config, dtype=torch.float64, seed=8)
    gen = np.random.default_rng(8)
    model.network.set_onsite_bias({28: gen.normal(size=(7, 7)), 35: gen.normal(size=(4, 4))})
    return _randomize(model, 9)


@pytest.fixture
def textured(nibr2_like, rng):
    atoms = nibr2_like.repeat((2, 1, 1))
    atoms.positions += rng.uniform(-0.1, 0.1, size=atoms.positions.shape)
    moments = np.zeros((len(atoms), 3))
    ni = atoms.numbers == 28
    moments[ni] = rng.normal(size=(ni.sum(), 3)) * 1.5
    atoms.set_initial_magnetic_moments(moments)
    return atoms


def _scale(ham):
    return max(abs(m).max() for m in ham.h_r.values())


def _baseline(seed: int = 0, coupled: bool = False) -> TwoCentreBaseline:
    from ase_hamgnn.basis import OrbitalBasis

    base = TwoCentreBaseline(OrbitalBasis(BASIS), [28, 35], cutoff=5.0, n_radial=4,
                             coupled=coupled)
    base.to(torch.float64).refresh(torch.float64)
    gen = np.random.default_rng(seed)
    parts = 2 if coupled else 1
    base.set_coefficients({k: gen.normal(size=(parts, *p.shape))
                           for k, p in base.coefficients.items()})
    return base


# -- the baseline on its own ---------------------------------------------------------------------
def test_channels_are_the_slater_koster_ones():
    assert [two_centre_ls(*ls) for ls in [(0, 0), (0, 1), (1, 1), (0, 2), (1, 2), (2, 2)]] == [
        [0], [1], [0, 2], [2], [1, 3], [0, 2, 4]]
    base = _baseline()
    # one row per sigma/pi/delta bond integral: Ni-Br (s, s, d) x (s, p); Ni-Ni a <= b only
    assert len(base.channels["28_35"]) == 2 * (1 + 1) + (1 + 2)
    assert len(base.channels["28_28"]) == 5 * 1 + 3  # 4s4s, 4s5s, 4s3d, 5s5s, 5s3d; 3d3d
    assert "35_28" not in base.coefficients


def test_blocks_span_the_slater_koster_blocks(rng):
    """At a fixed distance each shell-pair block is a combination of the textbook
    Slater–Koster channel blocks with direction-independent weights, and back."""
    base = _baseline()
    dirs = rng.normal(size=(40, 3))
    vec = torch.as_tensor(2.7 * dirs / np.linalg.norm(dirs, axis=1, keepdims=True))
    phi = base.design(28, 35, vec).numpy()  # (E, 9 * 4, n_ch * n_radial)
    ni, nj = 7, 4
    for (a, la, sa), (b, lb, sb) in [((0, 0, slice(0, 1)), (1, 1, slice(1, 4))),
                                     ((2, 2, slice(2, 7)), (1, 1, slice(1, 4))),
                                     ((2, 2, slice(2, 7)), (0, 0, slice(0, 1)))]:
        sk = sk_basis(la, lb, vec.numpy())  # (E, n_ch, 2la+1, 2lb+1)
        rows = [n for n, c in enumerate(base.channels["28_35"]) if c[:2] == (a, b)]
        cols = [n * 4 + k for n in rows for k in range(4)]
        mine = phi.reshape(len(vec), ni, nj, -1)[:, sa, sb][..., cols]
        mine = mine.reshape(len(vec), -1, len(rows), 4)[..., 0]  # first radial function
        x = mine.reshape(-1, len(rows))
        y = sk.transpose(0, 2, 3, 1).reshape(-1, sk.shape[1])
        assert x.shape[1] == y.shape[1] == min(la, lb) + 1
        for u, v in ((x, y), (y, x)):
            w = np.linalg.lstsq(u, v, rcond=None)[0]
            assert np.abs(u @ w - v).max() <= 1e-12 * np.abs(v).max()


def test_blocks_are_covariant_and_hermitian(rng):
    base = _baseline(1)
    vec = rng.normal(size=(25, 3)) * 1.5
    vt = torch.as_tensor(vec)
    with torch.no_grad():
        fwd = base.blocks(28, 35, vt).numpy().reshape(-1, 7, 4)
        back = base.blocks(35, 28, -vt).numpy().reshape(-1, 4, 7)
        same = base.blocks(28, 28, vt).numpy().reshape(-1, 7, 7)
        same_back = base.blocks(28, 28, -vt).numpy().reshape(-1, 7, 7)
    # h0_ji(-d) = h0_ij(d)^T, between elements and within one (4s-5s and s-d tied)
    np.testing.assert_allclose(back, fwd.transpose(0, 2, 1), rtol=0, atol=1e-13)
    np.testing.assert_allclose(same_back, same.transpose(0, 2, 1), rtol=0, atol=1e-13)
    # within one element the s-p block flips sign with the bond (E_ps = -E_spᵀ), l_a + l_b
    # even blocks do not (E_ds = E_sdᵀ)
    np.testing.assert_allclose(same[:, 2:, :2], same[:, :2, 2:].transpose(0, 2, 1), atol=1e-13)
    with torch.no_grad():
        brbr = base.blocks(35, 35, vt).numpy().reshape(-1, 4, 4)
    np.testing.assert_allclose(brbr[:, 1:, :1], -brbr[:, :1, 1:].transpose(0, 2, 1), atol=1e-13)
    assert np.abs(brbr[:, :1, 1:]).max() > 1e-2

    def orbital(g, ls):
        from scipy.linalg import block_diag

        return block_diag(*[wigner_d(l, g) for l in ls])

    for proper in (True, False):
        g = random_rotation(rng) * (1 if proper else -1)
        with torch.no_grad():
            rot = base.blocks(28, 35, torch.as_tensor(vec @ g.T)).numpy().reshape(-1, 7, 4)
        di, dj = orbital(g, [0, 0, 2]), orbital(g, [0, 1])
        np.testing.assert_allclose(rot, di @ fwd @ dj.T, rtol=0, atol=TOL * np.abs(fwd).max())


# -- least squares --------------------------------------------------------------------------------
def _records(base: TwoCentreBaseline, nibr2_like, rng, n: int):
    """Records of a pure two-centre model: ``h0`` from ``base`` on rattled 2x1 cells (with
    random Ni moments; a coupled ``base`` adds ``M_i·M_j / M_max² E'``), spin blocks with
    arbitrary traceless spin parts (which the fit must ignore)."""
    out = []
    for _ in range(n):
        atoms = nibr2_like.repeat((2, 1, 1))
        atoms.positions += rng.uniform(-0.4, 0.4, size=atoms.positions.shape)
        moments = rng.normal(size=(len(atoms), 3)) * 1.5 * (atoms.numbers == 28)[:, None]
        atoms.set_initial_magnetic_moments(moments)
        data, _ = graph_inputs(atoms, 5.0, dtype=torch.float64)
        numbers = data[K.ATOMIC_NUMBERS].numpy()
        src, dst = data[K.EDGE_INDEX].numpy()
        products = base.products(data[K.MOMENTS], data[K.EDGE_INDEX]).numpy()
        flat = []
        for e in range(len(src)):
            zi, zj = int(numbers[src[e]]), int(numbers[dst[e]])
            with torch.no_grad():
                h0 = base.blocks(zi, zj, data[K.EDGE_VECTORS][e : e + 1]).numpy()
                if base.coupled:
                    h0 = h0 + products[e] * base.blocks(
                        zi, zj, data[K.EDGE_VECTORS][e : e + 1], coupled=True).numpy()
            ni, nj = (7 if zi == 28 else 4), (7 if zj == 28 else 4)
            h0 = h0.reshape(ni, nj)
            a, b, c = (rng.normal(size=(3, ni, nj)) + 1j * rng.normal(size=(3, ni, nj)))
            flat.append(np.block([[h0 + a, b], [c, h0 - a]]).ravel())
        data[K.H_EDGE] = torch.as_tensor(np.concatenate(flat))
        out.append(data)
    return out


@pytest.mark.parametrize("coupled", [False, True])
def test_least_squares_fits_a_pure_two_centre_data_set(nibr2_like, rng, coupled):
    """Also with the moment-coupled function E' (``bond_moment_term``): then both E and E'
    come back (the data's h0 depend on the moments, and only E + p E' fits them)."""
    truth = _baseline(2, coupled)
    records = _records(truth, nibr2_like, rng, 8 if coupled else 6)
    fresh = _baseline(3, coupled)  # other coefficients: the fit must replace them
    fresh.set_coefficients(fit_two_centre(fresh, records, ridge=1e-14))
    if coupled:  # E' exists only between two magnetic atoms (Ni-Ni), elsewhere M_i.M_j = 0
        np.testing.assert_allclose(fresh.coupled_coefficients["28_28"].detach().numpy(),
                                   truth.coupled_coefficients["28_28"].detach().numpy(),
                                   rtol=1e-6, atol=1e-6)
        assert not fresh.coupled_coefficients["35_35"].detach().any()
    for record in records:
        vec = record[K.EDGE_VECTORS]
        numbers = record[K.ATOMIC_NUMBERS].numpy()
        src, dst = record[K.EDGE_INDEX].numpy()
        target = edge_h0(record[K.H_EDGE].numpy(), numbers, np.stack([src, dst]), truth.basis)
        for zi, zj in [(28, 28), (28, 35), (35, 28), (35, 35)]:
            sel = np.nonzero((numbers[src] == zi) & (numbers[dst] == zj))[0]
            with torch.no_grad():
                got = fresh.blocks(zi, zj, vec[sel]).numpy()
                if coupled:
                    p = fresh.products(record[K.MOMENTS], record[K.EDGE_INDEX]).numpy()[sel]
                    got = got + p[:, None] * fresh.blocks(zi, zj, vec[sel], coupled=True).numpy()
            want = np.stack([target[e].ravel() for e in sel])
            assert np.abs(got - want).max() <= 1e-9 * np.abs(want).max()
    # and the residual scales after a perfect fit sit at their floor
    scales = residual_scales(fresh, records, floor=1e-6)
    assert all(np.allclose(s, 1e-6) for s in scales.values())


def test_normal_equations_are_additive(nibr2_like, rng):
    """Streaming records one by one equals one pass over all of them."""
    truth = _baseline(4)
    records = _records(truth, nibr2_like, rng, 3)
    one, two = TwoCentreFit(truth), TwoCentreFit(truth)
    for r in records:
        one.add_record(r)
    two.add_record(records[0])
    for r in records[1:]:
        two.add_record(r)
    assert one.n_blocks == two.n_blocks > 0
    for key in one.gram:
        np.testing.assert_allclose(one.gram[key], two.gram[key], rtol=1e-14, atol=0)


# -- the full model -------------------------------------------------------------------------------
def test_rotation_inversion_and_time_reversal(two_centre_model, textured, rng):
    model = two_centre_model
    ham = model.predict(textured)
    for proper in (True, False):
        g = random_rotation(rng) * (1 if proper else -1)
        rotated = model.predict(transform_atoms(textured, g))
        assert rotated.max_abs_difference(transform_hamiltonian(ham, g)) <= TOL * _scale(ham)
    flipped = model.predict(transform_atoms(textured, time_reversal=True))
    expected = transform_hamiltonian(ham, time_reversal=True)
    assert flipped.max_abs_difference(expected) <= TOL * _scale(ham)
    assert flipped.max_abs_difference(ham) > 1e-4 * _scale(ham)


def test_hermitian(two_centre_model, textured, rng):
    for atoms in (textured, textured.repeat((2, 1, 1))):
        ham = two_centre_model.predict(atoms)
        for r, mat in ham.h_r.items():
            partner = ham.h_r[tuple(-x for x in r)]
            assert abs(mat - partner.conj().T).max() <= 1e-12 * _scale(ham)


def test_baseline_is_what_the_model_adds(two_centre_model, textured):
    """With the network's heads silenced the bond blocks are the baseline's h0 (x) 1."""
    model = copy.deepcopy(two_centre_model)
    with torch.no_grad():
        for head in (*model.network.edge_heads.values(), *model.network.node_heads.values()):
            head.weight.zero_()
    data, _ = graph_inputs(textured, model.cutoff, dtype=torch.float64)
    with torch.no_grad():
        out = model.network(data)
    numbers = data[K.ATOMIC_NUMBERS].numpy()
    edge_index = data[K.EDGE_INDEX].numpy()
    got = edge_h0(out["edge"].numpy(), numbers, edge_index, model.basis)
    base = model.network.two_centre
    for e in range(0, edge_index.shape[1], 7):
        zi, zj = int(numbers[edge_index[0, e]]), int(numbers[edge_index[1, e]])
        with torch.no_grad():
            want = base.blocks(zi, zj, data[K.EDGE_VECTORS][e : e + 1]).numpy()
        np.testing.assert_allclose(got[e].ravel(), want.ravel(), rtol=0, atol=1e-13)
    assert torch.view_as_real(out["edge_magnetic"]).abs().max() == 0


def test_shared_environments_equal_plain(two_centre_model, nibr2_like):
    cells = textures.supercell(nibr2_like, (4, 4, 1))
    atoms = textures.skyrmion(cells, radius=4.0, magnetic=("Ni",), magnitude=2.0)
    model = two_centre_model
    assert model.can_share_environments
    model.share_environments = False
    plain = model.predict(atoms)
    model.share_environments = True
    from ase_hamgnn.geometry import Geometry
    from ase_hamgnn.graph import neighbor_graph

    geometry = Geometry.from_atoms(atoms)
    assert model.environment_classes(geometry, neighbor_graph(geometry, model.cutoff)) is not None
    shared = model.predict(atoms)
    assert plain.max_abs_difference(shared) <= 1e-12 * _scale(plain)


def test_fused_equals_e3nn_modules_with_gradients(two_centre_model, textured):
    net = two_centre_model.network
    data, _ = graph_inputs(textured, two_centre_model.cutoff, dtype=torch.float64)

    def run(fused):
        net.fused = fused
        net.zero_grad(set_to_none=True)
        out = net(data)
        loss = sum((torch.view_as_real(out[k]) ** 2).sum() for k in ("onsite", "edge"))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
        net.fused = True
        return {k: out[k].detach() for k in ("onsite", "edge")}, grads

    out_f, grad_f = run(True)
    out_e, grad_e = run(False)
    for key in out_e:
        torch.testing.assert_close(out_f[key], out_e[key], rtol=1e-10, atol=1e-12)
    assert any(n.startswith("two_centre.coefficients") for n in grad_f)
    for name in grad_e:
        torch.testing.assert_close(grad_f[name], grad_e[name], rtol=1e-9, atol=1e-11, msg=name)


# -- configuration and checkpoints ----------------------------------------------------------------
def test_config_round_trip_and_checks(tmp_path):
    config = ModelConfig(**SMALL, two_centre=True, two_centre_scale=True)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["two_centre"] is True
    old = ModelConfig(**SMALL).to_dict()
    del old["two_centre"], old["two_centre_scale"]
    assert ModelConfig.from_dict(old).two_centre is False
    with pytest.raises(ConfigError, match="two_centre = 'yes'"):
        ModelConfig(**SMALL, two_centre="yes")
    with pytest.raises(ValueError, match="form='physics'"):
        ModelConfig(**SMALL, two_centre=True, form="general")
    with pytest.raises(ValueError, match="needs two_centre"):
        ModelConfig(**SMALL, two_centre_scale=True)

    from ase_hamgnn.train import load_train_config

    (tmp_path / "run.toml").write_text('dataset = "d"\nout = "o"\n[model]\ntwo_centre = true\n'
                                       "two_centre_scale = true\nonsite_bias = true\n")
    cfg = load_train_config(tmp_path / "run.toml")
    assert cfg.model == {"two_centre": True, "two_centre_scale": True, "onsite_bias": True}
    (tmp_path / "bad.toml").write_text('dataset = "d"\nout = "o"\n[model]\ntwo_centre = 1\n')
    with pytest.raises(ConfigError, match="two_centre = 1"):
        load_train_config(tmp_path / "bad.toml")


def test_checkpoint_round_trip(two_centre_model, textured, tmp_path):
    path = two_centre_model.save(tmp_path / "tc.pt")
    state = read_checkpoint(path)
    assert any(k.startswith("two_centre.coefficients.") for k in state["weights"])
    assert any(k.startswith("two_centre.scale_") for k in state["weights"])
    again = load_model(path, dtype=torch.float64)  # rebuilt in float32, then cast up
    ham = two_centre_model.predict(textured)
    assert again.predict(textured).max_abs_difference(ham) <= 1e-6 * _scale(ham)
    for name, value in again.network.state_dict().items():
        if name.startswith("two_centre."):
            torch.testing.assert_close(value, state["weights"][name].to(value.dtype),
                                       rtol=1e-7, atol=0)


def test_old_checkpoint_loads_unchanged():
    """The first shipped model (``data/nibri-demo-v2.pt``, the checkpoint of
    ``configs/nibri-demo.toml`` that was shipped as ``nibri-reference`` before the option
    existed): no key in its config, the same weights bit for bit, and its stored
    prediction (``data/nibri-demo-prediction.npz``)."""
    old = DATA / "nibri-demo-v2.pt"
    state = read_checkpoint(old)
    assert "two_centre" not in state["config"]
    model = load_model(old)
    assert model.config.two_centre is False and model.network.two_centre is None
    loaded = model.network.state_dict()
    assert loaded.keys() == state["weights"].keys()
    assert all(torch.equal(loaded[k], state["weights"][k]) for k in loaded)
    got = _blocks(model, fixture_structure())
    ref = np.load(DATA / "nibri-demo-prediction.npz")
    expected = np.concatenate([ref["onsite"], ref["edge"]]).astype(np.complex128)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.slow
def test_training_fits_the_baseline_before_the_first_epoch(tmp_path):
    from ase_hamgnn.data import HamiltonianDataset, make_reference_dataset
    from ase_hamgnn.train import TrainConfig, initial_fit, train

    root = tmp_path / "data"
    make_reference_dataset(root, "nibr2", "1x1", 10, seed=3, progress=False)
    model_keys = {k: v for k, v in SMALL.items() if k not in ("basis", "cutoff", "magnetic",
                                                                 "valence")}
    cfg = TrainConfig(dataset=str(root), out=str(tmp_path / "run"), epochs=2, batch_size=4,
                      model={**model_keys, "two_centre": True, "two_centre_scale": True,
                             "onsite_bias": True}, lr=1e-3, lr_min=1e-4)
    train(cfg, progress=False, max_epochs=1)
    first = read_checkpoint(tmp_path / "run" / "last.pt")["weights"]
    coef = {k: v for k, v in first.items() if k.startswith("two_centre.coefficients.")}
    assert coef and all(v.abs().max() > 0 for v in coef.values())
    # the fit alone: what a fresh model gets from initial_fit on the same records
    fresh = HamGNNModel(load_model(tmp_path / "run" / "last.pt").config, seed=0)
    initial_fit(fresh, HamiltonianDataset(root, "train"))
    for k, v in coef.items():
        fitted = fresh.network.state_dict()[k]
        assert (v - fitted).abs().max() <= 0.05 * fitted.abs().max() + 1e-3  # one epoch moved
    train(cfg, progress=False)  # resumes from last.pt: no second fit, no error


def test_coupled_fit_needs_the_moment_products(nibr2_like, rng):
    truth = _baseline(5, coupled=True)
    record = _records(truth, nibr2_like, rng, 1)[0]
    numbers = record[K.ATOMIC_NUMBERS].numpy()
    edge_index = record[K.EDGE_INDEX].numpy()
    h0 = edge_h0(record[K.H_EDGE].numpy(), numbers, edge_index, truth.basis)
    with pytest.raises(ValueError, match="moment products"):
        TwoCentreFit(truth).add(numbers, edge_index, record[K.EDGE_VECTORS].numpy(), h0)
