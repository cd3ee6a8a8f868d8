"""Kwant export and transport helpers: physics checks on hand-built tight-binding models.

The models are small square lattices with an s+p atom ("C") and an s-only atom ("H") per cell,
Slater–Koster-like hoppings, exchange splitting along a (possibly non-collinear) texture and a
Rashba-like spin-orbit hopping; every block is Hermitian by construction (``H_ji(-R) =
H_ij(R)^dagger`` is written explicitly).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import kwant  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.neighborlist import neighbor_list  # noqa: E402

from ase_hamgnn import OrbitalBasis, TBHamiltonian  # noqa: E402
from ase_hamgnn.transport.export import (  # noqa: E402
    OVERLAP_ENERGY,
    LeadDirectionError,
    LeadMismatchError,
    LeadPeriodError,
    SpinConservationError,
    bloch_params,
    hopping_blocks,
    kwant_lattice,
    lowdin_orthogonalize,
    spin_matrix,
    to_kwant,
    to_kwant_periodic,
    to_kwant_system,
)
from ase_hamgnn.transport.scattering import (  # noqa: E402
    local_maps,
    plot_current,
    plot_spin_density,
    plot_transmission,
    spin_transmission,
    transmission,
)

BASIS = OrbitalBasis({"C": ["2s", "2p"], "H": ["1s"]})
A = 2.5  # lattice constant, Å

_ONSITE = {"C": np.array([-1.0, 1.5, 1.5, 1.8]), "H": np.array([0.3])}  # eV


def _orbital_hop(za: str, zb: str, d: np.ndarray) -> np.ndarray:
    """Real Slater–Koster-like orbital block for the bond vector ``d`` (Å)."""
    r = np.linalg.norm(d)
    u = d / r
    scale = np.exp(-(r - A / 2) / 0.8)
    vss, vsp, vpps, vppp = -1.0, 0.8, 1.2, -0.3
    sa, sb = za == "C", zb == "C"
    na, nb = (4 if sa else 1), (4 if sb else 1)
    t = np.zeros((na, nb))
    t[0, 0] = vss
    if sb:
        t[0, 1:] = vsp * u
    if sa:
        t[1:, 0] = -vsp * u
    if sa and sb:
        t[1:, 1:] = vpps * np.outer(u, u) + vppp * (np.eye(3) - np.outer(u, u))
    return scale * t


def make_model(atoms: Atoms, *, exchange: float = 0.8, rashba: float = 0.15,
               cutoff: float = 1.3 * A, overlap: float = 0.0) -> TBHamiltonian:
    """Tight-binding Hamiltonian of ``atoms`` (moments from ``initial_magmoms``)."""
    sym = atoms.get_chemical_symbols()
    mom = atoms.get_initial_magnetic_moments()
    if mom.ndim == 1:
        mom = np.stack([np.zeros_like(mom), np.zeros_like(mom), mom], axis=1)
    pauli = [spin_matrix(1, a) for a in "xyz"]
    blocks, sblocks = {}, {}
    for i, z in enumerate(sym):
        n = len(_ONSITE[z])
        onsite = np.kron(np.eye(2), np.diag(_ONSITE[z]))
        field = exchange * mom[i]
        onsite = onsite + np.kron(sum(f * p for f, p in zip(field, pauli, strict=True)),
                                  np.eye(n))
        blocks[(i, i, (0, 0, 0))] = onsite
        sblocks[(i, i, (0, 0, 0))] = np.eye(2 * n)
    ii, jj, shifts, dvec = neighbor_list("ijSD", atoms, cutoff)
    for i, j, s, d in zip(ii, jj, shifts, dvec, strict=True):
        r = tuple(int(x) for x in s)
        if (i, j, r) in blocks:
            continue
        t = _orbital_hop(sym[i], sym[j], d)
        u = d / np.linalg.norm(d)
        # Rashba-like: i lambda (u x sigma)_z (x) T, with T the s-s corner (real, symmetric).
        rs = 1j * rashba * (u[0] * pauli[1] - u[1] * pauli[0])
        tso = np.zeros_like(t)
        tso[0, 0] = t[0, 0]
        block = np.kron(np.eye(2), t) + np.kron(rs, tso)
        blocks[(i, j, r)] = block
        blocks[(j, i, tuple(-x for x in r))] = block.conj().T
        if overlap:
            sb = np.kron(np.eye(2), overlap * np.abs(t) / np.abs(t).max())
            sblocks[(i, j, r)] = sb
            sblocks[(j, i, tuple(-x for x in r))] = sb.T
    return TBHamiltonian.from_blocks(BASIS, atoms, blocks, sblocks if overlap else None)


def cell(moment=(0.0, 0.0, 1.0), pbc=(True, True, False)) -> Atoms:
    """Two-atom square cell: C at the origin, H at the bond centre along x."""
    atoms = Atoms("CH", positions=[[0, 0, 5.0], [A / 2, 0, 5.0]], cell=[A, A, 10.0], pbc=pbc)
    atoms.set_initial_magnetic_moments(np.array([moment, [0.0, 0.0, 0.0]]))
    return atoms


def skyrmion(atoms: Atoms, radius: float) -> Atoms:
    """Néel skyrmion in the xy-plane around the cell centre on the C atoms (unit moments)."""
    out = atoms.copy()
    centre = out.cell.array[:2, :2].sum(axis=0) / 2
    rel = out.positions[:, :2] - centre
    rho = np.linalg.norm(rel, axis=1)
    theta = np.pi * np.clip(1 - rho / radius, 0, 1)
    phi = np.arctan2(rel[:, 1], rel[:, 0])
    m = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], 1)
    m[np.array(out.get_chemical_symbols()) != "C"] = 0.0
    out.set_initial_magnetic_moments(m)
    return out


@pytest.fixture(scope="module")
def lead_ham() -> TBHamiltonian:
    return make_model(cell())


@pytest.fixture(scope="module")
def textured_ham() -> TBHamiltonian:
    return make_model(skyrmion(cell().repeat((6, 4, 1)), radius=5.0))


def _hk_from_builder(builder, ham: TBHamiltonian, k) -> np.ndarray:
    """H(k) rebuilt from the values stored in a periodic builder, in the order of ``ham``."""
    lat = kwant_lattice(ham)
    index = {fam: n for n, fam in enumerate(lat.sublattices)}
    o = ham.offsets
    hk = np.zeros((o[-1], o[-1]), dtype=np.complex128)
    for site, val in builder.site_value_pairs():
        i = index[site.family]
        hk[o[i]:o[i + 1], o[i]:o[i + 1]] += val
    for (a, b), val in builder.hopping_value_pairs():
        i, j = index[a.family], index[b.family]
        r = np.asarray(b.tag) - np.asarray(a.tag)
        blk = np.asarray(val) * np.exp(2j * np.pi * np.dot(k, r))
        hk[o[i]:o[i + 1], o[j]:o[j + 1]] += blk
        hk[o[j]:o[j + 1], o[i]:o[i + 1]] += blk.conj().T
    return hk


# -- export ---------------------------------------------------------------------------------
def test_one_family_per_atom_with_spin_orbitals(lead_ham):
    lat = kwant_lattice(lead_ham)
    assert [f.norbs for f in lat.sublattices] == [8, 2]
    np.testing.assert_allclose(lat.sublattices[1].pos((1, 0, 0)), [1.5 * A, 0, 5.0])


def test_exported_blocks_round_trip_to_hk(lead_ham):
    builder = to_kwant(lead_ham)
    rng = np.random.default_rng(0)
    for k in rng.random((4, 3)) * [1, 1, 0]:
        np.testing.assert_allclose(_hk_from_builder(builder, lead_ham, k),
                                   lead_ham.hk(k).toarray(), atol=1e-12)


def test_hopping_blocks_cover_every_hermitian_pair(textured_ham):
    blocks = hopping_blocks(textured_ham)
    total = sum(m.nnz for m in textured_ham.h_r.values())
    counted = 0
    for (i, j, r), (h, s) in blocks.items():
        assert s is None
        np.testing.assert_array_equal(h, textured_ham.block(i, j, r))
        nz = np.count_nonzero(h)
        counted += nz if (i == j and r == (0, 0, 0)) else 2 * nz
    assert counted == total


def test_wraparound_bands_equal_tbhamiltonian(lead_ham, textured_ham):
    rng = np.random.default_rng(1)
    for ham in (lead_ham, textured_ham):
        wrapped = kwant.wraparound.wraparound(to_kwant_periodic(ham)).finalized()
        for k in rng.random((3, 3)) * [1, 1, 0]:
            h = wrapped.hamiltonian_submatrix(params=bloch_params(ham, k))
            np.testing.assert_allclose(np.linalg.eigvalsh(h), ham.eigvalsh(k), atol=1e-10)


def test_spin_density_operator_matches_spin_expectation(textured_ham):
    ham = textured_ham
    wrapped = kwant.wraparound.wraparound(to_kwant_periodic(ham)).finalized()
    k = np.array([0.23, 0.61, 0.0])
    energies, states = np.linalg.eigh(wrapped.hamiltonian_submatrix(params=bloch_params(ham, k)))
    families = {s.family for s in wrapped.sites}
    spins = []
    for axis in "xyz":
        op = kwant.operator.Density(
            wrapped, {f: spin_matrix(f.norbs // 2, axis) for f in families}, sum=True)
        spins.append([op(states[:, n]).real for n in range(len(energies))])
    kw_spin = np.array(spins).T
    e_ref, c_ref = ham.eigh(k)
    np.testing.assert_allclose(energies, e_ref, atol=1e-10)
    ref_spin = ham.spin_expectation(k, c_ref)
    nondeg = np.ones(len(energies), dtype=bool)
    gaps = np.diff(energies) < 1e-6
    nondeg[1:] &= ~gaps
    nondeg[:-1] &= ~gaps
    assert nondeg.sum() > len(energies) // 2
    np.testing.assert_allclose(kw_spin[nondeg], ref_spin[nondeg], atol=1e-9)


# -- scattering -----------------------------------------------------------------------------
def test_smatrix_unitary_through_texture(textured_ham, lead_ham):
    syst = to_kwant_system(textured_ham, lead_ham, directions=[0]).finalized()
    for energy in (-1.2, 0.4):
        smat = kwant.smatrix(syst, energy)
        s = smat.data
        assert s.shape[0] > 0
        np.testing.assert_allclose(s.conj().T @ s, np.eye(s.shape[0]), atol=1e-10)
        t = smat.transmission(1, 0)
        assert 0 < t < smat.num_propagating(0)


def test_pristine_region_transmits_integer_channels(lead_ham):
    pristine = make_model(cell().repeat((4, 3, 1)))
    syst = to_kwant_system(pristine, lead_ham, directions=[0]).finalized()
    curve = transmission(syst, np.linspace(-2.5, 2.5, 9), progress=False)
    np.testing.assert_allclose(curve.transmission, curve.open_channels, atol=1e-8)
    assert curve.open_channels.max() >= 2


def test_lead_direction_errors(textured_ham, lead_ham):
    with pytest.raises(LeadDirectionError, match="not periodic"):
        to_kwant_system(textured_ham, lead_ham, directions=[2])
    with pytest.raises(LeadDirectionError, match="not a lattice vector"):
        to_kwant_system(textured_ham, lead_ham, directions=[(0.5, 0, 0)])
    with pytest.raises(LeadDirectionError, match="zero vector"):
        to_kwant_system(textured_ham, lead_ham, directions=[(0, 0, 0)])
    with pytest.raises(LeadDirectionError, match="ambiguous"):
        to_kwant_system(textured_ham, lead_ham, directions=(1, 0, 0))


def test_too_short_lead_period_raises_with_fix():
    far = make_model(cell(), cutoff=2.1 * A)                 # hops two cells along x
    region = make_model(cell().repeat((4, 2, 1)), cutoff=2.1 * A)
    with pytest.raises(LeadPeriodError, match=r"directions=\[\(2, 0, 0\)\]"):
        to_kwant_system(region, far, directions=[0])
    syst = to_kwant_system(region, far, directions=[(2, 0, 0)]).finalized()
    s = kwant.smatrix(syst, 0.3).data
    # the two-cell lead has a rank-deficient inter-cell hopping: modes are less well
    # conditioned, unitarity holds to ~1e-10
    np.testing.assert_allclose(s.conj().T @ s, np.eye(len(s)), atol=1e-9)


def test_region_off_the_lead_lattice_raises(lead_ham):
    shifted = cell().repeat((3, 2, 1))
    shifted.positions += [0.4, 0.0, 0.0]
    with pytest.raises(LeadMismatchError, match="do not sit on the lead lattice"):
        to_kwant_system(make_model(shifted), lead_ham)


def test_spin_axis_rejected_for_lead_with_soc(textured_ham, lead_ham):
    with pytest.raises(SpinConservationError, match="spin_axis=None"):
        to_kwant_system(textured_ham, lead_ham, spin_axis="z")


def test_spin_transmission_blocks_equal_kwant_conservation_law(textured_ham):
    lead = make_model(cell(), rashba=0.0)
    region = make_model(skyrmion(cell().repeat((6, 4, 1)), radius=5.0), rashba=0.0)
    syst = to_kwant_system(region, lead, spin_axis="z").finalized()
    energies = np.array([-1.5, 0.5])
    res = spin_transmission(syst, energies, axis="z", progress=False)
    np.testing.assert_allclose(res.purity, 1.0, atol=1e-10)
    for n, energy in enumerate(energies):
        smat = kwant.smatrix(syst, energy)
        for out in range(2):
            for inc in range(2):
                ref = smat.transmission((1, out), (0, inc))
                assert res.transmission[n, out, inc] == pytest.approx(ref, abs=1e-10)
        assert res.total[n] == pytest.approx(smat.transmission(1, 0), abs=1e-10)
    # the skyrmion flips spin: spin-flip transmission is present
    assert res.transmission[:, 0, 1].max() > 1e-3


def test_spin_transmission_collinear_pristine_has_no_spin_flip():
    lead = make_model(cell(), rashba=0.0)
    region = make_model(cell().repeat((3, 2, 1)), rashba=0.0)
    syst = to_kwant_system(region, lead).finalized()      # no declared conservation law
    res = spin_transmission(syst, [0.5], progress=False)
    np.testing.assert_allclose(res.transmission[0, 0, 1], 0.0, atol=1e-10)
    np.testing.assert_allclose(res.transmission[0, 1, 0], 0.0, atol=1e-10)
    assert res.total[0] == pytest.approx(kwant.smatrix(syst, 0.5).transmission(1, 0), abs=1e-10)


def test_four_terminal_cross_conserves_current(lead_ham):
    big = skyrmion(cell().repeat((7, 7, 1)), radius=6.0)
    pos = big.get_scaled_positions()
    keep = (np.abs(pos[:, 0] - 0.5) < 0.2) | (np.abs(pos[:, 1] - 0.5) < 0.2)
    region = make_model(big[keep])
    syst = to_kwant_system(region, lead_ham, directions=[0, 1]).finalized()
    assert len(syst.leads) == 4
    smat = kwant.smatrix(syst, 0.4)
    s = smat.data
    np.testing.assert_allclose(s.conj().T @ s, np.eye(len(s)), atol=1e-10)
    for lead in range(4):
        total = sum(smat.transmission(out, lead) for out in range(4))
        assert total == pytest.approx(smat.num_propagating(lead), abs=1e-9)
    # side leads are narrower than the full cross
    widths = [len(syst.leads[n].sites) for n in range(4)]
    assert widths[2] < len(region) // 2


# -- overlap --------------------------------------------------------------------------------
def test_overlap_fixed_energy_form_is_exact(lead_ham):
    ham = make_model(cell(), overlap=0.05)
    wrapped = kwant.wraparound.wraparound(to_kwant_periodic(ham)).finalized()
    assert OVERLAP_ENERGY in wrapped.parameters
    k = np.array([0.1, 0.3, 0.0])
    for energy in ham.eigvalsh(k)[[2, 5]]:
        params = {**bloch_params(ham, k), OVERLAP_ENERGY: energy}
        e = np.linalg.eigvalsh(wrapped.hamiltonian_submatrix(params=params))
        assert np.abs(e - energy).min() < 1e-10
    region = make_model(skyrmion(cell().repeat((4, 2, 1)), radius=3.0), overlap=0.05)
    pristine = make_model(cell().repeat((3, 2, 1)), overlap=0.05)
    curve = transmission(to_kwant_system(pristine, ham).finalized(), [-0.8, 0.6],
                         progress=False)
    np.testing.assert_allclose(curve.transmission, curve.open_channels, atol=1e-8)
    # bond currents of H - E S are conserved: the flux through a cut is the transmission
    syst = to_kwant_system(region, ham).finalized()
    maps = local_maps(syst, 0.6)
    t = kwant.smatrix(syst, 0.6, params={OVERLAP_ENERGY: 0.6}).transmission(1, 0)
    xa, xb = maps.positions[maps.bonds[:, 0], 0], maps.positions[maps.bonds[:, 1], 0]
    cut = (np.minimum(xa, xb) < 1.2 * A + 0.1) & (np.maximum(xa, xb) > 1.2 * A + 0.1)
    assert (maps.current[cut] * np.sign(xa[cut] - xb[cut])).sum() == pytest.approx(t, rel=1e-8)


def test_lowdin_exact_on_mesh_and_close_between():
    ham = make_model(cell(), overlap=0.05)
    orth = lowdin_orthogonalize(ham, kpts=(9, 9, 1))
    assert orth.orthogonal
    for k in ([2 / 9, 5 / 9, 0], [0.0, 1 / 3, 0]):
        np.testing.assert_allclose(orth.eigvalsh(k), ham.eigvalsh(k), atol=1e-10)
    k = [0.137, 0.411, 0.0]
    np.testing.assert_allclose(orth.eigvalsh(k), ham.eigvalsh(k), atol=1e-3)


# -- observables and plots ------------------------------------------------------------------
def test_local_current_through_cross_section_equals_transmission(textured_ham, lead_ham):
    syst = to_kwant_system(textured_ham, lead_ham).finalized()
    energy = 0.4
    maps = local_maps(syst, energy, lead=0)
    t = kwant.smatrix(syst, energy).transmission(1, 0)
    # bonds crossing the plane x = x0 between two columns of C atoms
    x0 = 2.2 * A + 0.1
    xa, xb = maps.positions[maps.bonds[:, 0], 0], maps.positions[maps.bonds[:, 1], 0]
    cut = (np.minimum(xa, xb) < x0) & (np.maximum(xa, xb) > x0)
    flow = maps.current[cut] * np.sign(xa[cut] - xb[cut])   # current from b to a, along +x
    assert flow.sum() == pytest.approx(t, rel=1e-8)
    assert maps.spin.shape == (len(maps.positions), 3)
    assert np.all(maps.charge >= 0)


def test_plots_render(textured_ham, lead_ham):
    syst = to_kwant_system(textured_ham, lead_ham).finalized()
    curve = spin_transmission(syst, np.linspace(-1, 1, 3), progress=False)
    maps = local_maps(syst, 0.4)
    for ax in (plot_transmission(curve), plot_spin_density(maps),
               plot_current(maps), plot_current(maps, component="z")):
        assert ax.figure is not None
    plt.close("all")


def test_triangular_lattice_period_two_plateaus():
    """Second neighbours of a triangular lattice (R = (2, 1, 0)) need a lead period of two
    cells; the lead then takes the region's last two columns as its unit cell."""
    tri = Atoms("C", positions=[[0, 0, 5.0]], cell=[[A, 0, 0], [-A / 2, A * 3**0.5 / 2, 0],
                                                    [0, 0, 10.0]], pbc=(True, True, False))
    tri.set_initial_magnetic_moments([[0.0, 0.0, 1.0]])
    lead = make_model(tri, cutoff=1.8 * A)
    region = make_model(tri.repeat((6, 3, 1)), cutoff=1.8 * A)
    with pytest.raises(LeadPeriodError, match=r"\(2, 0, 0\)"):
        to_kwant_system(region, lead, directions=[0])
    syst = to_kwant_system(region, lead, directions=[(2, 0, 0)]).finalized()
    assert [len(lead.sites[:lead.cell_size]) for lead in syst.leads] == [6, 6]
    curve = transmission(syst, np.linspace(-2.0, 3.0, 6), progress=False)
    np.testing.assert_allclose(curve.transmission, curve.open_channels, atol=1e-8)
    assert curve.open_channels.max() >= 2


def test_duplicated_atoms_raise(lead_ham):
    atoms = cell().repeat((3, 2, 1))
    atoms += atoms[:1]
    atoms.positions[-1] += [0.0, 0.0, 1e-4]
    with pytest.raises(LeadMismatchError, match="same lead-lattice site"):
        to_kwant_system(make_model(atoms, cutoff=1.3 * A), lead_ham)


def test_shared_mirror_lead_modes_equal_kwant(textured_ham, lead_ham):
    """The fast path (one mode computation for both mirror leads, MUMPS analysis reused
    over the sweep) gives Kwant's own transmissions."""
    from ase_hamgnn.transport import transmission

    syst = to_kwant_system(textured_ham, lead_ham, directions=[0]).finalized()
    energies = [-1.2, 0.4, 0.9]
    fast = transmission(syst, energies, progress=False).transmission
    plain = [kwant.smatrix(syst, e).transmission(1, 0) for e in energies]
    np.testing.assert_allclose(fast, plain, atol=1e-10)
    assert max(plain) > 0.1
