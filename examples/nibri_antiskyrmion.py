"""An antiskyrmion in a large NiBrI supercell: texture, predicted Hamiltonian, gap, bands
near the gap, KPM DOS and the real-space picture of the band-edge states.

This is the workflow of the HamGNN++ paper's Fig. 3 (an antiskyrmion of radius ~10 Å in a
34 x 34 NiBrI supercell, 3468 atoms), run with the shipped demonstration model
``nibri-reference``.  That model was trained on the SYNTHETIC reference tight-binding model
of NiBrI, not on DFT: gaps and band shapes are those of the synthetic model (its gap is about
1.45 eV, not the paper's DFT value), and nothing here is a DFT result.

Run::

    python examples/nibri_antiskyrmion.py                 # 34 x 34 cells, 3468 atoms
    python examples/nibri_antiskyrmion.py --size 12 --out out/anti   # 432 atoms, quick

The bands next to the gap are computed by band index with
:func:`ase_hamgnn.spectra.edge_bands`: sparse factorizations (shift-invert, with exact
inertia counts for the indices) at a few anchor k-points only, and a Rayleigh-Ritz step in
the Bloch-adapted span of the anchors' states at every other k-point, each state with its
residual as the error estimate (the small matrices of that step are interpolated along
each straight segment of the path); they are drawn as lines along M-Γ-K of the supercell
(40 k-points by default, ``--band-points``).

Figures (PNG) go to ``--out``, which is created (and checked to be writable) first: the
bands next to the gap (valence and conduction panels, coloured by <sigma_z>, with the band
edges at Γ marked), the band-edge states at Γ next to the texture (density, per-atom
<sigma> and orbital character inside and outside the antiskyrmion), the spectral function
A(k, E) unfolded onto the primitive cell's M-Γ-K path (total and <sigma_z>-resolved, by KPM;
the primitive k-points the supercell resolves share one recursion) next to the ferromagnet's
bands, and the KPM DOS from midgap.
A short summary is printed (and returned by :func:`run` as a dict).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _output import output_folder  # noqa: E402  (examples/ is on sys.path)

import textures  # noqa: E402
from ase_hamgnn.analysis import (  # noqa: E402
    UnfoldingMap,
    plot_unfolded_vs_reference,
    unfolded_spectral_function,
)
from ase_hamgnn.analysis.states import atom_weights, plot_edge_state_maps  # noqa: E402
from ase_hamgnn.data.structures import nibri  # noqa: E402
from ase_hamgnn.model import load_model  # noqa: E402
from ase_hamgnn.spectra import Bands  # noqa: E402
from ase_hamgnn.spectra.edge_bands import edge_bands  # noqa: E402
from ase_hamgnn.spectra.kpm import kpm_dos  # noqa: E402

NI_MOMENT = 2.0  # μB, the nominal Ni moment the model was trained with


def build_texture(size: int, radius: float = 10.0):
    """``size x size`` NiBrI with one antiskyrmion (radius in Å, at most a quarter of the
    cell) in a +z ferromagnetic background; returns the atoms and the topological charge."""
    cells = textures.supercell(nibri(), (size, size, 1))
    radius = min(radius, 0.25 * float(min(cells.cell.lengths()[:2])))
    atoms = textures.antiskyrmion(cells, radius=radius, magnetic=("Ni",), magnitude=NI_MOMENT)
    charge = float(textures.topological_charge(atoms, magnetic=("Ni",)))
    if abs(abs(charge) - 1.0) > 0.1:
        raise RuntimeError(f"the antiskyrmion has Q = {charge:.3f}, not ±1: enlarge the cell")
    return atoms, radius, charge


def _core_distances(atoms) -> np.ndarray:
    """In-plane minimum-image distance (Å) of every atom from the texture's core (the Ni
    atom whose moment points most against the background)."""
    from ase.geometry import get_distances

    ni = np.flatnonzero(atoms.numbers == 28)
    core = ni[np.argmin(atoms.get_initial_magnetic_moments()[ni, 2])]
    pos = atoms.positions.copy()
    pos[:, 2] = atoms.positions[core, 2]
    return get_distances(pos, pos[core], cell=atoms.cell, pbc=atoms.pbc)[1][:, 0]


def plot_edge_bands(valence: Bands, conduction: Bands, gap, title: str):
    """Valence and conduction bands in two panels, each zoomed on its own bands (the gap
    between them is left out of the axis), coloured by ``<sigma_z>``, with the band edges of
    ``gap`` (at Γ) marked; energies from midgap.  Returns the figure."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mid = 0.5 * (gap.vbm + gap.cbm)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(5.6, 5.4),
                                      layout="constrained")
    for ax, bands, edge, name in ((top, conduction, gap.cbm, "CBM"),
                                  (bottom, valence, gap.vbm, "VBM")):
        bands.plot(ax=ax, axis="z", reference=mid, colorbar=False, lw=1.5)
        e = np.concatenate([bands.energies.ravel(), [edge]]) - mid
        pad = 0.08 * max(float(np.ptp(e)), 0.01)
        ax.set_ylim(e.min() - pad, e.max() + pad)
        ax.axhline(edge - mid, color="k", ls="--", lw=0.8, zorder=1)
        ax.annotate(f"{name} at Γ", (1.0, edge - mid), xycoords=("axes fraction", "data"),
                    xytext=(-3, 2 if name == "CBM" else -2), textcoords="offset points",
                    ha="right", va="bottom" if name == "CBM" else "top", fontsize="small")
        ax.set_ylabel(r"$E - E_\mathrm{mid}$ (eV)")
        which = "lowest conduction" if name == "CBM" else "highest valence"
        ax.text(0.01, 0.97 if name == "CBM" else 0.03,
                f"{bands.energies.shape[1]} {which} bands", transform=ax.transAxes,
                va="top" if name == "CBM" else "bottom", fontsize="small")
    # a broken axis: the gap lies between the panels
    top.spines["bottom"].set_visible(False)
    bottom.spines["top"].set_visible(False)
    top.tick_params(bottom=False)
    marks = dict(marker=[(-1, -0.5), (1, 0.5)], markersize=10, linestyle="none", color="k",
                 mec="k", mew=1, clip_on=False)
    top.plot([0, 1], [0, 0], transform=top.transAxes, **marks)
    bottom.plot([0, 1], [1, 1], transform=bottom.transAxes, **marks)
    fig.colorbar(ScalarMappable(Normalize(-1, 1), "coolwarm"), ax=[top, bottom],
                 label=r"$\langle\sigma_z\rangle$")
    fig.suptitle(f"{title}\ngap at Γ {gap.cbm - gap.vbm:.3f} eV (axis broken across it); "
                 r"$E_\mathrm{mid}$ = " f"{mid:.3f} eV, midgap", fontsize="medium")
    return fig


