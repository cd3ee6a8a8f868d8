"""Ab initio Hamiltonians from spin-constrained non-collinear Kohn-Sham with PySCF.

PySCF (an optional dependency: ``pip install ase-hamgnn[pyscf]``) runs generalized
(two-component) Kohn-Sham on molecules and clusters.  This module adds what a training set
for HamGNN++ needs: each magnetic atom's spin moment is held along a target direction by a
penalty field, the self-consistent Fock matrix F and the overlap S are converted from PySCF's
atomic-orbital layout to ours, and a non-periodic :class:`~ase_hamgnn.TBHamiltonian` (only
``R = (0, 0, 0)``) comes back with diagnostics.

Physics
-------
* Functional: LDA (``'lda,vwn'``) with ``collinear='ncol'``; PySCF's non-collinear GGA needs
  the multi-collinear scheme, which is far too slow for this purpose.
* Spin-orbit coupling (optional): spin-orbital X2C1e one-electron Hamiltonian
  (scalar-relativistic + one-electron SOC; no two-electron spin-orbit screening).
* Atom moments: ``m_A^k = Tr[(sigma_k (x) W_A) D]`` with the symmetric Mulliken weight
  ``W_A = (S P_A + P_A S) / 2`` (the paper's weight operator with ``w = S``), in μB.
* Constraint ``'full'`` (default): ``E_pen = lambda sum_A |m_A - |m_A| e_A|^2
  = 2 lambda sum_A |m_A|^2 (1 - cos theta_A)``; only directions are held, magnitudes relax.
  ``'transverse'``: ``E_pen = lambda sum_A |m_A - (m_A.e_A) e_A|^2``, which also admits the
  anti-parallel state (seen in practice; use ``'full'``).  The potential is
  ``V_pen = sum_A (g_A . sigma) (x) W_A`` with ``g_A = dE_pen/dm_A``.  The converged F
  contains ``V_pen`` (the constraining field of the constrained state); pass
  ``include_penalty=False`` to get ``F - V_pen``.
* Occupations: Fermi smearing implemented here for the generalized (spin-orbital) case;
  PySCF's own smearing treats spin-orbitals as doubly occupied.
* Initial guess: a collinear UKS (second-order solver), cached per geometry, whose
  magnetisation is rotated per atom onto the targets; at a geometry without a cached UKS,
  the converged density of the previous run (if it is close), spin-rotated per atom onto
  the new targets, which saves the collinear SCF.

Conventions converted
---------------------
PySCF's generalized matrices are ``[all AOs spin up, all AOs spin down]``; ours are per atom
``[orbitals up, orbitals down]`` (see :mod:`ase_hamgnn.basis`).  PySCF's real spherical AOs
are ordered per ``l`` as ``p: x, y, z`` and ``m = -l..l`` for ``l >= 2``
(``d: xy, yz, z^2, xz, x^2-y^2``), all with positive prefactors; :func:`pyscf_orbital_transform`
gives the orthogonal ``T_l`` with ``Y_ours = T_l Y_pyscf`` (built from the OpenMX matrices of
:mod:`ase_hamgnn.data.io.conventions` and a permutation) and is tested against the AO values and
by rotation.  Energies are converted from Hartree to eV (:mod:`ase_hamgnn.data.io.units`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize
from ase import Atoms

from ase_hamgnn.basis import OrbitalBasis, Shell
from ase_hamgnn.data.io.conventions import orbital_transform
from ase_hamgnn.data.io.units import hartree_to_ev
from ase_hamgnn.errors import HamGNNError
from ase_hamgnn.geometry import read_moments
from ase_hamgnn.hamiltonian import TBHamiltonian
from ase_hamgnn.symmetry import PAULI, su2_from_rotation

__all__ = [
    "ConstrainedGKS",
    "ConstraintError",
    "GKSResult",
    "GKSSettings",
    "PySCFMissingError",
    "SCFConvergenceError",
    "ao_to_ours",
    "basis_from_mol",
    "pyscf_orbital_transform",
]


# -- errors -------------------------------------------------------------------------------------
class PySCFMissingError(HamGNNError, ImportError):
    """PySCF is not installed (it is an optional dependency)."""


class SCFConvergenceError(HamGNNError, RuntimeError):
    """The constrained SCF did not reach a self-consistent density."""


class ConstraintError(HamGNNError, RuntimeError):
    """The converged moments miss their target directions by more than allowed."""


def _pyscf():
    try:
        import pyscf
        from pyscf import dft, gto, lib
    except ImportError:
        raise PySCFMissingError(
            "ase_hamgnn.data.pyscf.gks needs PySCF; install it with "
            "`pip install 'ase-hamgnn[pyscf]'` (or `pip install pyscf`)"
        ) from None
    return pyscf, gto, dft, lib


# -- basis and layout ---------------------------------------------------------------------------
# position of each PySCF orbital (m = -l..l; p is x, y, z) in the OpenMX order of conventions.py
_PYSCF_IN_OPENMX = {0: [0], 1: [0, 1, 2], 2: [2, 4, 0, 3, 1], 3: [6, 4, 2, 0, 1, 3, 5]}


def pyscf_orbital_transform(l: int) -> np.ndarray:  # noqa: E741
    """Orthogonal ``T_l`` (float64, ``(2l+1, 2l+1)``) with ``Y_ours = T_l Y_pyscf``.

    Parameters
    ----------
    l : int
        Angular momentum, 0 to 3.

    Examples
    --------
    >>> t = pyscf_orbital_transform(2)
    >>> bool(np.allclose(t @ t.T, np.eye(5)))
    True
    """
    l = int(l)  # noqa: E741
    if l not in _PYSCF_IN_OPENMX:
        raise ValueError(f"PySCF shells with l = {l} are not supported (l = 0..3); use a basis "
                         "without g functions")
    perm = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.float64)
    perm[_PYSCF_IN_OPENMX[l], np.arange(2 * l + 1)] = 1.0  # Y_openmx = perm @ Y_pyscf
    return np.asarray(orbital_transform("openmx", l), dtype=np.float64) @ perm


def _atom_shells(mol, atom: int) -> list[int]:
    """Angular momenta of the AO shells of one atom in PySCF's AO order (contractions
    expanded)."""
    ls = []
    for b in range(mol.nbas):
        if mol.bas_atom(b) == atom:
            ls.extend([int(mol.bas_angular(b))] * int(mol.bas_nctr(b)))
    return ls


def basis_from_mol(mol) -> OrbitalBasis:
    """Our :class:`OrbitalBasis` for the AOs of a PySCF molecule, shells in PySCF's order.

    Principal numbers only label shells: the k-th shell of angular momentum ``l`` of an
    element gets ``n = l + k``.
    """
    shells: dict[str, list[Shell]] = {}
    for atom in range(mol.natm):
        symbol = _element(mol.atom_pure_symbol(atom))
        ls = _atom_shells(mol, atom)
        seen: dict[int, int] = {}
        out = []
        for l in ls:  # noqa: E741
            seen[l] = seen.get(l, 0) + 1
            out.append(Shell(l + seen[l], l))
        if symbol in shells and shells[symbol] != out:
            raise ValueError(f"atoms of {symbol} carry different basis sets; use one per element")
        shells[symbol] = out
    return OrbitalBasis(shells)


def _element(symbol: str) -> str:
    return symbol[0].upper() + symbol[1:].lower()


def ao_to_ours(mol) -> np.ndarray:
    """Real orthogonal ``C`` (``(2 n_ao, 2 n_ao)``) with ``M_ours = C M_pyscf C^T`` for any
    generalized (spin-orbital) matrix of ``mol``.

    ``M_pyscf`` is in PySCF's layout ``[AOs up, AOs down]``; ``M_ours`` is spin-major per atom
    with our real-orbital order (see the module docstring).
    """
    n = int(mol.nao)
    spatial = scipy.linalg.block_diag(*[
        pyscf_orbital_transform(l) for atom in range(mol.natm) for l in _atom_shells(mol, atom)
    ])
    spin = np.kron(np.eye(2), spatial)
    rows = []
    for p0, p1 in mol.aoslice_by_atom()[:, 2:]:
        rows.extend(range(p0, p1))
        rows.extend(range(n + p0, n + p1))
    return spin[np.asarray(rows, dtype=np.int64)]


# -- constrained SCF pieces ---------------------------------------------------------------------
def _atom_weights(mol, overlap: np.ndarray) -> list[np.ndarray]:
    """Symmetric Mulliken weights ``W_A = (S P_A + P_A S) / 2``, one ``(n, n)`` per atom."""
    weights = []
    for p0, p1 in mol.aoslice_by_atom()[:, 2:]:
        proj = np.zeros(mol.nao, dtype=np.float64)
        proj[p0:p1] = 1.0
        weights.append(0.5 * (overlap * proj[None, :] + proj[:, None] * overlap))
    return weights


def _moments(dm: np.ndarray, weights: Sequence[np.ndarray]) -> np.ndarray:
    """``m[A, k] = Re Tr[(sigma_k (x) W_A) D]`` in μB, ``D`` in PySCF's layout."""
    out = np.empty((len(weights), 3), dtype=np.float64)
    for a, w in enumerate(weights):
        for k in range(3):
            out[a, k] = np.sum(np.kron(PAULI[k], w) * dm.T).real
    return out


