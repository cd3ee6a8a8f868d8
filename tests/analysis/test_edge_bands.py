"""Bands next to the gap along a path (reduced basis from a few factorized k-points),
checked against dense diagonalization of small NiBrI supercells."""

from __future__ import annotations

import numpy as np
import pytest

import textures
from ase_hamgnn import EdgeBands, edge_bands
from ase_hamgnn.data import ReferenceTB, nibri
from ase_hamgnn.spectra import Bands

N_BELOW, N_ABOVE = 4, 4


def _path(atoms, n=7):
    return atoms.cell.bandpath("MGK", npoints=n, pbc=atoms.pbc)


def _dense_window(ham, k, ne):
    e, c = ham.eigh(k)
    return e[ne - N_BELOW: ne + N_ABOVE], c[:, ne - N_BELOW: ne + N_ABOVE], e


@pytest.fixture(scope="module", params=["orthogonal", "overlap"])
def random_moments(request):
    """3x3 NiBrI with moments in random directions (252 spin-orbitals), with and without S."""
    ref = ReferenceTB("nibri", overlap=request.param == "overlap")
    atoms = textures.random_moments(nibri((3, 3)), rng=3)
    return ref.predict(atoms), ref.n_electrons(atoms), atoms


def test_matches_dense_to_tight_tolerance(random_moments):
    ham, ne, atoms = random_moments
    path = _path(atoms)
    eb = edge_bands(ham, ne, path, N_BELOW, N_ABOVE, anchors=2, buffer=4, tol=1e-7,
                    max_anchors=len(path.kpts))
    assert isinstance(eb, EdgeBands)
    assert eb.energies.shape == (len(path.kpts), N_BELOW + N_ABOVE)
    np.testing.assert_array_equal(eb.indices, np.arange(ne - N_BELOW, ne + N_ABOVE))
    assert eb.max_residual <= 1e-7
    for i, k in enumerate(path.kpts):
        e, c, full = _dense_window(ham, k, ne)
        # an eigenvalue lies within the residual (over the smallest eigenvalue of S)
        np.testing.assert_allclose(eb.energies[i], e, atol=1e-6)
        # <sigma> of isolated levels (a level closer than 1e-4 eV to another mixes freely)
        spacing = np.diff(full)[ne - N_BELOW - 1: ne + N_ABOVE]
        isolated = np.minimum(spacing[:-1], spacing[1:]) > 1e-3
        ref_spin = ham.spin_expectation(k, c)
        np.testing.assert_allclose(eb.spin[i][isolated], ref_spin[isolated], atol=1e-4)
    # the inertia counts at the anchors are the numbers of eigenvalues below the shifts
    for i, sv, nv, sc, nc in eb.counts:
        full = ham.eigvalsh(eb.kpts[i])
        assert nv == np.count_nonzero(full < sv)
        assert nc == np.count_nonzero(full < sc)


def test_default_tolerance_bounds_the_error():
    """With the default ``tol`` every energy is within its residual of the dense one."""
    ref = ReferenceTB("nibri")
    atoms = textures.antiskyrmion(nibri((4, 4)), radius=4.0, magnetic=("Ni",), magnitude=2.0)
    ham, ne = ref.predict(atoms), ref.n_electrons(atoms)
    path = _path(atoms, 9)
    eb = edge_bands(ham, ne, path, N_BELOW, N_ABOVE, vectors=True, max_anchors=9)
    assert eb.max_residual <= 1e-3
    for i, k in enumerate(path.kpts):
        e = ham.eigvalsh(k)[ne - N_BELOW: ne + N_ABOVE]
        assert np.all(np.abs(eb.energies[i] - e) <= eb.residuals[i] + 1e-9)
        c = eb.states[i]     # S-orthonormal eigenvectors in the lattice gauge
        np.testing.assert_allclose(c.conj().T @ c, np.eye(c.shape[1]), atol=1e-4)
    assert eb.vbm < eb.midgap < eb.cbm
    bands = eb.bands()
    assert isinstance(bands, Bands) and not bands.window
    assert eb.bands("valence").energies.shape[1] == N_BELOW
    assert "anchor" in eb.index_source


