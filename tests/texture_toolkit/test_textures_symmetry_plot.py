"""Magnetic space groups of textures, and the texture plot."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.quiver import Quiver

import textures


def test_ferromagnet_along_z_on_the_triangular_lattice(nibr2):
    sym = textures.magnetic_symmetry(textures.ferromagnet(nibr2, (0, 0, 1)))
    # P-3m1 has 12 operations; with moments along z the vertical mirrors and in-plane 2-fold
    # axes survive only combined with time reversal: P-3m'1 (BNS 164.89), type III
    assert sym.n_operations == 12 and sym.n_point_operations == 12
    assert sym.bns_number == "164.89" and sym.msg_type == 3
    assert int(sym.time_reversals.sum()) == 6
    # the unitary half is the axial point group -3 (det of the rotations: 3 proper, 3 improper)
    unitary = sym.rotations[~sym.time_reversals]
    assert sorted(np.round(np.linalg.det(unitary)).astype(int).tolist()) == [-1] * 3 + [1] * 3


def test_nonmagnetic_structure_is_a_grey_group(nibr2):
    sym = textures.magnetic_symmetry(nibr2, moments=np.zeros((3, 3)))
    assert sym.msg_type == 2 and sym.n_operations == 24  # P-3m11'


def test_in_plane_ferromagnet_lowers_the_symmetry(nibr2):
    assert textures.magnetic_symmetry(textures.ferromagnet(nibr2, (1, 0, 0))).n_operations == 4


def test_supercells_count_translations(nibr2):
    sc = textures.ferromagnet(textures.supercell(nibr2, (3, 3, 1)))
    sym = textures.magnetic_symmetry(sc)
    assert sym.n_operations == 9 * 12 and sym.bns_number == "164.89"


def test_spiral_has_fewer_operations_than_the_ferromagnet(nibr2):
    sc = textures.supercell(nibr2, (8, 1, 1))
    fm = textures.magnetic_symmetry(textures.ferromagnet(sc))
    spiral = textures.magnetic_symmetry(textures.spin_spiral(sc, (1 / 8, 0, 0)))
    assert spiral.n_operations < fm.n_operations
    # the 8 lattice translations of the ferromagnet are lost: only the identity translation
    # remains in the spiral (a1 maps each moment onto a rotated one)
    pure = lambda s: np.all(s.rotations == np.eye(3, dtype=int), axis=(1, 2))  # noqa: E731
    assert (pure(fm) & ~fm.time_reversals).sum() == 8
    assert (pure(spiral) & ~spiral.time_reversals).sum() == 1


def test_group_does_not_depend_on_orientation_or_time_reversal(nibr2):
    sk = textures.skyrmion(textures.supercell(nibr2, (6, 6, 1)), radius=3.0, width=1.5)
    sym = textures.magnetic_symmetry(sk)
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) @ np.array(
        [[1, 0, 0], [0, np.cos(0.4), -np.sin(0.4)], [0, np.sin(0.4), np.cos(0.4)]]
    )
    turned = sk.copy()
    turned.set_cell(sk.cell[:] @ rot.T, scale_atoms=False)
    turned.positions = sk.positions @ rot.T
    turned.set_initial_magnetic_moments(sk.get_initial_magnetic_moments() @ rot.T)
    assert textures.magnetic_symmetry(turned).uni_number == sym.uni_number
    reversed_ = textures.magnetic_symmetry(sk, moments=-sk.get_initial_magnetic_moments())
    assert reversed_.uni_number == sym.uni_number
    assert reversed_.n_operations == sym.n_operations
    # a Néel skyrmion centred on a Ni site keeps the 3-fold axis, and the vertical mirrors
    # combined with time reversal (moments are axial): P3m'1
    assert sym.bns_number == "156.51" and sym.n_operations == 6
    det = np.round(np.linalg.det(sym.rotations)).astype(int)
    assert np.all(det[sym.time_reversals] == -1) and np.all(det[~sym.time_reversals] == 1)
    # a Bloch skyrmion is chiral: no mirrors, in-plane 2-fold axes with time reversal: P32'1
    bloch = textures.magnetic_symmetry(
        textures.skyrmion(sk, radius=3.0, width=1.5, helicity=np.pi / 2)
    )
    assert bloch.bns_number == "150.27"
    assert np.all(np.round(np.linalg.det(bloch.rotations)) == 1)


def test_plot_texture_returns_axes_with_one_arrow_per_magnetic_atom(nibr2, tmp_path):
    sk = textures.skyrmion(textures.supercell(nibr2, (10, 10, 1)), radius=5.0)
    ax = textures.plot_texture(sk, title="skyrmion")
    assert isinstance(ax, Axes) and isinstance(ax.figure, Figure)
    quiver = next(c for c in ax.collections if isinstance(c, Quiver))
    assert quiver.N == 100
    mz = sk.get_initial_magnetic_moments()[sk.numbers == 28, 2]
    np.testing.assert_allclose(np.sort(quiver.get_array()), np.sort(mz), atol=1e-12)
    assert ax.get_title() == "skyrmion" and len(ax.patches) == 1  # the cell outline
    path = tmp_path / "sk.png"
    ax.figure.savefig(path)
    assert path.stat().st_size > 1000


def test_plot_texture_into_given_axes(nibr2, square):
    fig = Figure()
    axes = fig.subplots(1, 2)
    afm = textures.noncollinear_afm(textures.supercell(nibr2, (3, 3, 1)))
    assert textures.plot_texture(afm, axes[0], colorbar=False) is axes[0]
    flake = textures.supercell(square, (5, 5, 1))
    flake.pbc = False
    flake = textures.skyrmion(flake, radius=4.0, center=flake.get_center_of_mass())
    assert textures.plot_texture(flake, axes[1], show_cell=False) is axes[1]
    assert len(axes[1].patches) == 0
    with pytest.raises(textures.SpeciesError):
        textures.plot_texture(afm, magnetic="Fe")
