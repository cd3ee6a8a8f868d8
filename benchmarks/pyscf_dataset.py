"""Generate the ab initio Fe3 dataset: constrained non-collinear GKS (PySCF) on random moments.

Fe3 equilateral triangle (Fe-Fe 2.4 Å), sto-3g, LDA (ncol), Fermi smearing 0.005 Ha, moments
held along uniformly random directions by a penalty field; H = converged Fock matrix (eV),
S = AO overlap, in the project's basis.  Needs PySCF (``make pyscf-data`` installs it).

Resumable: re-run the same command after an interruption.  Several processes can share the
work (``--shard 0/2`` and ``--shard 1/2``), then ``--write-only`` writes the dataset folder.

Run: python benchmarks/pyscf_dataset.py [--out data/fe3-pyscf] [--n 300] [--grid-level 1]
"""

from __future__ import annotations

import argparse

from ase_hamgnn.data.pyscf_dataset import generate_pyscf_dataset


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/fe3-pyscf")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid-level", type=int, default=1)
    p.add_argument("--strength", type=float, default=0.01, help="penalty lambda, Ha/muB^2")
    p.add_argument("--max-angle", type=float, default=3.0, help="accepted angle error, deg")
    p.add_argument("--conv-tol", type=float, default=1e-8)
    p.add_argument("--soc", action="store_true", help="X2C1e spin-orbit coupling")
    p.add_argument("--shard", default="0/1", help="k/m: compute configurations i % m == k")
    p.add_argument("--n-use", type=int, default=None,
                   help="write the dataset from the first N finished configurations")
    p.add_argument("--shells", default=None,
                   help="comma-separated shells written to the dataset, e.g. 4s,4p,3d")
    p.add_argument("--write-only", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    k, m = (int(x) for x in a.shard.split("/"))
    manifest = generate_pyscf_dataset(
        a.out, n=a.n, seed=a.seed, grid_level=a.grid_level, strength_ha=a.strength,
        max_angle_deg=a.max_angle, conv_tol=a.conv_tol, soc=a.soc, shard=(k, m),
        n_use=a.n_use, shells=None if a.shells is None else a.shells.split(","),
        compute=not a.write_only, write=not a.no_write, progress=not a.no_progress)
    if manifest is not None:
        print(f"dataset with {manifest['n_records']} records: {manifest['counts']}")


if __name__ == "__main__":
    main()
