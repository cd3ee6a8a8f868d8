"""Spectra for large systems: shift-invert states and counting, KPM DOS, the gap finder and
state densities, each checked against dense diagonalization on small textured supercells."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure
from tb_helpers import random_tb

import textures
from ase_hamgnn.analysis.states import atom_weights, plot_state_density, plot_state_on_texture
from ase_hamgnn.data import ReferenceTB, nibri
from ase_hamgnn.spectra import (
    MetallicError,
    bands,
    broaden,
    edge_states,
    find_gap,
    jackson_kernel,
    kpm_dos,
    spectral_bounds,
)
from ase_hamgnn.spectra.shift_invert import BACKENDS, ShiftInvert, default_backend

K_GENERAL = (0.13, 0.27, 0.0)


def _textured(size: int):
    atoms = nibri((size, size))
    return textures.antiskyrmion(atoms, radius=0.3 * size * 3.82, magnetic=("Ni",),
                                 magnitude=2.0)


@pytest.fixture(scope="module", params=["orthogonal", "overlap"])
def system(request):
    """Reference NiBrI 4x4 with an antiskyrmion (448 spin-orbitals), with and without S."""
    ref = ReferenceTB("nibri", overlap=request.param == "overlap")
    atoms = _textured(4)
    return ref.predict(atoms), ref.n_electrons(atoms)


@pytest.fixture(scope="module")
def random_overlap():
    """A dense random Hamiltonian with a random non-orthogonal S (28 spin-orbitals, random
    moments)."""
    atoms = textures.random_moments(nibri(), rng=7)
    return random_tb(np.random.default_rng(7), atoms, ReferenceTB("nibri").basis, overlap=True)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each sparse factorization (MUMPS when python-mumps is installed, SuperLU always)."""
    if request.param == "mumps" and default_backend() != "mumps":
        pytest.skip("python-mumps is not installed")
    return request.param


def _dense(ham, k):
    e, c = ham.eigh(k)
    return e, c


@pytest.mark.parametrize("k", [(0.0, 0.0, 0.0), K_GENERAL])
def test_shift_invert_matches_dense(system, k, backend):
    ham, ne = system
    e, _ = _dense(ham, k)
    sigma = 0.5 * (e[ne - 1] + e[ne]) + 0.4
    si = ShiftInvert(ham, k, sigma, backend=backend)
    assert si.backend == backend
    assert si.count_below == np.count_nonzero(e < sigma)
    near, c = si.nearest(12)
    expect = np.sort(e[np.argsort(np.abs(e - sigma))[:12]])
    np.testing.assert_allclose(near, expect, atol=1e-10)
    s = ham.sk(k)
    np.testing.assert_allclose(c.conj().T @ (s @ c), np.eye(12), atol=1e-10)
    np.testing.assert_allclose(ham.hk(k) @ c, (s @ c) * near, atol=1e-9)
    below, _ = si.nearest(5, "below", vectors=False)
    above, _ = si.nearest(5, "above", vectors=False)
    np.testing.assert_allclose(below, e[e < sigma][-5:], atol=1e-10)
    np.testing.assert_allclose(above, e[e > sigma][:5], atol=1e-10)


def test_shift_invert_random_overlap(random_overlap, backend):
    ham = random_overlap
    e, _ = _dense(ham, K_GENERAL)
    for sigma in (e[10] + 0.3 * (e[11] - e[10]), 0.0, e[-6]):
        si = ShiftInvert(ham, K_GENERAL, sigma, backend=backend)
        # Only meaningful where no level is within rounding of the shift used: the shift on
        # e[-6] must have been moved off it (the dense levels are good to ~1e-13 eV).
        assert np.abs(e - si.sigma).min() > 1e-9
        assert si.count_below == np.count_nonzero(e < si.sigma)
        near, _ = si.nearest(8, vectors=False)
        np.testing.assert_allclose(near, np.sort(e[np.argsort(np.abs(e - si.sigma))[:8]]),
                                   atol=1e-9)


@pytest.mark.parametrize("level", [0, 5, 13, 22, 27])
def test_shift_on_an_eigenvalue_is_moved_off_it(random_overlap, backend, level):
    """A shift on a level (to the last bit of the dense solver) leaves the inertia to
    rounding: the factorization must notice and move the shift, so the count is the same on
    every CPU and BLAS."""
    ham = random_overlap
    e, _ = _dense(ham, K_GENERAL)
    si = ShiftInvert(ham, K_GENERAL, e[level], backend=backend)
    assert si.sigma > e[level]
    gap_above = e[level + 1] - e[level] if level + 1 < len(e) else np.inf
    assert 1e-9 < si.sigma - e[level] < min(1e-3, 0.5 * gap_above)
    assert si.count_below == level + 1


