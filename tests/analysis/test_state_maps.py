"""Spin and orbital character of single states per atom, and their maps.

The per-atom spin is checked against ``<sigma>`` computed literally from the full spin
matrices of the cell, against the weights (|s_i| <= w_i), under a global SU(2) rotation of
the spinors (the spins rotate by the matching SO(3) matrix), with an overlap, and on a
ferromagnet; the figures are checked through their artists, not their pixels.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import EllipseCollection  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402
from tb_helpers import random_tb, spin_major_indices  # noqa: E402

import textures  # noqa: E402
from ase_hamgnn.analysis import (  # noqa: E402
    OrbitalWeights,
    atom_orbital_weights,
    atom_spin,
    atom_weights,
    local_moments,
    plot_edge_state_maps,
    plot_state_spin,
)
from ase_hamgnn.data import ReferenceTB, nibri  # noqa: E402
from ase_hamgnn.spectra.gap import edge_states  # noqa: E402

K_GENERAL = (0.13, 0.27, 0.0)
PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]],
                 dtype=np.complex128)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _antiskyrmion(size: int = 3):
    return textures.antiskyrmion(nibri((size, size)), radius=0.3 * size * 3.82,
                                 magnetic=("Ni",), magnitude=2.0)


@pytest.fixture(scope="module", params=["orthogonal", "reference-S", "random-S"])
def system(request):
    """(ham, k, states): a textured 3x3 NiBrI (orthogonal or with the reference model's
    overlap) or a random Hamiltonian with a random positive spin-diagonal overlap, and some
    S-normalized eigenstates plus S-normalized random mixtures of them (not eigenstates)."""
    rng = np.random.default_rng(31)
    if request.param == "random-S":
        atoms = textures.random_moments(nibri((1, 2)), rng=5, magnetic=("Ni",))
        ham = random_tb(rng, atoms, ReferenceTB("nibri").basis, overlap=True)
    else:
        ham = ReferenceTB("nibri", overlap=request.param == "reference-S").predict(
            _antiskyrmion())
    _, c = ham.eigh(K_GENERAL)
    mix = c @ (rng.normal(size=(c.shape[1], 3)) + 1j * rng.normal(size=(c.shape[1], 3)))
    s = ham.sk(K_GENERAL).toarray()
    mix /= np.sqrt(np.real(np.einsum("ij,ik,kj->j", mix.conj(), s, mix)))
    return ham, K_GENERAL, np.hstack([c[:, ::9], mix])


def _spin_matrices(ham) -> np.ndarray:
    """(3, dim, dim) Pauli matrices acting on the spin index of every spatial orbital."""
    up, dn = spin_major_indices(ham.basis, ham.geometry.numbers)
    out = np.zeros((3, ham.n_spin_orbitals, ham.n_spin_orbitals), dtype=np.complex128)
    for a in range(3):
        for i, si in enumerate((up, dn)):
            for j, sj in enumerate((up, dn)):
                out[a, si, sj] = PAULI[a, i, j]
    return out


def _su2(axis: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``U = exp(-i angle n.sigma / 2)`` and the SO(3) rotation by ``angle`` about ``n``."""
    n = axis / np.linalg.norm(axis)
    u = np.cos(angle / 2) * np.eye(2) - 1j * np.sin(angle / 2) * np.einsum("a,aij->ij", n,
                                                                           PAULI)
    k = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    r = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    return u, r


# -- atom_spin ------------------------------------------------------------------------------
def test_spin_sums_to_total_sigma_from_full_spin_matrices(system):
    ham, k, c = system
    s_mat = ham.sk(k).toarray()
    literal = np.array([[np.real(np.vdot(col, 0.5 * (sig @ s_mat + s_mat @ sig) @ col))
                         for sig in _spin_matrices(ham)] for col in c.T])  # (n_states, 3)
    spin = atom_spin(ham, k, c)
    assert spin.shape == (c.shape[1], len(ham.geometry.numbers), 3)
    assert spin.dtype == np.float64
    np.testing.assert_allclose(spin.sum(axis=1), literal, rtol=0, atol=1e-10)
    # one state (1-D) gives the same numbers without the state axis
    np.testing.assert_allclose(atom_spin(ham, k, c[:, 1]), spin[1], rtol=0, atol=1e-13)


