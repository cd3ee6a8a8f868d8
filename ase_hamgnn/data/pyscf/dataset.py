"""Datasets of ab initio cluster Hamiltonians from constrained GKS (PySCF).

:func:`generate_pyscf_dataset` runs :class:`~ase_hamgnn.data.pyscf.gks.ConstrainedGKS` on
random-moment configurations of a small magnetic cluster and writes the project's dataset
format (``manifest.json`` + ``records/``), so ``ase-hamgnn train`` reads it unchanged.

Each finished configuration is first stored atomically as ``raw/NNNNNN.npz`` (the
:class:`~ase_hamgnn.TBHamiltonian`) plus ``raw/NNNNNN.json`` (SCF diagnostics); a re-run
with the same arguments skips them, so an interrupted generation resumes.  The dataset
records are then written from the raw files; ``n_use`` builds the dataset from the first
configurations that are done, while the rest still run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from tqdm.auto import tqdm

from ase_hamgnn._atomic import atomic_write_bytes
from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.data.dataset import write_dataset
from ase_hamgnn.errors import DatasetError, HamGNNError
from ase_hamgnn.hamiltonian import TBHamiltonian

__all__ = ["afm120_triangle", "fe3_triangle", "generate_pyscf_dataset", "label_noise",
           "random_moment_configurations", "read_diagnostics", "restrict_shells"]

RAW_DIR = "raw"


def fe3_triangle(distance: float = 2.4) -> Atoms:
    """Equilateral Fe3 triangle in the xy plane, centred at the origin (cluster, no cell).

    Parameters
    ----------
    distance : float
        Fe-Fe distance in Å.

    Examples
    --------
    >>> atoms = fe3_triangle()
    >>> round(float(atoms.get_distance(0, 1)), 6)
    2.4
    """
    r = distance / np.sqrt(3.0)
    angles = np.radians([90.0, 210.0, 330.0])
    pos = np.stack([r * np.cos(angles), r * np.sin(angles), np.zeros(3)], axis=1)
    return Atoms("Fe3", positions=pos, pbc=False)


def afm120_triangle(atoms: Atoms | None = None, magnitude: float = 3.0) -> Atoms:
    """The triangle with in-plane moments at 120° to each other (pointing away from the
    centre), ``magnitude`` in μB; the non-collinear ground-state type of a frustrated
    triangle."""
    atoms = fe3_triangle() if atoms is None else atoms.copy()
    radial = atoms.positions - atoms.positions.mean(axis=0)
    radial[:, 2] = 0.0
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    atoms.set_initial_magnetic_moments(magnitude * radial)
    return atoms


def random_moment_configurations(atoms: Atoms, n: int, magnitude: float = 3.0,
                                 max_displacement: float = 0.0,
                                 rng: np.random.Generator | int | None = None,
                                 per_geometry: int = 1, near_collinear: int = 0,
                                 cone_deg: float = 30.0) -> list[Atoms]:
    """``n`` copies of ``atoms`` with uniformly random moment directions (and optionally
    displaced atoms).

    Parameters
    ----------
    atoms : ase.Atoms
        The cluster.
    n : int
        Number of configurations.
    magnitude : float
        Moment length in μB (only the direction is constrained in the SCF).
    max_displacement : float
        Each Cartesian coordinate is displaced uniformly in ``±max_displacement`` Å.
    rng : numpy.random.Generator or int or None
        Random generator or seed.
    per_geometry : int
        Consecutive configurations that share one displaced geometry (their moments
        differ).  An SCF then starts from the previous configuration's density at the same
        geometry, which converges in a few seconds; a new geometry needs a fresh guess.
    near_collinear : int
        The last ``near_collinear`` of the ``n`` configurations are nearly ferromagnetic:
        a uniformly random axis per configuration, each moment uniformly distributed in the
        spherical cap of half-angle ``cone_deg`` around it.  These sample the
        (near-)collinear states whose energy versus direction is the magnetic anisotropy,
        which independent random directions almost never reach.  The first
        ``n - near_collinear`` configurations are the same as with ``near_collinear=0``.
    cone_deg : float
        Half-angle of that cap, degrees (0: exactly collinear).
    """
    if n < 1 or per_geometry < 1:
        raise ValueError(f"n and per_geometry must be positive, got {n}, {per_geometry}")
    if not 0 <= near_collinear <= n or not 0.0 <= cone_deg <= 180.0:
        raise ValueError(f"near_collinear must lie in [0, n = {n}] and cone_deg in [0, 180], "
                         f"got {near_collinear}, {cone_deg}")
    rng = np.random.default_rng(rng)
    out = []
    shift = np.zeros((len(atoms), 3))
    for i in range(int(n)):
        a = atoms.copy()
        if i < n - near_collinear:
            v = rng.normal(size=(len(a), 3))
        else:
            v = _cone_directions(rng, len(a), cone_deg)
        a.set_initial_magnetic_moments(magnitude * v / np.linalg.norm(v, axis=1, keepdims=True))
        if max_displacement > 0 and i % per_geometry == 0:
            shift = rng.uniform(-max_displacement, max_displacement, size=(len(a), 3))
        a.positions = a.positions + shift
        out.append(a)
    return out


def _cone_directions(rng: np.random.Generator, count: int, cone_deg: float) -> np.ndarray:
    """``count`` unit vectors uniform in the spherical cap of half-angle ``cone_deg`` around
    one uniformly random axis (uniform in cos of the angle to it, and in azimuth)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    cos_t = rng.uniform(np.cos(np.radians(cone_deg)), 1.0, size=count)
    phi = rng.uniform(0.0, 2 * np.pi, size=count)
    helper = np.eye(3)[np.argmin(np.abs(axis))]
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    sin_t = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, None))
    return (cos_t[:, None] * axis + (sin_t * np.cos(phi))[:, None] * e1
            + (sin_t * np.sin(phi))[:, None] * e2)


