"""OpenMX ``.scfout`` (3.9 and 3.7/3.8 layouts): read back files made by a TEST-ONLY writer.

``_write_scfout`` below exists only to make round-trip tests possible; it is not a supported
way to produce OpenMX files (it writes zero density matrices and position/momentum overlaps).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from tb_helpers import random_tb

from ase_hamgnn import OrbitalBasis, TBHamiltonian
from ase_hamgnn.data.io.conventions import atom_transform
from ase_hamgnn.data.io.openmx import read_openmx
from ase_hamgnn.data.io.units import BOHR_IN_ANGSTROM, HARTREE_IN_EV
from ase_hamgnn.errors import DatasetError

TOL = 1e-12


def _input_lines(ham, species, *, angles=None, unit="Ang", cell_unit="Ang", comments=False,
                 case=str, shift=0.0):
    """TEST TOOL: an OpenMX input for ``ham``'s structure.  ``unit`` / ``cell_unit``: units of
    the coordinates (Ang, AU, FRAC) and unit vectors (Ang, AU); ``comments``: a comment after
    every keyword and block line, as in OpenMX's examples; ``case``: applied to keywords and
    block names; ``shift``: Å added to every coordinate (an input of another structure)."""
    geo = ham.geometry
    sym = [__import__("ase").data.chemical_symbols[z] for z in geo.numbers]
    scale = {"Ang": 1.0, "AU": 1 / BOHR_IN_ANGSTROM}
    pos = geo.positions + shift
    coords = pos @ np.linalg.inv(geo.cell) if unit == "FRAC" else pos * scale.get(unit, 1.0)

    def c(text):
        return f"   # {text}" if comments else ""

    angles = angles if angles is not None else [(5.0, 5.0, 0.0, 0.0)] * len(sym)
    lines = [f"{case('Species.Number')}  {len(species)}{c('number of species')}",
             f"<{case('Definition.of.Atomic.Species')}{c('label, basis, pseudopotential')}"]
    lines += [f"  {el}  {basis_str}  {vps}" for el, (basis_str, vps) in species.items()]
    lines += [f"{case('Definition.of.Atomic.Species')}>", "#", "# Atoms", "#",
              f"{case('Atoms.Number')}  {len(sym)}",
              f"{case('Atoms.SpeciesAndCoordinates.Unit')}   {case(unit)}{c('Ang|AU|FRAC')}",
              f"<{case('Atoms.SpeciesAndCoordinates')}{c(f'Unit={unit}.')}"]
    lines += [f" {a + 1} {s} {x:.15f} {y:.15f} {z:.15f} {u} {d} {t} {p} 0.0 0.0 1 off"
              f"{c('up down theta phi')}"
              for a, (s, (x, y, z), (u, d, t, p)) in enumerate(zip(sym, coords, angles))]
    lines += [f"{case('Atoms.SpeciesAndCoordinates')}>{c('end')}",
              f"{case('Atoms.UnitVectors.Unit')}  {case(cell_unit)}{c('Ang|AU')}",
              f"<{case('Atoms.UnitVectors')}{c(f'unit={cell_unit}')}"]
    lines += [" ".join(f"{x:.15f}" for x in row) for row in geo.cell * scale[cell_unit]]
    lines += [f"{case('Atoms.UnitVectors')}>", f"{case('MD.Type')}  {case('Nomd')}"]
    return lines


def _write_scfout(path, ham, species, *, spinp=3, version=3, soc_share=0.3, order_max=1,
                  omit_ihks=False, angles=None, endian="<", lines=None, asymmetry=0.0):
    """TEST TOOL: OpenMX .scfout bytes of ``ham`` (non-collinear, SpinP_switch 3), in the
    3.9 layout (``version=3``) or the 3.7/3.8 one (``version=0``: no order_max, three
    position overlaps, no OLPmo, no iDM).  ``species``: per element (basis string,
    pseudopotential name).  The imaginary part of H_ud is split between Hks[3] and iHks[2]
    (``soc_share``) to test that both are read.  ``omit_ihks`` leaves the iHks records out
    (a file missing spin components); ``angles``: per atom (up, down, theta, phi) written to
    the stored input; ``lines``: the stored input (default :func:`_input_lines`);
    ``asymmetry``: Hartree added to the s-s element (up-up) of block (0, 1, R = 0) only, making
    H non-Hermitian by that much (OpenMX's own output is Hermitian to ~1e-9 Hartree)."""
    geo = ham.geometry
    n_atoms = len(geo.numbers)
    ls = [[s.l for s in ham.basis.shells(int(z))] for z in geo.numbers]
    sizes = [sum(2 * l + 1 for l in la) for la in ls]
    t = [atom_transform("openmx", la) for la in ls]
    ts = [atom_transform("openmx", la, spinful=False) for la in ls]
    rs = sorted(ham.h_r, key=lambda r: (r != (0, 0, 0), r))
    neigh = []  # per atom: (j, cell index), itself first
    for i in range(n_atoms):
        lst = [(i, 0)]
        for c, r in enumerate(rs):
            for j in range(n_atoms):
                if (j, c) != (i, 0) and np.abs(ham.block(i, j, r)).max() > 0:
                    lst.append((j, c))
        neigh.append(lst)
    out = [np.array([n_atoms, spinp + 4 * version, 0, 0, 0, len(rs) - 1], "<i4")]
    if version == 3:
        out += [np.array([order_max], "<i4")]
    cells = np.zeros((len(rs), 4))
    cells[:, 1:] = np.array(rs) @ geo.cell / BOHR_IN_ANGSTROM
    cells_ijk = np.zeros((len(rs), 4), "<i4")
    cells_ijk[:, 1:] = rs
    out += [cells.astype("<f8"), cells_ijk, np.array(sizes, "<i4"),
            np.array([len(n) - 1 for n in neigh], "<i4")]
    out += [np.array([j + 1 for j, _ in n], "<i4") for n in neigh]
    out += [np.array([c for _, c in n], "<i4") for n in neigh]
    pad = np.zeros((3, 1))
    out += [np.hstack([pad, geo.cell / BOHR_IN_ANGSTROM]).astype("<f8"),
            np.hstack([pad, np.linalg.inv(geo.cell).T]).astype("<f8"),
            np.hstack([np.zeros((n_atoms, 1)), geo.positions / BOHR_IN_ANGSTROM]).astype("<f8")]

    def comp(fn):
        return [np.ascontiguousarray(fn(i, j, rs[c]), "<f8") for i in range(n_atoms)
                for j, c in neigh[i]]

    def foreign(i, j, r):
        out = t[i].T @ ham.block(i, j, r) @ t[j] / HARTREE_IN_EV
        if (i, j, r) == (0, 1, (0, 0, 0)):
            out[0, 0] += asymmetry  # s (up) of atom 0 to s (up) of atom 1
        return out

    def part(i, j, r, a, b):
        n_i, n_j = sizes[i], sizes[j]
        return foreign(i, j, r)[a * n_i:(a + 1) * n_i, b * n_j:(b + 1) * n_j]

    out += comp(lambda i, j, r: part(i, j, r, 0, 0).real)
    out += comp(lambda i, j, r: part(i, j, r, 1, 1).real)
    out += comp(lambda i, j, r: part(i, j, r, 0, 1).real)
    out += comp(lambda i, j, r: (1 - soc_share) * part(i, j, r, 0, 1).imag)
    if not omit_ihks:
        out += comp(lambda i, j, r: part(i, j, r, 0, 0).imag)
        out += comp(lambda i, j, r: part(i, j, r, 1, 1).imag)
        out += comp(lambda i, j, r: soc_share * part(i, j, r, 0, 1).imag)
    out += comp(lambda i, j, r: ts[i].T @ ham.block(i, j, r, overlap=True)[:sizes[i],
                                                                            :sizes[j]].real
                @ ts[j])
    zero = comp(lambda i, j, r: np.zeros((sizes[i], sizes[j])))
    n_zero = 3 * order_max + 3 + 4 + 2 if version == 3 else 3 + 4  # OLPpo, OLPmo, DM, iDM
    for _ in range(n_zero):
        out += zero
    out += [np.array([1], "<i4"), np.zeros(10, "<f8")]
    if lines is None:
        lines = _input_lines(ham, species, angles=angles)
    out += [np.array([len(lines)], "<i4")]
    body = b"".join(x.astype(x.dtype.newbyteorder(endian)).tobytes() for x in out)
    body += b"".join(ln.encode().ljust(256, b"\0") for ln in lines)
    path.write_bytes(body)
    return path


SPECIES = {"Ni": ("Ni6.0H-s1d1", "Ni_PBE19H"), "Br": ("Br7.0-s1p1", "Br_PBE19")}


@pytest.fixture
def ham(rng, basis, nibr2_like):
    return random_tb(rng, nibr2_like, basis, overlap=True)


@pytest.mark.parametrize("version, endian", [(3, "<"), (0, "<"), (0, ">")])
def test_round_trip(tmp_path, ham, basis, rng, version, endian):
    """Both layouts (3.9 and 3.7/3.8), either byte order: exact, same H(k)."""
    path = _write_scfout(tmp_path / "openmx.scfout", ham, SPECIES, version=version,
                         endian=endian, order_max=2)
    back = read_openmx(path, moments=ham.geometry.moments)
    assert back.basis == OrbitalBasis({"Ni": ["1s", "3d"], "Br": ["1s", "2p"]})
    again = read_openmx(path, moments=ham.geometry.moments, basis=basis,
                        pbc=ham.geometry.pbc)
    assert again.max_abs_difference(ham) < TOL
    np.testing.assert_allclose(again.geometry.positions, ham.geometry.positions, atol=1e-13)
    np.testing.assert_allclose(again.geometry.cell, ham.geometry.cell, atol=1e-13)
    for k in rng.random((3, 3)):
        np.testing.assert_allclose(again.hk(k).toarray(), ham.hk(k).toarray(), atol=TOL)
        np.testing.assert_allclose(again.sk(k).toarray(), ham.sk(k).toarray(), atol=TOL)


def test_layouts_differ_and_are_detected(tmp_path, ham):
    new = _write_scfout(tmp_path / "new.scfout", ham, SPECIES, version=3, order_max=1)
    old = _write_scfout(tmp_path / "old.scfout", ham, SPECIES, version=0)
    # 3.9 adds order_max (4 bytes), OLPmo (3 sets of blocks) and iDM (2 sets)
    n_blocks = (new.stat().st_size - old.stat().st_size - 4) / 5
    assert n_blocks > 0 and n_blocks == int(n_blocks)
    m = ham.geometry.moments
    assert read_openmx(old, moments=m).max_abs_difference(read_openmx(new, moments=m)) == 0


def test_hartree_and_bohr(tmp_path, ham):
    """The file holds Hartree and Bohr (the bytes are there); the reader gives eV and Å."""
    path = _write_scfout(tmp_path / "u.scfout", ham, SPECIES)
    data = path.read_bytes()
    pos_bohr = ham.geometry.positions[1] / BOHR_IN_ANGSTROM
    assert np.asarray(pos_bohr, "<f8").tobytes() in data
    onsite_ev = ham.block(1, 1)[0, 0].real  # Br s, up-up: the same orbital in both orders
    assert np.asarray([onsite_ev / HARTREE_IN_EV], "<f8").tobytes() in data
    back = read_openmx(path, moments=ham.geometry.moments, basis=ham.basis)
    assert abs(back.block(1, 1)[0, 0].real - onsite_ev) < 1e-13
    np.testing.assert_allclose(back.geometry.positions[1], ham.geometry.positions[1],
                               atol=1e-13)


def test_moments_from_the_stored_input(tmp_path, ham):
    angles = [(8.0, 6.0, 90.0, 30.0), (3.5, 3.5, 0.0, 0.0), (3.5, 3.5, 0.0, 0.0)]
    path = _write_scfout(tmp_path / "m.scfout", ham, SPECIES, angles=angles)
    back = read_openmx(path, moments="input")
    c, s = np.cos(np.radians(30.0)), np.sin(np.radians(30.0))
    np.testing.assert_allclose(back.geometry.moments, [[2 * c, 2 * s, 0], [0, 0, 0], [0, 0, 0]],
                               atol=1e-13)
    with pytest.raises(ValueError, match="input"):
        read_openmx(path, moments="initial")


def test_errors(tmp_path, ham, basis):
    path = _write_scfout(tmp_path / "a.scfout", ham, SPECIES)
    with pytest.raises(DatasetError, match="moments="):
        read_openmx(path)
    data = path.read_bytes()
    (tmp_path / "t.scfout").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated"):
        read_openmx(tmp_path / "t.scfout", moments=np.zeros((3, 3)))
    (tmp_path / "x.scfout").write_bytes(data + b"\0" * 64)
    with pytest.raises(DatasetError, match="end at byte"):
        read_openmx(tmp_path / "x.scfout", moments=np.zeros((3, 3)))
    dev = _write_scfout(tmp_path / "dev.scfout", ham, SPECIES, version=1)
    with pytest.raises(DatasetError, match="layout version 1.*OpenMX 3.9"):
        read_openmx(dev, moments=np.zeros((3, 3)))
    bad = bytearray(data)
    bad[4:8] = np.array([2 + 12], "<i4").tobytes()
    (tmp_path / "s.scfout").write_bytes(bytes(bad))
    with pytest.raises(DatasetError, match="SpinP_switch = 2"):
        read_openmx(tmp_path / "s.scfout", moments=np.zeros((3, 3)))
    other = OrbitalBasis({"Ni": ["4s", "4p"], "Br": ["4s", "4p"]})
    with pytest.raises(DatasetError, match="basis sizes do not match"):
        read_openmx(path, moments=np.zeros((3, 3)), basis=other, symbols=["Ni", "Br", "Br"])
    with pytest.raises(DatasetError, match="stored input"):
        read_openmx(path, moments=np.zeros((3, 3)), basis=other)
    with pytest.raises(ValueError, match="moments must be"):
        read_openmx(path, moments=np.zeros((2, 3)))


@pytest.mark.parametrize("version", [0, 3])
def test_missing_spin_components(tmp_path, ham, version):
    """A non-collinear header whose file lacks the imaginary (iHks) records."""
    path = _write_scfout(tmp_path / "n.scfout", ham, SPECIES, version=version, omit_ihks=True)
    with pytest.raises(DatasetError, match="misses spin components|truncated"):
        read_openmx(path, moments=np.zeros((3, 3)))


@pytest.mark.parametrize("unit, cell_unit, case", [
    ("Ang", "Ang", str), ("AU", "AU", str.upper), ("FRAC", "Ang", str.lower),
    ("FRAC", "AU", str)])
def test_stored_input_is_read_as_openmx_reads_it(tmp_path, ham, unit, cell_unit, case):
    """Comments after ``#`` (also on block lines, as in OpenMX's examples), keywords and block
    names in any case, coordinates in Ang, AU or FRAC and unit vectors in Ang or AU."""
    species = {"Ni": ("Ni6.0H-s1d1", "Ni_PBE19H"), "Br": ("Br7.0-s2>1p2>1", "Br_PBE19")}
    lines = _input_lines(ham, species, unit=unit, cell_unit=cell_unit, comments=True,
                         case=case)
    assert any(ln.lower().startswith("<atoms.speciesandcoordinates   #") for ln in lines)
    path = _write_scfout(tmp_path / "c.scfout", ham, species, lines=lines)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coordinates agree with the binary part
        back = read_openmx(path, moments="input")
    assert back.basis == OrbitalBasis({"Ni": ["1s", "3d"], "Br": ["1s", "2p"]})
    assert [int(z) for z in back.geometry.numbers] == [28, 35, 35]
    again = read_openmx(path, moments="input", basis=ham.basis)
    assert again.max_abs_difference(ham) < TOL


def test_stored_input_of_other_coordinates_warns(tmp_path, ham):
    lines = _input_lines(ham, SPECIES, shift=0.4)
    path = _write_scfout(tmp_path / "w.scfout", ham, SPECIES, lines=lines)
    with pytest.warns(UserWarning, match=r"differ .* by up to 0.693 Å"):
        read_openmx(path, moments="input")
    lines = _input_lines(ham, SPECIES, unit="Bohr")
    path = _write_scfout(tmp_path / "u.scfout", ham, SPECIES, lines=lines)
    with pytest.raises(DatasetError, match="unknown unit 'bohr'"):
        read_openmx(path, moments="input")


def test_blocks_hermitian_to_rounding_are_symmetrized(tmp_path, ham, caplog):
    """OpenMX writes blocks Hermitian to ~1e-9 Hartree (3.6e-8 eV for bcc Fe): accepted,
    replaced by their Hermitian part (so that saving, loading and tiling work), and the
    largest asymmetry is logged."""
    asym = 1.33e-9  # Hartree
    path = _write_scfout(tmp_path / "h.scfout", ham, SPECIES, asymmetry=asym)
    with caplog.at_level(logging.INFO, logger="ase_hamgnn.data.io.blocks"):
        back = read_openmx(path, moments=ham.geometry.moments, basis=ham.basis)
    logged = [r.getMessage() for r in caplog.records if "symmetrized" in r.getMessage()]
    assert any(f"{asym * HARTREE_IN_EV:.3e}" in m for m in logged), logged
    for r, mat in back.h_r.items():
        assert abs(mat - back.h_r[tuple(-x for x in r)].conj().T).max() == 0.0
    # the Hermitian part: half the asymmetry on each block of the pair
    assert back.max_abs_difference(ham) == pytest.approx(asym * HARTREE_IN_EV / 2, rel=1e-6)
    saved = TBHamiltonian.load(back.save(tmp_path / "h.npz"))
    assert saved.max_abs_difference(back) == 0.0
    k = np.array([0.1, 0.2, 0.0])
    big = back.tile((2, 1, 1))
    expected = np.sort(np.concatenate([back.eigvalsh(k), back.eigvalsh(k + [0.5, 0, 0])]))
    np.testing.assert_allclose(np.sort(big.eigvalsh([2 * k[0], k[1], k[2]])), expected,
                               atol=1e-10)


def test_blocks_far_from_hermitian_are_refused(tmp_path, ham):
    path = _write_scfout(tmp_path / "f.scfout", ham, SPECIES, asymmetry=1e-6)  # 27 μeV
    with pytest.raises(DatasetError, match=r"not Hermitian.*2\.72\de-05.*hermiticity_tol"):
        read_openmx(path, moments=ham.geometry.moments)
    back = read_openmx(path, moments=ham.geometry.moments, basis=ham.basis,
                       hermiticity_tol=1e-4)
    assert back.max_abs_difference(ham) == pytest.approx(1e-6 * HARTREE_IN_EV / 2, rel=1e-6)