def test_shift_invert_kramers_level(backend):
    """A shift on a Kramers-degenerate level (two states at once) is moved off it too."""
    ref = ReferenceTB("nibri")
    atoms = nibri()
    atoms.set_initial_magnetic_moments(np.zeros((len(atoms), 3)))
    ham = ref.predict(atoms)
    e, _ = _dense(ham, (0, 0, 0))
    assert np.abs(e[0::2] - e[1::2]).max() < 1e-10  # Kramers pairs
    pair = 2 * int(np.argmax(np.diff(e[1::2])[:-1] > 1e-3))  # a pair apart from the next
    si = ShiftInvert(ham, (0, 0, 0), e[pair], backend=backend)
    assert 1e-9 < si.sigma - e[pair + 1] < 1e-3
    assert si.count_below == pair + 2


def test_shift_invert_finds_both_kramers_partners(backend):
    """Without moments H is time-reversal symmetric: at Γ every level is a Kramers pair,
    and the block iteration must return both partners (a single Krylov vector sees only one
    combination of an exactly degenerate pair)."""
    ref = ReferenceTB("nibri")
    atoms = nibri((4, 4))
    atoms.set_initial_magnetic_moments(np.zeros((len(atoms), 3)))
    ham = ref.predict(atoms)
    e, _ = _dense(ham, (0, 0, 0))
    ne = ref.n_electrons(atoms)
    sigma = 0.5 * (e[ne - 1] + e[ne])
    si = ShiftInvert(ham, (0, 0, 0), sigma, backend=backend)
    below, c = si.nearest(10, "below")
    np.testing.assert_allclose(below, e[e < sigma][-10:], atol=1e-10)
    np.testing.assert_allclose(below[0::2], below[1::2], atol=1e-10)  # pairs
    np.testing.assert_allclose(c.conj().T @ c, np.eye(10), atol=1e-10)


def test_eigsh_and_bands_near_gap_match_dense(system):
    ham, ne = system
    e0, _ = _dense(ham, (0, 0, 0))
    mid = 0.5 * (e0[ne - 1] + e0[ne])
    path = np.array([[0, 0, 0], [1 / 6, 1 / 6, 0], [1 / 3, 1 / 3, 0]])
    b = bands(ham, path, spin=False, n=8, sigma=mid)
    for kk, row in zip(path, b.energies):
        e, _ = _dense(ham, kk)
        np.testing.assert_allclose(row, np.sort(e[np.argsort(np.abs(e - mid))[:8]]), atol=1e-10)
    assert b.energies.shape == (3, 8)


def test_shift_invert_rejects_bad_input(system):
    ham, _ = system
    with pytest.raises(ValueError, match="which"):
        ShiftInvert(ham, (0, 0, 0), 0.0).nearest(4, "left")
    with pytest.raises(ValueError, match="n must be"):
        ShiftInvert(ham, (0, 0, 0), 0.0).nearest(0)
    with pytest.raises(ValueError, match="finite"):
        ShiftInvert(ham, (0, 0, 0), float("nan"))
    with pytest.raises(ValueError, match="backend"):
        ShiftInvert(ham, (0, 0, 0), 0.0, backend="lapack")
    with pytest.raises(ValueError, match="tol"):
        ShiftInvert(ham, (0, 0, 0), 0.0).nearest(4, tol=0.0)


# -- KPM --------------------------------------------------------------------------------------
@pytest.mark.parametrize("overlap", [False, True])
def test_kpm_exact_trace_equals_chebyshev_oracle(overlap):
    ref = ReferenceTB("nibri", overlap=overlap)
    ham = ref.predict(_textured(2))
    e = ham.eigvalsh(K_GENERAL)
    lo, hi = e[0] - 1.0, e[-1] + 1.0
    n_mom = 64
    res = kpm_dos(ham, np.linspace(lo, hi, 50), kpts=[K_GENERAL], n_moments=n_mom,
                  n_vectors=None, bounds=(lo, hi), per_atom=True)
    x = (e - 0.5 * (hi + lo)) / (0.5 * (hi - lo))
    oracle = np.array([np.sum(np.cos(n * np.arccos(x))) for n in range(n_mom)])
    np.testing.assert_allclose(res.moments[0], oracle, atol=1e-9)
    np.testing.assert_allclose(res.atom_moments[0].sum(axis=0), res.moments[0], atol=1e-9)
    # literal damped series of the exact eigenvalues as the oracle of the DOS
    g = jackson_kernel(n_mom)
    grid = np.linspace(lo + 0.5, hi - 0.5, 40)
    xg = (grid - 0.5 * (hi + lo)) / (0.5 * (hi - lo))
    lit = [(g[0] * oracle[0] + 2 * sum(g[n] * oracle[n] * np.cos(n * np.arccos(xx))
                                       for n in range(1, n_mom)))
           / (np.pi * np.sqrt(1 - xx**2) * 0.5 * (hi - lo)) for xx in xg]
    np.testing.assert_allclose(res.evaluate(grid), lit, atol=1e-9)


