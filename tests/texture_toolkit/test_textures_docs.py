"""The examples in the docstrings of :mod:`textures` run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "textures",
    "textures._cell",
    "textures.afm",
    "textures.basic",
    "textures.plotting",
    "textures.skyrmions",
    "textures.spirals",
    "textures.symmetry",
    "textures.topology",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_public_api_is_complete():
    import textures

    expected = {
        "supercell", "ferromagnet", "random_moments", "spin_spiral", "conical_spiral",
        "multi_q_spiral", "noncollinear_afm", "skyrmion", "antiskyrmion", "skyrmion_lattice",
        "topological_charge", "magnetic_symmetry", "plot_texture", "TextureError",
    }  # fmt: skip
    assert expected <= set(textures.__all__)
    assert all(hasattr(textures, name) for name in textures.__all__)
    assert issubclass(textures.TextureError, ValueError)
