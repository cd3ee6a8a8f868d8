"""The one typed configuration of a HamGNN++ model, stored in every checkpoint."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np
from e3nn import o3

from ase_hamgnn.basis import OrbitalBasis
from ase_hamgnn.errors import ConfigError

__all__ = ["ModelConfig", "coupling_form"]


# -- typed checks of configuration values (shared with ase_hamgnn.train.loop) --------------------
class Check(NamedTuple):
    """A test of one configuration value and the words for what it must be."""

    ok: Callable[[Any], bool]
    expected: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    return ((isinstance(value, int | float | np.integer | np.floating)
             and not isinstance(value, bool | np.bool_)) and math.isfinite(float(value)))


def integer(low: int) -> Check:
    """An integer ``>= low`` (not a bool, not a float)."""
    return Check(lambda v: _is_int(v) and v >= low, f"an integer >= {low}")


def number(low: float, *, strict: bool) -> Check:
    """A finite number ``> low`` (``strict``) or ``>= low``."""
    if strict:
        return Check(lambda v: _is_number(v) and v > low, f"a finite number > {low:g}")
    return Check(lambda v: _is_number(v) and v >= low, f"a finite number >= {low:g}")


def one_of(*choices: str) -> Check:
    """One of the strings ``choices``."""
    return Check(lambda v: isinstance(v, str) and v in choices,
                 "one of " + ", ".join(repr(c) for c in choices))


BOOLEAN = Check(lambda v: isinstance(v, bool | np.bool_), "true or false")
TEXT = Check(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string")


def check_values(values: Mapping[str, Any], checks: Mapping[str, Check], where: str) -> None:
    """Raise :class:`ConfigError` for the first entry of ``values`` that fails its check,
    naming the key, ``where`` (e.g. the file), the value and what it must be."""
    for key, check in checks.items():
        if key not in values:
            continue
        value = values[key]
        try:
            good = bool(check.ok(value))
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ConfigError(f"{key} = {value!r} ({type(value).__name__}) in {where}: expected "
                              f"{check.expected}")


#: Values of ``ModelConfig.moment_coupling`` besides ``False``; ``True`` means ``"raw"``.
MOMENT_COUPLINGS = ("raw", "normalized")

#: Checks of the ModelConfig fields that are plain values (``basis`` and the tables are
#: checked by ModelConfig itself).
MODEL_CHECKS: dict[str, Check] = {
    "cutoff": number(0, strict=True),
    "node_irreps": TEXT,
    "pair_multiplicity": integer(1),
    "n_layers": integer(0),
    "lmax_sh": integer(0),
    "n_radial": integer(1),
    "radial_hidden": integer(1),
    "n_moment_basis": integer(1),
    "moment_max": number(0, strict=True),
    "avg_neighbors": number(0, strict=True),
    "moment_coupling": Check(lambda v: isinstance(v, bool | np.bool_) or v in MOMENT_COUPLINGS,
                             "true, false or one of " + ", ".join(map(repr, MOMENT_COUPLINGS))),
    "onsite_from_edges": BOOLEAN,
    "form": one_of("physics", "general"),
    "onsite_bias": BOOLEAN,
    "exchange_channels": integer(1),
    "onsite_weight": one_of("shell", "orbital"),
    "onsite_environment": BOOLEAN,
    "two_centre": BOOLEAN,
    "two_centre_scale": BOOLEAN,
    "bond_moment_term": BOOLEAN,
}


def check_model_values(values: Mapping[str, Any], where: str) -> None:
    """Check the plain values of a ``[model]`` table (or a ModelConfig's fields) and its
    ``magnetic`` list and ``valence`` table; raise :class:`ConfigError` naming ``where``."""
    check_values(values, MODEL_CHECKS, where)
    magnetic = values.get("magnetic", ())
    if isinstance(magnetic, str) or not all(isinstance(m, str) for m in _items(magnetic)):
        raise ConfigError(f"magnetic = {magnetic!r} in {where}: expected a list of element "
                          "symbols, e.g. [\"Ni\"]")
    valence = values.get("valence", {})
    if not isinstance(valence, Mapping):
        raise ConfigError(f"valence = {valence!r} in {where}: expected a table of element -> "
                          "valence electrons, e.g. {Ni = 10.0}")
    check_values({f"valence.{k}": v for k, v in valence.items()},
                 {f"valence.{k}": number(0, strict=False) for k in valence}, where)


def _items(value: Any) -> list[Any]:
    try:
        return list(value)
    except TypeError:
        return [None]


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters that define a HamGNN++ network; the model is rebuilt from this alone.

    Attributes
    ----------
    basis : element -> list of ``[n, l]`` shells (``OrbitalBasis.to_dict()``).
    cutoff : graph cutoff in Å; every Hamiltonian block between atoms closer than this is
        predicted (and none beyond).
    magnetic : elements that carry moments.
    valence : valence electrons per element held by the basis (for the Fermi level).
    node_irreps : hidden node features (e3nn irreps string).
    pair_multiplicity : copies of each irrep in the pair features.  The on-site heads read
        them too, so every on-site output of one l and parity (crystal field of each shell
        pair, spin-orbit, exchange weights) is a combination of this many vectors: 2 left
        the Fe 3d crystal field of the PySCF Fe3 sets 90 meV off, 4 (the default) fits it.
    n_layers : interaction ("orbital convolution") layers T.
    lmax_sh : largest l of the edge spherical harmonics.
    n_radial : Bessel functions for distances.
    radial_hidden : width of the radial MLPs.
    n_moment_basis, moment_max : Gaussian expansion of ``|M|`` on ``[0, moment_max]`` μB.
    avg_neighbors : normalization of the message sums.
    moment_coupling : let H0 depend on rotation- and time-reversal-invariant products of the
        moments of each edge (beyond the paper's Heisenberg form; every symmetry stays exact).
        ``False`` (the paper), ``True`` or ``"raw"``: ``M_i·M_j`` in μB² as one more input
        of the radial network (as in older checkpoints); ``"normalized"``: the angle
        ``cos θ_ij = M̂_i·M̂_j`` (0 where a moment vanishes) and ``|M_i||M_j| / moment_max²``,
        two inputs of order one next to the Bessel features.
    onsite_from_edges : add the neighbour sum of the pair features to the on-site features,
        so on-site blocks see the environment's higher-l tensors (the l = 4 part of a d-shell
        crystal field needs them when node features stop at l = 3).
    form : ``"physics"`` (H0 + Heisenberg-type H_mag, the product) or ``"general"``: the
        ablation baseline of the paper's Eq. (7), unconstrained spin blocks from features
        that see the moment vectors, made time-reversal equivariant by averaging the network
        at ``M`` and ``-M``.
    onsite_bias : add a learnable on-site energy per species and pair of shells with equal
        l (identity in m, so every symmetry stays exact).  Training starts it at the training
        set's average on-site block, so the network learns only the deviations from it; this
        matters for ab initio data, whose on-site levels lie eV apart.  (``"physics"`` form.)
    exchange_channels : number C of weight operators in H_mag (``"physics"`` form).  1 is the
        paper's Eq. (10); C > 1 sums C copies, each with its own ``w``, ``J`` and ``A``
        (see :mod:`ase_hamgnn.model.assembly`), so that the moments of an atom and of its
        neighbours may polarize different orbitals.  Beyond the paper; symmetries stay exact.
    onsite_weight : ``"shell"`` (the paper: ``w_kk`` is one learnable scalar per species and
        pair of equal-l shells, identity in m) or ``"orbital"``: that scalar plus an
        equivariant, environment-dependent symmetric block from the on-site features, so the
        exchange splitting of an atom may differ between orbitals of one shell (e.g. d
        orbitals pointing at a neighbour).  Beyond the paper; symmetries stay exact.
    onsite_environment : with ``onsite_bias``, make the on-site levels depend on the
        environment: per atom and pair of equal-l shells, a sum over neighbours of radial
        functions times ``1``, ``cos θ_ij`` and ``|M_i||M_j| / moment_max²``, plus terms in the
        atom's own ``|M_i|`` (see :mod:`ase_hamgnn.model.onsite`), identity in m.  Training
        fits it by linear least squares before the first epoch, next to the average on-site
        blocks; the network learns the rest.  Every symmetry stays exact.  (``"physics"``
        form; older checkpoints have no key: ``False``.)
    two_centre : add to every bond block ``h0_ij`` a Slater–Koster-like two-centre term that
        depends only on the bond vector ``r_j - r_i`` and the two elements: per pair of shells
        ``(l_a, l_b)`` one learnable radial function (on the ``n_radial`` Bessel functions with
        the smooth cutoff) per σ, π, δ channel, i.e. per ``L`` of ``l_a ⊗ l_b`` with
        ``(-1)^L = (-1)^(l_a + l_b)``, times ``Y_L`` of the bond direction (see
        :mod:`ase_hamgnn.model.baseline`).  Training fits it by linear least squares to the
        training set before the first epoch, so the network learns only the residual (the
        environment, moment and spin dependence).  It leaves the on-site blocks alone: combine
        it with ``onsite_bias``, the on-site counterpart.  Beyond the paper; every symmetry
        stays exact.  (``"physics"`` form; older checkpoints have no key: ``False``.)
    two_centre_scale : with ``two_centre``, multiply the network's own ``h0`` bond output by a
        fixed scale per element pair and shell pair (a buffer stored in the checkpoint): the
        root mean square of the training targets' residual after the fitted two-centre term,
        at least 0.1 meV, set by training with the fit.  Every block is then learned at unit
        scale, the untrained network starts as small as that residual, and shell pairs the
        two-centre term already explains stay explained by it (the network can hardly move
        them).  The per-shell-pair constant keeps every symmetry exact.
    bond_moment_term : add ``(M_i·M_j / moment_max²) h1_ij`` to the spin-independent bond
        blocks: a hopping that depends on the angle between the moments (double exchange;
        the reference model's ``beta``).  ``h1`` is a second ``h0``-type output of the bond
        head and, with ``two_centre``, a second two-centre function fitted together with the
        first (see :mod:`ase_hamgnn.model.baseline`).  Measured: a model with
        ``moment_coupling`` alone (``cos θ_ij`` as a radial input) never learned this term
        (27 meV errors on ferromagnetic Ni-Ni bonds of the reference data), while the fitted
        function leaves 0.003 meV of it.  Invariant under rotations, inversion and time
        reversal, symmetric in ``i, j``.  (``"physics"`` form; older checkpoints have no key:
        ``False``.)
    """

    basis: dict[str, list[list[int]]]
    cutoff: float = 7.0
    magnetic: tuple[str, ...] = ()
    valence: dict[str, float] = field(default_factory=dict)
    node_irreps: str = "32x0e+8x0o+8x1o+8x1e+4x2e+4x2o+2x3o+2x3e"
    pair_multiplicity: int = 4
    n_layers: int = 2
    lmax_sh: int = 4
    n_radial: int = 8
    radial_hidden: int = 32
    n_moment_basis: int = 8
    moment_max: float = 4.0
    avg_neighbors: float = 12.0
    moment_coupling: bool | str = False
    onsite_from_edges: bool = True
    form: str = "physics"
    onsite_bias: bool = False
    exchange_channels: int = 1
    onsite_weight: str = "shell"
    onsite_environment: bool = False
    two_centre: bool = False
    two_centre_scale: bool = False
    bond_moment_term: bool = False

    def __post_init__(self) -> None:
        check_model_values({f.name: getattr(self, f.name) for f in fields(self)}, "ModelConfig")
        basis = OrbitalBasis(self.basis)  # validates
        object.__setattr__(self, "basis", basis.to_dict())
        object.__setattr__(self, "magnetic", tuple(self.magnetic))
        object.__setattr__(self, "valence", {str(k): float(v) for k, v in self.valence.items()})
        unknown = set(self.magnetic) - set(basis.elements)
        if unknown:
            raise ValueError(f"magnetic elements {sorted(unknown)} are not in the basis")
        if not self.cutoff > 0:
            raise ValueError(f"cutoff must be positive (Å), got {self.cutoff}")
        if self.n_layers < 0 or self.pair_multiplicity < 1 or self.n_radial < 1:
            raise ValueError("n_layers >= 0, pair_multiplicity >= 1 and n_radial >= 1 required")
        if self.form not in ("physics", "general"):
            raise ValueError(f"form must be 'physics' or 'general', got {self.form!r}")
        if self.onsite_bias and self.form != "physics":
            raise ValueError("onsite_bias needs form='physics'")
        if self.onsite_environment and not self.onsite_bias:
            raise ValueError("onsite_environment needs onsite_bias=True (the average levels it "
                             "moves)")
        if self.two_centre and self.form != "physics":
            raise ValueError("two_centre needs form='physics'")
        if self.two_centre_scale and not self.two_centre:
            raise ValueError("two_centre_scale needs two_centre=True")
        if self.bond_moment_term and self.form != "physics":
            raise ValueError("bond_moment_term needs form='physics'")
        if not (isinstance(self.exchange_channels, int) and self.exchange_channels >= 1):
            raise ValueError(f"exchange_channels must be an integer >= 1, got "
                             f"{self.exchange_channels!r}")
        if self.onsite_weight not in ("shell", "orbital"):
            raise ValueError(f"onsite_weight must be 'shell' or 'orbital', got "
                             f"{self.onsite_weight!r}")
        if self.form != "physics" and (self.exchange_channels != 1
                                       or self.onsite_weight != "shell"):
            raise ValueError("exchange_channels and onsite_weight belong to form='physics'")
        irreps = o3.Irreps(self.node_irreps)
        if not any(ir.l == 0 and ir.p == 1 for _, ir in irreps):
            raise ValueError("node_irreps needs scalars (0e)")

    @property
    def orbital_basis(self) -> OrbitalBasis:
        return OrbitalBasis(self.basis)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON- and ``torch.load(weights_only=True)``-safe)."""
        d = asdict(self)
        d["magnetic"] = list(self.magnetic)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; is the checkpoint "
                             "from a newer ase-hamgnn?")
        return cls(**data)


def coupling_form(value: bool | str) -> str:
    """``ModelConfig.moment_coupling`` as ``"off"``, ``"raw"`` or ``"normalized"``."""
    if value is False or value is None:
        return "off"
    if value is True:
        return "raw"
    return str(value)
