"""Benchmark: prediction and spectra of NiBrI antiskyrmion supercells from 300 to 10,000 atoms.

System: an antiskyrmion (``textures.antiskyrmion``, radius 10 Å, or a quarter of the cell
for small cells) in an ``n x n`` supercell of monolayer NiBrI, Hamiltonian predicted by the
shipped demonstration model ``nibri-reference`` (trained on the SYNTHETIC reference model,
not DFT).  Every size runs in a fresh subprocess so that its peak memory (max RSS) is its own.

For each size the report gives:

* prediction: ``model.predict`` with environment sharing (the default: the texture sits on
  an ideal supercell, so the network runs once per class of equal environments), and the
  plain evaluation without sharing (the cost for a structure without repeated
  environments) split into neighbour graph, network and sparse-matrix assembly; edges,
  spin-orbitals, peak RSS; log-log fits of time against atoms give the scaling exponents;
* near-gap states (up to ``--states-max`` atoms, default 3468): the 16 highest occupied and
  16 lowest empty states at Γ, and with them the gap, by
  :func:`ase_hamgnn.spectra.edge_states` (a coarse KPM DOS places one shift-invert
  factorization next to each band edge); up to
  ``--dense-max`` atoms (default 1200) a dense ``eigh`` of the same matrix in the same run,
  and for larger systems a dense time extrapolated as dim³ from the largest measured one
  (marked "extrapolated"); the ratio is the speed-up;
* near-gap bands (from ``--bands-min`` to ``--bands-max`` atoms, default 1200 to 3468): the
  16 highest occupied and 16 lowest empty bands at 40 k-points along M-Γ-K of the supercell
  by :func:`ase_hamgnn.spectra.edge_bands` (factorizations at a few anchors, a reduced
  basis interpolated along the path elsewhere), its largest residual, and its largest
  deviation from a direct :func:`~ase_hamgnn.spectra.edge_states` solve at three k-points of the
  path that are not anchors (the check is not part of the time);
* KPM DOS: :func:`ase_hamgnn.spectra.kpm_dos` at Γ with 512 moments and 2 to 8 random vectors
  (enough for a stochastic-trace error of about 0.3 %, see :func:`kpm_vectors`), and the
  Fermi level it implies.

Targets (issue 9): 3468 atoms predicted in <= 3 s, exponent <= 1.1, <= 4 GB at 10,000
atoms, near-gap states >= 100x faster than dense, KPM DOS of 10,000 atoms in <= 30 s;
(issue 24) 32 near-gap bands at 40 k-points of 3468 atoms in <= 5 min, within 1 meV of the
direct solve.

Run::

    python benchmarks/scale.py                 # n = 10, 20, 34, 58 (300 ... 10,092 atoms)
    python benchmarks/scale.py --quick         # n = 6, 10
    python benchmarks/scale.py --threads 2     # torch and BLAS threads per run
    python benchmarks/scale.py --only bands    # the bands rows alone, merged into the report

Writes ``benchmarks/reports/scale.json`` and ``scale.md`` atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPORT_DIR = Path(__file__).resolve().parent / "reports"
TARGETS = {"predict_3468_s": 3.0, "exponent": 1.1, "rss_10k_gb": 4.0, "sparse_speedup": 100.0,
           "kpm_10k_s": 30.0, "bands_3468_s": 300.0, "bands_check_meV": 1.0}
BAND_POINTS = 40        # k-points along M-Γ-K for the near-gap bands
BAND_CHECKS = (5, 17, 33)  # k indices checked against a direct shift-invert solve


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 34, 58],
                   help="supercell sizes n (n x n NiBrI cells, 3 atoms each)")
    p.add_argument("--quick", action="store_true", help="sizes 6 and 10 only")
    p.add_argument("--threads", type=int, default=1, help="torch and BLAS threads per run")
    p.add_argument("--dense-max", type=int, default=1200,
                   help="largest system (atoms) also diagonalized densely; larger ones get "
                   "an n^3 extrapolation from the largest measured, labelled as such")
    p.add_argument("--states-max", type=int, default=3468,
                   help="largest system (atoms) for the gap and the 32 near-gap states")
    p.add_argument("--bands-min", type=int, default=1200,
                   help="smallest system (atoms) for the near-gap bands along a path")
    p.add_argument("--bands-max", type=int, default=3468,
                   help="largest system (atoms) for the near-gap bands along a path")
    p.add_argument("--only", choices=["bands"],
                   help="run only this part and merge it into the existing report")
    p.add_argument("--out", type=Path, default=REPORT_DIR, help="report folder")
    p.add_argument("--name", default="scale", help="report name (<out>/<name>.json, .md)")
    p.add_argument("--worker", choices=["predict", "spectra", "bands"], help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--ham", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _structure(n: int):
    import textures
    from ase_hamgnn.data.structures import nibri

    cells = textures.supercell(nibri(), (n, n, 1))
    radius = min(10.0, 0.25 * float(min(cells.cell.lengths()[:2])))
    atoms = textures.antiskyrmion(cells, radius=radius, magnetic=("Ni",), magnitude=2.0)
    return atoms, radius, float(textures.topological_charge(atoms))


def _max_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux


def _worker_predict(args) -> dict:
    import torch

    from ase_hamgnn.geometry import Geometry
    from ase_hamgnn.graph import BlockLayout
    from ase_hamgnn.hamiltonian import TBHamiltonian
    from ase_hamgnn.model import load_model
    from ase_hamgnn.model.inputs import graph_inputs

    torch.set_num_threads(args.threads)
    atoms, radius, charge = _structure(args.n)
    model = load_model("nibri-reference")
    rss_before = _max_rss_gb()
    model.predict(atoms[:3] if len(atoms) > 3 else atoms)  # warm-up (first-call overheads)
    # shared: atoms with equal environments share the network's work (the default)
    t0 = time.perf_counter()
    ham = model.predict(atoms)
    shared_s = time.perf_counter() - t0
    geometry = Geometry.from_atoms(atoms)
    data, graph = graph_inputs(geometry, model.cutoff)
    t0 = time.perf_counter()
    classes = model.environment_classes(geometry, graph)
    classes_s = time.perf_counter() - t0
    # plain: the network on every atom and bond (the cost for a structure without repeated
    # environments, e.g. a relaxed one), timed by stage
    model.share_environments = False
    t0 = time.perf_counter()
    geometry = Geometry.from_atoms(atoms)
    data, graph = graph_inputs(geometry, model.cutoff)
    t1 = time.perf_counter()
    with torch.no_grad():
        out = model.network.eval()(data, magnetic=False)
    t2 = time.perf_counter()
    layout = BlockLayout(model.basis, geometry.numbers, graph)
    plain = TBHamiltonian(model.basis, geometry,
                          layout.to_matrices(out["onsite"].numpy().astype("complex128"),
                                             out["edge"].numpy().astype("complex128")),
                          hermiticity_tol=1e-6)
    t3 = time.perf_counter()
    if args.ham is not None:
        ham.save(args.ham)
    return {"atoms": len(atoms), "edges": int(graph.edge_index.shape[1]),
            "spin_orbitals": ham.n_spin_orbitals, "radius_A": radius, "Q": round(charge, 3),
            "predict_s": shared_s, "atom_classes": len(classes.node_reps[-1]),
            "edge_classes": len(classes.edge_reps), "classes_s": classes_s,
            "shared_vs_plain_max_diff_eV": float(ham.max_abs_difference(plain)),
            "graph_s": t1 - t0, "network_s": t2 - t1, "matrices_s": t3 - t2,
            "predict_plain_s": t3 - t0, "peak_rss_gb": _max_rss_gb(),
            "rss_after_import_gb": rss_before}


def kpm_vectors(dim: int) -> int:
    """Random vectors for the stochastic trace: its relative error is about
    ``1 / sqrt(n_vectors * dim)``, so large systems need few; ``n_vectors * dim >= 1e5``
    (error <= ~0.3 %), between 2 and 8."""
    return int(min(8, max(2, -(-100_000 // dim))))


def _worker_spectra(args) -> dict:
    import numpy as np

    from ase_hamgnn.hamiltonian import TBHamiltonian
    from ase_hamgnn.model import load_model
    from ase_hamgnn.spectra import dense_eigh, edge_states, kpm_dos
    from ase_hamgnn.spectra.shift_invert import default_backend

    ham = TBHamiltonian.load(args.ham)
    atoms = ham.to_atoms()
    n_el = int(round(load_model("nibri-reference").n_electrons(atoms)))
    gamma = (0.0, 0.0, 0.0)
    t0 = time.perf_counter()
    n_vectors = kpm_vectors(ham.n_spin_orbitals)
    kpm = kpm_dos(ham, n_moments=512, n_vectors=n_vectors, rng=0, progress=False)
    row = {"kpm_s": time.perf_counter() - t0, "kpm_vectors": n_vectors,
           "kpm_resolution_eV": float(kpm.resolution), "kpm_fermi_eV": float(kpm.fermi_level(n_el))}
    if len(atoms) > args.states_max:
        row["peak_rss_gb"] = _max_rss_gb()
        return row
    t0 = time.perf_counter()
    es = edge_states(ham, n_el, gamma, n_below=16, n_above=16)
    row.update({"gap_eV": es.gap, "vbm_eV": es.vbm, "cbm_eV": es.cbm,
                "states32_s": time.perf_counter() - t0, "factorization": default_backend()})
    if len(atoms) <= args.dense_max:
        t3 = time.perf_counter()
        e_dense = dense_eigh(ham, gamma, vectors=False)
        e_dense = np.sort(np.asarray(e_dense[0] if isinstance(e_dense, tuple) else e_dense))
        row["dense_eigh_s"] = time.perf_counter() - t3
        row["max_dev_vs_dense_eV"] = float(np.abs(e_dense[es.indices] - es.energies).max())
        row["dense_gap_eV"] = float(e_dense[n_el] - e_dense[n_el - 1])
        row["speedup"] = row["dense_eigh_s"] / row["states32_s"]
    row["peak_rss_gb"] = _max_rss_gb()
    return row


def _worker_bands(args) -> dict:
    """Near-gap bands along M-Γ-K with :func:`edge_bands`, checked against direct
    :func:`edge_states` solves at k-points that are not anchors."""
    import numpy as np

    from ase_hamgnn.hamiltonian import TBHamiltonian
    from ase_hamgnn.model import load_model
    from ase_hamgnn.spectra import edge_bands, edge_states

    ham = TBHamiltonian.load(args.ham)
    atoms = ham.to_atoms()
    n_el = int(round(load_model("nibri-reference").n_electrons(atoms)))
    path = atoms.cell.bandpath("MGK", npoints=BAND_POINTS, pbc=atoms.pbc)
    t0 = time.perf_counter()
    eb = edge_bands(ham, n_el, path, 16, 16, progress=False)
    row = {"bands_s": time.perf_counter() - t0, "bands_kpoints": BAND_POINTS,
           "bands_anchors": len(eb.anchors), "bands_anchors_s": eb.timings["anchors_s"],
           "bands_sweep_s": eb.timings["sweep_s"],
           "bands_projections": eb.timings["projections"],
           "bands_max_residual_eV": eb.max_residual, "bands_gap_eV": eb.gap}
    dev, checks = 0.0, []
    t0 = time.perf_counter()
    for i in BAND_CHECKS:
        i = min((j for j in range(BAND_POINTS) if j not in eb.anchors), key=lambda j: abs(j - i))
        es = edge_states(ham, n_el, path.kpts[i], n_below=16, n_above=16)
        dev = max(dev, float(np.abs(np.sort(es.energies) - eb.energies[i]).max()))
        checks.append(i)
    row.update({"bands_check_kpoints": checks, "bands_check_meV": 1e3 * dev,
                "bands_check_s": time.perf_counter() - t0, "bands_peak_rss_gb": _max_rss_gb()})
    return row


def _run_worker(kind: str, n: int, threads: int, ham: Path, dense_max: int,
                states_max: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), MPLBACKEND="Agg")
    cmd = [sys.executable, __file__, "--worker", kind, "--n", str(n), "--threads", str(threads),
           "--ham", str(ham), "--dense-max", str(dense_max), "--states-max", str(states_max)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{kind} worker for n={n} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _bands(n: int, args, ham: Path) -> dict:
    row = _run_worker("bands", n, args.threads, ham, args.dense_max, args.states_max)
    print(f"   bands: {row['bands_kpoints']} k-points x 32 in {row['bands_s']:.1f} s "
          f"({row['bands_anchors']} anchors, {row['bands_anchors_s']:.1f} s; "
          f"{row['bands_projections']} projections), largest residual "
          f"{row['bands_max_residual_eV']:.1e} eV, {row['bands_check_meV']:.2g} meV from the "
          "direct solves", flush=True)
    return row


def _extrapolate_dense(rows: list[dict]) -> None:
    """Dense ``eigh`` time ~ dim^3 from the largest densely diagonalized system, for the
    systems with near-gap states but no dense run (marked as extrapolated)."""
    measured = [r for r in rows if "dense_eigh_s" in r]
    if not measured:
        return
    ref = max(measured, key=lambda r: r["spin_orbitals"])
    for r in rows:
        if "states32_s" in r and "dense_eigh_s" not in r:
            r["dense_extrapolated_s"] = ref["dense_eigh_s"] * (
                r["spin_orbitals"] / ref["spin_orbitals"]) ** 3
            r["speedup_vs_extrapolated"] = r["dense_extrapolated_s"] / r["states32_s"]


def _extrapolated(row: dict) -> str:
    value = row.get("dense_extrapolated_s")
    return "-" if value is None else f"~{value:.0f} (extrapolated)"


def _verdicts(rows: list[dict], exponent: float) -> list[str]:
    """One line per target: the measured value next to it, met or missed, and for the
    near-gap speed-up which dense time (measured or extrapolated) it is against."""
    def check(name, value, ok, what):
        if value is None:
            return f"{name}: not measured in this run"
        return f"{name}: {what} ({'met' if ok else 'MISSED'}, target {TARGETS[name]})"

    def nearest(atoms):  # the row of about that size (within 10 %), if any
        row = min(rows, key=lambda r: abs(r["atoms"] - atoms), default=None)
        return row if row is not None and abs(row["atoms"] - atoms) <= 0.1 * atoms else None

    big, showcase = nearest(10_000), nearest(3468)
    lines = [
        check("predict_3468_s", showcase and showcase["predict_s"],
              showcase and showcase["predict_s"] <= TARGETS["predict_3468_s"],
              showcase and f"{showcase['predict_s']:.2f} s at {showcase['atoms']} atoms"),
        check("exponent", exponent if exponent == exponent else None,
              exponent <= TARGETS["exponent"], f"{exponent:.2f}"),
        check("rss_10k_gb", big and big["peak_rss_gb"],
              big and big["peak_rss_gb"] <= TARGETS["rss_10k_gb"],
              big and f"{big['peak_rss_gb']:.2f} GB at {big['atoms']} atoms"),
        check("kpm_10k_s", big and big["kpm_s"], big and big["kpm_s"] <= TARGETS["kpm_10k_s"],
              big and f"{big['kpm_s']:.1f} s at {big['atoms']} atoms"),
    ]
    lines += [
        check("bands_3468_s", showcase and showcase.get("bands_s"),
              showcase and showcase.get("bands_s", 1e30) <= TARGETS["bands_3468_s"],
              showcase and f"{showcase.get('bands_s', float('nan')):.0f} s at "
              f"{showcase['atoms']} atoms"),
        check("bands_check_meV", showcase and showcase.get("bands_check_meV"),
              showcase and showcase.get("bands_check_meV", 1e30) <= TARGETS["bands_check_meV"],
              showcase and f"{showcase.get('bands_check_meV', float('nan')):.2g} meV at "
              f"{showcase['atoms']} atoms"),
    ]
    for r in rows:
        ratio = r.get("speedup", r.get("speedup_vs_extrapolated"))
        if ratio is None:
            continue
        kind = "measured" if "speedup" in r else "extrapolated"
        lines.append(check("sparse_speedup", ratio, ratio >= TARGETS["sparse_speedup"],
                           f"{ratio:.0f}x at {r['atoms']} atoms against {kind} dense eigh"))
    return lines


def _fit_exponent(atoms, seconds) -> float:
    import numpy as np

    if len(atoms) < 2:
        return float("nan")
    return float(np.polyfit(np.log(atoms), np.log(seconds), 1)[0])


def main(argv=None) -> int:
    args = _parse(argv)
    if args.worker:
        fn = {"predict": _worker_predict, "spectra": _worker_spectra,
              "bands": _worker_bands}[args.worker]
        print(json.dumps(fn(args)))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _report import write_report

    sizes = [6, 10] if args.quick else args.sizes
    rows = []
    old = {}
    if args.only:
        previous = args.out / f"{args.name}.json"
        if not previous.exists():
            raise SystemExit(f"--only needs an existing report {previous}; run the full "
                             "benchmark first")
        old = {r["n"]: r for r in json.loads(previous.read_text())["details"]}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            ham = Path(tmp) / f"ham-{n}.npz"
            if args.only:
                if n not in old:
                    print(f"n={n}: not in the existing report, skipped", flush=True)
                    continue
                row = dict(old.pop(n))
                if args.bands_min <= row["atoms"] <= args.bands_max:
                    _run_worker("predict", n, args.threads, ham, args.dense_max,
                                args.states_max)
                    row.update(_bands(n, args, ham))
                rows.append(row)
                continue
            row = {"n": n, **_run_worker("predict", n, args.threads, ham, args.dense_max,
                                                 args.states_max)}
            print(f"n={n}: {row['atoms']} atoms, predicted in {row['predict_s']:.2f} s "
                  f"({row['edge_classes']} bond classes); without sharing "
                  f"{row['predict_plain_s']:.2f} s (network {row['network_s']:.2f} s), "
                  f"peak {row['peak_rss_gb']:.2f} GB", flush=True)
            spec = _run_worker("spectra", n, args.threads, ham, args.dense_max, args.states_max)
            row.update({f"spectra_{k}" if k == "peak_rss_gb" else k: v for k, v in spec.items()})
            print(f"   KPM {spec['kpm_s']:.2f} s"
                  + (f", gap {spec['gap_eV']:.3f} eV, 32 states {spec['states32_s']:.2f} s"
                     if "gap_eV" in spec else "")
                  + (f", dense {spec['dense_eigh_s']:.1f} s" if "dense_eigh_s" in spec else ""),
                  flush=True)
            if args.bands_min <= row["atoms"] <= args.bands_max:
                row.update(_bands(n, args, ham))
            rows.append(row)
    rows = sorted(rows + list(old.values()), key=lambda r: r["atoms"])
    _extrapolate_dense(rows)
    exponent = _fit_exponent([r["atoms"] for r in rows], [r["predict_s"] for r in rows])
    net_exponent = _fit_exponent([r["atoms"] for r in rows], [r["network_s"] for r in rows])
    plain_exponent = _fit_exponent([r["atoms"] for r in rows],
                                   [r["predict_plain_s"] for r in rows])
    summary = {"prediction_exponent": exponent, "plain_prediction_exponent": plain_exponent,
               "network_exponent": net_exponent,
               "threads": args.threads, "targets": TARGETS}
    table = [{"atoms": r["atoms"], "edges": r["edges"], "predict_s": r["predict_s"],
              "plain_s": r["predict_plain_s"], "plain_network_s": r["network_s"],
              "peak_GB": r["peak_rss_gb"],
              "gap_eV": r.get("gap_eV", "-"), "32_states_s": r.get("states32_s", "-"),
              "dense_s": r.get("dense_eigh_s", _extrapolated(r)),
              "speedup": r.get("speedup", r.get("speedup_vs_extrapolated", "-")),
              "kpm_s": r["kpm_s"], "bands40_s": r.get("bands_s", "-"),
              "bands_check_meV": r.get("bands_check_meV", "-")} for r in rows]
    fmt = lambda x: "n/a (one size)" if x != x else f"{x:.2f}"  # noqa: E731  (nan: one size)
    notes = (f"predict_s: `model.predict` with environment sharing (the default; the network "
             "runs once per class of equal environments, here the NiBrI unit cell's, and the "
             "spin assembly over every atom with its own moment), ~ atoms^"
             f"{fmt(exponent)}.  plain_s: the network on every atom and bond, the cost for a "
             "structure without repeated environments (relaxed, disordered), ~ atoms^"
             f"{fmt(plain_exponent)} (network alone ^{fmt(net_exponent)}).  "
             "32_states_s: `edge_states` (16 highest occupied, 16 lowest empty at Γ; coarse "
             "KPM, one factorization next to each band edge, "
             f"{rows[0].get('factorization', '-')} backend); speedup against dense `eigh` "
             "of the same matrix in the same run, or against a dense time extrapolated as "
             "dim³ from the largest measured one.  bands40_s: `edge_bands`, 16 + 16 bands at "
             f"{BAND_POINTS} k-points along M-Γ-K of the supercell; bands_check_meV: its "
             "largest deviation from direct `edge_states` solves at three k-points of the path "
             "that are not anchors.  "
             f"{args.threads} thread(s).  Model: shipped `nibri-reference` (trained on the "
             "SYNTHETIC reference model, not DFT).  Targets: " + ", ".join(
                 f"{k} {v}" for k, v in TARGETS.items()) + ".")
    if args.only:
        notes += ("  The bands columns come from a separate run (`--only bands`, "
                  f"{time.strftime('%Y-%m-%d')}, load average {os.getloadavg()[0]:.1f} at "
                  "its end) merged into the earlier report.")
    verdicts = _verdicts(rows, exponent)
    summary["verdicts"] = verdicts
    notes += "\n\n" + "\n".join(f"- {line}" for line in verdicts)
    md = write_report(args.name, {"summary": summary, "details": rows}, table, out=args.out,
                      notes=notes)
    print(f"wrote {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