def run(size: int = 34, out: str | Path = "out/nibri-antiskyrmion", n_bands: int = 32,
        band_points: int | None = None, n_moments: int = 768, seed: int = 0,
        unfold_points: int | None = None, shared_vectors: int = 8) -> dict:
    """The whole story; returns the printed summary as a dict (energies in eV).
    ``n_bands`` is split evenly between valence and conduction bands; ``band_points`` is the
    number of k-points along M-Γ-K of the supercell (default 40).  The unfolded spectral
    function is computed on the primitive M-Γ-K k-points that the supercell resolves (those
    folding onto its Γ, plus K), all in one recursion from ``shared_vectors`` random spin
    pairs; with ``unfold_points`` instead on that many evenly spaced k-points, each from its
    own Bloch start (cheaper for small cells, where the resolved k-points are few)."""
    out = output_folder(out)
    timings = {}

    t = time.perf_counter()
    atoms, radius, charge = build_texture(size)
    model = load_model("nibri-reference")
    timings["texture_s"] = time.perf_counter() - t

    t = time.perf_counter()
    ham = model.predict(atoms)
    timings["predict_s"] = time.perf_counter() - t

    # bands next to the gap along M-Γ-K, with the states kept at Γ for the maps
    t = time.perf_counter()
    n_el = int(round(model.n_electrons(atoms)))
    if band_points is None:
        band_points = 40
    path = atoms.cell.bandpath("MGK", npoints=band_points, pbc=atoms.pbc)
    gamma = int(np.argmin(np.linalg.norm(path.kpts, axis=1)))
    n_below = n_bands // 2
    near = edge_bands(ham, n_el, path, n_below, n_bands - n_below, vectors=[gamma])
    timings["bands_s"] = time.perf_counter() - t
    e_gamma = near.energies[gamma]
    gap = SimpleNamespace(vbm=float(e_gamma[n_below - 1]), cbm=float(e_gamma[n_below]))
    mid = 0.5 * (gap.vbm + gap.cbm)
    valence, conduction = near.bands("valence"), near.bands("conduction")
    fig = plot_edge_bands(valence, conduction, gap, f"antiskyrmion in {size} x {size} NiBrI "
                          f"({len(atoms)} atoms), bands next to the gap")
    fig.savefig(out / "bands-near-gap.png", dpi=150)
    plt.close(fig)

    # where the band-edge states at Γ live: density, per-atom <sigma>, orbital character
    t = time.perf_counter()
    edge = near.states[gamma][:, [n_below - 1, n_below]]
    core = _core_distances(atoms) <= radius
    fig = plot_edge_state_maps(atoms, ham, path.kpts[gamma], edge, ("VBM (Γ)", "CBM (Γ)"),
                               regions={"core": core, "background": ~core},
                               magnetic=("Ni",))
    fig.savefig(out / "edge-state-maps.png", dpi=150)
    plt.close(fig)
    weights = atom_weights(ham, path.kpts[gamma], edge)
    core_weight = {name: float(w[core].sum() / w.sum())
                   for name, w in zip(("vbm", "cbm"), weights.T, strict=True)}
    timings["maps_s"] = time.perf_counter() - t

    # what ARPES would see: the texture's spectral function unfolded onto the primitive
    # cell's path (KPM from primitive Bloch states; no supercell diagonalization), next to
    # the ferromagnet's bands
    t = time.perf_counter()
    prim = nibri()
    umap = UnfoldingMap.from_structures(prim, atoms)
    if unfold_points is None:
        prim_path = umap.commensurate_path(prim.cell.bandpath("MGK", npoints=0, pbc=prim.pbc))
    else:
        prim_path = prim.cell.bandpath("MGK", npoints=unfold_points, pbc=prim.pbc)
    spec = unfolded_spectral_function(ham, umap, prim_path,
                                      np.linspace(mid - 2.5, mid + 2.5, 501), n_moments=512,
                                      n_vectors=2, shared_vectors=shared_vectors, rng=seed,
                                      progress=False)
    timings["unfolded_s"] = time.perf_counter() - t
    fig = plot_unfolded_vs_reference(spec, model.predict(prim).bands(prim_path), reference=mid,
                                     gap=(gap.vbm, gap.cbm),
                                     texture_title=f"antiskyrmion {size} x {size}")
    fig.savefig(out / "unfolded-spectral-function.png", dpi=150)
    plt.close(fig)

    t = time.perf_counter()
    energies = np.linspace(mid - 5.0, mid + 5.0, 801)
    kpm = kpm_dos(ham, energies, n_moments=n_moments, n_vectors=8, rng=seed, progress=False)
    timings["kpm_s"] = time.perf_counter() - t
    ax = kpm.plot(reference=mid, reference_label=r"E_\mathrm{mid}", color="C0", label="KPM")
    ax.axvspan(gap.vbm - mid, gap.cbm - mid, color="0.9", zorder=0,
               label=f"gap at Γ ({gap.cbm - gap.vbm:.2f} eV)")
    ax.set_xlim(energies[0] - mid, energies[-1] - mid)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel(f"DOS (states/eV per {len(atoms)}-atom cell)")
    ax.legend(frameon=False, fontsize="small", loc="upper left")
    ax.set_title(f"KPM DOS at Γ ({kpm.n_moments} moments, resolution "
                 f"{kpm.resolution * 1e3:.0f} meV)", fontsize="medium")
    ax.figure.savefig(out / "kpm-dos.png", dpi=150)
    plt.close(ax.figure)

    summary = {
        "atoms": len(atoms), "spin_orbitals": ham.n_spin_orbitals, "radius_A": radius,
        "Q": charge, "vbm_eV": gap.vbm, "cbm_eV": gap.cbm, "gap_eV": gap.cbm - gap.vbm,
        "vbm_weight_in_core": core_weight["vbm"], "cbm_weight_in_core": core_weight["cbm"],
        "core_area_fraction": float(np.mean(core)),
        "kpm_states_below_midgap": float(kpm.integrated([mid])[0]), "electrons": n_el,
        "band_points": len(path.kpts), "band_anchors": len(near.anchors),
        "band_max_residual_eV": near.max_residual, "unfold_points": len(prim_path.kpts),
        **timings,
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=34, help="n x n NiBrI cells (3 atoms each)")
    parser.add_argument("--out", default="out/nibri-antiskyrmion", help="folder for the figures")
    parser.add_argument("--bands", type=int, default=32,
                        help="bands next to the gap, half valence and half conduction")
    parser.add_argument("--band-points", type=int, default=None,
                        help="k-points along M-Γ-K (default 40; factorized at a few only)")
    parser.add_argument("--unfold-points", type=int, default=None,
                        help="evenly spaced primitive-cell k-points of the unfolded spectral "
                             "function (default: those the supercell resolves, in one "
                             "shared recursion)")
    args = parser.parse_args()
    output_folder(args.out)
    s = run(args.size, args.out, args.bands, args.band_points,
            unfold_points=args.unfold_points)
    print(f"antiskyrmion: {s['atoms']} atoms ({s['spin_orbitals']} spin-orbitals), "
          f"radius {s['radius_A']:.1f} Å, Q = {s['Q']:+.3f}")
    print(f"predicted in {s['predict_s']:.1f} s (shipped model; SYNTHETIC training data)")
    print(f"gap at Γ {s['gap_eV']:.3f} eV (VBM {s['vbm_eV']:.3f}, CBM {s['cbm_eV']:.3f} eV), "
          f"from the bands next to the gap ({s['bands_s']:.1f} s)")
    print(f"weight within the antiskyrmion radius: VBM {s['vbm_weight_in_core']:.2f}, "
          f"CBM {s['cbm_weight_in_core']:.2f} (area fraction {s['core_area_fraction']:.2f})")
    print(f"KPM: {s['kpm_states_below_midgap']:.1f} states below midgap "
          f"({s['electrons']} electrons) in {s['kpm_s']:.1f} s; bands {s['bands_s']:.1f} s "
          f"({s['band_points']} k-points, {s['band_anchors']} factorized, largest residual "
          f"{s['band_max_residual_eV']:.1e} eV); unfolded A(k, E) {s['unfolded_s']:.1f} s")
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
