"""The package's layout: no import cycles, no module importing another's private names, the
old module paths of earlier releases still importing (with a warning) as the same module."""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

import ase_hamgnn
from ase_hamgnn._moved import MOVED

ROOT = Path(ase_hamgnn.__file__).resolve().parent.parent
PACKAGES = ("ase_hamgnn", "textures")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _runtime_imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    """Every import statement that runs (at module level or in a function), leaving out
    ``if TYPE_CHECKING:`` blocks, which never run."""
    found: list[ast.ImportFrom | ast.Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _target(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """Import edges between our modules, and ``(importer, module, name)`` of every private
    name one module takes from another."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    private = []
    for module, path in MODULES.items():
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges[module] |= {a.name for a in node.names if a.name in MODULES}
                continue
            target = _target(module, node)
            if target.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # `from package import submodule`
                    edges[module].add(sub)
                    continue
                edges[module].add(target)
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    private.append((module, target, alias.name))
    for module, targets in edges.items():  # importing a.b.c first runs a/__init__, a/b/__init__
        for target in list(targets):
            parts = target.split(".")
            for n in range(1, len(parts)):
                parent = ".".join(parts[:n])
                if parent in MODULES and not module.startswith(parent + ".") and parent != module:
                    targets.add(parent)
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in MODULES:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in MODULES:
        if v not in index:
            strong(v)
    return out


def test_the_checker_sees_a_cycle_and_a_private_import():
    cyc = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    saved = dict(MODULES)
    try:
        MODULES.update({k: Path(k) for k in cyc})
        assert _cycles(cyc) == [["a", "b", "c"]]
    finally:
        MODULES.clear()
        MODULES.update(saved)
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\n"
                     "def f():\n    from y import _z\n")
    names = [n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
             for n in _runtime_imports(tree)]
    assert names == ["typing", "y"]


def test_no_import_cycles():
    """Function-level imports count too: a cycle through them is still a tangle."""
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_no_module_imports_private_names_of_another():
    _, private = _graph()
    assert private == []


def test_subpackages_import_their_siblings_by_module_path():
    """Inside a subpackage a module never imports from its own package's ``__init__``
    (which imports every sibling): that is how cycles creep back in."""
    edges, _ = _graph()
    bad = [(m, t) for m, ts in edges.items() for t in ts
           if t not in PACKAGES and MODULES.get(t, Path()).name == "__init__.py"
           and m.startswith(t + ".")]
    assert bad == []


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_warn_and_give_the_new_module(old):
    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(FutureWarning, match=f"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is new
    assert module.__spec__.name == MOVED[old]  # its own spec survives the alias


def test_documented_public_paths_keep_working():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from ase_hamgnn.kwant_export import to_kwant_system
    from ase_hamgnn import transport
    from ase_hamgnn.data import HamiltonianData, ReferenceTB
    from ase_hamgnn.model.inputs import HamiltonianData as ModelInputs
    assert to_kwant_system is transport.to_kwant_system
    assert HamiltonianData is ModelInputs  # one batching rule for training and prediction
    assert ReferenceTB.__module__ == "ase_hamgnn.data.reference.tb"
    for package in ("ase_hamgnn", "ase_hamgnn.analysis", "ase_hamgnn.data", "ase_hamgnn.spectra",
                    "ase_hamgnn.transport", "ase_hamgnn.train", "ase_hamgnn.model",
                    "ase_hamgnn.data.io", "ase_hamgnn.data.reference"):
        mod = importlib.import_module(package)
        missing = [n for n in mod.__all__ if not hasattr(mod, n) and n not in
                   getattr(mod, "_LAZY", {})]
        assert missing == [], package


def test_every_moved_target_exists_and_no_old_file_is_left():
    for old, new in MOVED.items():
        assert importlib.util.find_spec(new) is not None
        assert not (ROOT / (old.replace(".", "/") + ".py")).exists(), old
