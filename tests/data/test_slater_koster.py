"""Slater–Koster blocks: textbook table, parity relation, rotation covariance."""

from __future__ import annotations

import numpy as np
import pytest

from ase_hamgnn.slater_koster import n_channels, sk_basis, sk_block
from ase_hamgnn.symmetry import random_rotation, wigner_d

S3 = np.sqrt(3.0)

# Index of the textbook orbitals (polar axis z) in e3nn's order (polar axis y).  The
# relabelling (x, y, z)_textbook = (z, x, y)_e3nn is a cyclic (proper) rotation, so the
# textbook table holds with direction cosines (l, m, n) = (d_z, d_x, d_y) of the e3nn vector.
P_INDEX = {"x": 2, "y": 0, "z": 1}
D_INDEX = {"xy": 0, "yz": 1, "3z2": 2, "zx": 3, "x2y2": 4}


def textbook(l, m, n, v):  # noqa: E741
    """Entries of Slater & Koster (1954), Table I, as (row kind, row, col kind, col, value)."""
    ss, sp, sd, pps, ppp, pds, pdp, dds, ddp, ddd = (
        v["ss"], v["sp"], v["sd"], v["pps"], v["ppp"], v["pds"], v["pdp"], v["dds"], v["ddp"],
        v["ddd"])
    q = n**2 - (l**2 + m**2) / 2
    return [
        ("s", "s", "s", "s", ss),
        ("s", "s", "p", "x", l * sp),
        ("s", "s", "p", "y", m * sp),
        ("s", "s", "p", "z", n * sp),
        ("p", "x", "p", "x", l**2 * pps + (1 - l**2) * ppp),
        ("p", "x", "p", "y", l * m * pps - l * m * ppp),
        ("p", "x", "p", "z", l * n * pps - l * n * ppp),
        ("s", "s", "d", "xy", S3 * l * m * sd),
        ("s", "s", "d", "x2y2", S3 / 2 * (l**2 - m**2) * sd),
        ("s", "s", "d", "3z2", q * sd),
        ("p", "x", "d", "xy", S3 * l**2 * m * pds + m * (1 - 2 * l**2) * pdp),
        ("p", "x", "d", "yz", S3 * l * m * n * pds - 2 * l * m * n * pdp),
        ("p", "x", "d", "zx", S3 * l**2 * n * pds + n * (1 - 2 * l**2) * pdp),
        ("p", "x", "d", "x2y2", S3 / 2 * l * (l**2 - m**2) * pds + l * (1 - l**2 + m**2) * pdp),
        ("p", "y", "d", "x2y2", S3 / 2 * m * (l**2 - m**2) * pds - m * (1 + l**2 - m**2) * pdp),
        ("p", "z", "d", "x2y2", S3 / 2 * n * (l**2 - m**2) * pds - n * (l**2 - m**2) * pdp),
        ("p", "x", "d", "3z2", l * q * pds - S3 * l * n**2 * pdp),
        ("p", "y", "d", "3z2", m * q * pds - S3 * m * n**2 * pdp),
        ("p", "z", "d", "3z2", n * q * pds + S3 * n * (l**2 + m**2) * pdp),
        ("d", "xy", "d", "xy",
         3 * l**2 * m**2 * dds + (l**2 + m**2 - 4 * l**2 * m**2) * ddp
         + (n**2 + l**2 * m**2) * ddd),
        ("d", "xy", "d", "yz",
         3 * l * m**2 * n * dds + l * n * (1 - 4 * m**2) * ddp + l * n * (m**2 - 1) * ddd),
        ("d", "xy", "d", "zx",
         3 * l**2 * m * n * dds + m * n * (1 - 4 * l**2) * ddp + m * n * (l**2 - 1) * ddd),
        ("d", "xy", "d", "x2y2",
         1.5 * l * m * (l**2 - m**2) * dds + 2 * l * m * (m**2 - l**2) * ddp
         + 0.5 * l * m * (l**2 - m**2) * ddd),
        ("d", "yz", "d", "x2y2",
         1.5 * m * n * (l**2 - m**2) * dds - m * n * (1 + 2 * (l**2 - m**2)) * ddp
         + m * n * (1 + (l**2 - m**2) / 2) * ddd),
        ("d", "zx", "d", "x2y2",
         1.5 * n * l * (l**2 - m**2) * dds + n * l * (1 - 2 * (l**2 - m**2)) * ddp
         - n * l * (1 - (l**2 - m**2) / 2) * ddd),
        ("d", "xy", "d", "3z2",
         S3 * l * m * q * dds - 2 * S3 * l * m * n**2 * ddp + S3 / 2 * l * m * (1 + n**2) * ddd),
        ("d", "yz", "d", "3z2",
         S3 * m * n * q * dds + S3 * m * n * (l**2 + m**2 - n**2) * ddp
         - S3 / 2 * m * n * (l**2 + m**2) * ddd),
        ("d", "zx", "d", "3z2",
         S3 * l * n * q * dds + S3 * l * n * (l**2 + m**2 - n**2) * ddp
         - S3 / 2 * l * n * (l**2 + m**2) * ddd),
        ("d", "x2y2", "d", "x2y2",
         0.75 * (l**2 - m**2) ** 2 * dds + (l**2 + m**2 - (l**2 - m**2) ** 2) * ddp
         + (n**2 + (l**2 - m**2) ** 2 / 4) * ddd),
        ("d", "x2y2", "d", "3z2",
         S3 / 2 * (l**2 - m**2) * q * dds + S3 * n**2 * (m**2 - l**2) * ddp
         + S3 / 4 * (1 + n**2) * (l**2 - m**2) * ddd),
        ("d", "3z2", "d", "3z2",
         q**2 * dds + 3 * n**2 * (l**2 + m**2) * ddp + 0.75 * (l**2 + m**2) ** 2 * ddd),
    ]