def _penalty(moments: np.ndarray, targets: np.ndarray, active: np.ndarray, strength: float,
             mode: str) -> tuple[float, np.ndarray]:
    """Penalty energy (Ha) and its gradient ``dE/dm`` (Ha/μB) per atom."""
    m = moments
    size = np.linalg.norm(m, axis=1, keepdims=True)
    along = np.einsum("ak,ak->a", m, targets)[:, None]
    if mode == "transverse":
        u = m - along * targets
        grad = 2.0 * strength * u
    else:
        u = m - size * targets
        unit = m / np.maximum(size, 1e-12)
        grad = 2.0 * strength * (2.0 * m - size * targets - unit * along)
    u = u * active[:, None]
    grad = grad * active[:, None]
    return float(strength * np.sum(u * u)), grad


def _penalty_potential(grad: np.ndarray, weights: Sequence[np.ndarray]) -> np.ndarray:
    """``V = sum_A (g_A . sigma) (x) W_A`` in PySCF's layout (Ha)."""
    n = weights[0].shape[0]
    v = np.zeros((2 * n, 2 * n), dtype=np.complex128)
    for g, w in zip(grad, weights):
        if np.any(g):
            v += np.kron(np.einsum("k,kij->ij", g, PAULI), w)
    return v


class _DirectionConstraint:
    """PySCF mixin: adds the direction penalty to ``get_veff`` (energy in the ``exc`` tag)."""

    __name_mixin__ = "DirectionConstraint"
    _keys = {"targets", "active", "strength", "mode", "weights", "e_penalty", "v_penalty",
             "moments"}

    def __init__(self, mf, targets, active, strength, mode):
        self.__dict__.update(mf.__dict__)
        self.targets, self.active = targets, active
        self.strength, self.mode = strength, mode
        self.weights = _atom_weights(mf.mol, mf.mol.intor_symmetric("int1e_ovlp"))
        self.e_penalty, self.v_penalty, self.moments = 0.0, None, None

    def penalty(self, dm):
        m = _moments(dm, self.weights)
        e, g = _penalty(m, self.targets, self.active, self.strength, self.mode)
        return e, _penalty_potential(g, self.weights), m

    def get_veff(self, mol=None, dm=None, dm_last=None, vhf_last=None, hermi=1):
        _, _, _, lib = _pyscf()
        v = super().get_veff(mol, dm, dm_last, vhf_last, hermi)
        dm = self.make_rdm1() if dm is None else np.asarray(dm)
        if dm.ndim != 2:  # response calls: no penalty
            return v
        e, pot, m = self.penalty(dm)
        self.e_penalty, self.v_penalty, self.moments = e, pot, m
        # keep vj/vk tags: PySCF's incremental J build must not see the penalty
        return lib.tag_array(np.asarray(v) + pot, ecoul=v.ecoul, exc=v.exc + e,
                             vj=getattr(v, "vj", None), vk=getattr(v, "vk", None))