def test_kramers_degenerate_levels():
    """Zero moments: time reversal makes every level at Γ and M a Kramers pair; the bands
    still match the dense spectrum there and in between."""
    ref = ReferenceTB("nibri")
    atoms = nibri((3, 3))
    atoms.set_initial_magnetic_moments(np.zeros((len(atoms), 3)))
    ham, ne = ref.predict(atoms), ref.n_electrons(atoms)
    path = _path(atoms)
    eb = edge_bands(ham, ne, path, N_BELOW, N_ABOVE, anchors=2, buffer=4, tol=1e-7,
                    max_anchors=len(path.kpts))
    for i, k in enumerate(path.kpts):
        np.testing.assert_allclose(eb.energies[i], _dense_window(ham, k, ne)[0], atol=1e-6)
    gamma = int(np.argmin(np.linalg.norm(path.kpts, axis=1)))
    e = eb.energies[gamma]
    np.testing.assert_allclose(e[0::2], e[1::2], atol=1e-6)   # pairs at Γ


def test_rejects_bad_input():
    ref = ReferenceTB("nibri")
    atoms = nibri((3, 3))
    ham, ne = ref.predict(atoms), ref.n_electrons(atoms)
    path = _path(atoms)
    with pytest.raises(ValueError, match="anchor"):
        edge_bands(ham, ne, path, anchors=[99])
    with pytest.raises(ValueError, match="tol"):
        edge_bands(ham, ne, path, tol=0.0)
    with pytest.raises(ValueError, match="n_electrons"):
        edge_bands(ham, 0, path)


