"""Small matplotlib helpers shared by the plots of spectra, DOS and transport."""

from __future__ import annotations

from typing import Any


def energy_axis(ax: Any, reference: float | None, label: str = "E_F", along: str = "x") -> None:
    """Label the energy axis ``E (eV)``, or ``E − <label> (eV)`` with the reference (at 0 on
    that axis) marked by a dashed line and named; ``label`` is mathtext (``"E_F"``,
    ``r"E_\\mathrm{mid}"``)."""
    set_label = ax.set_xlabel if along == "x" else ax.set_ylabel
    if reference is None:
        set_label("E (eV)")
        return
    set_label(rf"$E - {label}$ (eV)")
    if along == "x":
        ax.axvline(0.0, color="k", lw=0.8, ls="--", zorder=1)
        ax.annotate(rf"${label}$", (0.0, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -3), textcoords="offset points", ha="left", va="top",
                    fontsize="small", annotation_clip=True)
    else:
        ax.axhline(0.0, color="k", lw=0.8, ls="--", zorder=1)
        ax.annotate(rf"${label}$", (1.0, 0.0), xycoords=("axes fraction", "data"),
                    xytext=(-3, 2), textcoords="offset points", ha="right", va="bottom",
                    fontsize="small", annotation_clip=True)