class _SpinOrbitalSmearing:
    """PySCF mixin: Fermi smearing of spin-orbital occupations (each holds 0..1 electron)."""

    __name_mixin__ = "SpinOrbitalSmearing"
    _keys = {"sigma", "entropy", "mu"}

    def __init__(self, mf, sigma):
        self.__dict__.update(mf.__dict__)
        self.sigma, self.entropy, self.mu = sigma, 0.0, None

    def get_occ(self, mo_energy=None, mo_coeff=None):
        e = np.asarray(self.mo_energy if mo_energy is None else mo_energy, dtype=np.float64)
        n_el = float(self.mol.nelectron)

        def occ(mu):
            return 0.5 * (1.0 - np.tanh(0.5 * (e - mu) / self.sigma))

        lo, hi = e.min() - 50 * self.sigma, e.max() + 50 * self.sigma
        self.mu = scipy.optimize.brentq(lambda mu: occ(mu).sum() - n_el, lo, hi, xtol=1e-14)
        f = occ(self.mu)
        g = f[(f > 1e-300) & (f < 1.0 - 1e-16)]
        self.entropy = float(-np.sum(g * np.log(g) + (1 - g) * np.log(1 - g)))
        return f

    def get_grad(self, mo_coeff, mo_occ, fock=None):
        if fock is None:
            fock = self.get_fock(dm=self.make_rdm1(mo_coeff, mo_occ))
        fmo = mo_coeff.conj().T @ fock @ mo_coeff
        rows, cols = np.tril_indices(len(mo_occ), -1)
        return ((mo_occ[cols] - mo_occ[rows]) * fmo[rows, cols]).ravel()


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest proper rotation taking unit vector ``a`` to unit vector ``b``."""
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        perp = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(perp) < 1e-6:
            perp = np.cross(a, [0.0, 1.0, 0.0])
        axis, s, c = perp / np.linalg.norm(perp), 0.0, -1.0
        k = np.cross(np.eye(3), axis)
        return np.eye(3) + 2.0 * k @ k
    axis = axis / s
    k = np.cross(np.eye(3), axis)
    return np.eye(3) + s * k + (1.0 - c) * k @ k


def _spin_rotate_density(mol, dm: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Rotate the spin of each atom's orbitals from direction ``old[A]`` to ``new[A]``:
    ``D -> U D U^dagger`` with ``U = sum_A U_A (x) P_A`` (PySCF layout)."""
    n = int(mol.nao)
    diag = np.zeros((2, 2, n), dtype=np.complex128)
    for a, (p0, p1) in enumerate(mol.aoslice_by_atom()[:, 2:]):
        u = su2_from_rotation(_rotation_between(old[a], new[a]))
        diag[:, :, p0:p1] = u[:, :, None]
    big = np.zeros((2 * n, 2 * n), dtype=np.complex128)
    for s in range(2):
        for t in range(2):
            big[s * n:(s + 1) * n, t * n:(t + 1) * n] = np.diag(diag[s, t])
    return big @ dm @ big.conj().T


