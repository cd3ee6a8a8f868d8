"""Orbital basis: shells per element, orbital order and the spin-major layout.

Conventions (the physics contract of the package):

* Each element has an ordered tuple of shells ``(n, l)``.  Inside a shell the ``2l + 1``
  real orbitals follow e3nn's real spherical harmonics for that ``l``.  With e3nn 0.6 these
  are, up to positive normalisation,

  - ``l = 0``: ``s``
  - ``l = 1``: ``(x, y, z)``
  - ``l = 2``: ``(xz, xy, y^2 - (x^2 + z^2)/2, yz, (z^2 - x^2)/2)``; note that e3nn's polar
    axis for ``l >= 2`` is ``y``, so the ``m = 0`` function is the "d_{3y^2-r^2}" orbital.

  Orbitals of a shell have parity ``(-1)^l``, i.e. e3nn irreps ``0e``, ``1o``, ``2e``, ...
* Per atom the spin-orbitals are spin-major: ``[orbitals (spin up), orbitals (spin down)]``,
  so an atom with ``n`` orbitals has ``2 n`` spin-orbitals and the block of an atom pair is
  ``[[H_uu, H_ud], [H_du, H_dd]]``.
* Atoms are concatenated in ``Atoms`` order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from ase_hamgnn.errors import BasisError

__all__ = ["OrbitalBasis", "Shell", "orbital_labels"]

_L_LETTERS = "spdfgh"

# Names of e3nn's real orbitals, in e3nn order, for l <= 2 (higher l get m-indices).
_ORBITAL_NAMES = {
    0: ("s",),
    1: ("px", "py", "pz"),
    2: ("dxz", "dxy", "d3y2-r2", "dyz", "dz2-x2"),
}


@dataclass(frozen=True, order=True)
class Shell:
    """One radial shell of an element: principal quantum number ``n`` and angular momentum
    ``l``.  ``n`` only labels the shell (e.g. 4s vs 5s); the angular part is fixed by ``l``."""

    n: int
    l: int  # noqa: E741 - the physics name

    def __post_init__(self) -> None:
        if not isinstance(self.n, (int, np.integer)) or not isinstance(self.l, (int, np.integer)):
            raise BasisError(
                f"shell quantum numbers must be integers, got n={self.n!r}, l={self.l!r}"
            )
        if self.l < 0 or self.l > 5:
            raise BasisError(f"shell angular momentum l must be in 0..5, got l={self.l}")
        if self.n <= self.l:
            raise BasisError(f"shell needs n > l, got n={self.n}, l={self.l}")
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "l", int(self.l))

    @property
    def size(self) -> int:
        """Number of (spatial) orbitals, ``2 l + 1``."""
        return 2 * self.l + 1

    @property
    def parity(self) -> int:
        """Parity ``(-1)^l`` of the shell's orbitals."""
        return -1 if self.l % 2 else 1

    @property
    def irrep(self) -> str:
        """e3nn irrep of the shell, e.g. ``'2e'``."""
        return f"{self.l}{'o' if self.l % 2 else 'e'}"

    @property
    def label(self) -> str:
        """Spectroscopic label such as ``'3d'``."""
        return f"{self.n}{_L_LETTERS[self.l]}"


def _parse_shell(item: Any) -> Shell:
    if isinstance(item, Shell):
        return item
    if isinstance(item, str):
        text = item.strip().lower()
        if len(text) < 2 or not text[:-1].isdigit() or text[-1] not in _L_LETTERS:
            raise BasisError(f"cannot read shell {item!r}; use '3d', '4s' or a pair (n, l)")
        return Shell(int(text[:-1]), _L_LETTERS.index(text[-1]))
    try:
        n, l = item  # noqa: E741
    except (TypeError, ValueError):
        raise BasisError(f"cannot read shell {item!r}; use '3d', '4s' or a pair (n, l)") from None
    return Shell(n, l)


def orbital_labels(shell: Shell) -> tuple[str, ...]:
    """Names of the orbitals of ``shell`` in e3nn order, e.g. ``('4px', '4py', '4pz')``."""
    names = _ORBITAL_NAMES.get(shell.l)
    if names is None:
        names = tuple(f"{_L_LETTERS[shell.l]}(m={m})" for m in range(-shell.l, shell.l + 1))
    return tuple(f"{shell.n}{name}" for name in names)