def test_spin_per_atom_bounded_by_weight_orthogonal():
    rng = np.random.default_rng(3)
    atoms = textures.random_moments(nibri((3, 3)), rng=rng, magnetic=("Ni",), magnitude=2.0)
    ham = ReferenceTB("nibri").predict(atoms)
    _, c = ham.eigh(K_GENERAL)
    mix = c[:, :40] @ (rng.normal(size=(40, 4)) + 1j * rng.normal(size=(40, 4)))
    states = np.hstack([c, mix / np.linalg.norm(mix, axis=0)])
    spin = atom_spin(ham, K_GENERAL, states)  # (n_states, n_atoms, 3)
    w = atom_weights(ham, K_GENERAL, states).T  # (n_states, n_atoms)
    assert np.all(w >= 0.0)
    assert np.all(np.linalg.norm(spin, axis=2) <= w * (1 + 1e-12) + 1e-15)
    # a single orbital's spinor is fully polarized: the bound is reached, |s| = w
    one = np.zeros(ham.n_spin_orbitals, dtype=np.complex128)
    up, dn = spin_major_indices(ham.basis, ham.geometry.numbers)
    one[up[0]], one[dn[0]] = 0.6, 0.8j
    s0 = atom_spin(ham, K_GENERAL, one)
    np.testing.assert_allclose(s0[0], [0.0, 0.96, 0.36 - 0.64], atol=1e-15)
    assert np.linalg.norm(s0[0]) == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize("overlap", [False, True])
def test_global_su2_rotation_rotates_every_spin(overlap):
    rng = np.random.default_rng(11)
    ham = ReferenceTB("nibri", overlap=overlap).predict(_antiskyrmion())
    _, c = ham.eigh(K_GENERAL)
    c = c[:, 100:120]
    up, dn = spin_major_indices(ham.basis, ham.geometry.numbers)
    spin = atom_spin(ham, K_GENERAL, c)
    assert np.abs(spin).max() > 1e-2  # something to rotate
    for _ in range(3):
        u, r = _su2(rng.normal(size=3), rng.uniform(0.1, 2 * np.pi))
        rotated = np.empty_like(c)
        rotated[up] = u[0, 0] * c[up] + u[0, 1] * c[dn]
        rotated[dn] = u[1, 0] * c[up] + u[1, 1] * c[dn]
        np.testing.assert_allclose(atom_spin(ham, K_GENERAL, rotated), spin @ r.T, rtol=0,
                                   atol=1e-12)
        # the weights do not change
        np.testing.assert_allclose(atom_weights(ham, K_GENERAL, rotated),
                                   atom_weights(ham, K_GENERAL, c), rtol=0, atol=1e-12)


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_ferromagnet_along_z_spins_along_z_on_ni(overlap, sign):
    ref = ReferenceTB("nibri", overlap=overlap)
    atoms = textures.ferromagnet(nibri((3, 3)), (0.0, 0.0, sign), magnetic=("Ni",),
                                 magnitude=2.0)
    ham = ref.predict(atoms)
    ne = ref.n_electrons(atoms)
    e, c = ham.eigh((0, 0, 0))
    assert e[ne] - e[ne - 1] > 0.5  # an insulator: the occupied set is well defined
    occupied = atom_spin(ham, (0, 0, 0), c[:, :ne]).sum(axis=0)  # (n_atoms, 3)
    ni = ham.geometry.numbers == 28
    # the Ni spin of the filled states points along the moments: C3 about every site keeps
    # the in-plane part at zero; the size is that of a Ni2+ moment (S = 1: <sigma> ~ 2)
    assert np.all(sign * occupied[ni, 2] > 1.0)
    assert np.all(np.abs(occupied[ni, :2]) <= 1e-10 * np.abs(occupied[ni, 2:]))
    # the same Mulliken spin as the local moments of the same filled states
    lm = local_moments(ham, ne, [[0.0, 0.0, 0.0]])
    np.testing.assert_allclose(occupied, lm.moments, rtol=0, atol=1e-10)


# -- atom_orbital_weights --------------------------------------------------------------------
def test_orbital_weights_sum_to_atom_weights(system):
    ham, k, c = system
    ow = atom_orbital_weights(ham, k, c)
    assert isinstance(ow, OrbitalWeights) and ow.by == "l"
    assert ow.labels == ("s", "p", "d")
    assert ow.weights.shape == (c.shape[1], len(ham.geometry.numbers), 3)
    w = atom_weights(ham, k, c).T
    np.testing.assert_allclose(ow.weights.sum(axis=2), w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ow.total, w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ow.weights.sum(axis=(1, 2)), 1.0, rtol=0, atol=1e-10)
    # Ni carries s and d orbitals only, Br and I s and p only: no weight in the others
    ni = ham.geometry.numbers == 28
    assert np.all(ow.get("p")[:, ni] == 0.0) and np.all(ow.get("d")[:, ~ni] == 0.0)
    one = atom_orbital_weights(ham, k, c[:, 0])
    np.testing.assert_allclose(one.weights, ow.weights[0], rtol=0, atol=1e-14)


