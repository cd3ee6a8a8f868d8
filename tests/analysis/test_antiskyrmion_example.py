"""``examples/nibri_antiskyrmion.py`` as a user runs it (small cell, its default unfolding:
the primitive k-points the supercell resolves, in one shared recursion): every figure is
written and the summary is consistent."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def example():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import nibri_antiskyrmion
    finally:
        sys.path.remove(str(EXAMPLES))
    return nibri_antiskyrmion


def test_small_antiskyrmion_story(example, tmp_path):
    s = example.run(size=8, out=tmp_path, n_bands=8, band_points=7, n_moments=128)
    names = {p.name for p in tmp_path.glob("*.png")}
    assert names == {"bands-near-gap.png", "edge-state-maps.png",
                     "unfolded-spectral-function.png", "kpm-dos.png"}
    assert s["atoms"] == 192 and abs(abs(s["Q"]) - 1) < 0.1
    assert 0.5 < s["gap_eV"] < 3.0 and s["cbm_eV"] > s["vbm_eV"]
    # 8 x 8 cells: M-Γ 5 points, Γ-K 2 more, then K (8 is not a multiple of 3)
    assert s["unfold_points"] == 8
    assert s["band_max_residual_eV"] <= 1e-3
    assert 0.0 <= s["vbm_weight_in_core"] <= 1.0
    # KPM counts the electrons below midgap within its resolution (a few states)
    assert abs(s["kpm_states_below_midgap"] - s["electrons"]) < 0.05 * s["electrons"]
    assert np.isfinite([s[k] for k in s if k.endswith("_s")]).all()
