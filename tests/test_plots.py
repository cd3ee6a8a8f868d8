"""What the figures show, checked without looking: band plots (axis, special points, energy
range, lines), transmission and current plots (every curve labelled and visible, units, the
closed-channel message) and the named energy reference of the DOS plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ase import Atoms  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402

from ase_hamgnn.spectra import Bands  # noqa: E402
from ase_hamgnn.transport.scattering import (  # noqa: E402
    LocalMaps,
    SpinTransmission,
    TransmissionCurve,
    plot_current,
    plot_transmission,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def hexagonal() -> Atoms:
    a = 3.9
    return Atoms("Ni", cell=[[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 20.0]],
                 pbc=[True, True, False])


def random_bands(path, rng: np.random.Generator, n_bands: int = 6, window: bool = False):
    """Bands with random energies (eV) and unit spins on the k-points of ``path``."""
    nk = len(path.kpts)
    energies = np.sort(rng.normal(scale=2.0, size=(nk, n_bands)), axis=1)
    spin = rng.normal(size=(nk, n_bands, 3))
    spin /= np.linalg.norm(spin, axis=2, keepdims=True)
    return Bands(np.asarray(path.kpts, dtype=np.float64), energies, spin, path, window=window)


def tick_labels(ax) -> list[str]:
    return [t.get_text().replace(r"$\Gamma$", "Γ") for t in ax.get_xticklabels()]


# -- bands ------------------------------------------------------------------------------------
@pytest.mark.parametrize("npoints", [3, 4, 5, 40])
def test_short_path_labels_every_special_point_at_its_own_place(npoints, rng):
    path = hexagonal().cell.bandpath("MGK", npoints=npoints, pbc=[True, True, False])
    ax = random_bands(path, rng).plot()
    assert tick_labels(ax) == ["M", "Γ", "K"]
    ticks = np.asarray(ax.get_xticks())
    assert np.all(np.diff(ticks) > 0)
    # the ticks sit at the lengths |M - Γ| and |M - Γ| + |Γ - K| (1/Å, no 2 pi)
    rec = path.cell.reciprocal()
    special = {n: np.asarray(k) @ rec for n, k in path.special_points.items()}
    mg = np.linalg.norm(special["M"] - special["G"])
    gk = np.linalg.norm(special["G"] - special["K"])
    np.testing.assert_allclose(ticks, [0.0, mg, mg + gk], rtol=1e-12)
    assert ax.get_xlim() == pytest.approx((0.0, mg + gk))


def test_broken_path_joins_the_labels_at_the_break(rng):
    path = hexagonal().cell.bandpath("GM,KG", npoints=12, pbc=[True, True, False])
    ax = random_bands(path, rng).plot()
    assert tick_labels(ax) == ["Γ", "M|K", "Γ"]
    # no band segment crosses the break (it would be a vertical line)
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    widths = np.array([abs(seg[1, 0] - seg[0, 0]) for seg in lines.get_segments()])
    assert np.all(widths > 0)


@pytest.mark.parametrize("window", [False, True])
def test_band_plot_energy_range_holds_every_state_with_a_margin(window, rng):
    path = hexagonal().cell.bandpath("GMKG", npoints=30, pbc=[True, True, False])
    bands = random_bands(path, rng, window=window)
    reference = 0.7
    ax = bands.plot(reference=reference)
    lo, hi = ax.get_ylim()
    e = bands.energies - reference
    span = e.max() - e.min()
    assert lo < e.min() - 0.02 * span
    assert hi > e.max() + 0.02 * span
    assert hi - lo < 1.5 * span          # a margin, not a different scale


def test_bands_are_lines_windowed_bands_points(rng):
    path = hexagonal().cell.bandpath("GMKG", npoints=30, pbc=[True, True, False])
    ax = random_bands(path, rng).plot()
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines.get_segments()) == (len(path.kpts) - 1) * 6
    assert tuple(lines.get_clim()) == (-1.0, 1.0)          # comparable between figures
    assert ax.figure.axes[-1].get_ylabel() == r"$\langle\sigma_{z}\rangle$"  # colour bar
    ax = random_bands(path, rng, window=True).plot()
    assert any(isinstance(c, PathCollection) for c in ax.collections)
    assert not any(isinstance(c, LineCollection) for c in ax.collections)


def test_windowed_bands_are_lines_counted_from_the_gap():
    """Windows of five states whose split between valence and conduction changes from one
    k to the next: the bands counted from the gap are lines, the rest points."""
    path = hexagonal().cell.bandpath("GMKG", npoints=12, pbc=[True, True, False])
    nk = len(path.kpts)
    phase = np.linspace(0.0, 2 * np.pi, nk)[:, None]
    full = np.concatenate([-1.0 - 0.1 * np.arange(4)[::-1] + 0.02 * np.cos(phase),
                           1.0 + 0.1 * np.arange(4) + 0.02 * np.sin(phase)], axis=1)  # (nk, 8)
    first = np.where(np.arange(nk) % 2 == 0, 1, 2)          # 3 below / 2 above, or 2 / 3
    window = np.array([full[i, f:f + 5] for i, f in enumerate(first)])
    bands = Bands(np.asarray(path.kpts, dtype=np.float64), window, None, path, window=True)
    ax = bands.plot()
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = np.array(lines.get_segments())                # (segments, 2 ends, x/y)
    assert len(segments) == (nk - 1) * 4                     # 2 valence + 2 conduction
    drawn = segments[:, 0, 1].reshape(nk - 1, 4)
    np.testing.assert_allclose(drawn, full[:-1, 2:6], atol=1e-12)
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points.get_offsets()) == nk                   # one state per k left over


def test_band_plot_names_and_marks_the_reference(rng):
    path = hexagonal().cell.bandpath("GMKG", npoints=20, pbc=[True, True, False])
    bands = random_bands(path, rng)
    ax = bands.plot(reference=0.3, reference_label=r"E_\mathrm{mid}")
    assert ax.get_ylabel() == r"$E - E_\mathrm{mid}$ (eV)"
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and np.allclose(dashed[0].get_ydata(), 0.0)
    assert r"$E_\mathrm{mid}$" in [t.get_text() for t in ax.texts]
    ax = bands.plot()
    assert ax.get_ylabel() == "E (eV)"
    assert not [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]


# -- transport --------------------------------------------------------------------------------
def spin_result(rng: np.random.Generator) -> SpinTransmission:
    """Spin-resolved transmission dominated by one channel (the total nearly equals it)."""
    n = 30
    t = np.zeros((n, 2, 2))
    t[:, 1, 1] = np.linspace(0.0, 3.0, n)
    t[:, 0, 1] = t[:, 1, 0] = 1e-3 * rng.random(n)
    return SpinTransmission(np.linspace(-1.0, 1.0, n), t, np.ones(n), np.array([0.0, 0, 1]),
                            0, 1)


def test_spin_transmission_plot_shows_and_labels_every_curve(rng):
    result = spin_result(rng)
    ax = plot_transmission(result, reference=0.2)
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    channels = [r"$\uparrow\to\uparrow$", r"$\downarrow\to\downarrow$",
                r"$\uparrow\to\downarrow$", r"$\downarrow\to\uparrow$"]
    assert set(channels) | {"total"} <= set(lines)
    np.testing.assert_allclose(lines["total"].get_ydata(), result.total)
    np.testing.assert_allclose(lines[r"$\downarrow\to\downarrow$"].get_ydata(),
                               result.transmission[:, 1, 1])
    # the total is under the channels and wider, so the channel equal to it shows on top
    total = lines["total"]
    for name in channels:
        assert lines[name].get_zorder() > total.get_zorder()
        assert lines[name].get_linewidth() < total.get_linewidth()
    styles = {(lines[n].get_color(), lines[n].get_linestyle()) for n in channels}
    assert len(styles) == 4
    assert "e^2/h" in ax.get_ylabel()
    assert ax.get_xlabel() == "$E - E_F$ (eV)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["total", *channels]


def test_transmission_curve_plot_has_units_and_open_channels():
    e = np.linspace(-1.0, 1.0, 11)
    curve = TransmissionCurve(e, np.full(11, 1.5), np.full(11, 2, dtype=np.int64), 0, 1)
    ax = plot_transmission(curve)
    assert {"T", "open channels"} <= {ln.get_label() for ln in ax.get_lines()}
    assert "e^2/h" in ax.get_ylabel() and ax.get_xlabel() == "E (eV)"


def local_maps(current: float, spin_z: float = 0.0) -> LocalMaps:
    """Three sites in a row with the same current through both bonds."""
    pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    bonds = np.array([[1, 0], [2, 1]])
    spin_current = np.zeros((2, 3))
    spin_current[:, 2] = spin_z
    return LocalMaps(0.4, 0, pos, np.zeros(3), np.zeros((3, 3)), bonds,
                     np.full(2, current), spin_current)


def test_current_plot_has_a_colour_bar_with_units():
    ax = plot_current(local_maps(0.25))
    colorbar = ax.figure.axes[-1]
    assert colorbar is not ax and "e^2/h" in colorbar.get_ylabel()
    assert not [t for t in ax.texts if "no open channel" in t.get_text()]
    ax = plot_current(local_maps(0.25, spin_z=0.1), component="z")
    assert "hbar" in ax.figure.axes[-1].get_ylabel()
    ax = plot_current(local_maps(0.25), component="x")      # open, but no spin-x current
    (message,) = [t.get_text() for t in ax.texts]
    assert message.startswith("no spin-x current")


def test_current_plot_says_when_no_channel_is_open():
    ax = plot_current(local_maps(0.0), reference=0.1)
    (message,) = [t.get_text() for t in ax.texts if "no open channel" in t.get_text()]
    assert "+0.3 eV" in message
    assert len(ax.figure.axes) == 1                       # no colour bar of nothing


def test_closed_channel_of_a_real_chain_is_reported():
    pytest.importorskip("kwant")
    from ase_hamgnn import OrbitalBasis, TBHamiltonian
    from ase_hamgnn.transport import local_maps as solve_maps
    from ase_hamgnn.transport import to_kwant_system

    chain = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    hop = -1.0 * np.eye(2)                                   # eV: band from -2 to 2 eV
    lead = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
                                     {(0, 0, (1, 0, 0)): hop, (0, 0, (-1, 0, 0)): hop})
    syst = to_kwant_system(lead.tile((4, 1, 1)), lead).finalized()
    ax = plot_current(solve_maps(syst, 2.5))
    assert [t for t in ax.texts if "no open channel at E = 2.5 eV" in t.get_text()]
    ax = plot_current(solve_maps(syst, 0.5))
    assert not [t for t in ax.texts if "no open channel" in t.get_text()]


# -- densities of states ------------------------------------------------------------------
def test_kpm_plot_names_and_marks_the_reference():
    from ase_hamgnn import OrbitalBasis, TBHamiltonian
    from ase_hamgnn.spectra import kpm_dos

    chain = Atoms("H", cell=[1.0, 10.0, 10.0], pbc=[True, False, False])
    hop = -1.0 * np.eye(2)
    ham = TBHamiltonian.from_blocks(OrbitalBasis({"H": ["1s"]}), chain,
                                    {(0, 0, (1, 0, 0)): hop, (0, 0, (-1, 0, 0)): hop})
    kpm = kpm_dos(ham.tile((40, 1, 1)), np.linspace(-3, 3, 61), n_moments=64, rng=0,
                  progress=False)
    ax = kpm.plot(reference=0.5)
    assert ax.get_xlabel() == "$E - E_F$ (eV)"
    assert [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert kpm.plot().get_xlabel() == "E (eV)"
