"""The main job of ase-hamgnn, end to end on built-in data (what ``make demo`` runs).

1. Train a small HamGNN++ model for a few epochs on random-moment NiBrI configurations of
   the SYNTHETIC reference model (``ReferenceTB``; synthetic data, not DFT): the training
   pipeline at work.
2. Build a skyrmion in a rectangular NiBrI supercell and check its topological charge.
3. Predict its Hamiltonian with the shipped model ``nibri-reference`` (trained the same way,
   longer; see tools/train-shipped-model.sh) and compare with the reference model.
4. Bands of the ferromagnet (model vs reference) and the DOS of the skyrmion supercell.
5. Kwant transmission through the skyrmion ribbon vs the ferromagnetic ribbon.
6. The large-texture story of ``examples/nibri_antiskyrmion.py`` at 300 atoms (3468 with
   ``--full``): antiskyrmion, gap and band edges at Γ, bands near the gap, KPM DOS and the
   VBM/CBM densities over the texture.

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
from nibri_antiskyrmion import run as run_antiskyrmion  # examples/ is on sys.path

import textures
from ase_hamgnn.data import ReferenceTB, make_reference_dataset, nibri
from ase_hamgnn.kwant_export import to_kwant_system
from ase_hamgnn.model import list_models, load_model
from ase_hamgnn.spectra import broaden, kmesh
from ase_hamgnn.training import TrainConfig, train
from ase_hamgnn.transport import transmission

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
    result = train(cfg)
    for row in result["history"]:
        print(
            f"   epoch {row['epoch']}: loss {row['loss']:.3e}, validation MAE "
            f"{row['val_mae_meV']:.1f} meV (magnetic part {row['val_mae_magnetic_meV']:.2f} meV)"
        )
    return load_model(result["best"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="folder for figures")
    parser.add_argument(
        "--full",
        action="store_true",
        help="larger skyrmion, more epochs and energies (several more minutes)",
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
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
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    fm_model.bands(path).plot(ax=axes[0], axis="z", reference=ef_model, colorbar=False)
    reference.predict(fm).bands(path, spin=False).plot(ax=axes[1], reference=ef)
    axes[0].set_title("FM NiBrI, HamGNN++ (colour: <σz>)")
    axes[1].set_title("FM NiBrI, reference model")
    for a in axes[:2]:
        a.set_ylim(-3, 3)
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
    axes[2].set_xlabel("E - E_F of the reference model (eV)")
    axes[2].set_ylabel("DOS (states / eV / atom)")
    axes[2].set_title("skyrmion supercell, Γ, 50 meV Gaussian")
    axes[2].legend()
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
    # energies just above the ferromagnet's conduction-band minimum (model's own bands)
    mesh_eigs = np.array([fm_model.eigvalsh(k) for k in kmesh((12, 12, 1))])
    e_cbm = float(mesh_eigs[mesh_eigs > ef_model].min())
    grid = np.linspace(e_cbm + 0.02, e_cbm + 0.5, 8 if args.full else 4)
    curves = {}
    for name, region in (("skyrmion", ham), ("ferromagnet", fm_region)):
        syst = to_kwant_system(region, lead, directions=[0]).finalized()
        curves[name] = transmission(syst, grid, progress=True).transmission
    fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    for name, tr in curves.items():
        ax.plot(grid - ef_model, tr, "o-", label=name)
    ax.set_xlabel("E - E_F (eV)")
    ax.set_ylabel("transmission")
    ax.set_title("NiBrI ribbon (HamGNN++ Hamiltonian)")
    ax.legend()
    fig.savefig(out / "transmission.png", dpi=150)
    plt.close(fig)
    for e, a, b in zip(grid, curves["skyrmion"], curves["ferromagnet"]):
        print(f"   E - E_F = {e - ef_model:+.2f} eV: T_skyrmion = {a:.3f}, T_FM = {b:.3f}")
    print(f"   [{time.perf_counter() - t:.0f} s]")

    size = 34 if args.full else 10
    t = step(f"6. antiskyrmion in {size} x {size} NiBrI: gap, band edges, KPM DOS "
             "(examples/nibri_antiskyrmion.py)")
    story = run_antiskyrmion(size, out / "antiskyrmion", band_points=7 if args.full else 5)
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
