"""Spin textures for ASE structures: spirals, non-collinear antiferromagnets, skyrmions.

Every generator takes an :class:`ase.Atoms` and returns a new one whose ``initial_magmoms``
is an ``(N, 3)`` float array in μB (non-magnetic species get zero vectors); the input is
never modified. Analyses (:func:`topological_charge`, :func:`magnetic_symmetry`) and
:func:`plot_texture` read ``initial_magmoms``.

Conventions
-----------
- Units: Å for lengths, μB for moments, radians for angles.
- Magnetic species: ``magnetic=("Ni",)``; by default the transition metals of groups 3-11
  (Sc-Cu, Y-Ag, Hf-Au) and the rare earths (La-Lu) present. Magnitudes: ``magnitude`` as
  one value, ``{symbol: μB}`` or per atom; by default each magnetic atom keeps the size of
  the moment it already carries in ``initial_magmoms`` (only the direction changes), and
  atoms without a moment get 1 μB.
- Wave vectors ``q``: fractional reciprocal units of the primitive cell, which
  :func:`supercell` records in ``atoms.info["primitive_cell"]``; a ``q`` that is not
  periodic over the cell raises :class:`IncommensurateError`.
- 2D layer: the plane is found from the non-periodic or vacuum cell vector; its frame is
  right-handed with the normal towards +z (for a layer in the xy plane: x, y, +z).
- Topological charge: ``Q = (1/4π) ∫ m·(∂x m × ∂y m)``; a skyrmion with core down in an up
  background has ``Q = −1``.
- Files: ASE's extxyz writer and reader round-trip ``(N, 3)`` ``initial_magmoms`` and the
  ``primitive_cell`` entry of ``atoms.info`` natively (``ase.io.write(f, atoms,
  format="extxyz")``); no wrapper is needed.
"""

from __future__ import annotations

from ._cell import supercell
from ._common import DEFAULT_MAGNITUDE
from ._errors import (
    CellTooSmallError,
    IncommensurateError,
    NoLayerError,
    SpeciesError,
    TextureError,
)
from .afm import noncollinear_afm
from .basic import ferromagnet, random_moments
from .plotting import plot_texture
from .skyrmions import antiskyrmion, profile_angle, skyrmion, skyrmion_lattice
from .spirals import conical_spiral, multi_q_spiral, spin_spiral
from .symmetry import MagneticSymmetry, magnetic_symmetry
from .topology import topological_charge

__all__ = [
    "CellTooSmallError",
    "DEFAULT_MAGNITUDE",
    "IncommensurateError",
    "MagneticSymmetry",
    "NoLayerError",
    "SpeciesError",
    "TextureError",
    "antiskyrmion",
    "conical_spiral",
    "ferromagnet",
    "magnetic_symmetry",
    "multi_q_spiral",
    "noncollinear_afm",
    "plot_texture",
    "profile_angle",
    "random_moments",
    "skyrmion",
    "skyrmion_lattice",
    "spin_spiral",
    "supercell",
    "topological_charge",
]