class OrbitalBasis:
    """Ordered shells per element, and the spin-orbital layout that follows from them.

    Parameters
    ----------
    shells : mapping
        Element symbol (or atomic number) to an ordered sequence of shells; a shell is a
        :class:`Shell`, a pair ``(n, l)`` or a string such as ``'3d'``.

    Examples
    --------
    >>> basis = OrbitalBasis({"Ni": ["4s", "3d"], "Br": ["4s", "4p"]})
    >>> basis.n_orbitals("Ni"), basis.n_spin_orbitals("Br")
    (6, 8)
    >>> basis.irreps("Ni")
    '1x0e+1x2e'
    """

    __slots__ = ("_shells",)

    def __init__(self, shells: Mapping[str | int, Iterable[Any]]) -> None:
        if not isinstance(shells, Mapping) or not shells:
            raise BasisError("OrbitalBasis needs a non-empty mapping element -> list of shells")
        parsed: dict[str, tuple[Shell, ...]] = {}
        for key, items in shells.items():
            symbol = _symbol(key)
            if symbol in parsed:
                raise BasisError(f"element {symbol} given twice")
            tup = tuple(_parse_shell(item) for item in items)
            if not tup:
                raise BasisError(f"element {symbol} has no shells")
            if len(set(tup)) != len(tup):
                raise BasisError(f"element {symbol} lists a shell twice: {[s.label for s in tup]}")
            parsed[symbol] = tup
        self._shells = dict(sorted(parsed.items(), key=lambda kv: atomic_numbers[kv[0]]))

    # -- per element ------------------------------------------------------------------------
    @property
    def elements(self) -> tuple[str, ...]:
        """Element symbols, ordered by atomic number."""
        return tuple(self._shells)

    def shells(self, element: str | int) -> tuple[Shell, ...]:
        """Shells of ``element`` in orbital order."""
        symbol = _symbol(element)
        try:
            return self._shells[symbol]
        except KeyError:
            raise BasisError(
                f"element {symbol} is not in the basis (it has {', '.join(self.elements)}); "
                "use a model or basis that covers it"
            ) from None

    def n_orbitals(self, element: str | int) -> int:
        """Number of spatial orbitals of ``element``."""
        return sum(s.size for s in self.shells(element))

    def n_spin_orbitals(self, element: str | int) -> int:
        """Number of spin-orbitals of ``element`` (twice the orbitals)."""
        return 2 * self.n_orbitals(element)

    def irreps(self, element: str | int) -> str:
        """e3nn irreps string of the spatial orbitals of ``element`` (one irrep per shell)."""
        return "+".join(f"1x{s.irrep}" for s in self.shells(element))

    def orbital_labels(self, element: str | int) -> tuple[str, ...]:
        """Names of the spatial orbitals of ``element`` in order."""
        return tuple(name for s in self.shells(element) for name in orbital_labels(s))

    def shell_slices(self, element: str | int) -> tuple[slice, ...]:
        """Slices of each shell inside the spatial orbitals of ``element``."""
        out, start = [], 0
        for s in self.shells(element):
            out.append(slice(start, start + s.size))
            start += s.size
        return tuple(out)

    # -- per structure ----------------------------------------------------------------------
    def orbital_counts(self, numbers: Sequence[int] | np.ndarray) -> np.ndarray:
        """Spatial orbitals per atom for atomic ``numbers``, shape ``(N,)``."""
        numbers = np.asarray(numbers, dtype=int)
        table = {z: self.n_orbitals(z) for z in np.unique(numbers)}
        return np.array([table[z] for z in numbers], dtype=np.int64)

    def spin_orbital_offsets(self, numbers: Sequence[int] | np.ndarray) -> np.ndarray:
        """Offsets of each atom's spin-orbitals in the full matrix, shape ``(N + 1,)``; the
        last entry is the matrix dimension."""
        counts = 2 * self.orbital_counts(numbers)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def check_numbers(self, numbers: Sequence[int] | np.ndarray) -> None:
        """Raise :class:`BasisError` naming every element of ``numbers`` the basis lacks."""
        missing = sorted({chemical_symbols[z] for z in np.unique(numbers)} - set(self.elements))
        if missing:
            raise BasisError(
                f"elements {missing} are not in the basis (it has {list(self.elements)}); "
                "use a model or basis that covers them"
            )

    # -- value semantics --------------------------------------------------------------------
    def to_dict(self) -> dict[str, list[list[int]]]:
        """Plain-data form, e.g. ``{'Ni': [[4, 0], [3, 2]]}``; inverse of :meth:`from_dict`."""
        return {el: [[s.n, s.l] for s in shells] for el, shells in self._shells.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Iterable[Any]]) -> OrbitalBasis:
        """Rebuild a basis from :meth:`to_dict` output."""
        return cls(data)

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> OrbitalBasis:
        """Rebuild a basis from :meth:`to_json` output."""
        return cls(json.loads(text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrbitalBasis) and self._shells == other._shells

    def __hash__(self) -> int:
        return hash(tuple(self._shells.items()))

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{el!r}: [{', '.join(repr(s.label) for s in sh)}]" for el, sh in self._shells.items()
        )
        return f"OrbitalBasis({{{inner}}})"


def _symbol(element: str | int | np.integer) -> str:
    if isinstance(element, (int, np.integer)):
        if not 0 < int(element) < len(chemical_symbols):
            raise BasisError(f"no element with atomic number {element}")
        return chemical_symbols[int(element)]
    if isinstance(element, str) and element in atomic_numbers and element != "X":
        return element
    raise BasisError(f"unknown element {element!r}; use a chemical symbol such as 'Ni'")
