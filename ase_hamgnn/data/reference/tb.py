"""``ReferenceTB``: a SYNTHETIC magnetic Slater–Koster tight-binding model (not DFT).

No spin-constrained DFT code runs inside this package, so tests, examples and benchmarks
run on this hand-parameterised model instead.  It has every ingredient a learned model must
capture and every symmetry of the physics contract (DESIGN.md §1) exactly, but its numbers are
invented with realistic magnitudes: it is not DFT, not a fit, and its bands are not those of
the real materials.

The Hamiltonian of a structure with moments ``M_i`` (μB; only elements with an exchange
constant carry one, moments given on other elements are ignored) is built from

* **on-site levels** ``eps_s + kappa_s rho_i + u_s |M_i|^2`` per shell, with the smooth
  coordination number ``rho_i = sum_j f_ij`` (environment dependent, so displacements
  matter) and an |M|-dependent shift;
* **crystal field** (angular overlap model): every neighbour adds
  ``f_ij sum_ch e_ch G^{ll}_ch(d_ij)`` to the shell's on-site block, ``G`` the Slater–Koster
  channel matrices of :mod:`ase_hamgnn.slater_koster`;
* **spin-orbit coupling** ``zeta L.S`` on p and d shells (:mod:`ase_hamgnn.data.reference.soc`);
* **exchange splitting** ``-(Delta(|M_i|) / 2) M_i_hat . sigma`` on the shells of magnetic
  atoms, ``Delta(m) = I m (1 + gamma m^2)`` (non-linear in |M|);
* **induced exchange** ``-b_i . sigma`` with ``b_i = sum_j J f_ij M_j`` on ligands (and on
  magnetic atoms from their magnetic neighbours);
* **hopping** ``t0_ij(d) = f_ij sum V_ch G_ch(d)``: two-centre Slater–Koster blocks between
  all shells, ``f(r) = exp(-decay (r - r0)) fc(r)`` with a cosine taper ``fc`` that goes
  smoothly to zero at the cutoff, scaled by ``1 + beta M_i . M_j / (m_i m_j)`` between magnetic
  atoms (a term beyond the Heisenberg form), plus a **spin-dependent hopping**
  ``xi t0_ij (M_i + M_j) . sigma``;
* optionally a **non-orthogonal overlap** ``S_ij = -t0_ij / E_S`` (spin diagonal,
  ``kron(1_spin, S_orb)``, ``S_ii = 1``); then the hoppings get ``(eps_i + eps_j) S_ij / 2``
  added, so that after Löwdin orthogonalisation the bands agree with the orthogonal model to
  first order in ``S``.

Everything is a function of bond vectors, distances, moments (axial vectors) and Pauli
matrices contracted rotation-invariantly, so the model is exactly covariant under O(3),
time reversal, permutations and periodic images; Hermiticity holds by construction (each
bond is computed once and mirrored).

Electron counts (:meth:`ReferenceTB.n_electrons`): valence electrons of the neutral atoms in
the basis shells, Ni 10 (3d8 4s2), Fe 8 (3d6 4s2), Ir 9 (5d7 6s2), Br 7 (4s2 4p5), I 7 (5s2
5p5): NiBr2 and NiBrI have 24 electrons in 28 spin-orbitals per formula unit, which fills the
ligand s and p bands and the Ni d shell except the minority e_g states (Ni2+, d8, S = 1).

Resulting spectra (default structures and moments, FM along z, SOC on, 24x24 k-mesh):

=================  ==============================  ==============================
system             orthogonal                      ``overlap=True``
=================  ==============================  ==============================
FM NiBr2           gap 1.44 eV                     gap 1.50 eV
FM NiBrI           gap 1.45 eV                     gap 1.44 eV
Fe/Ir(111), 3 Ir   metal, DOS(E_F) 6.7 /eV/cell    metal, DOS(E_F) 4.9 /eV/cell
=================  ==============================  ==============================

(DOS with 0.1 eV Gaussian broadening, both spins.)  In the dihalides the valence band top
is the majority Ni e_g - ligand p antibonding band and the conduction band the empty
minority Ni e_g band; the Ni 4s band lies above it.  The parameter tables and the reasons
for each value are in :mod:`ase_hamgnn.data.reference.params`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import vesin
from ase import Atoms
from ase.data import chemical_symbols

from ase_hamgnn.basis import OrbitalBasis, Shell
from ase_hamgnn.data import structures
from ase_hamgnn.data.reference.params import SYSTEMS, PairParams, SystemParams
from ase_hamgnn.data.reference.soc import soc_matrix
from ase_hamgnn.geometry import Geometry
from ase_hamgnn.graph import MIN_DISTANCE, check_structure
from ase_hamgnn.hamiltonian import TBHamiltonian
from ase_hamgnn.slater_koster import sk_basis, sk_block

__all__ = ["ReferenceTB"]

_BUILDERS = {"nibr2": structures.nibr2, "nibri": structures.nibri, "feir": structures.fe_ir111}
_MIN_DISTANCE = MIN_DISTANCE  # Å; closer atoms are rejected as unphysical input


@dataclass(frozen=True)
class _Edges:
    """Directed neighbour pairs ``j`` of ``i`` with ``d = r_j + shift . cell - r_i``."""

    i: np.ndarray       # (E,) int
    j: np.ndarray       # (E,) int
    shift: np.ndarray   # (E, 3) int, lattice vector R of atom j
    vec: np.ndarray     # (E, 3) Å
    dist: np.ndarray    # (E,) Å

    def take(self, sel: np.ndarray) -> _Edges:
        return _Edges(self.i[sel], self.j[sel], self.shift[sel], self.vec[sel], self.dist[sel])


class _Store:
    """Collects COO triplets of H(R) (or S(R)) per lattice vector."""

    def __init__(self) -> None:
        self.parts: dict[tuple[int, int, int], list[tuple[np.ndarray, ...]]] = {}

    def add(self, shifts: np.ndarray, rows: np.ndarray, cols: np.ndarray, data: np.ndarray) -> None:
        if len(shifts) == 0:
            return
        base = 2 * int(np.abs(shifts).max()) + 1  # encode R as one integer for a fast unique
        code = ((shifts[:, 0] * base) + shifts[:, 1]) * base + shifts[:, 2]
        keys, first, inverse = np.unique(code, return_index=True, return_inverse=True)
        for n in range(len(keys)):
            sel = inverse == n
            self.parts.setdefault(tuple(int(x) for x in shifts[first[n]]), []).append(
                (rows[sel].ravel(), cols[sel].ravel(), data[sel].ravel()))

    def matrices(self, dim: int) -> dict[tuple[int, int, int], sp.coo_matrix]:
        return {
            r: sp.coo_matrix((np.concatenate([p[2] for p in parts]),
                              (np.concatenate([p[0] for p in parts]),
                               np.concatenate([p[1] for p in parts]))), shape=(dim, dim))
            for r, parts in self.parts.items()
        }


def _spin_blocks(h0: np.ndarray, mag: np.ndarray) -> np.ndarray:
    """``kron(sigma_0, h0) + sum_a kron(sigma_a, mag[:, a])`` per item, spin-major.

    ``h0`` (E, n, m) real, ``mag`` (E, 3, n, m) real; returns (E, 2n, 2m) complex128."""
    e, n, m = h0.shape
    out = np.empty((e, 2, n, 2, m), dtype=np.complex128)
    out[:, 0, :, 0, :] = h0 + mag[:, 2]
    out[:, 1, :, 1, :] = h0 - mag[:, 2]
    out[:, 0, :, 1, :] = mag[:, 0] - 1j * mag[:, 1]
    out[:, 1, :, 0, :] = mag[:, 0] + 1j * mag[:, 1]
    return out.reshape(e, 2 * n, 2 * m)


def _scatter(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum the rows of ``values`` (E, ...) into ``n`` bins given by ``index`` (E,)."""
    flat = values.reshape(len(values), -1)
    op = sp.csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))),
                       shape=(n, len(index)))
    return np.asarray(op @ flat).reshape((n,) + values.shape[1:])


