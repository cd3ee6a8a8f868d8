"""Gallery of the spin textures of :mod:`textures` on a NiBr2-like monolayer.

Every panel shows the Ni moments of one texture: arrows are the in-plane components, the
colour is m_z, the black line is the periodic cell; the title gives the topological charge.

Usage::

    python examples/textures_gallery.py [output.png]

The picture goes to ``textures_gallery.png`` in the current directory unless a path is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from _output import output_file  # noqa: E402  (examples/ is on sys.path)
from ase import Atoms  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import textures  # noqa: E402


def nibr2_monolayer(a: float = 3.71, vacuum: float = 20.0) -> Atoms:
    """1T NiBr2: triangular lattice of Ni (a in Å) between two Br planes, vacuum along z."""
    cell = [[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, vacuum]]
    dz = 1.4 / vacuum
    return Atoms(
        "NiBr2",
        scaled_positions=[[0, 0, 0.5], [1 / 3, 2 / 3, 0.5 + dz], [2 / 3, 1 / 3, 0.5 - dz]],
        cell=cell,
        pbc=True,
    )


def gallery() -> list[tuple[str, Atoms]]:
    """(title, structure with moments) for every texture generator."""
    prim = nibr2_monolayer()
    small = textures.supercell(prim, (12, 12, 1))
    big = textures.supercell(prim, (18, 18, 1))
    triple_q = [(1 / 6, 0, 0), (0, 1 / 6, 0), (-1 / 6, -1 / 6, 0)]
    return [
        ("ferromagnet (1, 0, 1)", textures.ferromagnet(small, (1, 0, 1))),
        ("random moments", textures.random_moments(small, rng=0)),
        ("cycloidal spiral q = (1/6, 0, 0)", textures.spin_spiral(small, (1 / 6, 0, 0))),
        (
            "helical spiral q = (1/6, 0, 0)",
            textures.spin_spiral(small, (1 / 6, 0, 0), kind="helical"),
        ),
        ("conical spiral, cone 45°", textures.conical_spiral(small, (1 / 6, 0, 0), np.pi / 4)),
        (
            "triple-q skyrmion crystal",
            textures.multi_q_spiral(small, triple_q, kind="helical", uniform=(0, 0, 0.8)),
        ),
        ("120° AFM", textures.noncollinear_afm(small, "120")),
        ("tetrahedral triple-q AFM", textures.noncollinear_afm(small, "tetrahedral")),
        ("Néel skyrmion", textures.skyrmion(big, radius=10.0, width=5.0)),
        (
            "Bloch skyrmion",
            textures.skyrmion(big, radius=10.0, width=5.0, helicity=np.pi / 2),
        ),
        ("antiskyrmion", textures.antiskyrmion(big, radius=10.0, width=5.0)),
        ("skyrmion lattice (n = 4)", textures.skyrmion_lattice(big, n=4)),
    ]


def draw(path: Path) -> Path:
    """Draw the gallery to ``path`` (PNG) and return it."""
    panels = gallery()
    fig = Figure(figsize=(20, 11), layout="constrained")
    axes = fig.subplots(3, 4)
    for ax, (title, atoms) in zip(axes.flat, panels, strict=True):
        q = textures.topological_charge(atoms)
        textures.plot_texture(atoms, ax, colorbar=False, title=f"{title}\nQ = {q:+.2f}")
    mappable = axes.flat[0].collections[0]
    fig.colorbar(mappable, ax=axes, label=r"$m_z$", shrink=0.6)
    fig.savefig(path, dpi=80)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output", nargs="?", default="textures_gallery.png", help="PNG file to write"
    )
    path = draw(output_file(parser.parse_args().output))
    print(f"wrote {path.resolve()}")


if __name__ == "__main__":
    main()
