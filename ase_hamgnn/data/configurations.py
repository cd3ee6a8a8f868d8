"""Configurations for training and test sets: structures with displacements and moments.

Every set is built from the structure builders of :mod:`ase_hamgnn.data.structures` and is a
plain list of ``ase.Atoms`` whose ``initial_magmoms`` is an ``(N, 3)`` array in μB; writing
Hamiltonians for them is :func:`ase_hamgnn.data.write_dataset`.

* :func:`generate_configurations`: the random-moment training sets of the paper. Every atom
  is displaced by a vector drawn uniformly from the ball of radius ``max_displacement``
  (default 0.1 Å; isotropic, so no Cartesian axis is preferred and ``|u| <= 0.1 Å`` holds
  exactly), and every magnetic atom gets a moment in a direction drawn uniformly on the unit
  sphere (normalized Gaussian 3-vectors), of the system's nominal length or, optionally, of a
  length drawn uniformly from a range.
* Out-of-distribution sets (textures the random sets never show): :func:`spiral_configurations`
  (NiBr2 8×1×1 spin spirals), :func:`afm120_configurations` (NiBrI 120° antiferromagnet) and
  :func:`skyrmion_configurations` (small skyrmion supercells), built with :mod:`textures`.

All randomness comes from the ``rng`` argument (``numpy.random.Generator``, an int seed, or
``None`` for a fresh unseeded generator); the same seed gives identical configurations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ase_hamgnn.data.reference.params import SYSTEMS as _PARAMS

__all__ = [
    "OOD_KINDS",
    "OOD_SYSTEMS",
    "SYSTEMS",
    "afm120_configurations",
    "generate_configurations",
    "ood_configurations",
    "parse_size",
    "random_configuration",
    "skyrmion_configurations",
    "spiral_configurations",
]


#: Names of the systems of the paper (those of :class:`ase_hamgnn.data.ReferenceTB`).
SYSTEMS = tuple(_PARAMS)

#: Out-of-distribution sets (see :func:`ood_configurations`) and their default systems.
OOD_SYSTEMS = {"spirals": "nibr2", "afm120": "nibri", "skyrmion": "nibri"}
OOD_KINDS = tuple(OOD_SYSTEMS)


@dataclass(frozen=True)
class _System:
    name: str
    magnetic: tuple[str, ...]  # species with moments
    moments: dict[str, float]  # nominal moment length per magnetic species, μB


def _system(system: str) -> _System:
    """Magnetic species and nominal moments of a system, from the reference model's tables
    (Ni 2 μB in NiBr2/NiBrI, Fe 2.7 μB on Ir(111))."""
    params = _PARAMS.get(system) if isinstance(system, str) else None
    if params is None:
        raise ValueError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    magnetic = tuple(el for el, p in params.elements.items() if p.magnetic)
    return _System(system, magnetic, {el: params.elements[el].moment for el in magnetic})


def parse_size(size: str | int | Sequence[int]) -> tuple[int, int, int]:
    """Supercell repetitions from ``"2x2"``, ``"2x2x1"``, ``2`` (2×2×1) or ``(2, 2[, 1])``.

    Raises
    ------
    ValueError
        If the size is not one to three positive integers.

    Examples
    --------
    >>> parse_size("3x2"), parse_size(2), parse_size((8, 1, 1))
    ((3, 2, 1), (2, 2, 1), (8, 1, 1))
    """
    if isinstance(size, str):
        parts: list = size.lower().replace("×", "x").split("x")
    elif isinstance(size, int | np.integer):
        parts = [size, size]
    else:
        parts = list(size)
    reps = []
    for p in parts:
        try:
            value = int(p) if isinstance(p, str) else p
        except ValueError:
            value = None
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            reps.append(int(value))
        else:
            reps = []
            break
    if not 1 <= len(reps) <= 3 or any(r < 1 for r in reps):
        raise ValueError(
            f"size must be one to three positive integers such as '2x2' or (2, 2, 1), "
            f"got {size!r}"
        )
    reps += [1] * (3 - len(reps))
    return (reps[0], reps[1], reps[2])


def _ball(gen: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """``(n, 3)`` vectors uniform (by volume) in the ball of ``radius`` (Å)."""
    direction = gen.standard_normal((n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return (radius * np.cbrt(gen.random(n)))[:, None] * direction


def _build(system: str, size: tuple[int, int, int]) -> Atoms:
    from ase_hamgnn.data.reference.tb import ReferenceTB

    return ReferenceTB(_system(system).name).structure(size)


def _lengths(atoms: Atoms, magnetic: Sequence[str],
             magnitude: float | Mapping[str, float]) -> np.ndarray:
    """Nominal moment length (μB) per atom: zero on non-magnetic atoms."""
    symbols = np.array(atoms.get_chemical_symbols(), dtype=object)
    mask = np.isin(symbols, list(magnetic))
    if not mask.any():
        raise ValueError(
            f"none of the magnetic species {list(magnetic)} is in the structure "
            f"({atoms.get_chemical_formula()}); name the species that carry moments"
        )
    if isinstance(magnitude, Mapping):
        missing = sorted(set(symbols[mask].tolist()) - set(magnitude))
        if missing:
            raise ValueError(f"magnitude has no moment (μB) for the magnetic species {missing}")
        lengths = np.array([float(magnitude.get(s, 0.0)) for s in symbols])
    else:
        lengths = np.full(len(atoms), float(magnitude))
    if not (np.isfinite(lengths).all() and (lengths >= 0).all()):
        raise ValueError(f"moment lengths must be finite and >= 0 μB, got {magnitude!r}")
    return np.where(mask, lengths, 0.0)


def random_configuration(
    atoms: Atoms,
    rng: np.random.Generator | int | None,
    *,
    magnetic: Sequence[str],
    magnitude: float | Mapping[str, float],
    max_displacement: float = 0.1,
    magnitude_spread: float = 0.0,
) -> Atoms:
    """One random configuration of ``atoms``: displaced atoms, random moment directions.

    Parameters
    ----------
    atoms : ase.Atoms
        The ideal structure (not modified).
    rng : numpy.random.Generator or int or None
        Random generator or seed.
    magnetic : sequence of str
        Magnetic species, e.g. ``("Ni",)``; every other atom gets a zero moment.
    magnitude : float or dict
        Nominal moment length (μB), one value or ``{symbol: μB}`` per magnetic species.
    max_displacement : float
        Radius (Å) of the ball each atom's displacement is drawn from, uniformly by volume
        (direction uniform on the sphere, length ``max_displacement * u^(1/3)``); 0 keeps
        the ideal positions.
    magnitude_spread : float
        Relative spread ``s`` in ``[0, 1]`` of the moment lengths: each is drawn uniformly
        from ``[(1 - s) m0, (1 + s) m0]`` around the nominal ``m0``; 0 (default) keeps
        ``m0``.

    Returns
    -------
    ase.Atoms
        A new structure with ``initial_magmoms`` of shape ``(N, 3)`` in μB; directions on
        the magnetic atoms are independent and uniform on the sphere.

    Examples
    --------
    >>> from ase.build import bulk
    >>> fe = random_configuration(bulk("Fe", cubic=True), 0, magnetic=("Fe",), magnitude=2.2)
    >>> bool(np.allclose(np.linalg.norm(fe.get_initial_magnetic_moments(), axis=1), 2.2))
    True
    """
    gen = np.random.default_rng(rng)
    if not (np.isfinite(max_displacement) and max_displacement >= 0):
        raise ValueError(f"max_displacement must be >= 0 Å, got {max_displacement}")
    if not 0 <= magnitude_spread <= 1:
        raise ValueError(f"magnitude_spread must be in [0, 1], got {magnitude_spread}")
    lengths = _lengths(atoms, magnetic, magnitude)
    n = len(atoms)
    out = atoms.copy()
    out.positions = atoms.positions + _ball(gen, n, max_displacement)
    direction = gen.standard_normal((n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    if magnitude_spread:
        lengths = lengths * gen.uniform(1 - magnitude_spread, 1 + magnitude_spread, size=n)
    out.set_initial_magnetic_moments(None)  # drop scalar (N,) moments of the input
    out.set_initial_magnetic_moments((lengths[:, None] * direction).astype(np.float64))
    return out


def generate_configurations(
    system: str,
    size: str | int | Sequence[int],
    n: int,
    rng: np.random.Generator | int | None,
    max_displacement: float = 0.1,
    random_magnitudes: bool = False,
    *,
    magnitude: float | None = None,
    magnitude_spread: float = 0.5,
) -> list[Atoms]:
    """Random-moment configurations of a system of the paper (training sets).

    Each configuration is the ideal supercell with every atom displaced uniformly inside a
    ball of radius ``max_displacement`` and moments on the magnetic atoms in independent,
    uniformly random directions on the sphere (see :func:`random_configuration`).

    Parameters
    ----------
    system : {"nibri", "nibr2", "feir"}
        Janus NiBrI, NiBr2 (1T) or an Fe monolayer on Ir(111) (see :data:`SYSTEMS`).
    size : str, int or sequence of int
        Supercell of the primitive cell, e.g. ``"2x2"`` (see :func:`parse_size`).
    n : int
        Number of configurations.
    rng : numpy.random.Generator or int or None
        Random generator or seed; the same seed gives identical configurations.
    max_displacement : float
        Largest displacement of an atom (Å).
    random_magnitudes : bool
        Draw each moment length uniformly from ``[(1 - s) m, (1 + s) m]`` with
        ``s = magnitude_spread``, instead of using ``m`` itself.
    magnitude : float, optional
        Moment length ``m`` (μB); default the nominal moment of the reference model's
        parameters (Ni 2 μB, Fe 2.7 μB).
    magnitude_spread : float
        Relative spread of ``random_magnitudes`` (default 0.5: 1 to 3 μB on Ni).

    Returns
    -------
    list of ase.Atoms
        ``n`` structures with ``(N, 3)`` ``initial_magmoms`` in μB.

    Examples
    --------
    >>> confs = generate_configurations("nibri", "1x1", 3, rng=0)
    >>> len(confs), confs[0].get_initial_magnetic_moments().shape
    (3, (3, 3))
    """
    spec = _system(system)
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive number of configurations, got {n!r}")
    gen = np.random.default_rng(rng)
    ideal = _build(system, parse_size(size))
    return [
        random_configuration(ideal, gen, magnetic=spec.magnetic,
                             magnitude=_magnitude(spec, magnitude),
                             max_displacement=max_displacement,
                             magnitude_spread=magnitude_spread if random_magnitudes else 0.0)
        for _ in range(int(n))
    ]


# -- out-of-distribution sets ------------------------------------------------------------------
def _displace(atoms: Atoms, gen: np.random.Generator, max_displacement: float) -> Atoms:
    if not (np.isfinite(max_displacement) and max_displacement >= 0):
        raise ValueError(f"max_displacement must be >= 0 Å, got {max_displacement}")
    if max_displacement == 0:
        return atoms
    out = atoms.copy()
    out.positions = atoms.positions + _ball(gen, len(atoms), max_displacement)
    return out


def _magnitude(spec: _System, magnitude: float | None) -> dict[str, float]:
    if magnitude is None:
        return dict(spec.moments)
    return dict.fromkeys(spec.magnetic, float(magnitude))


def _count(n: int | None, default: int) -> int:
    if n is None:
        return default
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive number of configurations, got {n!r}")
    return int(n)


def spiral_configurations(
    n: int | None = None,
    rng: np.random.Generator | int | None = None,
    *,
    system: str = OOD_SYSTEMS["spirals"],
    size: str | int | Sequence[int] = (8, 1, 1),
    magnitude: float | None = None,
    max_displacement: float = 0.0,
) -> list[Atoms]:
    """Flat spin spirals commensurate with a ``n1×1×1`` supercell (default NiBr2 8×1×1).

    Configuration ``k`` has the wave vector ``q = (j / n1, 0, 0)`` (fractional reciprocal
    units of the primitive cell) with ``j = 1 + (k // 2) mod (n1 - 1)``, alternating cycloidal
    (``k`` even) and helical (``k`` odd) rotation, and a random phase (rad, uniform in
    ``[0, 2π)``). The default ``n = 2 (n1 - 1)`` covers every commensurate ``q ≠ 0`` once
    in each kind.

    Parameters
    ----------
    n : int, optional
        Number of configurations.
    rng : numpy.random.Generator or int or None
        Random generator or seed (phases, displacements).
    system : str
        System name (:data:`SYSTEMS`).
    size : str, int or sequence of int
        Supercell; the spiral runs along the first cell vector and needs ``n1 >= 2``.
    magnitude : float, optional
        Moment length (μB); default the system's nominal moment.
    max_displacement : float
        Radius (Å) of random displacements; default 0 (ideal positions).

    Returns
    -------
    list of ase.Atoms

    Examples
    --------
    >>> confs = spiral_configurations(rng=0)
    >>> len(confs), len(confs[0])
    (14, 24)
    """
    import textures

    spec = _system(system)
    reps = parse_size(size)
    if reps[0] < 2:
        raise ValueError(f"a spin spiral needs at least 2 cells along a1, got size {reps}")
    gen = np.random.default_rng(rng)
    count = _count(n, 2 * (reps[0] - 1))
    ideal = textures.supercell(_build(system, (1, 1, 1)), reps)
    out = []
    for k in range(count):
        j = 1 + (k // 2) % (reps[0] - 1)
        kind = ("cycloidal", "helical")[k % 2]
        phase = float(gen.uniform(0.0, 2 * np.pi))
        atoms = textures.spin_spiral(ideal, (j / reps[0], 0.0, 0.0), kind=kind, phase=phase,
                                     magnetic=spec.magnetic, magnitude=_magnitude(spec, magnitude))
        out.append(_displace(atoms, gen, max_displacement))
    return out


def _sqrt3_matrix(prim: Atoms) -> list[list[int]]:
    a1, a2 = prim.cell[0], prim.cell[1]
    cos = float(a1 @ a2 / np.linalg.norm(a1) / np.linalg.norm(a2))
    if abs(cos + 0.5) < 1e-3:  # 120° between a1 and a2
        return [[2, 1, 0], [-1, 1, 0], [0, 0, 1]]
    if abs(cos - 0.5) < 1e-3:  # 60°
        return [[1, 1, 0], [-1, 2, 0], [0, 0, 1]]
    raise ValueError("the primitive cell is not hexagonal; give size as 3n x 3n")


def afm120_configurations(
    n: int | None = None,
    rng: np.random.Generator | int | None = None,
    *,
    system: str = OOD_SYSTEMS["afm120"],
    size: str | int | Sequence[int] | None = None,
    magnitude: float | None = None,
    max_displacement: float = 0.0,
) -> list[Atoms]:
    """Coplanar 120° antiferromagnets (default NiBrI, √3×√3 supercell).

    Each configuration draws the normal of the spin plane uniformly on the sphere, the
    chirality (±1) and a rotation of all spins in the plane (rad, uniform in ``[0, 2π)``);
    with spin-orbit coupling these are different Hamiltonians.

    Parameters
    ----------
    n : int, optional
        Number of configurations (default 10).
    rng : numpy.random.Generator or int or None
        Random generator or seed.
    system : str
        System name (:data:`SYSTEMS`); its magnetic sites must form a triangular lattice.
    size : str, int or sequence of int, optional
        Supercell ``3n×3n`` (e.g. ``"3x3"``); default the √3×√3 cell.
    magnitude : float, optional
        Moment length (μB); default the system's nominal moment.
    max_displacement : float
        Radius (Å) of random displacements; default 0 (ideal positions).

    Returns
    -------
    list of ase.Atoms

    Examples
    --------
    >>> confs = afm120_configurations(2, rng=0)
    >>> m = confs[0].get_initial_magnetic_moments()
    >>> bool(np.allclose(m.sum(axis=0), 0.0))
    True
    """
    import textures

    spec = _system(system)
    gen = np.random.default_rng(rng)
    count = _count(n, 10)
    prim = _build(system, (1, 1, 1))
    ideal = textures.supercell(prim, _sqrt3_matrix(prim) if size is None else parse_size(size))
    out = []
    for _ in range(count):
        axis = gen.standard_normal(3)
        chirality = int(gen.choice([-1, 1]))
        phase = float(gen.uniform(0.0, 2 * np.pi))
        atoms = textures.noncollinear_afm(ideal, "120", chirality=chirality, axis=axis,
                                          phase=phase, magnetic=spec.magnetic,
                                          magnitude=_magnitude(spec, magnitude))
        out.append(_displace(atoms, gen, max_displacement))
    return out


def skyrmion_configurations(
    n: int | None = None,
    rng: np.random.Generator | int | None = None,
    *,
    system: str = OOD_SYSTEMS["skyrmion"],
    size: str | int | Sequence[int] = (6, 6, 1),
    radius: float | None = None,
    magnitude: float | None = None,
    max_displacement: float = 0.0,
) -> list[Atoms]:
    """One skyrmion per supercell (default NiBrI 6×6): small out-of-distribution textures.

    Each configuration draws the core position uniformly in the cell, the helicity uniformly
    in ``[0, 2π)`` (Néel, Bloch and in between) and the polarity (±1); the radius is fixed.

    Parameters
    ----------
    n : int, optional
        Number of configurations (default 5).
    rng : numpy.random.Generator or int or None
        Random generator or seed.
    system : str
        System name (:data:`SYSTEMS`).
    size : str, int or sequence of int
        Supercell of the primitive cell.
    radius : float, optional
        Skyrmion radius (Å); default a quarter of the shortest in-plane period, with the
        domain-wall width half the radius (see :func:`textures.skyrmion`).
    magnitude : float, optional
        Moment length (μB); default the system's nominal moment.
    max_displacement : float
        Radius (Å) of random displacements; default 0 (ideal positions).

    Returns
    -------
    list of ase.Atoms
    """
    import textures

    spec = _system(system)
    gen = np.random.default_rng(rng)
    count = _count(n, 5)
    ideal = textures.supercell(_build(system, (1, 1, 1)), parse_size(size))
    out = []
    for _ in range(count):
        center = gen.random(3) @ np.array(ideal.cell)
        helicity = float(gen.uniform(0.0, 2 * np.pi))
        polarity = int(gen.choice([-1, 1]))
        atoms = textures.skyrmion(ideal, center=center, radius=radius, helicity=helicity,
                                  polarity=polarity, magnetic=spec.magnetic,
                                  magnitude=_magnitude(spec, magnitude))
        out.append(_displace(atoms, gen, max_displacement))
    return out


def ood_configurations(
    kind: str,
    n: int | None = None,
    rng: np.random.Generator | int | None = None,
    *,
    system: str | None = None,
    size: str | int | Sequence[int] | None = None,
    magnitude: float | None = None,
) -> list[Atoms]:
    """An out-of-distribution set by name: ``"spirals"``, ``"afm120"`` or ``"skyrmion"``.

    ``system`` and ``size`` default to those of the paper (NiBr2 8×1×1, NiBrI √3×√3, NiBrI
    6×6); see :func:`spiral_configurations`, :func:`afm120_configurations`,
    :func:`skyrmion_configurations`.
    """
    funcs = {"spirals": spiral_configurations, "afm120": afm120_configurations,
             "skyrmion": skyrmion_configurations}
    if kind not in funcs:
        raise ValueError(f"unknown out-of-distribution set {kind!r}; choose one of "
                         f"{', '.join(OOD_KINDS)}")
    kwargs: dict = {"magnitude": magnitude}
    if system is not None:
        kwargs["system"] = system
    if size is not None:
        kwargs["size"] = size
    return funcs[kind](n, rng, **kwargs)
