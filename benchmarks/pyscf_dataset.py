"""Generate the ab initio Fe3 dataset: constrained non-collinear GKS (PySCF) on random moments.

Fe3 equilateral triangle (Fe-Fe 2.4 Å), sto-3g, LDA (ncol), Fermi smearing 0.005 Ha, moments
held along uniformly random directions by a penalty field; H = converged Fock matrix (eV),
S = AO overlap, in the project's basis.  Needs PySCF (``make pyscf-data`` installs it).

Resumable: re-run the same command after an interruption.  Several processes can share the
work (``--shard 0/2`` and ``--shard 1/2``), then ``--write-only`` writes the dataset folder.

Run: python benchmarks/pyscf_dataset.py [--out data/fe3-pyscf] [--n 300] [--grid-level 1]

With geometry, as the paper does (every coordinate displaced by up to 0.1 Å), at a tolerance
whose label noise is below 0.2 meV:

    python benchmarks/pyscf_dataset.py --out data/fe3-geom --n 340 --max-displacement 0.1 \\
        --per-geometry 5 --conv-tol 1e-10
"""

from __future__ import annotations

import argparse

from ase_hamgnn.data.pyscf.dataset import (
    fe3_triangle,
    generate_pyscf_dataset,
    label_noise,
    random_moment_configurations,
)


def measure_label_noise(a) -> None:
    """Label noise of the generation settings in ``a``, on its first configurations."""
    import numpy as np
    from _report import write_report

    confs = random_moment_configurations(fe3_triangle(), a.n, 3.0, a.max_displacement,
                                         rng=a.seed, per_geometry=a.per_geometry)
    confs = confs[::max(1, a.per_geometry)][:a.label_noise]  # one per geometry
    settings = {"guess_spin": 8, "grid_level": a.grid_level, "strength_ha": a.strength,
                "max_angle_deg": a.max_angle, "conv_tol": a.conv_tol, "soc": a.soc}
    shells = None if a.shells is None else a.shells.split(",")
    rows = label_noise(confs, rng=a.seed, progress=not a.no_progress, shells=shells,
                       **settings)
    summary = []
    for name in ("time reversal", "rotation"):
        sel = [r for r in rows if r["symmetry"] == name]
        summary.append({"symmetry": name, "configurations": len(sel),
                        "mae_meV": float(np.mean([r["mae_meV"] for r in sel])),
                        "max_meV": float(np.max([r["max_meV"] for r in sel])),
                        "max_all_shells_meV": float(np.max([r["max_all_meV"] for r in sel]))})
    notes = (f"Fe3 (Fe-Fe 2.4 Å, coordinates displaced up to {a.max_displacement} Å), sto-3g, "
             + ("X2C1e spin-orbit coupling, " if a.soc else "") +
             f"LDA non-collinear, grid level {a.grid_level}, conv_tol {a.conv_tol}, penalty "
             f"{a.strength} Ha/μB², SOC {a.soc}; measured on the shells "
             f"{a.shells or 'all'} (max_all_shells: every shell, core levels included).  "
             "Each configuration is computed three times, "
             "each its own SCF from a fresh guess: as given, with all moments reversed, and "
             "rotated by a random rotation; the rows are |H_copy - g H g^-1| over all matrix "
             "elements (mean over configurations of the per-configuration mean; largest "
             "entry).  Time reversal measures the SCF convergence; rotations add the DFT grid, "
             "which stays fixed in the lab frame.  Target: <= 0.2 meV.")
    write_report(f"pyscf-label-noise-grid{a.grid_level}" + ("-soc" if a.soc else ""),
                 {"settings": settings, "per_configuration": rows}, summary, notes=notes)
    for row in summary:
        print(row)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/fe3-pyscf")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid-level", type=int, default=1)
    p.add_argument("--max-displacement", type=float, default=0.0,
                   help="random displacement of each coordinate, up to this many Å")
    p.add_argument("--per-geometry", type=int, default=1,
                   help="configurations (moment sets) per displaced geometry")
    p.add_argument("--near-collinear", type=int, default=0, metavar="K",
                   help="the last K of the n configurations are nearly ferromagnetic (moments "
                        "within --cone-deg of a common random axis)")
    p.add_argument("--cone-deg", type=float, default=30.0)
    p.add_argument("--strength", type=float, default=0.01, help="penalty lambda, Ha/muB^2")
    p.add_argument("--max-angle", type=float, default=3.0, help="accepted angle error, deg")
    p.add_argument("--conv-tol", type=float, default=1e-8)
    p.add_argument("--soc", action="store_true", help="X2C1e spin-orbit coupling")
    p.add_argument("--shard", default="0/1", help="k/m: compute the geometries g with g %% m == k")
    p.add_argument("--n-use", type=int, default=None,
                   help="write the dataset from the first N finished configurations")
    p.add_argument("--shells", default=None,
                   help="comma-separated shells written to the dataset, e.g. 4s,4p,3d")
    p.add_argument("--write-only", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--label-noise", type=int, default=0, metavar="K",
                   help="instead of generating: measure the label noise on K of the "
                        "configurations (time-reversed and rotated copies, each its own SCF) "
                        "and write benchmarks/reports/pyscf-label-noise-grid<level>[-soc]"
                        ".{json,md}")
    a = p.parse_args(argv)
    if a.label_noise:
        measure_label_noise(a)
        return
    k, m = (int(x) for x in a.shard.split("/"))
    manifest = generate_pyscf_dataset(
        a.out, n=a.n, seed=a.seed, grid_level=a.grid_level, strength_ha=a.strength,
        max_displacement=a.max_displacement, per_geometry=a.per_geometry,
        near_collinear=a.near_collinear, cone_deg=a.cone_deg, max_angle_deg=a.max_angle,
        conv_tol=a.conv_tol, soc=a.soc, shard=(k, m),
        n_use=a.n_use, shells=None if a.shells is None else a.shells.split(","),
        compute=not a.write_only, write=not a.no_write, progress=not a.no_progress)
    if manifest is not None:
        print(f"dataset with {manifest['n_records']} records: {manifest['counts']}")


if __name__ == "__main__":
    main()