def test_orbital_weights_by_l_literal_orthogonal():
    """The s, p, d weights are the sums of |c|^2 over those orbitals of the atom (both
    spins), read off the basis directly."""
    ham = ReferenceTB("nibri").predict(_antiskyrmion())
    _, c = ham.eigh(K_GENERAL)
    states = c[:, 120:126]
    ow = atom_orbital_weights(ham, K_GENERAL, states)
    literal = np.zeros_like(ow.weights)
    for atom, z in enumerate(ham.geometry.numbers):
        el = "Ni" if z == 28 else ("Br" if z == 35 else "I")
        start, stop = ham.offsets[atom], ham.offsets[atom + 1]
        half = (stop - start) // 2
        m = 0
        for shell in ham.basis.shells(el):
            rows = start + m + np.arange(shell.size)
            part = np.abs(states[rows]) ** 2 + np.abs(states[rows + half]) ** 2
            literal[:, atom, shell.l] += part.sum(axis=0)
            m += shell.size
    np.testing.assert_allclose(ow.weights, literal, rtol=0, atol=1e-13)


def test_orbital_weights_by_shell_and_errors():
    ham = ReferenceTB("nibri", overlap=True).predict(_antiskyrmion())
    _, c = ham.eigh((0, 0, 0))
    ow = atom_orbital_weights(ham, (0, 0, 0), c[:, :5], by="shell")
    assert ow.labels == ("Ni 4s", "Ni 3d", "Br 4s", "Br 4p", "I 5s", "I 5p")
    np.testing.assert_allclose(ow.total, atom_weights(ham, (0, 0, 0), c[:, :5]).T, rtol=0,
                               atol=1e-12)
    ni = ham.geometry.numbers == 28
    assert np.all(ow.weights[:, ni][..., 2:] == 0.0)
    with pytest.raises(ValueError, match="'l' or 'shell'"):
        atom_orbital_weights(ham, (0, 0, 0), c[:, 0], by="element")
    with pytest.raises(KeyError, match="no group"):
        ow.get("f")
    with pytest.raises(ValueError, match="rows"):
        atom_spin(ham, (0, 0, 0), c[:-1, 0])
    with pytest.raises(ValueError, match="one state"):
        atom_spin(ham, (0, 0, 0), c[None])


# -- pictures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def edge():
    """Antiskyrmion in 4x4 NiBrI, its VBM and CBM at Γ."""
    ref = ReferenceTB("nibri")
    atoms = _antiskyrmion(4)
    ham = ref.predict(atoms)
    es = edge_states(ham, ref.n_electrons(atoms), n_below=1, n_above=1, vectors=True)
    return atoms, ham, es


def test_plot_state_spin_draws_discs_arrows_and_colour_bar(edge):
    atoms, ham, es = edge
    vbm = es.states[:, 0]
    w, s = atom_weights(ham, es.k, vbm), atom_spin(ham, es.k, vbm)
    ax = plot_state_spin(atoms, w, s, title="VBM")
    fig = ax.figure
    assert isinstance(fig, Figure) and ax.get_title() == "VBM"
    discs = [a for a in ax.collections if isinstance(a, EllipseCollection)]
    arrows = [a for a in ax.collections if isinstance(a, Quiver)]
    assert len(discs) == 1 and len(discs[0].get_offsets()) == len(atoms)
    assert len(arrows) == 1 and arrows[0].N > 0  # the texture tilts some spins in plane
    # every arrow along its atom's in-plane spin
    xy = np.column_stack([arrows[0].X, arrows[0].Y])
    uv = np.column_stack([arrows[0].U, arrows[0].V])
    sites = _xy(atoms)
    for p, d in zip(xy, uv, strict=True):
        atom = int(np.argmin(np.linalg.norm(sites - p, axis=1)))
        assert np.linalg.norm(sites[atom] - p) < 1e-9
        sxy = s[atom, :2]
        assert abs(d[0] * sxy[1] - d[1] * sxy[0]) <= 1e-9 * np.linalg.norm(d) * np.linalg.norm(sxy)
        assert np.dot(d, sxy) > 0
    # colours: <sigma_z>/w per atom, limits -1..1, and a colour bar with its label
    assert discs[0].get_clim() == (-1.0, 1.0)
    assert len(fig.axes) == 2
    assert "sigma_z" in fig.axes[1].get_ylabel()
    assert "Å" in ax.get_xlabel() and "largest disc" in ax.get_xlabel()
    # only some species, no colour bar
    ax2 = plot_state_spin(atoms, w, s, species="Ni", colorbar=False, key=False)
    assert len(ax2.figure.axes) == 1 and ax2.get_xlabel() == "x (Å)"
    assert len([a for a in ax2.collections if isinstance(a, EllipseCollection)][0]
               .get_offsets()) == int(np.sum(atoms.numbers == 28))
    with pytest.raises(ValueError, match="spin must have shape"):
        plot_state_spin(atoms, w, s[:, :2])
    with pytest.raises(ValueError, match="one value per atom"):
        plot_state_spin(atoms, w[:-1], s)