# -- settings and results -----------------------------------------------------------------------
@dataclass(frozen=True)
class GKSSettings:
    """Settings of a constrained non-collinear GKS run (PySCF works in atomic units).

    Attributes
    ----------
    basis : PySCF basis name, e.g. ``'sto-3g'``.
    xc : exchange-correlation functional; LDA only (``collinear='ncol'``).
    soc : spin-orbital X2C1e Hamiltonian (scalar-relativistic + one-electron SOC).
    strength_ha : penalty strength lambda in Ha/μB²; 0.01-0.05 works, 1 diverges. The angle
        error scales like 1/lambda.
    penalty : ``'full'`` (default) or ``'transverse'`` (admits anti-parallel moments).
    smearing_ha : Fermi smearing width in Ha (0 disables it; needed for 3d clusters).
    grid_level : PySCF DFT grid level (0-9).
    conv_tol : SCF energy tolerance in Ha (PySCF's gradient tolerance is its square root).
    max_cycle : most SCF cycles.
    guess_spin : 2 S_z of the collinear UKS guess; default from the moment sizes.
    charge : total charge.
    include_penalty : keep the constraining field ``V_pen`` in the returned H.
    max_residual_ha : largest accepted ``max|F D S - S D F|`` (Ha) before raising.
    max_angle_deg : largest accepted angle (degrees) between a moment and its target.
    """

    basis: str = "sto-3g"
    xc: str = "lda,vwn"
    soc: bool = False
    strength_ha: float = 0.05
    penalty: str = "full"
    smearing_ha: float = 0.005
    grid_level: int = 3
    conv_tol: float = 1e-8
    max_cycle: int = 150
    guess_spin: int | None = None
    charge: int = 0
    include_penalty: bool = True
    max_residual_ha: float = 1e-3
    max_angle_deg: float = 1.0

    def __post_init__(self) -> None:
        if self.penalty not in ("full", "transverse"):
            raise ValueError(f"penalty must be 'full' or 'transverse', got {self.penalty!r}")
        if not self.strength_ha > 0:
            raise ValueError(f"strength_ha must be positive (Ha/μB²), got {self.strength_ha}")
        if self.smearing_ha < 0 or self.conv_tol <= 0 or self.max_cycle < 1:
            raise ValueError("need smearing_ha >= 0, conv_tol > 0 and max_cycle >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class GKSResult:
    """A converged constrained GKS run.

    Attributes
    ----------
    hamiltonian : TBHamiltonian with H = F (eV) and S, our basis, ``R = (0, 0, 0)`` only;
        its geometry carries the converged moments (μB).
    targets : (N, 3) unit target directions (zero rows: unconstrained atoms).
    moments : (N, 3) converged Mulliken spin moments, μB.
    energy_ev : total energy including the penalty, eV.
    penalty_energy_ev : penalty energy, eV.
    penalty_field_ev : largest ``|g_A|`` of the constraining field, eV/μB.
    residual_ha : ``max|F D S - S D F|``, Ha.
    cycles, wall_time_s, guess_time_s, guess : SCF cycles, seconds, and the guess used
        (``'uks'``, ``'uks-cached'`` or ``'previous'``).
    converged : PySCF's flag (may read False after a converged loop; ``residual_ha`` is the
        reliable measure).
    """

    hamiltonian: TBHamiltonian
    targets: np.ndarray
    moments: np.ndarray
    energy_ev: float
    penalty_energy_ev: float
    penalty_field_ev: float
    residual_ha: float
    cycles: int
    wall_time_s: float
    guess_time_s: float
    guess: str
    converged: bool
    density: np.ndarray = field(repr=False)

    @property
    def moment_sizes(self) -> np.ndarray:
        """``|m_A|`` in μB, shape (N,)."""
        return np.linalg.norm(self.moments, axis=1)

    @property
    def angle_deviation_deg(self) -> np.ndarray:
        """Angle between each moment and its target, degrees (NaN where unconstrained)."""
        size = np.maximum(self.moment_sizes, 1e-12)
        cos = np.einsum("ak,ak->a", self.moments, self.targets) / size
        out = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        return np.where(np.linalg.norm(self.targets, axis=1) > 0, out, np.nan)

    def diagnostics(self) -> dict[str, Any]:
        """JSON-serializable summary."""
        return {"cycles": self.cycles, "wall_time_s": self.wall_time_s,
                "guess_time_s": self.guess_time_s, "guess": self.guess,
                "converged": self.converged, "residual_ha": self.residual_ha,
                "energy_ev": self.energy_ev, "penalty_energy_ev": self.penalty_energy_ev,
                "penalty_field_ev": self.penalty_field_ev,
                "angle_deviation_deg": np.nan_to_num(self.angle_deviation_deg).tolist(),
                "moment_sizes": self.moment_sizes.tolist()}


# -- the runner / predictor ---------------------------------------------------------------------
class ConstrainedGKS:
    """Spin-direction-constrained non-collinear GKS (PySCF) as a Hamiltonian predictor.

    ``predict(atoms)`` follows the predictor protocol of :func:`ase_hamgnn.data.write_dataset`;
    ``run(atoms)`` returns the full :class:`GKSResult`.  Target directions are the directions
    of ``atoms``' ``initial_magmoms``; atoms with zero moment are not constrained.  Clusters
    only: the cell and ``pbc`` of ``atoms`` must be non-periodic.

    The runner keeps two caches: the collinear UKS guess per geometry, and (with
    ``reuse_previous``) the last converged density, which is spin-rotated per atom onto the
    next targets when the geometry is within ``reuse_distance`` Å of the previous one.

    Parameters
    ----------
    elements : sequence of str
        Elements the basis must describe (``basis`` needs them before any run).
    settings : GKSSettings, optional
        Calculation settings; keyword ``overrides`` replace single fields.
    cutoff : float
        Graph cutoff (Å) for datasets: must exceed the largest interatomic distance.
    reuse_previous : bool
        Start from the previous converged density when possible.
    reuse_distance : float
        Largest atomic displacement (Å) for which the previous density is reused.
    strict : bool
        Raise :class:`SCFConvergenceError` / :class:`ConstraintError` on a bad run.
    guess_grid_level : int
        DFT grid level of the collinear UKS guess (default 1: it is only a starting density,
        and the guess then costs a fraction of the constrained SCF on a fine grid).

    Examples
    --------
    >>> import numpy as np
    >>> from ase import Atoms
    >>> o2 = Atoms("O2", positions=[[0, 0, 0], [0, 0, 1.21]])
    >>> o2.set_initial_magnetic_moments([[1.0, 0, 0], [0, 1.0, 0]])
    >>> gks = ConstrainedGKS(["O"], guess_spin=2)              # doctest: +SKIP
    >>> res = gks.run(o2)                                     # doctest: +SKIP
    >>> res.angle_deviation_deg.max() < 1.0                   # doctest: +SKIP
    True
    """

    def __init__(self, elements: Sequence[str], settings: GKSSettings | None = None, *,
                 cutoff: float = 6.0, reuse_previous: bool = True,
                 reuse_distance: float = 0.2, strict: bool = True,
                 guess_grid_level: int = 1, **overrides: Any) -> None:
        settings = settings or GKSSettings()
        if not isinstance(settings, GKSSettings):
            raise TypeError(f"settings must be GKSSettings, got {type(settings).__name__}")
        self.settings = replace(settings, **overrides) if overrides else settings
        self.cutoff = float(cutoff)
        self.reuse_previous = bool(reuse_previous)
        self.reuse_distance = float(reuse_distance)
        self.strict = bool(strict)
        self.guess_grid_level = int(guess_grid_level)
        _, gto, _, _ = _pyscf()
        symbols = [_element(str(e)) for e in elements]
        if not symbols:
            raise ValueError("elements must name at least one element")
        probe = gto.M(atom=[(s, (0.0, 0.0, 3.0 * k)) for k, s in enumerate(symbols)],
                      basis=self.settings.basis, spin=None, verbose=0)
        self.basis = basis_from_mol(probe)
        self._uks: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        #: guess of the latest :meth:`run` (``'uks'``, ``'uks-cached'`` or ``'previous'``),
        #: also when it raised
        self.last_guess: str | None = None

    @property
    def source_description(self) -> str:
        s = self.settings
        soc = "X2C1e spin-orbit" if s.soc else "no spin-orbit"
        return (f"PySCF spin-constrained non-collinear GKS ({s.xc}, ncol, {s.basis}, {soc}, "
                f"lambda={s.strength_ha} Ha/muB^2 '{s.penalty}', smearing {s.smearing_ha} Ha, "
                f"grid level {s.grid_level}, conv_tol {s.conv_tol}); ab initio, not synthetic")

    # -- public -------------------------------------------------------------------------------
    def predict(self, atoms: Atoms) -> TBHamiltonian:
        """The converged Fock matrix (eV) and overlap of ``atoms`` as a TBHamiltonian."""
        return self.run(atoms).hamiltonian

    def run(self, atoms: Atoms, guess: str = "auto") -> GKSResult:
        """Run the constrained SCF for ``atoms`` (targets from ``initial_magmoms``).

        Parameters
        ----------
        atoms : ase.Atoms
            Non-periodic cluster, positions in Å.
        guess : {"auto", "uks", "previous"}
            ``"auto"``: the rotated UKS guess when this geometry's is cached, else the
            previous density when reusable, else a new UKS guess.

        Raises
        ------
        PySCFMissingError
            If PySCF is not installed.
        SCFConvergenceError, ConstraintError
            With ``strict``, if the residual or an angle exceeds the settings' limits.
        """
        if guess not in ("auto", "uks", "previous"):
            raise ValueError(f"guess must be 'auto', 'uks' or 'previous', got {guess!r}")
        _, _, dft, _ = _pyscf()
        if not isinstance(atoms, Atoms):
            raise TypeError(f"atoms must be ase.Atoms, got {type(atoms).__name__}")
        if np.any(atoms.pbc):
            raise ValueError("ConstrainedGKS handles clusters only; set atoms.pbc = False")
        s = self.settings
        t0 = time.perf_counter()
        moments_in = read_moments(atoms)
        size = np.linalg.norm(moments_in, axis=1)
        active = (size > 1e-8).astype(np.float64)
        targets = np.where(active[:, None] > 0, moments_in / np.maximum(size, 1e-12)[:, None],
                           0.0)
        mol = self._molecule(atoms)
        mf = dft.GKS(mol)
        mf.xc = s.xc
        mf.collinear = "ncol"
        mf.grids.level = int(s.grid_level)
        if s.soc:
            mf = mf.x2c1e()
        mf = _with_mixin(mf, _DirectionConstraint, targets, active, s.strength_ha, s.penalty)
        if s.smearing_ha > 0:
            mf = _with_mixin(mf, _SpinOrbitalSmearing, s.smearing_ha)
        mf.conv_tol = s.conv_tol
        mf.max_cycle = s.max_cycle
        mf.verbose = 0
        cycles = [0]
        mf.callback = lambda env: cycles.__setitem__(0, int(env["cycle"]) + 1)
        tg = time.perf_counter()
        dm0, kind = self._guess(mol, atoms, targets, size, guess)
        self.last_guess = kind
        tg = time.perf_counter() - tg
        mf.kernel(dm0=dm0)
        dm = mf.make_rdm1()
        fock = mf.get_fock(dm=dm)  # no DIIS extrapolation, level shift or damping
        e_pen, v_pen, m = mf.penalty(dm)
        _, grad = _penalty(m, targets, active, s.strength_ha, s.penalty)
        if not s.include_penalty:
            fock = fock - v_pen
        s_ao = mol.intor_symmetric("int1e_ovlp")
        s_so = np.kron(np.eye(2), s_ao)
        f_full = fock if s.include_penalty else fock + v_pen
        residual = float(np.abs(f_full @ dm @ s_so - s_so @ dm @ f_full).max())
        self._previous = (mol.atom_coords(unit="Angstrom").copy(), dm,
                          m / np.maximum(np.linalg.norm(m, axis=1), 1e-12)[:, None])
        conv = ao_to_ours(mol)
        h = hartree_to_ev(conv @ fock @ conv.T)
        h = 0.5 * (h + h.conj().T)
        overlap = conv @ s_so @ conv.T
        overlap = 0.5 * (overlap + overlap.T)
        out_atoms = Atoms(atoms.numbers, positions=atoms.positions, pbc=False)
        out_atoms.set_initial_magnetic_moments(m)
        ham = TBHamiltonian(self.basis, out_atoms, {(0, 0, 0): h}, {(0, 0, 0): overlap})
        result = GKSResult(
            hamiltonian=ham, targets=targets, moments=m, energy_ev=float(hartree_to_ev(mf.e_tot)),
            penalty_energy_ev=float(hartree_to_ev(e_pen)),
            penalty_field_ev=float(hartree_to_ev(np.linalg.norm(grad, axis=1).max())),
            residual_ha=residual, cycles=cycles[0], wall_time_s=time.perf_counter() - t0,
            guess_time_s=tg, guess=kind, converged=bool(mf.converged), density=dm)
        if self.strict:
            self._check(result)
        return result

    # -- internals ----------------------------------------------------------------------------
    def _check(self, res: GKSResult) -> None:
        s = self.settings
        if not res.residual_ha <= s.max_residual_ha:
            raise SCFConvergenceError(
                f"constrained SCF not self-consistent after {res.cycles} cycles: "
                f"max|FDS - SDF| = {res.residual_ha:.2e} Ha > {s.max_residual_ha:.0e} Ha; raise "
                "max_cycle, smearing_ha, or lower strength_ha")
        worst = float(np.nanmax(res.angle_deviation_deg, initial=0.0))
        if worst > s.max_angle_deg:
            raise ConstraintError(
                f"a moment is {worst:.3g} degrees from its target (limit {s.max_angle_deg}); "
                "raise strength_ha (0.01-0.05 Ha/μB² is stable) or max_angle_deg")

    def _molecule(self, atoms: Atoms):
        _, gto, _, _ = _pyscf()
        self.basis.check_numbers(atoms.numbers)
        spec = [(sym, tuple(float(x) for x in pos))
                for sym, pos in zip(atoms.get_chemical_symbols(), atoms.positions)]
        mol = gto.M(atom=spec, basis=self.settings.basis, unit="Angstrom",
                    charge=self.settings.charge, spin=None, verbose=0)
        mol.spin = int(mol.nelectron) % 2
        mol.build(False, False)
        return mol

    def _guess(self, mol, atoms, targets, size, guess):
        prev = self._previous
        if guess == "auto" and self._uks_key(mol, size) in self._uks:
            # this geometry's collinear guess costs nothing now, and it fails less often than
            # a density spin-rotated from other targets (whose failed SCF costs max_cycle)
            return self._uks_guess(mol, targets, size)
        if guess != "uks" and self.reuse_previous and prev is not None:
            coords = mol.atom_coords(unit="Angstrom")
            if (prev[0].shape == coords.shape
                    and np.abs(prev[0] - coords).max() <= self.reuse_distance):
                new = np.where(np.linalg.norm(targets, axis=1)[:, None] > 0, targets, prev[2])
                return _spin_rotate_density(mol, prev[1], prev[2], new), "previous"
        if guess == "previous":
            raise ValueError("no reusable previous density (none yet, or the geometry moved "
                             f"more than {self.reuse_distance} Å); use guess='auto'")
        return self._uks_guess(mol, targets, size)

    def _guess_spin(self, mol, size) -> int:
        spin = self.settings.guess_spin
        if spin is None:
            spin = int(round(size.sum()))
            if (spin - mol.nelectron) % 2:
                spin -= 1
            spin = max(spin, int(mol.nelectron) % 2)
        return spin

    def _uks_key(self, mol, size) -> bytes:
        """Cache key of the collinear guess: geometry, 2 S_z and functional."""
        spin = self._guess_spin(mol, size)
        return np.round(mol.atom_coords(), 8).tobytes() + f"|{spin}|{self.settings.xc}".encode()

    def _uks_guess(self, mol, targets, size):
        """Collinear UKS along +z, magnetisation rotated per atom onto the targets:
        ``D = 1/2 N (x) 1 + 1/2 sum_A (e_A . sigma) (x) (P_A M + M P_A) / 2``."""
        _, _, dft, _ = _pyscf()
        spin = self._guess_spin(mol, size)
        key = self._uks_key(mol, size)
        kind = "uks-cached"
        if key not in self._uks:
            kind = "uks"
            m2 = mol.copy()
            m2.spin = spin
            m2.build(False, False)
            uks = dft.UKS(m2, xc=self.settings.xc)
            uks.grids.level = self.guess_grid_level  # a guess: a coarse grid is enough
            uks.verbose, uks.conv_tol, uks.max_cycle = 0, 1e-6, 50
            uks = uks.newton()  # plain DIIS oscillates for 3d clusters
            uks.kernel()
            pa, pb = uks.make_rdm1()
            self._uks[key] = (np.asarray(pa), np.asarray(pb))
        pa, pb = self._uks[key]
        total, mag = pa + pb, pa - pb
        dm = 0.5 * np.kron(np.eye(2), total).astype(np.complex128)
        for a, (p0, p1) in enumerate(mol.aoslice_by_atom()[:, 2:]):
            if not np.any(targets[a]):
                dm += 0.5 * np.kron(PAULI[2], _half_projected(mag, p0, p1))
                continue
            sigma = np.einsum("k,kij->ij", targets[a], PAULI)
            dm += 0.5 * np.kron(sigma, _half_projected(mag, p0, p1))
        return dm, kind


def _half_projected(mat: np.ndarray, p0: int, p1: int) -> np.ndarray:
    """``(P M + M P) / 2`` for the projector ``P`` on AOs ``p0:p1``."""
    proj = np.zeros(mat.shape[0], dtype=np.float64)
    proj[p0:p1] = 1.0
    return 0.5 * (proj[:, None] * mat + mat * proj[None, :])


def _with_mixin(mf, mixin, *args):
    _, _, _, lib = _pyscf()
    return lib.set_class(mixin(mf, *args), (mixin, mf.__class__))