def restrict_shells(ham: TBHamiltonian, shells: Sequence[str]) -> TBHamiltonian:
    """The sub-matrices of H and S on the shells labelled ``shells`` (e.g. ``"3d"``).

    The entries kept are exact matrix elements between those orbitals; this is a smaller
    non-orthogonal basis, not a downfolding (the eigenvalues of the sub-problem differ from
    the full ones where the dropped shells mix in).

    Raises
    ------
    ValueError
        If an element keeps no shell.
    """
    from ase.data import chemical_symbols

    basis = ham.basis
    keep = set(shells)
    kept = {el: [s for s in basis.shells(el) if s.label in keep] for el in basis.elements}
    empty = [el for el, sh in kept.items() if not sh]
    if empty:
        raise ValueError(f"no shell of {', '.join(empty)} is among {sorted(keep)}; the "
                         f"shells are {[s.label for s in basis.shells(empty[0])]}")
    new_basis = OrbitalBasis(kept)
    index: list[int] = []
    for atom, z in enumerate(ham.geometry.numbers):
        el = chemical_symbols[int(z)]
        n = basis.n_orbitals(el)
        sel = [i for s, sl in zip(basis.shells(el), basis.shell_slices(el)) if s.label in keep
               for i in range(sl.start, sl.stop)]
        start = int(ham.offsets[atom])
        index += [start + i for i in sel] + [start + n + i for i in sel]
    idx = np.asarray(index, dtype=np.int64)

    def cut(store):
        return None if store is None else {r: m.tocsr()[idx][:, idx] for r, m in store.items()}

    return TBHamiltonian(new_basis, ham.geometry, cut(ham.h_r), cut(ham.s_r))


class _RawResults:
    """Predictor over the raw files of a generation run (for :func:`write_dataset`)."""

    def __init__(self, root: Path, atoms_list: Sequence[Atoms], indices: Sequence[int], basis,
                 cutoff: float, description: str, shells: Sequence[str] | None) -> None:
        self.root, self.cutoff, self.shells = root, cutoff, shells
        self.source_description = description
        self._index = {_key(a): int(i) for a, i in zip(atoms_list, indices)}
        if shells is not None:
            basis = OrbitalBasis({el: [s for s in basis.shells(el) if s.label in set(shells)]
                                  for el in basis.elements})
        self.basis = basis

    def predict(self, atoms: Atoms) -> TBHamiltonian:
        ham = TBHamiltonian.load(self.root / f"{self._index[_key(atoms)]:06d}.npz")
        return ham if self.shells is None else restrict_shells(ham, self.shells)


def _key(atoms: Atoms) -> bytes:
    return (np.round(atoms.positions, 10).tobytes()
            + np.round(atoms.get_initial_magnetic_moments(), 10).tobytes())