def test_kpm_matches_broadened_dos(system):
    ham, ne = system
    e = ham.eigvalsh((0, 0, 0))
    res = kpm_dos(ham, np.linspace(e[0] - 1, e[-1] + 1, 400), n_moments=192, n_vectors=16,
                  rng=np.random.default_rng(3))
    exact = broaden(e[None], np.ones(1), res.energies, res.resolution)
    l1 = np.abs(res.dos - exact).sum() / exact.sum()
    assert l1 < 0.2, l1  # Jackson vs Gaussian shape, plus stochastic noise
    # integrated DOS: all states, and the filling in the gap, within the stochastic error
    assert res.integrated(res.bounds[0, 1:])[0] == pytest.approx(len(e), rel=1e-9)
    assert res.integrated(np.array([0.5 * (e[ne - 1] + e[ne])]))[0] == pytest.approx(ne, abs=4)
    assert e[ne - 1] - 0.5 < res.fermi_level(ne) < e[ne] + 0.5


def test_kpm_k_list_and_rng(system):
    ham, _ = system
    kw = dict(n_moments=64, n_vectors=4, bounds=(-20.0, 10.0))
    a = kpm_dos(ham, kpts=[(0, 0, 0), K_GENERAL], weights=[3, 1], rng=5, **kw)
    b = kpm_dos(ham, kpts=[(0, 0, 0), K_GENERAL], weights=[3, 1], rng=5, **kw)
    np.testing.assert_array_equal(a.dos, b.dos)
    g = kpm_dos(ham, a.energies, rng=np.random.default_rng(5), **kw)
    np.testing.assert_allclose(a.moments[0], g.moments[0])
    np.testing.assert_allclose(a.weights, [0.75, 0.25])


def test_kpm_bounds_checked(system):
    ham, _ = system
    e = ham.eigvalsh((0, 0, 0))
    lo, hi = spectral_bounds(ham, rng=0)
    assert lo < e[0] and e[-1] < hi
    with pytest.raises(ValueError, match="wider bounds"):
        kpm_dos(ham, n_moments=256, n_vectors=2, bounds=(0.5 * e[0], 0.5 * e[-1]), rng=0)
    with pytest.raises(TypeError, match="rng"):
        kpm_dos(ham, n_moments=8, rng="seed")


# -- gap finder -------------------------------------------------------------------------------
def test_gap_finder_agrees_with_dense(system):
    ham, ne = system
    kpts = [(0, 0, 0), (1 / 3, 1 / 3, 0), K_GENERAL]
    dense = find_gap(ham, ne, kpts, method="dense", states=True)
    sparse = find_gap(ham, ne, kpts, method="sparse", states=True)
    assert sparse.method == "sparse" and dense.method == "dense"
    for attr in ("vbm", "cbm", "gap"):
        assert getattr(sparse, attr) == pytest.approx(getattr(dense, attr), abs=1e-10)
    np.testing.assert_allclose(sparse.vbm_k, dense.vbm_k, atol=1e-10)
    np.testing.assert_allclose(sparse.cbm_k, dense.cbm_k, atol=1e-10)
    np.testing.assert_allclose(sparse.k_vbm, dense.k_vbm)
    s = ham.sk(sparse.k_vbm)
    overlap = abs(np.vdot(dense.vbm_state, s @ sparse.vbm_state))
    assert overlap == pytest.approx(1.0, abs=1e-8)
    # a Fermi-level guess alone fixes the filling
    by_level = find_gap(ham, fermi_level=sparse.midgap + 0.2, method="sparse")
    assert by_level.n_electrons == ne
    assert by_level.vbm == pytest.approx(dense.vbm_k[0], abs=1e-10)
    assert by_level.cbm == pytest.approx(dense.cbm_k[0], abs=1e-10)


