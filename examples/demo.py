"""The main job of ase-hamgnn, end to end on built-in data (what ``make demo`` runs).

1. Train a small HamGNN++ model for a few epochs on random-moment NiBrI configurations of
   the SYNTHETIC reference model (``ReferenceTB``; synthetic data, not DFT): the training
   pipeline at work.
2. Build a skyrmion in a rectangular NiBrI supercell and check its topological charge.
3. Predict its Hamiltonian with the shipped model ``nibri-reference`` (trained the same way,
   longer; see tools/train-shipped-model.sh) and compare with the reference model.
4. Bands of the ferromagnet, model next to reference, both coloured by <sigma_z> on the
   same scale, and the DOS of the skyrmion supercell; energies from each model's E_F.
5. Spin-resolved Kwant conductance (e^2/h) of the skyrmion ribbon and the ferromagnetic
   ribbon at 41 energies from the conduction-band edge up (121 with ``--full``), fine
   enough to resolve the steps of the open channels.
6. The large-texture story of ``examples/nibri_antiskyrmion.py`` at 300 atoms (3468 with
   ``--full``): antiskyrmion, gap and band edges at Γ, the bands next to the gap as lines
   along M-Γ-K, KPM DOS and the VBM/CBM densities over the texture.

The output folder is created (and checked to be writable) before any work.

Run: python examples/demo.py [--out DIR] [--full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _output import output_folder  # examples/ is on sys.path
from nibri_antiskyrmion import run as run_antiskyrmion

import textures
from ase_hamgnn.data import ReferenceTB, make_reference_dataset, nibri
from ase_hamgnn.model import list_models, load_model
from ase_hamgnn.spectra import broaden, kmesh
from ase_hamgnn.train import TrainConfig, train
from ase_hamgnn.transport import plot_transmission, spin_transmission, to_kwant_system

RECT = [[1, 0, 0], [1, 2, 0], [0, 0, 1]]  # rectangular NiBrI cell (a x sqrt(3) a), 6 atoms


def step(title: str) -> float:
    print(f"\n== {title}")
    return time.perf_counter()


def train_small_model(work: Path, epochs: int):
    make_reference_dataset(work / "data", "nibri", "1x1", 24, seed=0, progress=False)
    cfg = TrainConfig(
        dataset=str(work / "data"),
        out=str(work / "run"),
        epochs=epochs,
        batch_size=4,
        lr=1e-2,
        lr_min=1e-3,
        model=dict(
            node_irreps="8x0e+2x0o+4x1o+4x1e+2x2e+2x2o+1x3o+1x3e",
            pair_multiplicity=1,
            n_layers=1,
            lmax_sh=4,
            n_radial=6,
            radial_hidden=16,
        ),
    )
    result = train(cfg, progress=False)  # the epochs are printed below
    for row in result["history"]:
        print(
            f"   epoch {row['epoch']}: loss {row['loss']:.3e}, validation MAE "
            f"{row['val_mae_meV']:.1f} meV (magnetic part {row['val_mae_magnetic_meV']:.2f} meV)"
        )
    return load_model(result["best"])


def plot_conductance(curves: dict, e_fermi: float, e_cbm: float, width: int, path: Path):
    """Conductance of both ribbons, and the skyrmion ribbon's by spin (linear and log)."""
    grid = curves["skyrmion"].energies
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 4.4), constrained_layout=True)
    de = grid - e_fermi
    ax = axes[0]
    ax.plot(de, curves["ferromagnet"].total, color="0.55", lw=2.5, drawstyle="steps-mid",
            label="ferromagnetic ribbon (= open lead channels)", zorder=1)
    ax.plot(de, curves["skyrmion"].total, "k-", marker="o", ms=3, lw=1.2,
            label="skyrmion ribbon", zorder=2)
    ax.axvline(e_cbm - e_fermi, color="k", lw=0.8, ls=":")
    ax.annotate("CBM of the\nferromagnet", (e_cbm - e_fermi, 1.0),
                xycoords=("data", "axes fraction"), xytext=(3, -3),
                textcoords="offset points", ha="left", va="top", fontsize="small")
    ax.set_xlim(de[0], de[-1])
    ax.set_ylim(-0.3, 1.3 * max(c.total.max() for c in curves.values()) + 0.5)
    ax.set_xlabel(r"$E - E_F$ (eV; $E_F$ of the model ferromagnet, midgap)")
    ax.set_ylabel(r"conductance $G$ ($e^2/h$)")
    ax.set_title(f"NiBrI ribbon {width} cells wide, HamGNN++", fontsize="medium")
    ax.legend(frameon=False, fontsize="small", loc="upper right")
    top = curves["skyrmion"].total.max()
    for ax, log in zip(axes[1:], (False, True)):
        plot_transmission(curves["skyrmion"], ax, reference=e_fermi)
        ax.set_ylabel(r"$G$ ($e^2/h$)")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(1e-6, 30.0 * top)
            ax.get_legend().remove()
            ax.set_title("the same on a log scale (same lines): spin flips", fontsize="medium")
        else:
            ax.set_ylim(-0.04 * top, 1.45 * top)
            ax.legend(frameon=False, fontsize="small", ncol=5, loc="upper center",
                      title="spin along z (in $\\to$ out)", title_fontsize="small",
                      columnspacing=1.0, handlelength=2.5)
            ax.set_title("skyrmion ribbon, by spin", fontsize="medium")
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="folder for figures")
    parser.add_argument(
        "--full",
        action="store_true",
        help="larger skyrmion, more epochs and energies (several more minutes)",
    )
    args = parser.parse_args()
    out = output_folder(args.out)
    reference = ReferenceTB("nibri")
    print("Reference data: ReferenceTB('nibri'), a SYNTHETIC Slater-Koster model (not DFT).")

    t = step("1. train a small model (a few epochs; the pipeline, not the accuracy)")
    with tempfile.TemporaryDirectory() as tmp:
        small = train_small_model(Path(tmp), epochs=4 if args.full else 2)
    print(f"   {small}  [{time.perf_counter() - t:.0f} s]")
    if "nibri-reference" in list_models():
        model = load_model("nibri-reference")
        print(f"   using the shipped model for the texture: {model}")
    else:
        model = small
        print("   no shipped model in this installation; using the small model just trained")

    t = step("2. skyrmion texture")
    cell = textures.ferromagnet(textures.supercell(nibri(), RECT), magnetic=("Ni",), magnitude=2.0)
    reps = (12, 6, 1) if args.full else (8, 4, 1)
    sky = textures.skyrmion(
        textures.supercell(cell, reps),
        radius=8.0 if args.full else 6.0,
        width=2.5,
        magnetic=("Ni",),
        magnitude=2.0,
    )
    q = textures.topological_charge(sky, magnetic=("Ni",))
    ax = textures.plot_texture(sky)
    ax.set_title(f"NiBrI skyrmion, {len(sky)} atoms, Q = {q:+.2f}")
    ax.figure.savefig(out / "skyrmion_texture.png", dpi=150)
    plt.close(ax.figure)
    print(f"   {len(sky)} atoms, Q = {q:+.3f}  [{time.perf_counter() - t:.1f} s]")

    t = step("3. predict the Hamiltonian")
    ham = model.predict(sky)
    t_model = time.perf_counter() - t
    ref_ham = reference.predict(sky)
    diff = ham.max_abs_difference(ref_ham)
    print(
        f"   {ham}\n   model {t_model:.1f} s; largest |H_model - H_reference| = "
        f"{1e3 * diff:.1f} meV"
    )

    t = step("4. bands and DOS")
    fm = nibri()
    path = fm.cell.bandpath("GMKG", npoints=80, pbc=fm.pbc)
    n_el = reference.n_electrons(fm)
    ef = reference.predict(fm).fermi_level(n_el, kpts=(12, 12, 1))
    fm_model = model.predict(fm)
    ef_model = fm_model.fermi_level(n_el, kpts=(12, 12, 1))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    # the same colour map and limits (<sigma_z> from -1 to 1) and a colour bar on both
    fm_model.bands(path).plot(ax=axes[0], axis="z", reference=ef_model, emin=-3, emax=3)
    reference.predict(fm).bands(path).plot(ax=axes[1], axis="z", reference=ef, emin=-3, emax=3)
    axes[0].set_title(r"FM NiBrI, HamGNN++ ($E_F$ of the model)", fontsize="medium")
    axes[1].set_title(r"FM NiBrI, reference model ($E_F$ of the reference)", fontsize="medium")
    energies = np.linspace(ef - 3, ef + 3, 600)
    e_model = ham.eigvalsh([0, 0, 0])
    e_ref = ref_ham.eigvalsh([0, 0, 0])
    w = np.ones(1)
    axes[2].plot(
        energies - ef, broaden(e_model[None], w, energies, 0.05) / len(sky), label="HamGNN++"
    )
    axes[2].plot(
        energies - ef, broaden(e_ref[None], w, energies, 0.05) / len(sky), "--", label="reference"
    )
    axes[2].axvline(0.0, color="k", lw=0.8, ls="--")
    axes[2].annotate(r"$E_F$", (0.0, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
                     textcoords="offset points", ha="left", va="top", fontsize="small")
    axes[2].set_xlabel(r"$E - E_F$ (eV; $E_F$ of the reference ferromagnet, midgap)")
    axes[2].set_ylabel("DOS (states / eV / atom)")
    axes[2].set_title(f"DOS of the skyrmion ({len(sky)} atoms), Γ, 50 meV",
                      fontsize="medium")
    axes[2].legend(frameon=False, loc="upper right")
    fig.savefig(out / "bands_and_dos.png", dpi=150)
    plt.close(fig)
    n_sky = reference.n_electrons(sky)
    gap_model = e_model[n_sky] - e_model[n_sky - 1]
    gap_ref = e_ref[n_sky] - e_ref[n_sky - 1]
    print(
        f"   skyrmion Γ gap: model {gap_model:.3f} eV, reference {gap_ref:.3f} eV  "
        f"[{time.perf_counter() - t:.0f} s]"
    )

    t = step("5. Kwant transmission: skyrmion ribbon vs ferromagnetic ribbon")
    lead = model.predict(cell)
    fm_region = model.predict(textures.supercell(cell, reps))
    # from just below the ferromagnet's conduction-band minimum (model's own bands) into the
    # band, finely enough to resolve the conductance steps of the ribbon
    mesh_eigs = np.array([fm_model.eigvalsh(k) for k in kmesh((12, 12, 1))])
    e_cbm = float(mesh_eigs[mesh_eigs > ef_model].min())
    grid = np.linspace(e_cbm - 0.05, e_cbm + 0.55, 121 if args.full else 41)
    curves = {}
    for name, region in (("skyrmion", ham), ("ferromagnet", fm_region)):
        syst = to_kwant_system(region, lead, directions=[0]).finalized()
        curves[name] = spin_transmission(syst, grid, axis="z", progress=True)
    plot_conductance(curves, ef_model, e_cbm, reps[1], out / "transmission.png")
    purity = np.nanmin(np.concatenate([c.purity for c in curves.values()]))
    for n in range(0, len(grid), max(1, len(grid) // 8)):
        sky_t, fm_t = curves["skyrmion"].total[n], curves["ferromagnet"].total[n]
        print(f"   E - E_F = {grid[n] - ef_model:+.3f} eV: G_skyrmion = {sky_t:.3f}, "
              f"G_FM = {fm_t:.3f} e^2/h")
    print(f"   {len(grid)} energies; smallest spin purity of the lead modes {purity:.3f} "
          f"(SOC mixes spin; 1 = pure)  [{time.perf_counter() - t:.0f} s]")

    size = 34 if args.full else 10
    t = step(f"6. antiskyrmion in {size} x {size} NiBrI: bands near the gap, band-edge maps, "
             "unfolded A(k, E), KPM DOS (examples/nibri_antiskyrmion.py)")
    # 8 + 8 bands at 15 k-points keep the demo short; --full: 16 + 16 at 40 k-points
    story = run_antiskyrmion(size, out / "antiskyrmion", n_bands=32 if args.full else 16,
                             band_points=None if args.full else 15,
                             unfold_points=None if args.full else 48)
    print(f"   {story['atoms']} atoms, Q = {story['Q']:+.2f}, "
          f"predicted in {story['predict_s']:.1f} s;"
          f" gap at Γ {story['gap_eV']:.3f} eV; VBM weight inside the antiskyrmion "
          f"{story['vbm_weight_in_core']:.2f} (area {story['core_area_fraction']:.2f})  "
          f"[{time.perf_counter() - t:.0f} s]")
    print(
        f"\nwrote {out / 'skyrmion_texture.png'}, {out / 'bands_and_dos.png'}, "
        f"{out / 'transmission.png'} and {out / 'antiskyrmion'}/*.png"
    )


if __name__ == "__main__":
    main()
