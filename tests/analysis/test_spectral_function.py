"""Unfolded spectral function by KPM: the exact recursion against a literal oracle (dense
diagonalization, Ku weights, the Jackson-damped delta term by term), the ferromagnetic
supercell against the primitive bands, spin resolution, the stochastic estimate, textures,
errors and plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import textures  # noqa: E402
from ase_hamgnn.analysis import (  # noqa: E402
    SpectralFunction,
    UnfoldingMap,
    plot_unfolded_vs_reference,
    unfold,
    unfolded_spectral_function,
)
from ase_hamgnn.data import ReferenceTB, nibri  # noqa: E402
from ase_hamgnn.errors import KPointError  # noqa: E402
from ase_hamgnn.spectra.kpm import jackson_kernel  # noqa: E402

PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
KPTS = np.array([[0.13, 0.27, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
N_MOM = 96
N_PRIM = 28  # NiBrI reference basis: spin-orbitals per primitive cell


def _texture(kind: str, size: int = 3):
    cells = textures.supercell(nibri(), (size, size, 1))
    if kind == "antiskyrmion":
        return textures.antiskyrmion(cells, radius=0.3 * size * 3.82, magnetic=("Ni",),
                                     magnitude=2.0)
    if kind == "random":
        return textures.random_moments(cells, rng=11, magnetic=("Ni",), magnitude=2.0)
    return cells  # the ferromagnet along +z of nibri()


def _sigma_primitive(ham, numbers) -> np.ndarray:
    """(3, n, n) Pauli matrices on the primitive spin-orbitals (spin-major per atom)."""
    offsets = ham.basis.spin_orbital_offsets(numbers)
    n = int(offsets[-1])
    out = np.zeros((3, n, n), dtype=np.complex128)
    for lo, hi in zip(offsets[:-1], offsets[1:], strict=True):
        h = (hi - lo) // 2
        for a in range(3):
            out[a, lo:hi, lo:hi] = np.kron(PAULI[a], np.eye(h))
    return out


def _literal(ham, umap, k, bounds, energies):
    """Oracle: dense eigenstates at K, Mulliken-Ku weights per state for 1, sigma_x,y,z and
    spin up / down, then the Jackson-damped delta of every state summed term by term.
    Returns moments (6, N) and densities (6, n_E) in the order 1, x, y, z, up, down."""
    big_k = umap.supercell_matrix @ k
    e, c = ham.eigh(big_k)
    proj = umap.bloch_projector(ham, k).toarray() / np.sqrt(umap.n_cells)
    a = proj @ c                                  # <k,n|c_J>
    b = proj @ (ham.sk(big_k).toarray() @ c)      # <k,n|S c_J>
    sig = _sigma_primitive(ham, umap.primitive_numbers)
    up = np.real(np.diag(sig[2])) > 0
    weights = [np.real(np.sum(a.conj() * b, axis=0))]
    weights += [np.real(np.sum((sig[i] @ a).conj() * b, axis=0)) for i in range(3)]
    weights += [np.real(np.sum(a[sel].conj() * b[sel], axis=0)) for sel in (up, ~up)]
    weights = np.array(weights)                   # (6, n_states)
    lo, hi = bounds
    half, mid = 0.5 * (hi - lo), 0.5 * (hi + lo)
    t = np.cos(np.outer(np.arange(N_MOM), np.arccos((e - mid) / half)))   # T_m(x_J)
    g = jackson_kernel(N_MOM)
    inside = np.abs(energies - mid) < half     # the density is zero outside the bounds
    theta = np.arccos((energies[inside] - mid) / half)
    dens = np.zeros((6, len(energies)))
    for j in range(len(e)):       # one damped delta per state, term by term
        series = g[0] + 2 * sum(g[m] * t[m, j] * np.cos(m * theta) for m in range(1, N_MOM))
        dens[:, inside] += np.outer(weights[:, j], series / (np.pi * half * np.sin(theta)))
    return weights @ t.T, dens


@pytest.fixture(scope="module")
def prim():
    return ReferenceTB("nibri").predict(nibri())


@pytest.mark.parametrize("overlap", [False, True])
def test_exact_kpm_equals_literal_unfolding(overlap):
    ref = ReferenceTB("nibri", overlap=overlap)
    atoms = _texture("random")
    ham = ref.predict(atoms)
    umap = UnfoldingMap.from_structures(nibri(), atoms)
    grid = np.linspace(-16.0, 6.0, 45)
    spec = unfolded_spectral_function(ham, umap, KPTS[:2], grid, n_moments=N_MOM,
                                      n_vectors=None)
    for i, k in enumerate(KPTS[:2]):
        mu, dens = _literal(ham, umap, k, spec.bounds[i], grid)
        np.testing.assert_allclose(spec.moments[i], mu[:4], atol=1e-9)
        np.testing.assert_allclose(spec.total[i], dens[0], atol=1e-9)
        np.testing.assert_allclose(spec.spin[i].T, dens[1:4], atol=1e-9)
        # A_z is the spin-up part minus the spin-down part; A their sum
        np.testing.assert_allclose(spec.spin[i, :, 2], dens[4] - dens[5], atol=1e-9)
        np.testing.assert_allclose(spec.total[i], dens[4] + dens[5], atol=1e-9)
        # the same weights as unfold (Ku; Mulliken with an overlap)
        np.testing.assert_allclose(mu[0, 0], unfold(ham, umap, [k]).weights.sum(), atol=1e-9)
    # sum rule: the weight of each k is the number of primitive spin-orbitals
    np.testing.assert_allclose(spec.moments[:, 0, 0], N_PRIM, atol=1e-10)
    np.testing.assert_allclose(spec.moments[:, 1:, 0], 0.0, atol=1e-10)


def test_ferromagnetic_supercell_gives_the_primitive_bands(prim):
    ham = ReferenceTB("nibri").predict(_texture("ferromagnet"))
    umap = UnfoldingMap.from_structures(nibri(), ham.geometry)
    grid = np.linspace(-17.0, 8.0, 2001)
    spec = unfolded_spectral_function(ham, umap, KPTS, grid, n_moments=N_MOM,
                                      n_vectors=None)
    for i, k in enumerate(KPTS):
        e, c = prim.eigh(k)
        s = prim.spin_expectation(k, c)                     # (n_bands, 3)
        lo, hi = spec.bounds[i]
        x = (e - 0.5 * (hi + lo)) / (0.5 * (hi - lo))
        t = np.cos(np.outer(np.arange(N_MOM), np.arccos(x)))
        # weight only at the primitive bands, each carrying its own <sigma>
        np.testing.assert_allclose(spec.moments[i, 0], t.sum(axis=1), atol=1e-9)
        np.testing.assert_allclose(spec.moments[i, 1:], (t @ s).T, atol=1e-9)
    # +z ferromagnet at Γ: no in-plane spin; at a general k spin-orbit coupling tilts it
    gamma = 2
    np.testing.assert_allclose(spec.spin[gamma, :, :2], 0.0, atol=1e-9)
    assert np.abs(spec.spin[0, :, :2]).max() > 0.1
    # the integral over energy of A is the number of primitive spin-orbitals
    step = grid[1] - grid[0]
    np.testing.assert_allclose(spec.total.sum(axis=1) * step, N_PRIM, rtol=1e-3)
    np.testing.assert_allclose(spec.spin.sum(axis=1) * step, 0.0, atol=1e-3)


def test_texture_moves_weight_and_keeps_the_sum_rule():
    ref = ReferenceTB("nibri")
    grid = np.linspace(-17.0, 8.0, 1001)
    kw = dict(n_moments=N_MOM, n_vectors=None, bounds=(-18.0, 9.0))
    fm, tex = (unfolded_spectral_function(ref.predict(atoms), UnfoldingMap.from_structures(
        nibri(), atoms), KPTS[:2], grid, **kw) for atoms in (_texture("ferromagnet"),
                                                             _texture("antiskyrmion")))
    np.testing.assert_allclose(tex.moments[:, 0, 0], N_PRIM, atol=1e-10)
    step = grid[1] - grid[0]
    np.testing.assert_allclose(tex.total.sum(axis=1) * step, N_PRIM, rtol=1e-3)
    moved = np.abs(tex.total - fm.total).sum(axis=1) * step / N_PRIM
    assert np.all(moved > 0.02), moved          # weight leaves the ferromagnet's bands
    # the antiskyrmion's moments point away from +z: less spin-up weight below midgap
    below = grid < -1.0
    assert np.all(tex.spin[:, below, 2].sum(axis=1) < fm.spin[:, below, 2].sum(axis=1))


def test_stochastic_estimate_converges_to_exact():
    atoms = _texture("antiskyrmion")
    ham = ReferenceTB("nibri").predict(atoms)
    umap = UnfoldingMap.from_structures(nibri(), atoms)
    grid = np.linspace(-16.0, 6.0, 400)
    kw = dict(n_moments=N_MOM, bounds=(-18.0, 9.0))
    k = KPTS[:1]
    exact = unfolded_spectral_function(ham, umap, k, grid, n_vectors=None, **kw)

    def error(res, part="total"):
        ref = getattr(exact, part)
        return np.abs(getattr(res, part) - ref).sum() / np.abs(ref).sum()

    few = unfolded_spectral_function(ham, umap, k, grid, n_vectors=4,
                                     rng=np.random.default_rng(2), **kw)
    many = unfolded_spectral_function(ham, umap, k, grid, n_vectors=256,
                                      rng=np.random.default_rng(2), **kw)
    # noise ~ 1 / sqrt(n_vectors): about 15 % with 4 pairs, 1.5 % with 256 (in L1)
    assert error(many) < 0.05, error(many)
    assert error(many) < 0.5 * error(few)
    assert error(many, "spin") < 0.25, error(many, "spin")  # the small in-plane parts
    # unit-modulus phases: the sum rules of every sample are exact, and A >= 0
    np.testing.assert_allclose(few.moments[:, 0, 0], N_PRIM, atol=1e-10)
    np.testing.assert_allclose(few.moments[:, 3, 0], 0.0, atol=1e-10)
    assert few.total.min() > -1e-9
    # explicit generators and seeds reproduce; spin=False gives the same total
    again = unfolded_spectral_function(ham, umap, k, grid, n_vectors=4,
                                       rng=np.random.default_rng(2), spin=False, **kw)
    np.testing.assert_array_equal(again.moments[:, 0], few.moments[:, 0])
    np.testing.assert_allclose(again.total, few.total, rtol=1e-10, atol=1e-12)
    assert again.spin is None
    assert few.n_vectors == 4 and exact.n_vectors is None


def test_shared_recursion_converges_to_exact():
    """k-points folding onto one supercell K share a recursion from random vectors over the
    whole supercell: unbiased (the error falls like 1 / sqrt(R)), the singletons keep
    their own Bloch start (exact here), and the result says which k-points were shared."""
    atoms = _texture("antiskyrmion")
    ham = ReferenceTB("nibri").predict(atoms)
    prim = nibri()
    umap = UnfoldingMap.from_structures(prim, atoms)
    path = umap.commensurate_path(prim.cell.bandpath("MGK", npoints=0, pbc=prim.pbc))
    grid = np.linspace(-16.0, 6.0, 400)
    kw = dict(n_moments=N_MOM, bounds=(-18.0, 9.0), n_vectors=None)
    exact = unfolded_spectral_function(ham, umap, path, grid, **kw)

    def error(res, part="total"):
        ref = getattr(exact, part)
        return np.abs(getattr(res, part) - ref).sum() / np.abs(ref).sum()

    few = unfolded_spectral_function(ham, umap, path, grid, shared_vectors=8, rng=3, **kw)
    many = unfolded_spectral_function(ham, umap, path, grid, shared_vectors=256, rng=3, **kw)
    # 3 x 3 cells: M (0.5, 0, 0) folds onto K = (1.5, 0, 0) alone, Γ and the Γ-K points
    # onto Γ; the lone k-point is exact, so only the shared ones carry noise
    np.testing.assert_array_equal(many.shared, [False, True, True, True])
    np.testing.assert_allclose(many.total[0], exact.total[0], atol=1e-9)
    assert error(many) < 0.05, error(many)          # about 0.025 measured
    assert error(many) < 0.5 * error(few)           # about 0.14 with 8 pairs
    assert error(many, "spin") < 0.3, error(many, "spin")
    # the sum rule holds on average over the pairs (exactly only for the Bloch start)
    np.testing.assert_allclose(many.moments[1:, 0, 0], N_PRIM, rtol=0.1)
    assert exact.shared is None and many.shared_vectors == 256
    fig = plot_unfolded_vs_reference(many, ReferenceTB("nibri").predict(prim).bands(path))
    assert "256 random spin pairs over the supercell" in fig._suptitle.get_text()
    assert "1 alone: exact" in fig._suptitle.get_text()


def test_commensurate_path_folds_onto_gamma():
    prim = nibri()
    for n in (4, 34):
        umap = UnfoldingMap.from_structures(prim, prim.repeat((n, n, 1)))
        path = umap.commensurate_path(prim.cell.bandpath("MGK", npoints=0, pbc=prim.pbc))
        k = path.kpts
        folded = umap.folded(k)
        special = {name: np.asarray(v) for name, v in path.special_points.items()}
        # ends and corner: M, Γ, K; every other point folds onto the supercell's Γ
        np.testing.assert_allclose(k[0], special["M"], atol=1e-12)
        np.testing.assert_allclose(k[-1], special["K"], atol=1e-12)
        inner = ~np.any([np.all(np.isclose(k, v), axis=1) for v in special.values()], axis=0)
        np.testing.assert_allclose(folded[inner], 0.0, atol=1e-9)
        assert path.path == "MGK"
        # M-Γ has n / 2 + 1 points, Γ-K those up to n / 3, then K itself
        assert len(k) == (n // 2 + 1) + (n // 3) + (0 if n % 3 == 0 else 1)
        axis, _, labels = path.get_linear_kpoint_axis()
        assert labels == ["M", "G", "K"] and np.all(np.diff(axis) > 0)


def test_threads_over_k_points_give_the_same_result(prim):
    """Each k-point draws from its own stream: one thread and several agree to the bit,
    with the Lanczos bounds and the random phases both random."""
    ham = prim.tile((2, 2, 1))
    umap = UnfoldingMap.from_structures(nibri(), ham.geometry)
    grid = np.linspace(-5.0, 5.0, 51)
    kw = dict(n_moments=48, n_vectors=2, rng=5)
    one = unfolded_spectral_function(ham, umap, KPTS, grid, workers=1, **kw)
    three = unfolded_spectral_function(ham, umap, KPTS, grid, workers=3, **kw)
    np.testing.assert_array_equal(one.moments, three.moments)
    np.testing.assert_array_equal(one.bounds, three.bounds)
    # the streams differ between k-points (not one stream reused)
    other = unfolded_spectral_function(ham, umap, KPTS[[1, 0, 2]], grid, workers=1, **kw)
    assert not np.allclose(other.moments[0], one.moments[1], rtol=1e-6, atol=1e-6)


def test_result_accessors(prim):
    ham = prim.tile((2, 2, 1))
    umap = UnfoldingMap.from_structures(nibri(), ham.geometry)
    grid = np.linspace(-5.0, 5.0, 101)
    spec = unfolded_spectral_function(ham, umap, KPTS[:1], grid, n_moments=64, rng=0)
    assert isinstance(spec, SpectralFunction)
    assert spec.total.shape == (1, 101) and spec.spin.shape == (1, 101, 3)
    assert spec.n_moments == 64
    half = 0.5 * (spec.bounds[0, 1] - spec.bounds[0, 0])
    assert spec.resolution == pytest.approx(np.pi * half / 64, rel=1e-12)
    np.testing.assert_allclose(spec.evaluate(grid), spec.total, atol=1e-12)
    np.testing.assert_allclose(spec.evaluate(grid, "z"), spec.spin[:, :, 2], atol=1e-12)
    np.testing.assert_array_equal(spec.component("y"), spec.spin[:, :, 1])
    other = spec.on_grid(grid[::2] + 0.01)          # the moments evaluated elsewhere
    np.testing.assert_allclose(other.total, spec.evaluate(grid[::2] + 0.01), atol=1e-12)
    np.testing.assert_allclose(other.spin[:, :, 0], spec.evaluate(grid[::2] + 0.01, "x"),
                               atol=1e-12)
    assert other.moments is spec.moments and other.energies.shape == (51,)


def test_bad_input_raises_typed_errors(prim):
    ham = prim.tile((2, 2, 1))
    umap = UnfoldingMap.from_structures(nibri(), ham.geometry)
    grid = np.linspace(-5.0, 5.0, 11)
    k = KPTS[:1]
    with pytest.raises(ValueError, match="cell is not supercell_matrix"):
        unfolded_spectral_function(prim.tile((3, 3, 1)), umap, k, grid)
    with pytest.raises(KPointError, match="n_k, 3"):
        unfolded_spectral_function(ham, umap, [[0.1, 0.2]], grid)
    with pytest.raises(KPointError, match="finite"):
        unfolded_spectral_function(ham, umap, [[np.nan, 0.0, 0.0]], grid)
    with pytest.raises(ValueError, match="energies"):
        unfolded_spectral_function(ham, umap, k, grid[None])
    with pytest.raises(ValueError, match="n_moments"):
        unfolded_spectral_function(ham, umap, k, grid, n_moments=1)
    with pytest.raises(ValueError, match="n_vectors"):
        unfolded_spectral_function(ham, umap, k, grid, n_vectors=0)
    with pytest.raises(ValueError, match="low < high"):
        unfolded_spectral_function(ham, umap, k, grid, bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match="wider bounds"):
        unfolded_spectral_function(ham, umap, k, grid, n_moments=128, bounds=(-2.0, 2.0))
    with pytest.raises(TypeError, match="rng"):
        unfolded_spectral_function(ham, umap, k, grid, rng="seed")
    with pytest.raises(ValueError, match="shared_vectors"):
        unfolded_spectral_function(ham, umap, k, grid, shared_vectors=0)
    with pytest.raises(ValueError, match="workers"):
        unfolded_spectral_function(ham, umap, k, grid, workers=0)
    spec = unfolded_spectral_function(ham, umap, k, grid, n_moments=16, spin=False)
    with pytest.raises(ValueError, match="spin=True"):
        spec.component("z")
    with pytest.raises(ValueError, match="component must be"):
        spec.evaluate(grid, "w")
    with pytest.raises(ValueError, match="same 1 k-points"):
        spec.plot(bands=np.zeros((3, 4)))


def test_plots(prim):
    ham = prim.tile((2, 2, 1))
    atoms = nibri()
    umap = UnfoldingMap.from_structures(atoms, ham.geometry)
    path = atoms.cell.bandpath("MGK", npoints=9, pbc=atoms.pbc)
    grid = np.linspace(-3.0, 3.0, 61)
    spec = unfolded_spectral_function(ham, umap, path, grid, n_moments=64, rng=1)
    fm = prim.bands(path)
    for kwargs in ({}, {"component": "z", "reference": 0.5, "gap": (-0.5, 1.0)},
                   {"bands": fm, "gamma": 1.0, "vmax": 2.0}):
        ax = spec.plot(**kwargs)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["M", r"$\Gamma$", "K"]
        plt.close(ax.figure)
    fig = plot_unfolded_vs_reference(spec, fm, reference=0.5, gap=(-0.5, 1.0),
                                     components=("total", "x", "z"), emin=-2.0, emax=2.0)
    assert len(fig.axes) == 8   # four panels and their colour bars
    assert fig.axes[1].get_ylim() == pytest.approx((-2.0, 2.0))
    with pytest.raises(ValueError, match="same primitive path"):
        plot_unfolded_vs_reference(spec, prim.bands(path.kpts[:4]))
    with pytest.raises(ValueError, match="gamma"):
        spec.plot(gamma=0.0)
