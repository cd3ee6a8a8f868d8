"""The examples in the docstrings of :mod:`ase_hamgnn` run and give what they show (``make
test`` runs them; the :mod:`textures` examples run in ``texture_toolkit/test_textures_docs``)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import ase_hamgnn

ROOT = Path(ase_hamgnn.__file__).resolve().parent


def _module_names() -> list[str]:
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("ase_hamgnn",) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _module_names()
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(name: str) -> int:
    finder = doctest.DocTestFinder()
    module = importlib.import_module(name)
    return sum(len(t.examples) for t in finder.find(module, name))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS, verbose=False,
                             report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


def test_the_package_has_examples_to_run():
    """The parametrization above finds the modules and their examples (not an empty pass)."""
    assert "ase_hamgnn.spectra.kpoints" in MODULES and "ase_hamgnn.data.io.deeph" in MODULES
    assert sum(_examples(name) for name in MODULES) > 200
