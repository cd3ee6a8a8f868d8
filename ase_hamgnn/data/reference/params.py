"""Parameter tables of the SYNTHETIC reference tight-binding model (not DFT, not a fit).

All energies in eV, distances in Å, moments in μB.  The values are chosen by hand to have
realistic magnitudes (DESIGN.md §3) and to give the band character of the paper's systems:
FM NiBr2 / NiBrI semiconductors with gaps of 1–2 eV, Fe/Ir(111) a metal.  They are not
fitted to any calculation and must not be quoted as material properties.

Per element (:class:`ElementParams`)
    ``shells`` basis shells; ``onsite`` bare level per shell; ``soc`` atomic spin-orbit
    constant ``zeta`` per shell (``zeta L.S``; literature magnitudes: Ni 3d 0.09, Fe 3d 0.06,
    Ir 5d 0.45, Br 4p 0.30, I 5p 0.63 eV); ``coordination`` shift per unit of the smooth
    coordination number ``rho_i = sum_j f_ij``; ``exchange`` Stoner-like constant ``I`` per
    shell in eV/μB with the splitting ``Delta(m) = I m (1 + gamma m^2)`` (``gamma`` =
    ``exchange_cubic`` in μB^-2, the non-linear |M| dependence); ``moment_shift`` level shift
    per μB² (an |M|-dependent, spin-independent term of H0); ``valence`` electrons in the basis
    shells of the neutral atom; ``moment`` the default (builder) moment.

Per element pair (:class:`PairParams`), all scaled by ``f(r) = exp(-decay (r - r0)) fc(r)``
    ``hopping`` bond integrals ``(V_sigma, V_pi, V_delta)`` at ``r0`` per shell pair (shell of
    the first element, shell of the second); ``crystal_field`` angular-overlap-model
    parameters ``(e_sigma, e_pi, e_delta)`` per ``(receiving element, shell)``: every
    neighbour adds ``sum_ch e_ch f(r) G_ch(d)`` to the on-site block (octahedral 10Dq = 3
    e_sigma - 4 e_pi); ``induced_exchange`` per ``(receiving element, shell)`` in eV/μB: the
    exchange field ``b_i = sum_j J f(r_ij) M_j`` from magnetic neighbours; ``spin_hopping``
    ``xi`` in 1/μB (hopping ``xi t0 (M_i + M_j).sigma``); ``moment_coupling`` ``beta``
    (hopping scaled by ``1 + beta M_i.M_j / (m_i m_j)``, beyond the Heisenberg form).

Per system: ``cutoff`` (Å) with a cosine taper of width ``taper`` (Å) below it, and
``overlap_energy`` ``E_S`` (eV): the optional overlap is ``S_ij = -t0_ij / E_S``.

Choices and their reasons
-------------------------
* Bases: s+d on Ni, Fe, Ir and s+p on Br, I (28 spin-orbitals per NiBrI formula unit, so a
  34x34 NiBrI supercell has 32 368).  Levels: ligand s deep (-14 / -12 eV), ligand p 2.7 /
  2.1 eV below the Ni d level (charge-transfer materials; I above Br), Ni 4s 4.8 eV above d.
* Hoppings follow Harrison's signs and ratios (``V_ss < 0``, ``V_sp > 0``, ``V_pp_sigma >
  0 > V_pp_pi``, ``V_pd_sigma < 0 < V_pd_pi`` with ``|pi / sigma| ~ 0.45``, dd ``sigma : pi :
  delta ~ -6 : 3 : -0.5``); nearest-neighbour metal-ligand ``|V_pd_sigma|`` 1.25-1.3 eV,
  Ir-Ir ``V_dd_sigma`` -1.1 eV (5d wider than 3d, Fe-Fe -0.55 eV); ``r0`` is the
  nearest-neighbour distance of the pair (in NiBr2 for the pairs NiBrI shares with it),
  decays 1.0-1.6 / Å.
* Crystal field: AOM ``e_sigma`` 0.8 eV (Br) / 0.6 eV (I), ``e_pi`` 0.08 / 0.072 eV, so
  that together with p-d hybridisation the octahedral e_g - t2g splitting opens the gap of
  the FM d8 ion (Br a stronger ligand than I, as in the spectrochemical series).
* Exchange: Ni ``I_d`` = 1.25 eV/μB with ``gamma`` = 0.03 μB^-2, i.e. a d splitting of
  2.8 eV at 2 μB; Fe ``I_d`` = 0.95 eV/μB, ``gamma`` = 0.02, 2.9 eV at 2.7 μB; s shells get
  0.15 eV/μB.  Induced exchange on ligand p shells 6-8 meV/μB per neighbour (splitting
  2|b| = 70-85 meV in the FM dihalides, 10-100 meV as for real ligands), on Ir 5d 8 meV/μB,
  between Ni (Fe) neighbours 4 (8) meV/μB.  Spin-dependent hopping ``xi`` = 0.02-0.03 / μB
  (6-12 % of a hopping at full moments); beyond-Heisenberg ``beta`` = 0.15 (Ni-Ni), 0.12
  (Fe-Fe).
* Spin-orbit constants: the atomic values of DESIGN.md §3 (listed above).
* Environment: coordination shifts 0.02-0.05 eV per neighbour (displacements move levels
  by tens of meV); ``moment_shift`` -0.04 (Ni) / -0.03 (Fe) eV/μB² on the d shell.
* Cutoffs 5.5 Å (dihalides: Ni-ligand up to the second shell, Ni-Ni and ligand-ligand
  nearest neighbours) and 5.0 Å (Fe/Ir: three neighbour shells of the fcc lattice), taper
  1 Å; ``E_S`` = 15 eV gives overlaps of at most ~0.09 and ``S(k)`` eigenvalues above 0.7.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["SYSTEMS", "ElementParams", "PairParams", "SystemParams"]


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ElementParams:
    """On-site parameters of one element (see the module docstring for units)."""

    shells: tuple[str, ...]
    onsite: tuple[float, ...]
    soc: tuple[float, ...]
    coordination: tuple[float, ...]
    valence: int
    exchange: tuple[float, ...] = ()
    exchange_cubic: float = 0.0
    moment_shift: tuple[float, ...] = ()
    moment: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.shells)
        for name in ("onsite", "soc", "coordination"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} needs one value per shell ({n})")
        for name in ("exchange", "moment_shift"):
            value = getattr(self, name) or (0.0,) * n
            if len(value) != n:
                raise ValueError(f"{name} needs one value per shell ({n})")
            object.__setattr__(self, name, tuple(value))

    @property
    def magnetic(self) -> bool:
        """True when the element carries a moment of its own (non-zero exchange)."""
        return any(self.exchange)


@dataclass(frozen=True)
class PairParams:
    """Two-centre and environment parameters of an element pair ``(first, second)``."""

    r0: float
    decay: float
    hopping: Mapping[tuple[str, str], tuple[float, ...]]
    crystal_field: Mapping[tuple[str, str], tuple[float, ...]] = field(default_factory=dict)
    induced_exchange: Mapping[tuple[str, str], float] = field(default_factory=dict)
    spin_hopping: float = 0.0
    moment_coupling: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hopping", "crystal_field", "induced_exchange"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))


@dataclass(frozen=True)
class SystemParams:
    """Everything that defines one reference system."""

    name: str
    elements: Mapping[str, ElementParams]
    pairs: Mapping[tuple[str, str], PairParams]
    cutoff: float
    taper: float = 1.0
    overlap_energy: float = 15.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "elements", _frozen(self.elements))
        object.__setattr__(self, "pairs", _frozen(self.pairs))
        if not 0 < self.taper < self.cutoff:
            raise ValueError("taper must be positive and below the cutoff")
        for a in self.elements:
            for b in self.elements:
                if (a, b) not in self.pairs and (b, a) not in self.pairs:
                    raise ValueError(f"system {self.name!r} lacks pair parameters for {a}-{b}")


# -- elements ---------------------------------------------------------------------------------
NI = ElementParams(
    shells=("4s", "3d"), onsite=(4.5, -0.3), soc=(0.0, 0.09), coordination=(0.05, 0.03),
    valence=10, exchange=(0.15, 1.25), exchange_cubic=0.03, moment_shift=(0.0, -0.04),
    moment=2.0,
)
FE = ElementParams(
    shells=("4s", "3d"), onsite=(3.5, 0.0), soc=(0.0, 0.06), coordination=(0.05, 0.03),
    valence=8, exchange=(0.15, 0.95), exchange_cubic=0.02, moment_shift=(0.0, -0.03),
    moment=2.7,
)
IR = ElementParams(shells=("6s", "5d"), onsite=(3.0, -1.0), soc=(0.0, 0.45),
                   coordination=(0.04, 0.02), valence=9)
BR = ElementParams(shells=("4s", "4p"), onsite=(-14.0, -3.0), soc=(0.0, 0.30),
                   coordination=(0.0, 0.04), valence=7)
I_ = ElementParams(shells=("5s", "5p"), onsite=(-12.0, -2.4), soc=(0.0, 0.63),
                   coordination=(0.0, 0.04), valence=7)

# -- pairs of the nickel dihalides --------------------------------------------------------------
NI_NI = PairParams(
    r0=3.70, decay=1.0,
    hopping={("4s", "4s"): (-0.20,), ("4s", "3d"): (-0.10,),
             ("3d", "3d"): (-0.22, 0.10, -0.02)},
    induced_exchange={("Ni", "3d"): 0.004},
    spin_hopping=0.03, moment_coupling=0.15,
)
NI_BR = PairParams(
    r0=2.54, decay=1.3,
    hopping={("4s", "4s"): (-0.80,), ("4s", "4p"): (1.30,), ("3d", "4s"): (-0.80,),
             ("3d", "4p"): (-1.25, 0.55)},
    crystal_field={("Ni", "3d"): (0.80, 0.08, 0.0), ("Br", "4p"): (0.15, -0.05)},
    induced_exchange={("Br", "4s"): 0.002, ("Br", "4p"): 0.006},
    spin_hopping=0.03,
)
NI_I = PairParams(
    r0=2.76, decay=1.2,
    hopping={("4s", "5s"): (-0.80,), ("4s", "5p"): (1.40,), ("3d", "5s"): (-0.70,),
             ("3d", "5p"): (-1.30, 0.60)},
    crystal_field={("Ni", "3d"): (0.60, 0.072, 0.0), ("I", "5p"): (0.15, -0.05)},
    induced_exchange={("I", "5s"): 0.002, ("I", "5p"): 0.007},
    spin_hopping=0.03,
)
BR_BR = PairParams(
    r0=3.70, decay=1.2,
    hopping={("4s", "4s"): (-0.15,), ("4s", "4p"): (0.25,), ("4p", "4p"): (0.55, -0.12)},
)
I_I = PairParams(
    r0=3.90, decay=1.1,
    hopping={("5s", "5s"): (-0.18,), ("5s", "5p"): (0.30,), ("5p", "5p"): (0.65, -0.15)},
)
BR_I = PairParams(
    r0=3.60, decay=1.15,
    hopping={("4s", "5s"): (-0.16,), ("4s", "5p"): (0.27,), ("4p", "5s"): (0.27,),
             ("4p", "5p"): (0.60, -0.13)},
)

# -- pairs of Fe/Ir(111) ------------------------------------------------------------------------
FE_FE = PairParams(
    r0=2.715, decay=1.5,
    hopping={("4s", "4s"): (-0.60,), ("4s", "3d"): (-0.40,),
             ("3d", "3d"): (-0.55, 0.30, -0.05)},
    induced_exchange={("Fe", "3d"): 0.008},
    spin_hopping=0.02, moment_coupling=0.12,
)
FE_IR = PairParams(
    r0=2.57, decay=1.5,
    hopping={("4s", "6s"): (-0.80,), ("4s", "5d"): (-0.50,), ("3d", "6s"): (-0.50,),
             ("3d", "5d"): (-0.80, 0.40, -0.06)},
    crystal_field={("Fe", "3d"): (0.10, 0.02, 0.0), ("Ir", "5d"): (0.10, 0.02, 0.0)},
    induced_exchange={("Ir", "6s"): 0.003, ("Ir", "5d"): 0.008},
    spin_hopping=0.02,
)
IR_IR = PairParams(
    r0=2.715, decay=1.6,
    hopping={("6s", "6s"): (-1.00,), ("6s", "5d"): (-0.70,),
             ("5d", "5d"): (-1.10, 0.55, -0.08)},
)

_DIHALIDE_PAIRS = {("Ni", "Ni"): NI_NI, ("Ni", "Br"): NI_BR, ("Br", "Br"): BR_BR}

#: The three reference systems by name.
SYSTEMS: Mapping[str, SystemParams] = MappingProxyType({
    "nibr2": SystemParams("nibr2", {"Ni": NI, "Br": BR}, _DIHALIDE_PAIRS, cutoff=5.5),
    "nibri": SystemParams(
        "nibri", {"Ni": NI, "Br": BR, "I": I_},
        {**_DIHALIDE_PAIRS, ("Ni", "I"): NI_I, ("I", "I"): I_I, ("Br", "I"): BR_I},
        cutoff=5.5,
    ),
    "feir": SystemParams(
        "feir", {"Fe": FE, "Ir": IR},
        {("Fe", "Fe"): FE_FE, ("Fe", "Ir"): FE_IR, ("Ir", "Ir"): IR_IR}, cutoff=5.0,
    ),
})
