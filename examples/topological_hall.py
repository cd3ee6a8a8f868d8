"""Topological Hall effect of a tiny skyrmion lattice in the SYNTHETIC NiBrI reference model.

One skyrmion (Q = -1) per 4x4 supercell of the Janus NiBrI layer (48 atoms, 448
spin-orbitals) of :class:`~ase_hamgnn.data.ReferenceTB` (a hand-parameterised model, not
DFT), next to the ferromagnet along +z in the primitive cell.  The script computes

* the Chern numbers of the band groups within 1.6 eV of the gap (Fukui–Hatsugai–Suzuki),
* the intrinsic Hall conductivity sigma_xy(E_F) by the Kubo formula for both, on the same
  k-point density (the supercell mesh folds onto the primitive one exactly),

and draws one figure: the texture, sigma_xy against E_F with the Chern numbers of the
groups, and the Berry curvature of the lowest skyrmion-lattice conduction group.  About two
minutes on two cores.

Usage::

    python examples/topological_hall.py [output.png] [--mesh 10] [--chern-mesh 8]

The picture goes to ``topological_hall.png`` in the current directory unless a path is given;
its folder is created (and checked to be writable) before the work starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from _output import output_file  # noqa: E402  (examples/ is on sys.path)
from matplotlib.figure import Figure  # noqa: E402

import textures  # noqa: E402
from ase_hamgnn.analysis import berry_curvature, chern_numbers, hall_conductivity  # noqa: E402
from ase_hamgnn.data import ReferenceTB  # noqa: E402

SIZE = 4              # supercell of the primitive NiBrI cell, one skyrmion in it
MOMENT = 2.0          # μB on Ni
WINDOW = (-1.7, 1.4)  # eV around the mid-gap Fermi level of the ferromagnet
TEMPERATURE = 300.0   # K, Fermi–Dirac smearing of sigma_xy (smooths the metallic parts)
ETA = 5e-3            # eV, broadening of the Kubo denominators


def main(path: Path, mesh: int, chern_mesh: int) -> Path:
    ref = ReferenceTB("nibri")
    prim = textures.ferromagnet(ref.structure(), (0, 0, 1), magnitude=MOMENT)
    skx = textures.skyrmion_lattice(ref.structure((SIZE, SIZE)), n=1, magnitude=MOMENT)
    charge = textures.topological_charge(skx)
    ham_fm, ham_skx = ref.predict(prim), ref.predict(skx)

    e_f = ham_fm.fermi_level(ref.n_electrons(prim), (12, 12, 1))  # mid-gap, eV
    energies = e_f + np.linspace(*WINDOW, 311)
    print(f"ferromagnet: E_F = {e_f:.3f} eV (mid-gap); skyrmion lattice Q = {charge:+.2f}")
    groups = {}
    for name, ham, m in (("FM", ham_fm, SIZE * chern_mesh), ("SkX", ham_skx, chern_mesh)):
        groups[name] = chern_numbers(ham, (m, m), energy_window=(energies[0], energies[-1]),
                                     gap_tol=0.01, progress=True)
        for g in groups[name]:
            print(f"{name:4s} bands {g.start:4d}-{g.stop - 1:4d}  E-E_F {g.emin - e_f:+.2f}.."
                  f"{g.emax - e_f:+.2f} eV  C = {g.chern:+.3f}  gap above {g.gap_above:.3f} eV")
    kw = {"eta": ETA, "temperature": TEMPERATURE, "progress": True}
    sigma_fm = hall_conductivity(ham_fm, energies, (SIZE * mesh, SIZE * mesh), **kw)
    sigma_skx = hall_conductivity(ham_skx, energies, (mesh, mesh), **kw)
    print(f"sigma_xy at mid-gap: FM {sigma_fm.sigma_xy[np.argmin(abs(energies - e_f))]:+.4f}, "
          f"SkX {sigma_skx.sigma_xy[np.argmin(abs(energies - e_f))]:+.4f} e^2/h")
    cond = [g for g in groups["SkX"] if g.emin > e_f]
    omega = berry_curvature(ham_skx, range(cond[0].start, cond[0].stop),
                            (chern_mesh, chern_mesh)) if cond else None

    fig = Figure(figsize=(14, 4.4), layout="constrained")
    ax_t, ax_s, ax_o = fig.subplots(1, 3, width_ratios=[1.0, 1.6, 1.0])
    textures.plot_texture(skx, ax_t, title=f"skyrmion lattice, {SIZE}x{SIZE} NiBrI, "
                                           f"Q = {charge:+.0f}")
    sigma_fm.plot(ax_s, reference=e_f, label=f"FM (1x1, {SIZE * mesh}x{SIZE * mesh} k)",
                  color="0.3")
    sigma_skx.plot(ax_s, reference=e_f, label=f"SkX ({SIZE}x{SIZE}, {mesh}x{mesh} k)",
                   color="C3")
    for row, (name, colour) in enumerate((("FM", "0.3"), ("SkX", "C3"))):
        y = -1.9 - 0.35 * row
        for g in groups[name]:
            ax_s.plot([g.emin - e_f, g.emax - e_f], [y, y], color=colour, lw=3,
                      solid_capstyle="butt")
            c = round(g.chern)
            ax_s.text(0.5 * (g.emin + g.emax) - e_f, y + 0.08, f"{c:+d}" if c else "0",
                      color=colour, ha="center", va="bottom", fontsize=7)
    ax_s.text(WINDOW[0] + 0.05, -1.65, "band groups: Chern number", fontsize=7)
    ax_s.set_ylim(-2.4, 1.6)
    ax_s.set_xlim(*WINDOW)
    ax_s.legend(frameon=False, fontsize="small", loc="upper left")
    ax_s.set_xlabel(r"$E_F - E_F^{FM}$ (eV; $E_F^{FM}$ mid-gap)")
    ax_s.set_title(rf"Kubo $\sigma_{{xy}}$, $\eta$ = {ETA * 1e3:.0f} meV, T = {TEMPERATURE:.0f} K; "
                   f"Chern numbers on {chern_mesh}x{chern_mesh} (SkX) / "
                   f"{SIZE * chern_mesh}x{SIZE * chern_mesh} (FM) k", fontsize="small")
    if omega is not None:
        omega.plot(ax_o)
        ax_o.set_title(f"SkX bands {omega.bands[0]}-{omega.bands[-1]} (lowest conduction "
                       f"group): C = {round(omega.chern):+d}\n"
                       f"Berry curvature, {chern_mesh}x{chern_mesh} k", fontsize="small")
    fig.suptitle("SYNTHETIC reference model (not DFT): topological vs anomalous Hall effect",
                 fontsize="medium")
    fig.savefig(path, dpi=130)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="topological_hall.png", type=Path)
    parser.add_argument("--mesh", type=int, default=10,
                        help="k-mesh of the skyrmion supercell for sigma_xy (default 10)")
    parser.add_argument("--chern-mesh", type=int, default=8,
                        help="k-mesh of the supercell for Chern numbers (default 8)")
    args = parser.parse_args()
    print(main(output_file(args.output), args.mesh, args.chern_mesh))
