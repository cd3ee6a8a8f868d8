"""Exception classes of ase-hamgnn.

Every input check raises one of these (or a plain ``ValueError``/``TypeError``); each class
derives from the builtin that fits, so callers may catch either.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "BasisError",
    "BlockShapeError",
    "CheckpointError",
    "HamGNNError",
    "HermiticityError",
]


class HamGNNError(Exception):
    """Base class of all ase-hamgnn errors."""


class BasisError(HamGNNError, KeyError, ValueError):
    """An element is missing from an :class:`~ase_hamgnn.basis.OrbitalBasis`, or a shell is
    malformed."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class BlockShapeError(HamGNNError, ValueError):
    """A Hamiltonian or overlap block does not have the shape the basis asks for."""


class HermiticityError(HamGNNError, ValueError):
    """The blocks violate ``H_ji(-R) = H_ij(R)^dagger`` beyond the tolerance."""


# -- structure and moment checks of the calculator (HamGNNCalc) -------------------------------
__all__ += ["MissingMomentsError", "OverlappingAtomsError", "StructureError"]


class StructureError(HamGNNError, ValueError):
    """The structure cannot be predicted: NaN or infinite positions or cell, or atoms that
    overlap (see :class:`OverlappingAtomsError`)."""


class OverlappingAtomsError(StructureError):
    """Two atoms (periodic images included) are closer than the allowed minimum distance."""


class MissingMomentsError(HamGNNError, ValueError):
    """Atoms of a magnetic species carry no magnetic moment in ``initial_magmoms``."""


class CheckpointError(HamGNNError, ValueError):
    """A model checkpoint is corrupted, truncated or from an incompatible version."""


# -- datasets on disk (ase_hamgnn.data.dataset) -------------------------------------------------
__all__ += ["DatasetError"]


class DatasetError(HamGNNError, ValueError):
    """A dataset folder or record cannot be used: a truncated or corrupted record, a missing
    manifest, a folder holding a different dataset, or a graph cutoff that misses blocks of
    the Hamiltonian. The message names the file and what to do."""


# -- warnings -----------------------------------------------------------------------------------
__all__ += ["MomentRangeWarning"]


class MomentRangeWarning(UserWarning):
    """A structure's moment sizes lie outside the range a model was trained on: the
    prediction extrapolates (e.g. a texture built with 1 μB for a model trained at 2 μB)."""


# -- configuration files (ase_hamgnn.train.loop, ase_hamgnn.model.config) -------------------------
__all__ += ["ConfigError"]


class ConfigError(HamGNNError, ValueError):
    """A training or model configuration has an unknown key or a value of the wrong kind.
    The message names the key, the closest allowed key and all allowed keys."""

    @classmethod
    def check_keys(cls, given: Iterable[str], allowed: Iterable[str], where: str,
                   hint: str = "") -> None:
        """Raise for the keys of ``given`` that are not in ``allowed``.

        ``where`` says where the keys were read (e.g. ``"the [model] table of run.toml"``);
        ``hint`` is appended to the message.

        Examples
        --------
        >>> ConfigError.check_keys(["n_layer"], ["n_layers", "cutoff"], "[model]")
        Traceback (most recent call last):
        ...
        ase_hamgnn.errors.ConfigError: unknown key 'n_layer' (did you mean 'n_layers'?) in \
[model]; allowed keys: cutoff, n_layers
        """
        allowed = sorted(allowed)
        unknown = [key for key in given if key not in allowed]
        if not unknown:
            return
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        noun = "key" if len(unknown) == 1 else "keys"
        raise cls(f"unknown {noun} {', '.join(parts)} in {where}; allowed keys: "
                  f"{', '.join(allowed)}" + (f". {hint}" if hint else ""))


# -- TBHamiltonian files (ase_hamgnn.hamiltonian) -----------------------------------------------
__all__ += ["HamiltonianFileError"]


class HamiltonianFileError(HamGNNError, ValueError):
    """A file given to :meth:`~ase_hamgnn.TBHamiltonian.load` is not a readable TBHamiltonian
    file: not an ``.npz`` archive, truncated, missing arrays, or holding pickled objects."""


# -- bad input to the predictors, the Hamiltonian and its spectra ------------------------------
__all__ += ["CellError", "DenseSizeError", "IntegerValueError", "KPointError", "MomentError",
            "NonFiniteError"]


class CellError(StructureError):
    """The periodic part of the cell is singular or ill-conditioned: two lattice planes
    closer than the allowed minimum height, or lattice vectors of wildly different scales."""


class MomentError(StructureError):
    """Magnetic moments of a wrong shape, NaN or infinite, or of an unphysical size."""


class NonFiniteError(HamGNNError, ValueError):
    """A Hamiltonian or overlap block holds NaN or inf; the message names the atom pair and
    the lattice vector ``R``."""


class IntegerValueError(HamGNNError, ValueError):
    """A value that must be an integer (a lattice vector ``R``, a supercell repetition, a
    k-mesh size) is not integer-valued; it is refused instead of being truncated."""


class KPointError(HamGNNError, ValueError):
    """k-points, k-point weights, a temperature or a broadening that cannot be used: the
    message says which forms are accepted."""


class DenseSizeError(HamGNNError, ValueError):
    """The Hamiltonian is too large to diagonalize densely at every k-point; the message
    points to the sparse tools (``find_gap``, ``edge_states``, ``kpm_dos``)."""


# -- training runs (ase_hamgnn.train.loop) --------------------------------------------------------
__all__ += ["DatasetChangedError", "TrainingDivergedError"]


class TrainingDivergedError(HamGNNError, RuntimeError):
    """The training loss or the weights became NaN or infinite; nothing of the diverged epoch
    is written to the checkpoints.  The message says what to lower."""


class DatasetChangedError(DatasetError):
    """A run is resumed on a dataset other than the one its checkpoint was trained on (the
    folder was written again with other data or another split)."""
