"""Spin-resolved transport through a skyrmion in a NiBrI ribbon, against the ferromagnetic ribbon.

The Hamiltonians come from the SYNTHETIC reference tight-binding model of monolayer NiBrI
(:class:`ase_hamgnn.data.ReferenceTB`, with spin-orbit coupling; a stand-in for
spin-constrained DFT, not DFT) unless ``--model`` names a shipped HamGNN++ model or a
checkpoint file (:func:`ase_hamgnn.model.load_model`); both provide ``predict(atoms)``.

Geometry: NiBrI on the rectangular ``a x sqrt(3) a`` cell (6 atoms), ``NX x NY`` cells form
the scattering region of a ribbon along ``a``; the two leads are the ferromagnetic ribbon
(Ni moments along +z) continued to -x and +x (:func:`ase_hamgnn.transport.to_kwant_system`).
The region is either that same ferromagnet (a pristine ribbon: it transmits every open lead
channel) or a Néel skyrmion with its core down in it.

1. Conductance ``G = (e^2/h) T`` versus energy for both ribbons, split by spin: the
   S-matrix projected onto the spin (along z) of the lead modes
   (:func:`ase_hamgnn.transport.spin_transmission`; the leads have spin-orbit coupling, so
   the projection is exact only up to the printed spin purity of the lead modes), and the
   spin polarization of the transmitted current.
2. The texture next to the local current map of the states injected from the left lead at
   one energy (:func:`ase_hamgnn.transport.local_maps`).

Figures go to ``--out`` (default ``out``) as PNG; a summary is printed.  The defaults (a
14 x 6 ribbon, 504 atoms, 41 energies) take about two minutes on two cores; ``--size``,
``--radius``, ``--energies`` and ``--window`` make it larger or finer (the skyrmion must fit
in the region: radius + width <= half the shorter side).

Run: python examples/skyrmion_transport.py [--out DIR] [--model NAME_OR_PATH]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

# One BLAS thread: the dense lead-mode decompositions are slowed down by oversubscription
# on small shared machines; set before NumPy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _output import output_folder  # noqa: E402  (examples/ is on sys.path)

import textures  # noqa: E402
from ase_hamgnn.data import ReferenceTB  # noqa: E402
from ase_hamgnn.transport import local_maps, spin_transmission  # noqa: E402
from ase_hamgnn.transport.export import to_kwant_system  # noqa: E402

MOMENT = 2.0  # μB on Ni (Ni2+, S = 1), the default of ReferenceTB's structures


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out"), help="folder for the figures")
    p.add_argument("--model", default="reference",
                   help="'reference' (synthetic ReferenceTB, default), a shipped model name "
                        "or a checkpoint path")
    p.add_argument("--size", type=int, nargs=2, default=(14, 6), metavar=("NX", "NY"),
                   help="rectangular cells along the ribbon (a) and across (sqrt(3) a)")
    p.add_argument("--radius", type=float, default=9.0, help="skyrmion radius, Å")
    p.add_argument("--energies", type=int, default=41,
                   help="energy points in the window (enough to resolve the channel steps)")
    p.add_argument("--window", type=float, nargs=2, default=None, metavar=("EMIN", "EMAX"),
                   help="energy window relative to E_F, eV; default the lowest 0.5 eV of "
                        "the conduction band of the ferromagnet (minority Ni e_g for the "
                        "reference model), where the lead modes are nearly spin-pure")
    p.add_argument("--map-energy", type=float, default=None,
                   help="E - E_F (eV) of the current map; default the sampled energy with "
                        "the most open channels")
    return p.parse_args(argv)


def load_predictor(name: str):
    """The synthetic reference model, or a HamGNN++ model by name or checkpoint path."""
    if name == "reference":
        return ReferenceTB("nibri")
    from ase_hamgnn.model import load_model

    return load_model(name)


def conduction_band_edge(lead, e_fermi: float) -> float:
    """Lowest band energy above ``e_fermi`` of the periodic ferromagnet (eV, 12 x 6 mesh)."""
    mesh = [(i / 12, j / 6, 0.0) for i in range(12) for j in range(6)]
    eig = np.concatenate([lead.eigvalsh(k) for k in mesh])
    above = eig[eig > e_fermi]
    return float(above.min()) if above.size else e_fermi


def build(model, nx: int, ny: int, radius: float):
    """Lead Hamiltonian, Fermi level and the two finalized Kwant systems (ferromagnetic
    ribbon, skyrmion ribbon), plus the skyrmion structure."""
    prim = textures.ferromagnet(ReferenceTB("nibri").structure(), magnetic=("Ni",),
                                magnitude=MOMENT)
    rect = textures.supercell(prim, [[1, 0, 0], [1, 2, 0], [0, 0, 1]])   # a x sqrt(3) a
    lead = model.predict(rect)
    e_fermi = lead.fermi_level(model.n_electrons(rect), kpts=(12, 6, 1))
    ribbon = textures.supercell(rect, (nx, ny, 1))
    centre = ribbon.cell.array.sum(axis=0) / 2                          # Å, cell centre
    sky = textures.skyrmion(ribbon, center=centre, radius=radius, magnetic=("Ni",),
                            magnitude=MOMENT)
    systems = {}
    for name, atoms in (("ferromagnet", ribbon), ("skyrmion", sky)):
        systems[name] = to_kwant_system(model.predict(atoms), lead, directions=[0]).finalized()
    return lead, float(e_fermi), systems, sky


def plot_conductance(energies, e_fermi, spins, out: Path) -> Path:
    """Total and spin-resolved conductance and spin polarization of both ribbons."""
    de = energies - e_fermi
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 4.6), constrained_layout=True)
    markers = len(energies) <= 60
    style = {"ferromagnet": dict(ls="--", marker="s" if markers else "", ms=2.5, lw=1.2),
             "skyrmion": dict(ls="-", marker="o" if markers else "", ms=3, lw=1.6)}
    grey = {"ferromagnet": "0.55", "skyrmion": "k"}

    ax = axes[0]
    for name, res in spins.items():
        # the clean ribbon transmits its open channels: integer steps between the energies
        steps = dict(drawstyle="steps-mid") if name == "ferromagnet" else {}
        ax.plot(de, res.total, color=grey[name], label=f"{name} ribbon", **style[name],
                **steps)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(r"$E - E_F$ (eV)")
    ax.set_ylabel(r"conductance $G$ ($e^2/h$)")
    ax.set_title("(a) conductance; ferromagnet = open channels")
    ax.legend(frameon=False)

    ax = axes[1]
    channels = ((r"$\downarrow\to\downarrow$", "C0", lambda t: t[:, 1, 1]),
                (r"$\uparrow\to\uparrow$", "C3", lambda t: t[:, 0, 0]),
                (r"spin flip", "C2", lambda t: t[:, 0, 1] + t[:, 1, 0]))
    for name, res in spins.items():
        for label, color, pick in channels:
            y = np.where(pick(res.transmission) > 0, pick(res.transmission), np.nan)
            ax.plot(de, y, color=color, label=f"{label}, {name}", **style[name])
    ax.set_yscale("log")
    ax.set_xlabel(r"$E - E_F$ (eV)")
    ax.set_ylabel(r"spin-resolved conductance ($e^2/h$)")
    ax.set_title("(b) by spin along z (incoming $\\to$ outgoing)\n"
                 "ferromagnet 'flips': spin mixing of the lead modes by SOC",
                 fontsize="medium")
    ax.legend(frameon=False, fontsize="small", ncol=2, loc="upper center",
              bbox_to_anchor=(0.5, -0.14))

    ax = axes[2]
    for name, res in spins.items():
        ax.plot(de, res.spin_polarization, color=grey[name], label=f"{name} ribbon",
                **style[name])
    pol = np.concatenate([r.spin_polarization for r in spins.values()])
    pol = pol[np.isfinite(pol)]
    if pol.size:
        lo, hi = pol.min(), pol.max()
        pad = max(0.1 * (hi - lo), 0.005)
        ax.set_ylim(max(lo - pad, -1.0), min(hi + pad, 1.0))
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel(r"$E - E_F$ (eV)")
    ax.set_ylabel(r"$P = (G_\uparrow - G_\downarrow) / (G_\uparrow + G_\downarrow)$")
    ax.set_title("(c) spin polarization of the transmitted current")
    ax.legend(frameon=False)
    path = out / "skyrmion_transport_conductance.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def current_density(maps, spacing: float = 0.5, sigma: float = 1.5):
    """Bond currents smeared into a current density on a grid: ``j(r) = sum_b I_b d_b
    g(r - r_b)`` with the bond vector ``d_b`` (Å, along the current), its midpoint ``r_b``
    and a normalized Gaussian ``g`` of width ``sigma`` (Å); in units of e^2 V / h per Å, so
    that its flux through a line across the ribbon is the transmission."""
    pos = maps.positions[:, :2]
    a, b = maps.bonds[:, 0], maps.bonds[:, 1]
    mid = 0.5 * (pos[a] + pos[b])
    vec = (pos[a] - pos[b]) * maps.current[:, None]          # current flows from b to a
    lo, hi = pos.min(axis=0) - 2.0, pos.max(axis=0) + 2.0
    gx = np.arange(lo[0], hi[0] + spacing, spacing)
    gy = np.arange(lo[1], hi[1] + spacing, spacing)
    wx = np.exp(-0.5 * ((gx[:, None] - mid[None, :, 0]) / sigma) ** 2)
    wy = np.exp(-0.5 * ((gy[:, None] - mid[None, :, 1]) / sigma) ** 2)
    norm = 1.0 / (2.0 * np.pi * sigma**2)
    jx = norm * (wy * vec[None, :, 0]) @ wx.T                 # (ny, nx)
    jy = norm * (wy * vec[None, :, 1]) @ wx.T
    return gx, gy, jx, jy


def plot_maps(sky, maps, charge: float, radius: float, e_map: float, out: Path) -> Path:
    """Texture of the region next to the current density of the left-injected states."""
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.4), constrained_layout=True)
    textures.plot_texture(sky, ax=axes[0], magnetic=("Ni",), show_cell=False,
                          title=f"(a) Ni moments in the scattering region, Q = {charge:+.2f}")
    gx, gy, jx, jy = current_density(maps)
    mag = np.hypot(jx, jy)
    ax = axes[1]
    mesh = ax.pcolormesh(gx, gy, mag, cmap="magma", shading="auto")
    fig.colorbar(mesh, ax=ax, label=r"current density $|j|$ ($e^2V/h$ per Å)")
    ax.streamplot(gx, gy, jx, jy, color="w", density=1.3, arrowsize=1.1,
                  linewidth=0.4 + 1.6 * mag / mag.max())
    centre = sky.cell.array.sum(axis=0)[:2] / 2                          # as in build()
    for axis in axes:
        axis.add_patch(plt.Circle(centre, radius, fill=False, ls="--", lw=1.2, color="0.3"
                                  if axis is axes[0] else "c"))
        axis.set_xlim(gx[0], gx[-1])
        axis.set_ylim(gy[0], gy[-1])
        axis.set_aspect("equal")
        axis.set_xlabel("x (Å)")
        axis.set_ylabel("y (Å)")
    ax.set_title(f"(b) current injected from the left lead, E - E_F = {e_map:+.2f} eV;\n"
                 "streamlines, dashed: skyrmion radius ($m_z = 0$)", fontsize="medium")
    path = out / "skyrmion_transport_current_map.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    start = time.perf_counter()
    output_folder(args.out)
    model = load_predictor(args.model)
    nx, ny = args.size
    lead, e_fermi, systems, sky = build(model, nx, ny, args.radius)
    charge = float(textures.topological_charge(sky, magnetic=("Ni",)))
    cell_orbs = sum(s.family.norbs for s in systems["skyrmion"].leads[0].sites[
        :systems["skyrmion"].leads[0].cell_size])
    print(f"model: {type(model).__name__} ({args.model})")
    print(f"NiBrI ribbon {nx} x {ny} rectangular cells = {len(sky)} atoms, "
          f"{sum(s.family.norbs for s in systems['skyrmion'].sites)} spin-orbitals; "
          f"ferromagnetic leads along a, {cell_orbs} spin-orbitals per lead cell")
    print(f"skyrmion: radius {args.radius:.1f} Å, topological charge Q = {charge:+.2f}; "
          f"E_F = {e_fermi:.3f} eV")

    if args.window is None:
        cbm = conduction_band_edge(lead, e_fermi) - e_fermi
        window = (cbm + 0.02, cbm + 0.5)   # off the band edge (zero velocity there)
        print(f"conduction band edge of the ferromagnet: E - E_F = {cbm:+.3f} eV; window "
              f"{window[0]:+.2f} .. {window[1]:+.2f} eV")
    else:
        window = tuple(args.window)
    energies = e_fermi + np.linspace(*window, args.energies)
    spins = {name: spin_transmission(fsyst, energies, axis="z", progress=False)
             for name, fsyst in systems.items()}
    fm, sk = spins["ferromagnet"], spins["skyrmion"]
    print("\n E - E_F (eV) | G_FM = open channels | G_sky (e^2/h) | P_FM   | P_sky  | "
          "spin flip, sky (e^2/h)")

    def fmt(p: float) -> str:
        return f"{p:+.3f}" if np.isfinite(p) else "   -  "

    every = max(1, len(energies) // 10)     # about ten rows; the figure has them all
    for n, energy in list(enumerate(energies))[::every]:
        flip = sk.transmission[n, 0, 1] + sk.transmission[n, 1, 0]
        print(f"     {energy - e_fermi:+6.3f}   | {fm.total[n]:20.4f} | {sk.total[n]:13.4f} | "
              f"{fmt(fm.spin_polarization[n])} | {fmt(sk.spin_polarization[n])} | "
              f"{flip:.2e}")
    purities = np.concatenate([fm.purity, sk.purity])
    purity = np.nanmin(purities) if np.isfinite(purities).any() else float("nan")
    print(f"smallest spin purity of the lead modes: {purity:.3f} (1 = spin-pure, the spin "
          "projection is exact)")

    path = plot_conductance(energies, e_fermi, spins, args.out)
    print(f"\nwrote {path}")
    if args.map_energy is None:
        e_map = float(energies[int(np.argmax(np.rint(fm.total)))])
    else:
        e_map = e_fermi + args.map_energy
    maps = local_maps(systems["skyrmion"], e_map, lead=0)
    if maps.current.size and np.abs(maps.current).max() > 0:
        path = plot_maps(sky, maps, charge, args.radius, e_map - e_fermi, args.out)
        print(f"wrote {path} (current map at E - E_F = {e_map - e_fermi:+.3f} eV)")
    else:
        print(f"no open channel at E - E_F = {e_map - e_fermi:+.3f} eV: no current map "
              "(choose --map-energy or --window inside a band)")
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
