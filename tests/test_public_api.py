"""The public surface: every name in ``ase_hamgnn.__all__`` resolves, and every error or
warning class a user may catch is importable from the package top."""

from __future__ import annotations

import inspect

import ase_hamgnn
from ase_hamgnn import errors


def test_all_names_resolve():
    for name in ase_hamgnn.__all__:
        assert getattr(ase_hamgnn, name) is not None, name


def test_every_error_class_is_exported():
    classes = {name for name, obj in vars(errors).items()
               if inspect.isclass(obj) and issubclass(obj, (Exception, Warning))
               and obj.__module__ == errors.__name__}
    assert classes, "no error classes found"
    assert classes <= set(ase_hamgnn.__all__), sorted(classes - set(ase_hamgnn.__all__))
    for name in classes:
        assert getattr(ase_hamgnn, name) is getattr(errors, name)
