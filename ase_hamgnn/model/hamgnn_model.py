"""``HamGNNModel``: the network with the predictor protocol, checkpoints and shipped models."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from ase_hamgnn._atomic import atomic_write_bytes
from ase_hamgnn.errors import CheckpointError, MomentRangeWarning
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.graph import BlockLayout, NeighborGraph, check_structure
from ase_hamgnn.hamiltonian import TBHamiltonian
from ase_hamgnn.model.config import ModelConfig, coupling_form
from ase_hamgnn.model.inputs import graph_inputs
from ase_hamgnn.model.network import HamGNNPP, moment_products
from ase_hamgnn.model.sharing import EnvironmentClasses, environment_classes

__all__ = ["HamGNNModel", "list_models", "load_model", "resolve_device", "resolve_dtype"]

_CHECKPOINT_FORMAT = "ase-hamgnn-model"
_CHECKPOINT_VERSION = 1
DEFAULT_EDGE_CHUNK = 8192  # edges per tensor-product evaluation: ~0.1-0.2 GB in float32


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but no GPU is visible; use 'cpu' or 'auto'")
    return dev


_DTYPE_NAMES = {"float32": torch.float32, "float": torch.float32, "single": torch.float32,
                "float64": torch.float64, "double": torch.float64}


def resolve_dtype(dtype: str | torch.dtype | np.dtype | type) -> torch.dtype:
    """A floating-point torch dtype from a torch dtype, a NumPy dtype or a name.

    Names are ``"float32"`` (also ``"float"``, ``"single"``, ``"torch.float32"``) and
    ``"float64"`` (``"double"``, ``"torch.float64"``).

    >>> resolve_dtype("float64"), resolve_dtype(torch.float32), resolve_dtype(np.float64)
    (torch.float64, torch.float32, torch.float64)
    """
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str):
        name = dtype.strip().lower().removeprefix("torch.")
        resolved = _DTYPE_NAMES.get(name)
        if resolved is None:
            raise ValueError(f"unknown dtype {dtype!r}; use 'float32' or 'float64' "
                             "(or torch.float32 / torch.float64)")
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            raise TypeError(f"dtype must be 'float32' or 'float64' (a name, a torch dtype or "
                            f"a NumPy dtype), got {dtype!r}") from None
        resolved = _DTYPE_NAMES.get(name)
        if resolved is None:
            raise ValueError(f"unsupported dtype {dtype!r}; use float32 or float64")
    if resolved not in (torch.float32, torch.float64):
        raise ValueError(f"unsupported dtype {resolved}; the network runs in float32 or "
                         "float64")
    return resolved


class HamGNNModel:
    """A HamGNN++ network ready to predict: ``predict(atoms) -> TBHamiltonian``.

    Parameters
    ----------
    config : ModelConfig
    device : ``"cpu"``, ``"cuda"`` or ``"auto"``.
    dtype : network dtype (float32 for speed, float64 for physics checks), as a torch
        dtype or a name (``"float32"``, ``"float64"``); Hamiltonians are always returned in
        complex128.
    network : an existing :class:`HamGNNPP` (e.g. from a checkpoint); built if omitted.
    seed : seed of the initial weights when the network is built here.
    edge_chunk : evaluate the edge tensor products this many edges at a time (``None``: all
        at once).  The result is the same; peak memory stays bounded for large supercells
        (see ``benchmarks/scale.py`` for the measured memory per edge).
    share_environments : let atoms and bonds whose environments agree within
        ``environment_tol`` (Å, μB) share the network's work in :meth:`predict` (see
        :mod:`ase_hamgnn.model.sharing`): a texture on an ideal supercell costs about as much
        network time as its unit cell.  The Hamiltonian is the same; structures without
        repeated environments fall back to the plain evaluation.  Only for models with
        ``moment_coupling=False`` and the ``"physics"`` form; ignored otherwise.
    """

    def __init__(self, config: ModelConfig, device: str | torch.device = "cpu",
                 dtype: str | torch.dtype = torch.float32, network: HamGNNPP | None = None,
                 seed: int | None = 0, edge_chunk: int | None = DEFAULT_EDGE_CHUNK,
                 share_environments: bool = True, environment_tol: float = 1e-6) -> None:
        self.config = config
        self.basis = config.orbital_basis
        self.device = resolve_device(device)
        self.dtype = dtype = resolve_dtype(dtype)
        if network is None:
            gen_state = torch.random.get_rng_state()
            try:
                if seed is not None:
                    torch.manual_seed(seed)
                network = HamGNNPP(config)
            finally:
                torch.random.set_rng_state(gen_state)
        self.network = network.to(device=self.device, dtype=dtype).refresh_constants()
        self.edge_chunk = edge_chunk
        self.share_environments = bool(share_environments)
        if not environment_tol > 0:
            raise ValueError(f"environment_tol must be positive, got {environment_tol}")
        self.environment_tol = float(environment_tol)
        self.magnetic_elements = tuple(config.magnetic)
        self.moment_range: dict[str, tuple[float, float]] | None = None

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.network.parameters())
        return (f"HamGNNModel(elements={list(self.basis.elements)}, cutoff={self.config.cutoff} Å, "
                f"parameters={n}, dtype={self.dtype}, device={self.device})")

    @property
    def edge_chunk(self) -> int | None:
        """Edges per tensor-product evaluation (``None``: all at once)."""
        return self.network.edge_chunk

    @edge_chunk.setter
    def edge_chunk(self, value: int | None) -> None:
        if value is not None and (int(value) != value or value < 1):
            raise ValueError(f"edge_chunk must be a positive integer or None, got {value!r}")
        self.network.edge_chunk = None if value is None else int(value)

    @property
    def cutoff(self) -> float:
        """Graph cutoff in Å."""
        return self.config.cutoff

    def n_electrons(self, atoms: Atoms) -> float:
        """Valence electrons of ``atoms`` held by the basis (from the config's table)."""
        missing = {s for s in atoms.get_chemical_symbols() if s not in self.config.valence}
        if missing:
            raise ValueError(f"no valence electron count for {sorted(missing)} in this model")
        return float(sum(self.config.valence[s] for s in atoms.get_chemical_symbols()))

    def predict(self, atoms: Atoms | Geometry,
                assembly_dtype: str | torch.dtype | None = torch.float64) -> TBHamiltonian:
        """Hamiltonian of ``atoms`` (moments from ``initial_magmoms``).

        The network runs in :attr:`dtype`; the spin assembly ``H0 + H_mag`` (exchange fields
        ``b_k = Σ_j J_kj M_j`` and the spin blocks) runs in ``assembly_dtype``, float64 by
        default (``None``: the network's dtype, as in training).

        Raises
        ------
        StructureError
            If the structure cannot be predicted (see
            :func:`ase_hamgnn.graph.check_structure`): no atoms, a singular periodic cell
            (:class:`~ase_hamgnn.errors.CellError`), atoms closer than
            :data:`ase_hamgnn.graph.MIN_DISTANCE`
            (:class:`~ase_hamgnn.errors.OverlappingAtomsError`) or unusable moments
            (:class:`~ase_hamgnn.errors.MomentError`).
        BasisError
            If an element is not in the model's basis."""
        assembly_dtype = None if assembly_dtype is None else resolve_dtype(assembly_dtype)
        geometry = atoms if isinstance(atoms, Geometry) else Geometry.from_atoms(atoms)
        check_structure(geometry)
        self.basis.check_numbers(geometry.numbers)
        self.check_moment_range(geometry)
        data, graph = graph_inputs(geometry, self.cutoff, dtype=self.dtype, device=self.device)
        classes = self.environment_classes(geometry, graph)
        self.network.eval()
        previous = self.network.assembly_dtype
        self.network.assembly_dtype = assembly_dtype
        try:
            with torch.no_grad():
                out = self.network(data, classes=classes, magnetic=False)
        finally:
            self.network.assembly_dtype = previous
        layout = BlockLayout(self.basis, geometry.numbers, graph)
        onsite = np.asarray(out["onsite"].detach().cpu().numpy(), dtype=np.complex128)
        edge = np.asarray(out["edge"].detach().cpu().numpy(), dtype=np.complex128)
        # Hermitian by construction (every bond block is mirrored onto its reverse bond, see
        # tests/model), so the O(nnz) transpose check is skipped
        return TBHamiltonian(self.basis, geometry, layout.to_matrices(onsite, edge),
                             hermiticity_tol=None)

    def check_moment_range(self, atoms: Atoms | Geometry) -> None:
        """Warn (:class:`~ase_hamgnn.errors.MomentRangeWarning`) if a magnetic element's moment
        sizes in ``atoms`` leave :attr:`moment_range`, the sizes the model was trained on
        (stored in checkpoints by training), by more than 5 % (at least 0.05 μB)."""
        if not self.moment_range:
            return
        geometry = atoms if isinstance(atoms, Geometry) else Geometry.from_atoms(atoms)
        sizes = np.linalg.norm(geometry.moments, axis=1)
        symbols = np.array(chemical_symbols)[np.asarray(geometry.numbers)]
        for element, (lo, hi) in self.moment_range.items():
            mine = sizes[symbols == element]
            if not len(mine):
                continue
            slack = max(0.05 * hi, 0.05)
            if mine.min() < lo - slack or mine.max() > hi + slack:
                warnings.warn(MomentRangeWarning(
                    f"{element} moments of {_moment_span(mine.min(), mine.max())}, but this "
                    f"model was trained on {_moment_span(lo, hi)}: the prediction extrapolates; "
                    f"build the texture with that moment size (e.g. textures' magnitude=...)"),
                    stacklevel=3)

    @property
    def can_share_environments(self) -> bool:
        """Whether this model's outputs allow environment sharing (the ``"physics"`` form;
        with ``moment_coupling`` the bonds' moment invariant is part of their class)."""
        return self.config.form == "physics"

    def environment_classes(self, geometry: Geometry, graph: NeighborGraph
                            ) -> EnvironmentClasses | None:
        """Environment classes :meth:`predict` uses for ``geometry`` (``None``: plain
        evaluation, because sharing is off, not possible for this model, or no two bonds of
        the structure share an environment)."""
        if not (self.share_environments and self.can_share_environments):
            return None
        extra = None
        if self.config.moment_coupling:
            m = torch.tensor(np.asarray(geometry.moments, dtype=np.float64))
            src, dst = (torch.as_tensor(np.asarray(a)) for a in graph.edge_index)
            coupling = coupling_form(self.config.moment_coupling)
            # the invariant itself (cos θ_ij, or M_i·M_j), without the size column: the sizes
            # are in the atoms' classes already
            extra = moment_products(m[src], m[dst], coupling, 1.0)[:, :1].numpy()
        classes = environment_classes(geometry.numbers, geometry.moments, graph.edge_index,
                                      graph.vectors, self.config.n_layers + 1,
                                      tol=self.environment_tol, edge_extra=extra)
        return classes if len(classes.edge_reps) < classes.n_edges else None

    # -- checkpoints --------------------------------------------------------------------
    def state(self, **extra: Any) -> dict[str, Any]:
        """Checkpoint payload: format tag, config, weights, the trained moment range and a
        ``checksum`` (:func:`checkpoint_checksum`) of these (plus ``extra``, not covered)."""
        weights = {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()}
        state = {"format": _CHECKPOINT_FORMAT, "version": _CHECKPOINT_VERSION,
                 "config": self.config.to_dict(), "weights": weights}
        if self.moment_range is not None:
            state["moment_range"] = {k: [float(lo), float(hi)]
                                     for k, (lo, hi) in self.moment_range.items()}
        state["checksum"] = checkpoint_checksum(state)
        return {**extra, **state}

    def save(self, path: str | os.PathLike, **extra: Any) -> Path:
        """Write a checkpoint atomically; ``load_model(path)`` rebuilds the model from it.

        Raises
        ------
        CheckpointError
            If a weight is NaN or infinite (nothing is written)."""
        state = self.state(**extra)
        bad = _non_finite(state["weights"])
        if bad:
            raise CheckpointError(f"refusing to write {path}: the weights {', '.join(bad[:5])} "
                                  "hold NaN or inf (a diverged training run?)")
        buf = io.BytesIO()
        torch.save(state, buf)
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def from_state(cls, state: dict[str, Any], device="cpu", dtype=torch.float32,
                   source: str = "checkpoint") -> HamGNNModel:
        if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
            raise CheckpointError(f"{source} is not an ase-hamgnn model checkpoint")
        try:
            version = int(state.get("version", 0))
        except (TypeError, ValueError):
            raise CheckpointError(f"{source} is corrupted (its version is "
                                  f"{state.get('version')!r})") from None
        if version > _CHECKPOINT_VERSION:
            raise CheckpointError(f"{source} has checkpoint version {state['version']}; "
                                  "upgrade ase-hamgnn to read it")
        weights = state.get("weights")
        if not (isinstance(weights, Mapping)
                and all(isinstance(v, torch.Tensor) for v in weights.values())):
            raise CheckpointError(f"{source} is corrupted: it holds no weight tensors")
        stored = state.get("checksum")  # older checkpoints have none
        if stored is not None and stored != checkpoint_checksum(state, source):
            raise CheckpointError(
                f"{source} is corrupted: its checksum does not match the stored weights and "
                "config (the file changed after it was written); restore it from a copy or "
                "train the model again")
        bad = _non_finite(weights)
        if bad:
            raise CheckpointError(f"{source} holds NaN or infinite weights "
                                  f"({', '.join(bad[:5])}): it comes from a diverged run; "
                                  "use another checkpoint or train again")
        try:
            config = ModelConfig.from_dict(state["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source} has an invalid model config: {exc}") from exc
        network = HamGNNPP(config)
        try:
            network.load_state_dict(state["weights"])
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"{source}: weights do not match the stored config ({exc}); the file is "
                "corrupted or from an incompatible version") from exc
        model = cls(config, device=device, dtype=dtype, network=network)
        stored = state.get("moment_range")
        if stored is not None:
            model.moment_range = {str(k): (float(v[0]), float(v[1])) for k, v in stored.items()}
        return model


def checkpoint_checksum(state: Mapping[str, Any], source: str = "checkpoint") -> str:
    """``"sha256:<hex>"`` over a checkpoint's config and moment range (as sorted JSON) and
    its weights (name, dtype, shape and bytes of each, in sorted name order)."""
    h = hashlib.sha256()
    try:
        h.update(json.dumps({"config": state.get("config"),
                             "moment_range": state.get("moment_range")},
                            sort_keys=True).encode())
        weights = state["weights"]
        for name in sorted(weights):
            tensor = weights[name].detach().cpu().contiguous().reshape(-1)
            h.update(json.dumps([name, str(tensor.dtype), list(weights[name].shape)]).encode())
            h.update(tensor.view(torch.uint8).numpy().tobytes())
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"{source} is corrupted ({type(exc).__name__}: {exc})") from None
    return "sha256:" + h.hexdigest()


