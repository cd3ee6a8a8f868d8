"""``HamGNNCalc``: the ASE calculator around a Hamiltonian predictor.

The calculator is a thin shell around the flow ``Atoms (+ moments) -> predictor ->
TBHamiltonian -> eigenvalues``.  It follows ASE's calculator contract so that ASE's own tools
work on it unchanged:

* ``calc.band_structure()`` (:func:`ase.spectrum.band_structure.get_band_structure`),
* ``ase.dft.dos.DOS(calc)``,
* ``ase.dft.bandgap.bandgap(calc)``.

Conventions
-----------
* **Spinors, one spin channel.**  The states are two-component spinors of the non-collinear,
  spin-orbit-coupled Hamiltonian, so :meth:`HamGNNCalc.get_number_of_spins` is 1 and every
  band holds at most one electron.  ASE's ``DOS(calc).get_dos()`` (``spin=None``) doubles a
  single channel as if it were spin-degenerate; use ``get_dos(spin=0)`` for the true density of
  states of spinor bands.
* **No symmetry reduction.**  With non-collinear moments there is in general no ``k -> -k``
  (time-reversal) symmetry and no point-group symmetry, so the "irreducible" k-points are the
  full set given by ``kpts``, each with weight ``1 / n_k``.
* **No invented properties.**  The model predicts a Hamiltonian, not a total energy: energy,
  forces and stress raise :class:`ase.calculators.calculator.PropertyNotImplementedError`.
* **Caching** follows ASE's ``check_state`` over ``all_changes`` (positions, numbers, cell,
  pbc, initial charges and ``initial_magmoms``): any of these changing repredicts the
  Hamiltonian; re-setting identical values does not.  Changing ``kpts``, ``n_electrons``,
  ``temperature`` or ``fermi_kpts`` with :meth:`~HamGNNCalc.set` keeps the Hamiltonian and
  recomputes only the eigenvalues.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import (
    Calculator,
    CalculatorSetupError,
    PropertyNotImplementedError,
    all_changes,
)
from ase.dft.kpoints import BandPath
from ase.spectrum.band_structure import BandStructure

from ase_hamgnn.errors import DenseSizeError, MissingMomentsError
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.graph import check_structure
from ase_hamgnn.hamiltonian import TBHamiltonian
from ase_hamgnn.predictor import Predictor
from ase_hamgnn.spectra.dense import all_eigenvalues, check_temperature
from ase_hamgnn.spectra.kpoints import resolve_kpts
from ase_hamgnn.spectra.occupations import Occupations, occupy

__all__ = ["HamGNNCalc"]

#: k-points of the Fermi level when ``kpts`` is a band path and ``fermi_kpts`` is not given.
DEFAULT_FERMI_KPTS: dict[str, Any] = {"density": 5.0, "gamma": True}

# Parameters whose change keeps the predicted Hamiltonian (only k-space results are redone).
_K_PARAMETERS = frozenset({"kpts", "n_electrons", "temperature", "fermi_kpts",
                           "max_dense_size"})

# A moment smaller than this (μB) counts as "no moment" for the magnetic-species check.
_ZERO_MOMENT = 1e-8


class HamGNNCalc(Calculator):
    """ASE calculator giving the electronic structure of a predicted tight-binding Hamiltonian.

    Parameters
    ----------
    model : Predictor, str or os.PathLike
        Any object with the predictor protocol (``basis``, ``predict(atoms)``,
        ``n_electrons(atoms)``), e.g. a loaded HamGNN++ model or
        :class:`ase_hamgnn.data.ReferenceTB`; or a shipped model name or checkpoint path,
        loaded with :func:`ase_hamgnn.model.load_model`.
    kpts : tuple, dict, array or BandPath
        k-points in any ASE form: a mesh ``(n1, n2, n3)`` of integers, also as floats
        ``(4.0, 4.0, 1.0)`` (ASE's Monkhorst–Pack convention, not Γ-centred for even sizes;
        ``ham.dos`` and every analysis read ``kpts`` the same way, with
        :func:`ase_hamgnn.spectra.kpoints.resolve_kpts`), a
        density ``{"density": 5.0, "gamma": True}`` (points per Å⁻¹), an explicit ``(n_k, 3)``
        array of fractional k-points, one per row (equal weights), a band path
        ``{"path": "GMKG", "npoints": 100}`` or an ``ase.dft.kpoints.BandPath``.  Default
        ``{"density": 5.0, "gamma": True}``.
    device : str
        Device for a model loaded by name or path (``"cpu"``, ``"cuda"``, ``"auto"``); ignored
        for predictor objects, which keep their own device.
    dtype : str or torch.dtype
        Floating-point type for a model loaded by name or path (``"float64"`` default).
    n_electrons : float, optional
        Valence electrons per cell; default ``model.n_electrons(atoms)``.
    temperature : float
        Electronic temperature in K of the Fermi–Dirac occupations and of the Fermi level
        that holds ``n_electrons`` (near mid-gap in an insulator at any temperature).  At 0
        the states are filled in order of energy: the Fermi level is mid-gap (half-way
        between the highest occupied and lowest empty state) when the count ends at a gap;
        otherwise the states degenerate at the Fermi level share the remaining electrons
        equally (see :func:`ase_hamgnn.spectra.occupations.occupy`).
    fermi_kpts : tuple, dict or array, optional
        k-points on which the Fermi level is found.  Default: ``kpts``, unless ``kpts`` is a
        band path (a path does not sample the Brillouin zone); then
        ``{"density": 5.0, "gamma": True}``.
    min_distance : float
        Smallest allowed interatomic distance in Å (periodic images included).  The
        predictors refuse closer atoms than their own minimum anyway
        (:data:`ase_hamgnn.graph.MIN_DISTANCE`, 0.5 Å).
    max_dense_size : int or None
        Largest number of spin-orbitals per cell whose ``H(k)`` is diagonalized densely
        (eigenvalues, occupations, Fermi level, band structures); default 6000 (an
        ``H(k)`` of 0.6 GB, about 2 GB with the eigenvectors and LAPACK's workspace, and
        minutes per k-point; memory grows as the square and time as the cube of the size).
        Larger systems raise :class:`~ase_hamgnn.errors.DenseSizeError` before any
        diagonalization: use the sparse tools on ``calc.get_hamiltonian()``
        (:func:`ase_hamgnn.find_gap`, :func:`ase_hamgnn.edge_states`,
        :func:`ase_hamgnn.kpm_dos`).  ``None`` removes the limit.
    require_moments : bool
        If True (default), atoms of the species the model declares magnetic (its
        ``magnetic_elements`` attribute) must carry a non-zero moment.  Models without that
        attribute are not checked.
    atoms : ase.Atoms, optional
        Attach the calculator to these atoms (same as ``atoms.calc = calc``).

    Raises
    ------
    TypeError
        If ``model`` is neither a predictor nor a name or path, or a parameter is unknown.
    ImportError
        If ``model`` is a name or path and :mod:`ase_hamgnn.model` cannot be imported.

    Examples
    --------
    >>> from ase.dft.bandgap import bandgap
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> atoms = nibri()
    >>> atoms.calc = HamGNNCalc(model=ReferenceTB("nibri"), kpts=(6, 6, 1))
    >>> atoms.calc.get_number_of_spins(), atoms.calc.get_number_of_bands()
    (1, 28)
    >>> gap, vbm, cbm = bandgap(atoms.calc)
    >>> bs = atoms.calc.band_structure(path="GMKG", npoints=100)
    >>> bs.energies.shape
    (1, 100, 28)
    """

    implemented_properties = [
        "eigenvalues",
        "occupations",
        "fermi_level",
        "ibz_kpoints",
        "kpoint_weights",
        "nspins",
        "nkpts",
        "nbands",
    ]
    default_parameters: dict[str, Any] = {
        "kpts": {"density": 5.0, "gamma": True},
        "device": "cpu",
        "dtype": "float64",
        "n_electrons": None,
        "temperature": 0.0,
        "fermi_kpts": None,
        "min_distance": 0.5,
        "require_moments": True,
        "max_dense_size": 6000,
    }

    def __init__(self, model: Predictor | str | os.PathLike, *, atoms: Atoms | None = None,
                 **parameters: Any) -> None:
        self._attached: weakref.ref | None = None
        self._ham: TBHamiltonian | None = None
        self._filled: tuple[dict[str, Any], Occupations] | None = None
        self._model_source = model
        self._predictor: Predictor | None = None
        self._check_parameter_names(parameters)
        super().__init__(atoms=atoms, **parameters)
        self._predictor = self._resolve_model(model)

    # -- model and parameters ---------------------------------------------------------------
    @property
    def predictor(self) -> Predictor:
        """The predictor that makes the Hamiltonians."""
        if self._predictor is None:
            self._predictor = self._resolve_model(self._model_source)
        return self._predictor

    def _resolve_model(self, model: Any) -> Predictor:
        if isinstance(model, (str, os.PathLike)):
            try:
                from ase_hamgnn.model import load_model
            except ImportError as exc:
                raise ImportError(
                    f"HamGNNCalc(model={str(model)!r}) loads the model with "
                    f"ase_hamgnn.model.load_model, which cannot be imported ({exc}); install "
                    "the model dependencies, or pass a predictor object instead, e.g. "
                    "HamGNNCalc(model=ReferenceTB('nibri'))"
                ) from exc
            model = load_model(model, device=self.parameters["device"],
                               dtype=self.parameters["dtype"])
        if not isinstance(model, Predictor):
            raise TypeError(
                f"model must be a predictor (with .basis, .predict(atoms) and "
                f".n_electrons(atoms)) or a model name/path, got {type(model).__name__}"
            )
        return model

    def _check_parameter_names(self, parameters: dict[str, Any]) -> None:
        unknown = sorted(set(parameters) - set(self.default_parameters))
        if unknown:
            raise TypeError(
                f"unknown HamGNNCalc parameter(s) {unknown}; known: "
                f"{sorted(self.default_parameters)}"
            )

    def set(self, **kwargs: Any) -> dict[str, Any]:
        """Change parameters; returns those that changed.

        k-space parameters (``kpts``, ``n_electrons``, ``temperature``, ``fermi_kpts``) keep
        the predicted Hamiltonian and drop the eigenvalues; any other change drops everything
        (and reloads a model given by name when ``device`` or ``dtype`` change).
        """
        self._check_parameter_names(kwargs)
        changed = super().set(**kwargs)
        if not changed:
            return changed
        if set(changed) <= _K_PARAMETERS:
            self.results = {}
        else:
            self.reset()
            if {"device", "dtype"} & set(changed) and self._predictor is not None \
                    and isinstance(self._model_source, (str, os.PathLike)):
                self._predictor = None  # reloaded on next use
        return changed

    def reset(self) -> None:
        """Forget the atoms, the predicted Hamiltonian and all results."""
        super().reset()
        self._ham = None

    def set_atoms(self, atoms: Atoms) -> None:
        """Called by ASE on ``atoms.calc = calc``: remember (weakly) which atoms to follow."""
        self._attached = weakref.ref(atoms)

    def _current_atoms(self) -> Atoms:
        attached = self._attached() if self._attached is not None else None
        if attached is not None and attached.calc is self:
            return attached
        if self.atoms is not None:
            return self.atoms
        raise CalculatorSetupError(
            "HamGNNCalc has no atoms yet; attach it with atoms.calc = calc, or call "
            "calc.calculate(atoms) or calc.get_hamiltonian(atoms)"
        )

    # -- ASE machinery ----------------------------------------------------------------------
    def get_property(self, name: str, atoms: Atoms | None = None,
                     allow_calculation: bool = True) -> Any:
        """ASE's property access; properties the model does not produce raise
        :class:`PropertyNotImplementedError` with the reason."""
        if name not in self.implemented_properties:
            raise PropertyNotImplementedError(
                f"HamGNNCalc does not provide {name!r}: the model predicts a tight-binding "
                "Hamiltonian (eigenvalues, Fermi level, bands, DOS), not total energies, "
                "forces or stresses. Use calc.get_eigenvalues(), calc.band_structure() or "
                "calc.get_hamiltonian() instead."
            )
        if atoms is None:
            atoms = self._current_atoms()
        return super().get_property(name, atoms, allow_calculation)

    def calculate(self, atoms: Atoms | None = None, properties: Any = ("eigenvalues",),
                  system_changes: Any = all_changes) -> None:
        """Predict the Hamiltonian (when the structure or moments changed) and compute the
        requested k-space properties; results go to ``self.results``."""
        if atoms is None:
            atoms = self._current_atoms()
        super().calculate(atoms, properties, system_changes)
        if system_changes:
            self._ham = None
        if self._ham is None:
            self.results = {}
            self._ham = self._predict(self.atoms)
        ham = self._ham
        res = self.results
        if "ibz_kpoints" not in res:
            k = self._kpoints(self.atoms, self.parameters["kpts"], "kpts")
            res.update(ibz_kpoints=k, kpoint_weights=np.full(len(k), 1.0 / len(k)),
                       nkpts=len(k), nspins=1, nbands=ham.n_spin_orbitals)
        wanted = set(properties)
        if wanted & {"eigenvalues", "occupations"} and "eigenvalues" not in res:
            res["eigenvalues"] = self._eigenvalues(ham, res["ibz_kpoints"])[None]
        if wanted & {"fermi_level", "occupations"} and "fermi_level" not in res:
            res["fermi_level"] = self._filling(ham).fermi_level
        if "occupations" in wanted and "occupations" not in res:
            filled = self._filling(ham)
            if self._fermi_k(self.atoms) is None:  # the same k-points: the exact count
                res["occupations"] = filled.occupations[None]
            else:  # e.g. a band path: the Fermi level of the fermi_kpts mesh
                res["occupations"] = filled.at(res["eigenvalues"])

    # -- the structure -> Hamiltonian step --------------------------------------------------
    def _predict(self, atoms: Atoms) -> TBHamiltonian:
        self.check_structure(atoms)
        ham = self.predictor.predict(atoms)
        if not isinstance(ham, TBHamiltonian) or len(ham) != len(atoms):
            raise TypeError(
                f"{type(self.predictor).__name__}.predict(atoms) must return a TBHamiltonian "
                f"of the {len(atoms)} atoms, got {ham!r}"
            )
        return ham

    def check_structure(self, atoms: Atoms) -> None:
        """Check that ``atoms`` can be predicted; called before every prediction.

        The structural checks are the predictors' own (:class:`~ase_hamgnn.geometry.Geometry`
        and :func:`ase_hamgnn.graph.check_structure`), with this calculator's
        ``min_distance``.

        Raises
        ------
        StructureError
            If positions or cell contain NaN or inf, or there are no atoms.
        CellError
            If the periodic cell is singular or ill-conditioned (a :class:`StructureError`).
        MomentError
            If ``initial_magmoms`` has a wrong shape, is not finite or is absurdly large (a
            :class:`StructureError`).
        BasisError
            If an element is not in the model's basis.
        OverlappingAtomsError
            If two atoms (periodic images included) are closer than ``min_distance`` Å.
        MissingMomentsError
            If ``require_moments`` and an atom of a species in the model's
            ``magnetic_elements`` has no moment.
        """
        geometry = Geometry.from_atoms(atoms)
        self.predictor.basis.check_numbers(geometry.numbers)
        moments = geometry.moments
        check_structure(geometry, float(self.parameters["min_distance"]))
        magnetic = getattr(self.predictor, "magnetic_elements", None)
        if self.parameters["require_moments"] and magnetic is not None:
            symbols = atoms.get_chemical_symbols()
            is_mag = np.array([s in magnetic for s in symbols], dtype=bool)
            missing = np.flatnonzero(is_mag & (np.linalg.norm(moments, axis=1) < _ZERO_MOMENT))
            if missing.size:
                species = sorted({symbols[i] for i in missing})
                raise MissingMomentsError(
                    f"{missing.size} atom(s) of magnetic species {species} "
                    f"have no magnetic moment (first indices {missing[:10].tolist()}); set "
                    "atoms.set_initial_magnetic_moments(...) in μB ((N, 3) vectors, or scalars "
                    "meaning along z), e.g. with textures.ferromagnet(atoms), or pass "
                    "require_moments=False to compute them non-magnetic on purpose"
                )

    # -- k-space ----------------------------------------------------------------------------
    @staticmethod
    def _kpoints(atoms: Atoms, kpts: Any, name: str) -> np.ndarray:
        return resolve_kpts(kpts, atoms.cell, atoms.pbc, name)

    def _fermi_k(self, atoms: Atoms) -> np.ndarray | None:
        """k-points of the Fermi level, or None when they are the calculator's kpts."""
        fermi_kpts = self.parameters["fermi_kpts"]
        if fermi_kpts is not None:
            return self._kpoints(atoms, fermi_kpts, "fermi_kpts")
        if _is_band_path(self.parameters["kpts"]):
            return self._kpoints(atoms, DEFAULT_FERMI_KPTS, "fermi_kpts")
        return None

    def _filling(self, ham: TBHamiltonian) -> Occupations:
        """Fermi level and occupations of ``n_electrons`` on the Fermi k-points; kept as long
        as the current results are (any reset makes a new results dict)."""
        if self._filled is not None and self._filled[0] is self.results:
            return self._filled[1]
        k = self._fermi_k(self.atoms)
        temperature = check_temperature(self.parameters["temperature"])
        if k is None:
            if "eigenvalues" not in self.results:
                self.results["eigenvalues"] = self._eigenvalues(
                    ham, self.results["ibz_kpoints"])[None]
            eig = self.results["eigenvalues"][0]
        else:
            eig = self._eigenvalues(ham, k)
        w = np.full(len(eig), 1.0 / len(eig))
        filled = occupy(eig, w, self._n_electrons(self.atoms), temperature)
        self._filled = (self.results, filled)
        return filled

    def _eigenvalues(self, ham: TBHamiltonian, k: np.ndarray) -> np.ndarray:
        """All eigenvalues (n_k, n) at ``k``; :class:`DenseSizeError` before diagonalizing a
        Hamiltonian larger than ``max_dense_size``."""
        limit = self.parameters["max_dense_size"]
        n = ham.n_spin_orbitals
        if limit is not None and n > int(limit):
            gb = 3 * 16 * n**2 / 1e9  # H(k), eigenvectors and LAPACK workspace, complex128
            raise DenseSizeError(
                f"{len(ham)} atoms with {n} spin-orbitals per cell exceed max_dense_size = "
                f"{int(limit)}: dense diagonalization at {len(k)} k-point(s) would need about "
                f"{gb:.1f} GB and O(n^3) time per k-point. Use the sparse tools on the "
                "Hamiltonian instead: ham = calc.get_hamiltonian(), then "
                "ase_hamgnn.find_gap(ham, n_electrons) for the gap and band edges, "
                "ase_hamgnn.edge_states(ham, n_electrons, k) for the states at the Fermi "
                "level, ase_hamgnn.kpm_dos(ham) for the density of states; or raise the "
                "limit, calc.set(max_dense_size=...) (None: no limit)"
            )
        return all_eigenvalues(ham, k, None)

    def _n_electrons(self, atoms: Atoms) -> float:
        n = self.parameters["n_electrons"]
        return float(self.predictor.n_electrons(atoms) if n is None else n)

    # -- public getters ---------------------------------------------------------------------
    def get_hamiltonian(self, atoms: Atoms | None = None) -> TBHamiltonian:
        """The predicted :class:`~ase_hamgnn.TBHamiltonian` of ``atoms`` (default: the
        attached atoms); cached until the structure or moments change.  No diagonalization."""
        if atoms is None:
            atoms = self._current_atoms()
        changes = self.check_state(atoms)
        if changes or self._ham is None:
            self.calculate(atoms, [], changes or all_changes)
        return self._ham

    def get_number_of_electrons(self) -> float:
        """Valence electrons per cell: ``n_electrons`` or ``model.n_electrons(atoms)``."""
        return self._n_electrons(self._current_atoms())

    def get_eigenvalues(self, kpt: int = 0, spin: int = 0) -> np.ndarray:
        """Eigenvalues (eV, ascending) at the ``kpt``-th k-point; ``spin`` must be 0 (the
        states are spinors: one channel)."""
        eig = self.get_property("eigenvalues")
        return eig[_spin_index(spin), _k_index(kpt, eig.shape[1])].copy()

    def get_occupation_numbers(self, kpt: int = 0, spin: int = 0) -> np.ndarray:
        """Occupations in [0, 1] of the spinor states at the ``kpt``-th k-point (not
        multiplied by the k-point weight); on a mesh they add up to exactly ``n_electrons``
        per cell, states degenerate at the Fermi level sharing the remainder equally."""
        occ = self.get_property("occupations")
        return occ[_spin_index(spin), _k_index(kpt, occ.shape[1])].copy()

    def get_fermi_level(self) -> float:
        """Fermi level in eV (see ``temperature`` and ``fermi_kpts``)."""
        return float(self.get_property("fermi_level"))

    def get_ibz_k_points(self) -> np.ndarray:
        """All k-points (fractional, (n_k, 3)); no symmetry reduction (see module notes)."""
        return self.get_property("ibz_kpoints")

    def get_bz_k_points(self) -> np.ndarray:
        """Same as :meth:`get_ibz_k_points`: the full set is used."""
        return self.get_ibz_k_points()

    def get_bz_to_ibz_map(self) -> np.ndarray:
        """Identity map ``arange(n_k)`` (no symmetry reduction)."""
        return np.arange(len(self.get_ibz_k_points()))

    def get_k_point_weights(self) -> np.ndarray:
        """Equal weights ``1 / n_k`` (sum 1)."""
        return self.get_property("kpoint_weights")

    def get_number_of_spins(self) -> int:
        """1: spinor states in a single channel (non-collinear spin with spin-orbit coupling)."""
        return int(self.get_property("nspins"))

    def get_spin_polarized(self) -> bool:
        """False in ASE's sense (no separate up/down channels): the spin lives in the spinors."""
        return False

    def get_number_of_bands(self) -> int:
        """Number of bands = spin-orbitals per cell."""
        return int(self.get_property("nbands"))

    def band_structure(self, path: str | BandPath | None = None, npoints: int | None = None,
                       reference: float | None = None) -> BandStructure:
        """ASE ``BandStructure``.

        Without arguments this is ASE's own ``band_structure()`` on the calculator's k-points
        (use ``kpts={"path": "GMKG", "npoints": 100}``).  With ``path`` (a string of special
        points or a ``BandPath``) and/or ``npoints`` the bands are computed along that path
        without changing ``kpts``; ``reference`` (eV) defaults to the Fermi level.
        """
        if path is None and npoints is None and reference is None:
            self.get_ibz_k_points()  # brings self.atoms up to date for ASE's helper
            return super().band_structure()
        atoms = self._current_atoms()
        if isinstance(path, BandPath):
            if npoints is not None:
                raise ValueError("give npoints with a path string, not with a BandPath")
            bandpath = path
        else:
            bandpath = atoms.cell.bandpath(path, npoints=npoints, pbc=atoms.pbc)
        ham = self.get_hamiltonian(atoms)
        energies = self._eigenvalues(ham, bandpath.kpts)
        ref = self.get_fermi_level() if reference is None else float(reference)
        return BandStructure(bandpath, energies[None], reference=ref)


def _is_band_path(kpts: Any) -> bool:
    return isinstance(kpts, BandPath) or (isinstance(kpts, dict) and "path" in kpts)


def _spin_index(spin: int) -> int:
    if int(spin) != 0:
        raise IndexError(
            f"spin={spin}: HamGNNCalc has one channel of spinor states; use spin=0"
        )
    return 0


def _k_index(kpt: int, n_k: int) -> int:
    if not -n_k <= int(kpt) < n_k:
        raise IndexError(f"kpt={kpt} is out of range for {n_k} k-points")
    return int(kpt)