@pytest.mark.parametrize("k", [(0.0, 0.0, 0.0), K_GENERAL])
def test_edge_states_match_dense(system, k):
    """The highest occupied and lowest empty states, with their indices in the spectrum,
    equal dense diagonalization; the states are S-orthonormal eigenvectors."""
    ham, ne = system
    e_dense, _ = _dense(ham, k)
    es = edge_states(ham, ne, k, n_below=6, n_above=5, vectors=True)
    np.testing.assert_array_equal(es.indices, np.arange(ne - 6, ne + 5))
    np.testing.assert_allclose(es.energies, e_dense[ne - 6 : ne + 5], atol=1e-9)
    assert es.vbm == pytest.approx(e_dense[ne - 1], abs=1e-9)
    assert es.gap == pytest.approx(e_dense[ne] - e_dense[ne - 1], abs=1e-9)
    h, s = ham.hk(k), ham.sk(k)
    c = es.states
    np.testing.assert_allclose(c.conj().T @ (s @ c), np.eye(c.shape[1]), atol=1e-8)
    resid = h @ c - (s @ c) * es.energies
    assert np.abs(resid).max() < 1e-7
    lo, hi = es.shifts
    assert e_dense[ne - 1] < lo < hi < e_dense[ne]  # each shift sits at its own edge


def test_edge_states_reject_bad_input(system):
    ham, ne = system
    with pytest.raises(ValueError, match="n_electrons"):
        edge_states(ham, ne + 0.5)
    with pytest.raises(ValueError, match="n_below"):
        edge_states(ham, ne, n_below=0)
    with pytest.raises(ValueError, match="densely"):
        edge_states(ham, ne, n_below=200, n_above=20)  # 448 spin-orbitals


def test_gap_finder_metal_raises():
    ref = ReferenceTB("nibri", soc=False)
    atoms = nibri((4, 4))
    atoms.set_initial_magnetic_moments(np.zeros((len(atoms), 3)))
    ham = ref.predict(atoms)  # spin-degenerate: an odd filling splits a Kramers pair
    with pytest.raises(MetallicError, match="metallic"):
        find_gap(ham, ref.n_electrons(atoms) - 1, method="sparse")
    with pytest.raises(MetallicError):
        find_gap(ham, ref.n_electrons(atoms) - 1, method="dense")
    with pytest.raises(ValueError, match="n_electrons"):
        find_gap(ham)


# -- states in real space ---------------------------------------------------------------------
def test_atom_weights_sum_to_one_and_plot(system):
    ham, ne = system
    gap = find_gap(ham, ne, states=True)
    w = atom_weights(ham, gap.k_vbm, gap.vbm_state)
    assert w.shape == (len(ham.geometry.numbers),)
    assert w.sum() == pytest.approx(1.0, abs=1e-10)
    e, c = ham.eigh(K_GENERAL)
    np.testing.assert_allclose(atom_weights(ham, K_GENERAL, c[:, :5]).sum(axis=0), 1.0,
                               atol=1e-10)
    fig = plot_state_on_texture(ham, w)
    assert isinstance(fig, Figure) and len(fig.axes) >= 2
    ax = plot_state_density(ham, w, species="Ni", colorbar=False)
    assert ax.figure is not None
    with pytest.raises(ValueError, match="one value per atom"):
        plot_state_density(ham, w[:-1])


def test_plateau_prefers_the_gap_over_a_stretch_inside_a_band():
    """The coarse KPM count is off by a few states, so its crossing can sit inside the
    conduction band next to a small empty stretch between two levels; the shift placement
    must still pick the gap (whose own count matches the filling)."""
    from ase_hamgnn.spectra.gap import _plateau

    class Coarse:  # 100 valence states on [-2, -1], 100 conduction states on [0.5, 2]
        def evaluate(self, e):  # with an empty stretch at [0.60, 0.62] inside the band
            e = np.asarray(e)
            val = ((e >= -2) & (e <= -1)) * 100.0
            cond = ((e >= 0.5) & (e <= 2) & ~((e > 0.6) & (e < 0.62))) * 100 / 1.48
            return val + cond

        def integrated(self, e):
            e = np.asarray(e, dtype=float)
            val = np.clip(e + 2, 0, 1) * 100
            cond = (np.clip(e, 0.5, 0.6) - 0.5 + np.clip(e, 0.62, 2) - 0.62) * 100 / 1.48
            return val + cond

    low, high = _plateau(Coarse(), 0.61, 100.0, filling=100)
    assert -1.0 <= low < -0.95 and 0.45 < high <= 0.5
    # without the filling the nearest stretch wins (the old rule)
    low, high = _plateau(Coarse(), 0.61, 100.0)
    assert 0.59 < low and high < 0.63
