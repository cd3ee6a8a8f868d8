"""The Γ eigenvalue term of the training loss against a literal dense reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import SMALL
from torch_geometric.loader import DataLoader

from ase_hamgnn import keys as K
from ase_hamgnn.data import HamiltonianDataset, ReferenceTB, record_to_hamiltonian
from ase_hamgnn.train import TrainConfig, train
from ase_hamgnn.train.eigen import GammaEigenvalues


@pytest.fixture(scope="module", params=[False, True], ids=["orthogonal", "overlap"])
def periodic_dataset(request, tmp_path_factory):
    from ase_hamgnn.data import generate_configurations, write_dataset

    root = tmp_path_factory.mktemp("eig") / f"nibr2-{request.param}"
    confs = generate_configurations("nibr2", "1x1", 10, rng=4)
    write_dataset(ReferenceTB("nibr2", overlap=request.param), confs, root, rng=0,
                  progress=False)
    return root


def _term(window):
    from ase.data import atomic_numbers

    ref = ReferenceTB("nibr2")
    sizes = {atomic_numbers[e]: 2 * ref.basis.n_orbitals(e) for e in ref.basis.elements}
    valence = {atomic_numbers[e]: float(v) for e, v in ref.valence.items()}
    return GammaEigenvalues(sizes, valence, window), ref


def _literal_gamma_eigenvalues(path):
    """Σ_R H(R) and Σ_R S(R) as dense matrices, solved by scipy."""
    ham = record_to_hamiltonian(path)
    h = sum(m.toarray() for m in ham.h_r.values())
    s = np.eye(len(h)) if ham.s_r is None else sum(m.toarray() for m in ham.s_r.values())
    return scipy.linalg.eigh(0.5 * (h + h.conj().T), 0.5 * (s + s.conj().T), eigvals_only=True)


def test_a_shift_by_the_overlap_moves_every_eigenvalue_by_the_shift(periodic_dataset):
    """H + c S (S = 1 for an orthogonal basis) has the eigenvalues of H shifted by c: the
    term is c² per eigenvalue in the windows, whose sizes agree with scipy on the literal Γ
    matrices."""
    ds = HamiltonianDataset(periodic_dataset, "train")
    window = 2.0
    term, ref = _term(window)
    batch = next(iter(DataLoader(ds, batch_size=3, shuffle=False)))
    expected, squares = 0, 0.0
    for path in ds.paths[:3]:
        e = _literal_gamma_eigenvalues(path)
        n_el = int(round(ref.valence["Ni"] + 2 * ref.valence["Br"]))
        mid = 0.5 * (e[n_el - 1] + e[n_el])
        assert np.abs(np.abs(e - mid) - window).min() > 1e-6  # no level on the window edge
        expected += int((np.abs(e - mid) <= window).sum())
        squares += float((e[np.abs(e - mid) <= window] ** 2).sum())
    assert expected > 0
    c = 0.037
    if K.S_ONSITE in batch:
        s_on, s_edge = batch[K.S_ONSITE], batch[K.S_EDGE]
    else:  # identity on-site blocks, nothing on the edges
        sizes = term.sizes[batch[K.ATOMIC_NUMBERS].numpy()]
        s_on = torch.as_tensor(np.concatenate([np.eye(n).ravel() for n in sizes]),
                               dtype=batch[K.H_ONSITE].dtype)
        s_edge = torch.zeros_like(batch[K.H_EDGE])
    out = {"onsite": batch[K.H_ONSITE] + c * s_on, "edge": batch[K.H_EDGE] + c * s_edge}
    total, count = term.errors(out, batch)
    assert count == expected
    assert float(total) == pytest.approx(c * c * count, rel=1e-8)
    # a perfect prediction costs nothing; H = 0 costs the sum of the squared eigenvalues in
    # the windows, which must be scipy's
    zero, _ = term.errors({"onsite": batch[K.H_ONSITE], "edge": batch[K.H_EDGE]}, batch)
    assert float(zero) < 1e-20
    empty, n = term.errors({"onsite": 0 * batch[K.H_ONSITE], "edge": 0 * batch[K.H_EDGE]},
                           batch)
    assert n == expected and float(empty) == pytest.approx(squares, rel=1e-10)


def test_the_term_has_gradients_and_trains(periodic_dataset, tmp_path):
    term, _ = _term(3.0)
    ds = HamiltonianDataset(periodic_dataset, "train")
    batch = next(iter(DataLoader(ds, batch_size=2, shuffle=False)))
    onsite = batch[K.H_ONSITE].clone().requires_grad_(True)
    total, count = term.errors({"onsite": onsite + 0.01, "edge": batch[K.H_EDGE]}, batch)
    total.backward()
    assert count > 0 and torch.isfinite(onsite.grad).all() and onsite.grad.abs().sum() > 0

    model = {k: v for k, v in SMALL.items() if k not in ("basis", "cutoff", "magnetic",
                                                         "valence")}
    cfg = TrainConfig(dataset=str(periodic_dataset), out=str(tmp_path / "run"), model=model,
                      epochs=2, batch_size=4, lr=1e-2, lr_min=1e-3, eigen_weight=1e-2)
    history = train(cfg, progress=False)["history"]
    assert len(history) == 2 and all(np.isfinite(h["loss_eigen"]) for h in history)
    plain = train(TrainConfig(**{**cfg.to_dict(), "eigen_weight": 0.0,
                                 "out": str(tmp_path / "plain")}), progress=False)["history"]
    assert "loss_eigen" not in plain[0]
    # the term changes the steps, so the entry loss of the same epochs differs
    assert history[1]["loss"] != pytest.approx(plain[1]["loss"], rel=1e-6)


def test_an_element_without_valence_is_a_config_error(periodic_dataset, tmp_path):
    from ase_hamgnn.errors import ConfigError

    model = {k: v for k, v in SMALL.items() if k not in ("basis", "cutoff")}
    model["valence"] = {"Ni": 10.0}  # Br missing
    cfg = TrainConfig(dataset=str(periodic_dataset), out=str(tmp_path / "run"), model=model,
                      epochs=1, batch_size=4, eigen_weight=1e-2)
    with pytest.raises(ConfigError, match="add Br to the valence table"):
        train(cfg, progress=False)