@pytest.mark.parametrize("overlap", [False, True])
def test_interpolated_projections(overlap):
    """Along each straight segment the projected matrices are interpolated between
    Chebyshev nodes: they equal the directly computed ones, and the residuals computed
    from them are those of the states."""
    from ase_hamgnn.spectra.edge_bands import _Sweep
    from ase_hamgnn.spectra.kinterp import (
        SegmentInterpolant,
        chebyshev_nodes_needed,
        straight_segments,
    )

    ref = ReferenceTB("nibri", overlap=overlap)
    atoms = textures.antiskyrmion(nibri((6, 6)), radius=5.0, magnetic=("Ni",), magnitude=2.0)
    ham, ne = ref.predict(atoms), ref.n_electrons(atoms)
    kpts = _path(atoms, 41).kpts
    sweep = _Sweep(ham, ne, kpts, N_BELOW, N_ABOVE, 4, 1e-3)
    sweep.first_anchor(20, 1024, 0)
    for seg in straight_segments(kpts):
        ka, kb = kpts[seg[0]], kpts[seg[-1]]
        n = chebyshev_nodes_needed(2 * np.pi * float(np.abs(kb - ka) @ sweep._reach))
        assert 4 <= n < len(seg)
        f = SegmentInterpolant(ka, kb, n, lambda k: sweep._projections(k)[0])
        for i in seg[1::5]:
            got, want = f(kpts[i]), sweep._projections(kpts[i])[0]
            for key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=0,
                                           atol=1e-12 * np.abs(want[key]).max())
    k = kpts[7]
    theta, yz, res, spin = sweep._small_ritz(sweep._projections(k)[0])
    x = sweep._phase(k)[:, None] * sweep.basis @ yz
    sx = x if ham.orthogonal else ham.sk(k) @ x
    np.testing.assert_allclose(res, np.linalg.norm(ham.hk(k) @ x - sx * theta, axis=0),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(spin, ham.spin_expectation(k, x), atol=1e-9)


@pytest.mark.slow
def test_interpolated_sweep_matches_dense():
    """A 6x6 antiskyrmion along 41 k-points (the sweep interpolates): every energy lies
    within its residual of the dense spectrum."""
    ref = ReferenceTB("nibri")
    atoms = textures.antiskyrmion(nibri((6, 6)), radius=5.0, magnetic=("Ni",), magnitude=2.0)
    ham, ne = ref.predict(atoms), ref.n_electrons(atoms)
    path = _path(atoms, 41)
    eb = edge_bands(ham, ne, path, N_BELOW, N_ABOVE)
    assert eb.max_residual <= 1e-3
    for i in range(0, len(path.kpts), 5):
        e = _dense_window(ham, path.kpts[i], ne)[0]
        assert np.all(np.abs(eb.energies[i] - e) <= eb.residuals[i] + 1e-9)


def test_segments_and_node_count():
    from ase_hamgnn.spectra.kinterp import chebyshev_nodes_needed, straight_segments

    k = np.array([[0.5, 0, 0], [0.25, 0, 0], [0, 0, 0], [0.1, 0.1, 0], [0.2, 0.2, 0],
                  [0.2, 0.2, 0], [0.3, 0.3, 0]])
    assert straight_segments(k) == [[0, 1, 2], [2, 3, 4], [4, 5], [5, 6]]
    # e^{i w t} on [0, 1] needs more nodes as w grows, and few for a tiny zone
    counts = [chebyshev_nodes_needed(w) for w in (0.05, 0.5, 5.0)]
    assert counts == sorted(counts) and counts[0] >= 4


def test_vectors_at_chosen_kpoints():
    ref = ReferenceTB("nibri")
    atoms = nibri((3, 3))
    ham, ne = ref.predict(atoms), ref.n_electrons(atoms)
    path = _path(atoms, 5)
    eb = edge_bands(ham, ne, path, N_BELOW, N_ABOVE, anchors=1, vectors=[0, -1])
    assert eb.states[1] is None and eb.states[0] is not None and eb.states[4] is not None
    x = eb.states[4]
    # the kept states are those the energies and residuals belong to (orthonormal to
    # about residual / gap: valence and conduction states are refined apart)
    np.testing.assert_allclose(x.conj().T @ x, np.eye(x.shape[1]), atol=1e-3)
    r = np.linalg.norm(ham.hk(path.kpts[4]) @ x - x * eb.energies[4], axis=0)
    np.testing.assert_allclose(r, eb.residuals[4], rtol=1e-4, atol=1e-9)
    with pytest.raises(ValueError, match="vectors"):
        edge_bands(ham, ne, path, vectors=[7])


def test_correction_without_factorization():
    """A k-point away from the anchor is corrected with the anchor's factorizations moved
    there by the Bloch phases (no factorization of its own): its states match the dense
    ones."""
    from ase_hamgnn.spectra.edge_bands import _Moved, _Sweep
    from ase_hamgnn.spectra.shift_invert import ShiftInvert

    ref = ReferenceTB("nibri")
    atoms = textures.antiskyrmion(nibri((10, 10)), radius=8.0, magnetic=("Ni",), magnitude=2.0)
    ham, ne = ref.predict(atoms), ref.n_electrons(atoms)
    kpts = _path(atoms, 41).kpts
    # moved to its own k-point the solver is the exact inverse
    si = ShiftInvert(ham, kpts[22], 3.0)
    b = np.random.default_rng(0).normal(size=(ham.n_spin_orbitals, 2)) + 0j
    same = _Moved(si, np.ones(ham.n_spin_orbitals))
    np.testing.assert_allclose(same.solve(b), si.solve(b), rtol=1e-12, atol=1e-12)
    sweep = _Sweep(ham, ne, kpts, N_BELOW, N_ABOVE, 4, 1e-4)
    sweep.first_anchor(20, 2048, 0)
    sweep.correct(26, max_anchors=1)
    assert sweep.corrected == [26] and sweep.anchors == [20]
    e = _dense_window(ham, kpts[26], ne)[0]
    got, res = sweep.done[26][0], sweep.done[26][3]
    assert res.max() <= 0.5e-4           # corrections are refined to tol / 2
    assert np.all(np.abs(got - e) <= res + 1e-9)


def test_skipped_state_is_detected():
    """A Ritz pair (theta, r) guarantees an eigenvalue within r of theta: inside the range
    of a refined window it must be among the found energies."""
    from ase_hamgnn.spectra.edge_bands import _missed

    found = np.array([3.0, 2.0, 1.0])           # valence side, nearest the gap first
    assert _missed(found, np.array([2.5]), np.array([0.1]), mid=4.0, tol=1e-3)
    assert not _missed(found, np.array([2.05]), np.array([0.1]), mid=4.0, tol=1e-3)
    # an interval reaching beyond the window proves nothing
    assert not _missed(found, np.array([0.95]), np.array([0.1]), mid=4.0, tol=1e-3)
    # conduction side
    assert _missed(np.array([5.0, 6.0]), np.array([5.5]), np.array([0.2]), mid=4.0, tol=1e-3)