def _non_finite(weights: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point weights holding NaN or inf."""
    return [name for name, t in weights.items()
            if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())]


def _torch_message(exc: BaseException) -> str:
    """The text of a ``torch.load`` error without torch's advice to load the file with
    ``weights_only=False`` or to allow-list its classes: both would run code from it."""
    text = str(exc)
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL [\w.]+", text)
        return ("it holds Python objects other than tensors and plain data"
                + (f" ({found.group(0)})" if found else "")
                + "; ase-hamgnn checkpoints never do, and it is not loaded because unpickling "
                "it could run code")
    keep = [line for line in text.splitlines()
            if not re.search(r"weights_only|safe_globals|trust", line)]
    return " ".join(line.strip() for line in keep if line.strip()) or type(exc).__name__


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on the CPU; every failure becomes a
    :class:`CheckpointError` naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip/pickle errors of a truncated, corrupted or foreign file
        raise CheckpointError(f"cannot read checkpoint {path}: {_torch_message(exc)}"
                              ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not an ase-hamgnn checkpoint")
    return state


def _shipped_dir() -> Path:
    return Path(str(resources.files("ase_hamgnn") / "models"))


#: A shipped model's name: a plain identifier, never a path.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def list_models() -> list[str]:
    """Names of the models shipped inside the package (load them with :func:`load_model`)."""
    folder = _shipped_dir()
    return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: str | torch.dtype = torch.float32,
               edge_chunk: int | None = DEFAULT_EDGE_CHUNK) -> HamGNNModel:
    """Load a shipped model by name (see :func:`list_models`) or a checkpoint file.

    ``device`` is ``"cpu"``, ``"cuda"`` or ``"auto"``; ``dtype`` the network's float type,
    a torch dtype or a name (``"float32"``, ``"float64"``).

    The file is read with ``torch.load(weights_only=True)``: it holds only tensors and
    plain data, and the network is rebuilt from the stored config.

    Raises
    ------
    FileNotFoundError
        If neither a shipped model nor a file of that name exists.
    CheckpointError
        If the file is corrupted (its stored checksum does not match), truncated, holds
        NaN or infinite weights, holds objects other than tensors and plain data, or is
        from an incompatible version.
    """
    path = Path(name_or_path)
    if not path.exists():
        name = str(name_or_path)
        folder = _shipped_dir()
        shipped = folder / f"{name}.pt"
        if (isinstance(name_or_path, str) and _MODEL_NAME.match(name) and ".." not in name
                and shipped.is_file() and shipped.resolve().parent == folder.resolve()):
            path = shipped
        else:
            raise FileNotFoundError(
                f"no model file {name!r} and no shipped model of that name (a shipped model "
                f"is named by a plain identifier, one of {list_models()}; a checkpoint by the "
                "path of an existing file)")
    state = read_checkpoint(path)
    model = HamGNNModel.from_state(state, device=device, dtype=dtype, source=str(path))
    model.edge_chunk = edge_chunk
    return model


def _moment_span(lo: float, hi: float) -> str:
    """A range of moment sizes as text: ``"2.00 μB"`` when both ends agree to 0.01 μB,
    else ``"1.50–2.00 μB"``."""
    a, b = f"{lo:.2f}", f"{hi:.2f}"
    return f"{a} μB" if a == b else f"{a}–{b} μB"