def _xy(atoms) -> np.ndarray:
    """In-plane positions wrapped into the cell, as the maps draw them."""
    frac = atoms.get_scaled_positions()[:, :2]
    return (frac - np.floor(frac + 1e-9)) @ atoms.cell[:2, :2]


def test_plot_edge_state_maps_panels(edge):
    atoms, ham, es = edge
    fig = plot_edge_state_maps(atoms, ham, es.k, es.states, title="antiskyrmion")
    assert isinstance(fig, Figure)
    texture, vbm, cbm, bars = fig.axes[:4]
    assert texture.get_title() == "texture"
    assert vbm.get_title().startswith("VBM: E = ") and f"{es.vbm:.3f}" in vbm.get_title()
    assert cbm.get_title().startswith("CBM: E = ") and f"{es.cbm:.3f}" in cbm.get_title()
    for ax in (texture, vbm, cbm):
        assert any(isinstance(a, Quiver) for a in ax.collections)
    # two colour bars: the texture's m_z and the states' <sigma_z>/w
    labels = [a.get_ylabel() for a in fig.axes[4:]]
    assert len(labels) == 2 and any("m_z" in lbl for lbl in labels)
    assert any("sigma_z" in lbl for lbl in labels)
    # orbital character: one bar per state and element, stacked by l, adding up to 1
    stacks = [c for c in bars.containers if isinstance(c, BarContainer)]
    assert [t.get_text() for t in bars.get_legend().get_texts()] == ["s", "p", "d"]
    heights = np.array([[p.get_height() for p in c.patches] for c in stacks])  # (n_l, 6)
    assert heights.shape == (3, 6)
    np.testing.assert_allclose(heights[:, :3].sum(), 1.0, atol=1e-10)  # VBM: Ni, Br, I
    np.testing.assert_allclose(heights[:, 3:].sum(), 1.0, atol=1e-10)  # CBM
    assert [t.get_text() for t in bars.get_xticklabels()] == ["Ni", "Br", "I"] * 2
    assert fig.get_suptitle() == "antiskyrmion"


def test_plot_edge_state_maps_regions_and_errors(edge):
    atoms, ham, es = edge
    core = np.linalg.norm(_xy(atoms) - _xy(atoms)[np.argmin(
        atoms.get_initial_magnetic_moments()[:, 2])], axis=1) < 4.0
    fig = plot_edge_state_maps(atoms, ham, [es.k, es.k], es.states,
                               regions={"core": core, "rest": ~core})
    bars = fig.axes[3]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["core", "rest"] * 2
    heights = np.array([[p.get_height() for p in c.patches] for c in bars.containers])
    w = atom_weights(ham, es.k, es.states)  # (n_atoms, 2)
    np.testing.assert_allclose(heights.sum(axis=0), [w[core, 0].sum(), w[~core, 0].sum(),
                                                     w[core, 1].sum(), w[~core, 1].sum()],
                               atol=1e-12)
    with pytest.raises(ValueError, match="one label per"):
        plot_edge_state_maps(atoms, ham, es.k, es.states, labels=("VBM",))
    with pytest.raises(ValueError, match="k must be"):
        plot_edge_state_maps(atoms, ham, [es.k] * 3, es.states)
    with pytest.raises(ValueError, match="boolean mask"):
        plot_edge_state_maps(atoms, ham, es.k, es.states, regions={"half": core[:5]})