LVAL = {"s": 0, "p": 1, "d": 2}
INDEX = {"s": {"s": 0}, "p": P_INDEX, "d": D_INDEX}


def _integrals(v, l1, l2):
    key = {(0, 0): ("ss",), (0, 1): ("sp",), (0, 2): ("sd",), (1, 1): ("pps", "ppp"),
           (1, 2): ("pds", "pdp"), (2, 2): ("dds", "ddp", "ddd")}[(min(l1, l2), max(l1, l2))]
    return [v[k] for k in key]


def test_textbook_table_on_random_directions():
    rng = np.random.default_rng(1)
    names = ["ss", "sp", "sd", "pps", "ppp", "pds", "pdp", "dds", "ddp", "ddd"]
    for _ in range(20):
        v = dict(zip(names, rng.normal(size=len(names)), strict=True))
        d = rng.normal(size=3) * rng.uniform(0.5, 4.0)
        u = d / np.linalg.norm(d)
        l, m, n = u[2], u[0], u[1]  # noqa: E741
        for kind1, o1, kind2, o2, value in textbook(l, m, n, v):
            l1, l2 = LVAL[kind1], LVAL[kind2]
            block = sk_block(l1, l2, d[None], _integrals(v, l1, l2))[0]
            got = block[INDEX[kind1][o1], INDEX[kind2][o2]]
            assert got == pytest.approx(value, abs=1e-12), (kind1, o1, kind2, o2)
            # the reverse order: E_{beta, alpha}(d) = (-1)^(l1 + l2) E_{alpha, beta}(d)
            rev = sk_block(l2, l1, d[None], _integrals(v, l1, l2))[0]
            got_rev = rev[INDEX[kind2][o2], INDEX[kind1][o1]]
            assert got_rev == pytest.approx((-1) ** (l1 + l2) * value, abs=1e-12)


@pytest.mark.parametrize("l1", [0, 1, 2])
@pytest.mark.parametrize("l2", [0, 1, 2])
def test_polar_axis_channels_and_parity(l1, l2):
    rng = np.random.default_rng(10 * l1 + l2)
    nch = n_channels(l1, l2)
    v = rng.normal(size=nch)
    along_y = sk_block(l1, l2, np.array([[0.0, 2.5, 0.0]]), v)[0]
    sign = (-1) ** (l1 + l2) if l1 > l2 else 1
    want = np.zeros((2 * l1 + 1, 2 * l2 + 1))
    for m in range(-min(l1, l2), min(l1, l2) + 1):
        want[l1 + m, l2 + m] = sign * v[abs(m)]
    np.testing.assert_allclose(along_y, want, atol=1e-13)
    d = rng.normal(size=(7, 3))
    forward = sk_block(l1, l2, d, v)
    backward = sk_block(l2, l1, d, v)
    np.testing.assert_allclose(backward, (-1) ** (l1 + l2) * forward.transpose(0, 2, 1),
                               atol=1e-13)
    # inversion of the bond: E(-d) = (-1)^(l1 + l2) E(d)
    np.testing.assert_allclose(sk_block(l1, l2, -d, v), (-1) ** (l1 + l2) * forward, atol=1e-13)


@pytest.mark.parametrize("l1", [0, 1, 2])
@pytest.mark.parametrize("l2", [0, 1, 2])
def test_rotation_covariance(l1, l2):
    rng = np.random.default_rng(100 + 10 * l1 + l2)
    d = rng.normal(size=(5, 3))
    g = sk_basis(l1, l2, d)
    for proper in (True, False):
        q = random_rotation(rng, proper=proper)
        if not proper and np.linalg.det(q) > 0:
            q = -q
        rotated = sk_basis(l1, l2, d @ q.T)
        d1, d2 = wigner_d(l1, q), wigner_d(l2, q)
        expect = np.einsum("ab,ecbf,gf->ecag", d1, g, d2)
        np.testing.assert_allclose(rotated, expect, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="0..2"):
        sk_block(3, 0, np.ones((1, 3)), [1.0])
    with pytest.raises(ValueError, match="non-zero"):
        sk_block(0, 0, np.zeros((1, 3)), [1.0])
    with pytest.raises(ValueError, match="shape"):
        sk_block(1, 1, np.ones((2, 3)), [1.0, 2.0, 3.0])