def generate_pyscf_dataset(
    out_dir: str | os.PathLike,
    n: int = 300,
    seed: int = 0,
    *,
    distance: float = 2.4,
    magnitude: float = 3.0,
    max_displacement: float = 0.0,
    per_geometry: int = 1,
    near_collinear: int = 0,
    cone_deg: float = 30.0,
    cutoff: float = 6.0,
    n_use: int | None = None,
    shells: Sequence[str] | None = None,
    compute: bool = True,
    write: bool = True,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
    **settings: Any,
) -> dict[str, Any] | None:
    """Run constrained GKS on random-moment Fe3 configurations and write a dataset.

    Parameters
    ----------
    out_dir : path
        Dataset folder; raw results go to ``out_dir/raw`` (re-running resumes).
    n : int
        Number of configurations.
    seed : int
        Seed of the configurations and of the train/val/test split.
    distance, magnitude, max_displacement : float
        Fe-Fe distance (Å), moment length (μB), coordinate jitter (Å).
    per_geometry : int
        Configurations per displaced geometry (see :func:`random_moment_configurations`);
        shards split the work by geometry, and so does the train/val/test split when the
        coordinates are displaced.
    near_collinear, cone_deg : int, float
        The last ``near_collinear`` configurations are nearly ferromagnetic (moments within
        ``cone_deg`` of a common random axis, see :func:`random_moment_configurations`).
    cutoff : float
        Graph cutoff in Å (all pairs of the cluster must lie within it).
    n_use : int, optional
        Build the dataset from the first ``n_use`` configurations only (they must be done).
    shells : sequence of str, optional
        Write only these shells to the dataset (e.g. ``("4s", "4p", "3d")``, see
        :func:`restrict_shells`); the raw files always keep all of them.
    compute : bool
        Run the missing SCFs; ``False`` only writes the dataset from finished raw files.
    write : bool
        Write the dataset folder ``out_dir/dataset-<count>`` from the finished raw files.
    shard : (int, int)
        ``(k, m)``: compute only configurations ``i`` with ``i % m == k`` (run ``m``
        processes side by side, then once more with ``compute=False`` to write).
    progress : bool
        tqdm progress bars.
    **settings
        Fields of :class:`~ase_hamgnn.data.pyscf.gks.GKSSettings` (e.g. ``grid_level``).

    Returns
    -------
    dict or None
        The manifest, or ``None`` if too few configurations are done for ``n_use``.

    Examples
    --------
    >>> generate_pyscf_dataset("data/fe3-pyscf", n=300, seed=0)  # doctest: +SKIP
    """
    from ase_hamgnn.data.pyscf.gks import ConstrainedGKS, GKSSettings

    root = Path(out_dir)
    raw = root / RAW_DIR
    raw.mkdir(parents=True, exist_ok=True)
    gks_settings = GKSSettings(**{"guess_spin": 8, **settings})
    confs = random_moment_configurations(fe3_triangle(distance), n, magnitude,
                                         max_displacement, rng=seed, per_geometry=per_geometry,
                                         near_collinear=near_collinear, cone_deg=cone_deg)
    params = {"system": "fe3-sto3g-pyscf", "n": n, "seed": seed, "distance": distance,
              "magnitude": magnitude, "max_displacement": max_displacement,
              "settings": gks_settings.to_dict()}
    if per_geometry != 1:  # older generation stamps have no such key
        params["per_geometry"] = per_geometry
    if near_collinear:
        params.update(near_collinear=near_collinear, cone_deg=cone_deg)
    stamp = raw / "generation.json"
    if stamp.exists():
        old = json.loads(stamp.read_text())
        if old != json.loads(json.dumps(params)):
            raise DatasetError(f"{raw} was generated with other parameters ({old}); choose a "
                               "new output folder or delete this one")
    else:
        atomic_write_bytes(stamp, json.dumps(params, indent=1).encode())
    # every geometry gets its collinear guess (coarse grid, shared by its moment sets): a
    # density spin-rotated from other targets failed after max_cycle often enough to cost more
    runner = ConstrainedGKS(["Fe"], gks_settings, cutoff=cutoff, reuse_previous=False)
    if compute:
        k, m = shard
        if not (m >= 1 and 0 <= k < m):
            raise ValueError(f"shard must be (k, m) with 0 <= k < m, got {shard}")
        todo = [i for i in range(n) if (i // per_geometry) % m == k
                and not (raw / f"{i:06d}.npz").exists()]
        for i in tqdm(todo, desc="constrained GKS", unit="conf", disable=not progress):
            try:
                res = runner.run(confs[i])
            except HamGNNError as exc:  # record the failure and go on
                atomic_write_bytes(raw / f"{i:06d}.failed.json",
                                   json.dumps({"index": i, "error": str(exc)}).encode())
                continue
            res.hamiltonian.save(raw / f"{i:06d}.npz")
            info = {"index": i, "targets": res.targets.tolist(), **res.diagnostics()}
            atomic_write_bytes(raw / f"{i:06d}.json", json.dumps(info).encode())
    if not write:
        return None
    done = [i for i in range(n) if (raw / f"{i:06d}.npz").exists()]
    use = done if n_use is None else done[:n_use]
    if n_use is not None and len(use) < n_use:
        return None
    if not use:
        return None
    description = runner.source_description
    if shells is not None:
        description += f"; shells {', '.join(shells)} kept (sub-matrices of H and S)"
    predictor = _RawResults(raw, [confs[i] for i in use], use, runner.basis, cutoff,
                            description, shells)
    params = {**params, "indices": use, "n_done": len(done),
              "shells": None if shells is None else list(shells)}
    atoms_list = [confs[i] for i in use]
    name = f"dataset-{len(use)}" + ("" if shells is None else "-" + "".join(shells))
    # moment sets on one displaced geometry stay together: the held-out splits test new
    # geometries, not new moments on a geometry seen in training
    groups = ([i // per_geometry for i in use] if max_displacement > 0 and per_geometry > 1
              else None)  # one configuration per group is the plain split
    return write_dataset(predictor, atoms_list, root / name, cutoff=cutoff, rng=seed,
                         split_groups=groups, metadata=params, progress=progress)


def label_noise(atoms_list: Sequence[Atoms], rng: np.random.Generator | int | None = 0,
                progress: bool = True, shells: Sequence[str] | None = None,
                **settings: Any) -> list[dict[str, Any]]:
    """Noise of constrained-GKS labels, measured by symmetry: each configuration is computed
    three times, each its own SCF from a fresh guess: as given, with all moments reversed, and
    rotated (positions and moments) by a random rotation.  Exact labels would satisfy
    ``H(-M) = Theta H(M)^* Theta^dagger`` and ``H(g) = D(g) H D(g)^dagger``; what is left is
    the label noise (SCF convergence for time reversal; SCF plus the lab-fixed DFT grid for
    rotations).

    Parameters
    ----------
    atoms_list : sequence of ase.Atoms
        Clusters with target moments in ``initial_magmoms``.
    rng : numpy Generator or seed
        Source of the rotations.
    progress : bool
        tqdm progress bar.
    shells : sequence of str, optional
        Measure on the sub-matrices of these shells (those a dataset keeps, see
        :func:`restrict_shells`); the largest difference over all shells is reported too.
    **settings
        Fields of :class:`~ase_hamgnn.data.pyscf.gks.GKSSettings`.

    Returns
    -------
    list of dict
        Per configuration and symmetry (``"time reversal"``, ``"rotation"``): the mean and
        largest ``|Delta H|`` over the matrix elements (of ``shells``) in meV, and
        ``max_all_meV`` over all of them.
    """
    from ase_hamgnn.data.pyscf.gks import ConstrainedGKS, GKSSettings
    from ase_hamgnn.symmetry import random_rotation, transform_atoms, transform_hamiltonian

    rng = np.random.default_rng(rng)
    gks = GKSSettings(**settings)
    rows: list[dict[str, Any]] = []
    for i, atoms in enumerate(tqdm(atoms_list, desc="label noise", unit="conf",
                                   disable=not progress)):
        runner = ConstrainedGKS(sorted(set(atoms.get_chemical_symbols())), gks,
                                reuse_previous=False)
        base = runner.run(atoms, guess="uks").hamiltonian
        rotation = random_rotation(rng)
        for name, kwargs in (("time reversal", {"time_reversal": True}),
                             ("rotation", {"rotation": rotation})):
            copy = runner.run(transform_atoms(atoms, **kwargs), guess="uks").hamiltonian
            expected = transform_hamiltonian(base, **kwargs)
            every = _abs_difference_mev(copy, expected)
            kept = every if shells is None else _abs_difference_mev(
                restrict_shells(copy, shells), restrict_shells(expected, shells))
            rows.append({"configuration": i, "symmetry": name, "mae_meV": float(kept.mean()),
                         "max_meV": float(kept.max()), "max_all_meV": float(every.max())})
    return rows


def _abs_difference_mev(a: TBHamiltonian, b: TBHamiltonian) -> np.ndarray:
    """``|H_a - H_b|`` of two cluster Hamiltonians (``R = 0``), dense, meV."""
    return np.abs((a.h_r[(0, 0, 0)] - b.h_r[(0, 0, 0)]).toarray()) * 1e3


def read_diagnostics(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """SCF diagnostics of every finished configuration of a generation run, by index."""
    raw = Path(out_dir) / RAW_DIR
    return [json.loads(p.read_text()) for p in sorted(raw.glob("[0-9]*[0-9].json"))]