class ReferenceTB:
    """SYNTHETIC magnetic Slater–Koster tight-binding model of NiBr2, NiBrI or Fe/Ir(111).

    Not DFT: a hand-parameterised model with realistic magnitudes and exact symmetries, the
    stand-in for spin-constrained DFT in tests, examples and benchmarks.  It implements the
    predictor protocol of the trained models, ``predict(atoms) -> TBHamiltonian``, for any
    structure made of its elements, with any (N, 3) moments (``initial_magmoms``; scalar
    moments mean along z), periodic in any directions.

    Parameters
    ----------
    system : {"nibr2", "nibri", "feir"}
        Which parameter set (elements Ni, Br / Ni, Br, I / Fe, Ir).
    overlap : bool
        Add the non-orthogonal overlap ``S`` (generalized eigenproblem ``H c = E S c``).
    soc : bool
        Include on-site spin-orbit coupling (``False`` switches it off, e.g. for tests).
    parameters : SystemParams, optional
        A custom parameter set named ``system`` (see
        :mod:`ase_hamgnn.data.reference.params`), used instead of the built-in tables.

    Examples
    --------
    >>> from ase_hamgnn.data import ReferenceTB, nibri
    >>> ref = ReferenceTB("nibri")
    >>> ham = ref.predict(nibri((2, 2)))
    >>> ham.n_spin_orbitals, ref.n_electrons(nibri((2, 2)))
    (112, 96)
    """

    def __init__(self, system: str, *, overlap: bool = False, soc: bool = True,
                 parameters: SystemParams | None = None) -> None:
        if parameters is None:
            if str(system).lower() not in SYSTEMS:
                raise ValueError(f"unknown reference system {system!r}; use one of {list(SYSTEMS)}")
            parameters = SYSTEMS[str(system).lower()]
        elif not isinstance(parameters, SystemParams):
            raise TypeError(f"parameters must be a SystemParams, got {type(parameters).__name__}")
        elif parameters.name != system:
            raise ValueError(f"parameters are for system {parameters.name!r}, not {system!r}")
        self._params = parameters
        self._overlap = bool(overlap)
        self._soc = bool(soc)
        self._basis = OrbitalBasis({el: p.shells for el, p in parameters.elements.items()})
        self._onsite_soc = {el: self._soc_block(el) for el in parameters.elements}

    # -- public surface ---------------------------------------------------------------------
    @property
    def system(self) -> str:
        """Name of the parameter set."""
        return self._params.name

    @property
    def basis(self) -> OrbitalBasis:
        """Orbital basis (s+d on the metals, s+p on the halogens)."""
        return self._basis

    @property
    def cutoff(self) -> float:
        """Interaction cutoff, Å: no hopping, overlap or environment term reaches further."""
        return float(self._params.cutoff)

    @property
    def magnetic_elements(self) -> tuple[str, ...]:
        """Elements that carry moments (an exchange splitting); the others are polarised only
        by their magnetic neighbours."""
        return tuple(el for el, p in self._params.elements.items() if p.magnetic)

    @property
    def valence(self) -> dict[str, int]:
        """Valence electrons per element held by the basis."""
        return {el: p.valence for el, p in self._params.elements.items()}

    @property
    def overlap(self) -> bool:
        """Whether predicted Hamiltonians carry a non-orthogonal overlap ``S``."""
        return self._overlap

    @property
    def soc(self) -> bool:
        """Whether on-site spin-orbit coupling is included."""
        return self._soc

    @property
    def parameters(self) -> SystemParams:
        """The parameter tables (read-only)."""
        return self._params

    def __repr__(self) -> str:
        return (f"ReferenceTB({self.system!r}; SYNTHETIC Slater-Koster model, not DFT; "
                f"overlap={self._overlap}, soc={self._soc}, cutoff={self.cutoff} Å)")

    def n_electrons(self, atoms: Atoms | Geometry) -> int:
        """Number of valence electrons of ``atoms`` in the basis (neutral atoms; see the
        module docstring), e.g. for ``ham.fermi_level(ref.n_electrons(atoms), kpts)``."""
        numbers = np.asarray(atoms.numbers)
        self._basis.check_numbers(numbers)
        return int(sum(self._params.elements[chemical_symbols[z]].valence for z in numbers))

    def structure(self, size: Sequence[int] = (1, 1, 1)) -> Atoms:
        """The system's structure (default builder of :mod:`ase_hamgnn.data.structures`)."""
        try:
            builder = _BUILDERS[self.system]
        except KeyError:
            raise ValueError(f"no structure builder for custom system {self.system!r}") from None
        return builder(size)

    def predict(self, atoms: Atoms | Geometry) -> TBHamiltonian:
        """The reference Hamiltonian (and overlap) of ``atoms`` with its moments.

        Parameters
        ----------
        atoms : ase.Atoms or Geometry
            Any structure of the model's elements; moments from ``initial_magmoms`` (N, 3)
            in μB, or (N,) meaning along z.  Moments on elements without an exchange
            constant (the ligands, Ir) are ignored: their spin polarisation is induced by
            their magnetic neighbours.

        Returns
        -------
        TBHamiltonian
            In eV, lattice vectors ``R`` along the periodic directions only.

        Raises
        ------
        BasisError
            If an element is not part of the model.
        StructureError
            If the structure cannot be predicted (see
            :func:`ase_hamgnn.graph.check_structure`): no atoms, a singular periodic cell
            (:class:`~ase_hamgnn.errors.CellError`), two atoms closer than 0.5 Å
            (:class:`~ase_hamgnn.errors.OverlappingAtomsError`) or malformed moments
            (:class:`~ase_hamgnn.errors.MomentError`).
        """
        geometry = atoms if isinstance(atoms, Geometry) else Geometry.from_atoms(atoms)
        check_structure(geometry, _MIN_DISTANCE)
        self._basis.check_numbers(geometry.numbers)
        sym = np.array([chemical_symbols[z] for z in geometry.numbers])
        magnetic = np.array([self._params.elements[s].magnetic for s in sym], dtype=bool)
        moments = geometry.moments * magnetic[:, None]
        offsets = self._basis.spin_orbital_offsets(geometry.numbers)
        edges = self._neighbours(geometry)
        f = self._radial(edges, sym)
        h_store, s_store = _Store(), (_Store() if self._overlap else None)
        rho = np.bincount(edges.i, weights=f, minlength=len(sym))
        levels = {}
        for el in self._params.elements:
            atoms_el = np.nonzero(sym == el)[0]
            if len(atoms_el) == 0:
                continue
            lev, blocks = self._onsite(el, atoms_el, sym, moments, rho, edges, f)
            levels[el] = np.zeros((len(sym), lev.shape[1]))
            levels[el][atoms_el] = lev
            zero = np.zeros((len(atoms_el), 3), dtype=np.int64)
            rows, cols = _block_indices(offsets, atoms_el, atoms_el, blocks.shape)
            h_store.add(zero, rows, cols, blocks)
            if s_store is not None:
                eye = np.broadcast_to(np.eye(blocks.shape[1], dtype=np.complex128), blocks.shape)
                s_store.add(zero, rows, cols, eye)
        s = edges.shift
        positive = (s[:, 0] > 0) | ((s[:, 0] == 0) & ((s[:, 1] > 0)
                                                      | ((s[:, 1] == 0) & (s[:, 2] > 0))))
        half = (edges.i < edges.j) | ((edges.i == edges.j) & positive)  # each bond once
        bonds, f_bonds = edges.take(half), f[half]
        for a in self._params.elements:
            for b in self._params.elements:
                sel = (sym[bonds.i] == a) & (sym[bonds.j] == b)
                if not sel.any():
                    continue
                e = bonds.take(sel)
                h_blocks, s_blocks = self._bond_blocks(a, b, e, f_bonds[sel], moments, levels)
                rows, cols = _block_indices(offsets, e.i, e.j, h_blocks.shape)
                _add_bonds(h_store, e.shift, rows, cols, h_blocks)
                if s_store is not None:
                    _add_bonds(s_store, e.shift, rows, cols, s_blocks)
        dim = int(offsets[-1])
        s_r = None if s_store is None else s_store.matrices(dim)
        return TBHamiltonian(self._basis, geometry, h_store.matrices(dim), s_r)

    # -- parameters -----------------------------------------------------------------------------
    def _pair(self, a: str, b: str) -> tuple[PairParams, bool]:
        """Parameters of the pair and whether they are stored in the order (a, b)."""
        pairs = self._params.pairs
        if (a, b) in pairs:
            return pairs[(a, b)], True
        return pairs[(b, a)], False

    def _hopping_integrals(self, a: str, sa: str, b: str, sb: str) -> tuple[float, ...] | None:
        pair, forward = self._pair(a, b)
        key = (sa, sb) if forward else (sb, sa)
        if key in pair.hopping:
            return pair.hopping[key]
        if a == b:
            return pair.hopping.get((sb, sa))
        return None

    def _shells(self, el: str) -> list[tuple[Shell, slice]]:
        return list(zip(self._basis.shells(el), self._basis.shell_slices(el), strict=True))

    def _soc_block(self, el: str) -> np.ndarray:
        p = self._params.elements[el]
        n = self._basis.n_orbitals(el)
        out = np.zeros((2, n, 2, n), dtype=np.complex128)
        for (shell, sl), zeta in zip(self._shells(el), p.soc, strict=True):
            if self._soc and zeta and shell.l > 0:
                k = shell.size
                out[:, sl, :, sl] = soc_matrix(shell.l, zeta).reshape(2, k, 2, k)
        return out.reshape(2 * n, 2 * n)

    # -- geometry -----------------------------------------------------------------------------
    def _neighbours(self, geometry: Geometry) -> _Edges:
        pos, cell, pbc = geometry.positions, geometry.cell, geometry.pbc
        nl = vesin.NeighborList(cutoff=self.cutoff, full_list=True)
        i, j, shift = nl.compute(points=pos, box=cell, periodic=pbc.tolist(), quantities="ijS")
        i, j, shift = i.astype(np.int64), j.astype(np.int64), shift.astype(np.int64)
        vec = pos[j] - pos[i] + shift @ cell
        dist = np.linalg.norm(vec, axis=1)
        keep = dist < self.cutoff
        return _Edges(i[keep], j[keep], shift[keep], vec[keep], dist[keep])

    def _radial(self, edges: _Edges, sym: np.ndarray) -> np.ndarray:
        """``f_ij = exp(-decay (r - r0)) fc(r)`` per edge, ``fc`` the cosine taper."""
        species = sorted(self._params.elements)
        idx = {s: n for n, s in enumerate(species)}
        code = np.array([idx[s] for s in sym], dtype=np.int64)
        r0 = np.zeros((len(species), len(species)))
        decay = np.zeros_like(r0)
        for a in species:
            for b in species:
                pair, _ = self._pair(a, b)
                r0[idx[a], idx[b]], decay[idx[a], idx[b]] = pair.r0, pair.decay
        ci, cj = code[edges.i], code[edges.j]
        r = edges.dist
        rc, w = self._params.cutoff, self._params.taper
        x = np.clip((r - (rc - w)) / w, 0.0, 1.0)
        fc = 0.5 * (1.0 + np.cos(np.pi * x))
        return np.exp(-decay[ci, cj] * (r - r0[ci, cj])) * fc

    # -- blocks ---------------------------------------------------------------------------------
    def _onsite(self, el, atoms_el, sym, moments, rho, edges, f):
        """Scalar levels (n_el, n) and on-site blocks (n_el, 2n, 2n) of the atoms of ``el``."""
        p = self._params.elements[el]
        n, count = self._basis.n_orbitals(el), len(atoms_el)
        local = np.full(len(sym), -1)
        local[atoms_el] = np.arange(count)
        mine = local[edges.i] >= 0
        e, f_e, loc = edges.take(mine), f[mine], local[edges.i[mine]]
        mom = moments[atoms_el]
        m2 = np.einsum("ia,ia->i", mom, mom)
        lev = np.zeros((count, n))
        orb = np.zeros((count, n, n))        # spin-independent part
        xfield = np.zeros((count, 3, n))     # exchange vector X (H = -X.sigma) per orbital
        for (shell, sl), eps, kappa, u, big_i in zip(
                self._shells(el), p.onsite, p.coordination, p.moment_shift, p.exchange,
                strict=True):
            lev[:, sl] = (eps + kappa * rho[atoms_el] + u * m2)[:, None]
            stoner = 0.5 * big_i * (1.0 + p.exchange_cubic * m2)
            xfield[:, :, sl] = (stoner[:, None] * mom)[:, :, None]
            for other in self._params.elements:
                sel = sym[e.j] == other
                if not sel.any():
                    continue
                pair, _ = self._pair(el, other)
                cf = pair.crystal_field.get((el, shell.label))
                if cf is not None and shell.l > 0:
                    g = sk_basis(shell.l, shell.l, e.vec[sel])
                    contrib = np.einsum("c,e,ecab->eab", np.asarray(cf), f_e[sel], g)
                    orb[:, sl, sl] += _scatter(loc[sel], contrib, count)
                jx = pair.induced_exchange.get((el, shell.label))
                if jx:
                    field = jx * f_e[sel, None] * moments[e.j[sel]]
                    xfield[:, :, sl] += _scatter(loc[sel], field, count)[:, :, None]
        diag = np.arange(n)
        orb[:, diag, diag] += lev
        mag = np.zeros((count, 3, n, n))
        mag[:, :, diag, diag] = -xfield
        blocks = _spin_blocks(orb, mag) + self._onsite_soc[el][None]
        return lev, 0.5 * (blocks + blocks.conj().transpose(0, 2, 1))  # Hermitian to the bit

    def _bond_blocks(self, a, b, e, f_e, moments, levels):
        """H and (optionally) S blocks (E, 2 n_a, 2 n_b) of bonds ``e`` from ``a`` to ``b``."""
        elements = self._params.elements
        na, nb = self._basis.n_orbitals(a), self._basis.n_orbitals(b)
        t0 = np.zeros((len(f_e), na, nb))
        for shell_a, sl_a in self._shells(a):
            for shell_b, sl_b in self._shells(b):
                v = self._hopping_integrals(a, shell_a.label, b, shell_b.label)
                if v is not None:
                    t0[:, sl_a, sl_b] = sk_block(shell_a.l, shell_b.l, e.vec, v)
        t0 *= f_e[:, None, None]
        pair, _ = self._pair(a, b)
        mi, mj = moments[e.i], moments[e.j]
        h0 = t0.copy()
        if pair.moment_coupling and elements[a].magnetic and elements[b].magnetic:
            dot = np.einsum("ea,ea->e", mi, mj) / (elements[a].moment * elements[b].moment)
            h0 *= (1.0 + pair.moment_coupling * dot)[:, None, None]
        s_blocks = None
        if self._overlap:
            s_orb = -t0 / self._params.overlap_energy
            h0 += 0.5 * (levels[a][e.i][:, :, None] + levels[b][e.j][:, None, :]) * s_orb
            s_blocks = _spin_blocks(s_orb, np.zeros((len(f_e), 3, na, nb)))
        mag = (pair.spin_hopping * (mi + mj))[:, :, None, None] * t0[:, None]
        return _spin_blocks(h0, mag), s_blocks


def _block_indices(offsets: np.ndarray, i: np.ndarray, j: np.ndarray, shape: tuple[int, ...]):
    """Row and column indices (E, 2 n_i, 2 n_j) of the blocks of atom pairs ``(i, j)``."""
    rows = offsets[i, None, None] + np.arange(shape[1])[None, :, None]
    cols = offsets[j, None, None] + np.arange(shape[2])[None, None, :]
    return np.broadcast_arrays(rows, cols)


def _add_bonds(store: _Store, shift, rows, cols, blocks) -> None:
    """Add bond blocks ``(i, j, R)`` and their Hermitian partners ``(j, i, -R)``."""
    store.add(shift, rows, cols, blocks)
    store.add(-shift, cols.transpose(0, 2, 1), rows.transpose(0, 2, 1),
              blocks.conj().transpose(0, 2, 1))
