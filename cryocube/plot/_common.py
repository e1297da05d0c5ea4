"""Shared matplotlib plumbing for the quicklook modules (headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from cryocube import conventions as cv


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def _extent(da: xr.DataArray) -> list[float]:
    """imshow extent (pixel edges) of a ``(y, x)`` DataArray, for ``origin="upper"``."""
    half_x = abs(float(da[cv.X][1] - da[cv.X][0])) / 2
    half_y = abs(float(da[cv.Y][1] - da[cv.Y][0])) / 2
    return [float(da[cv.X].min()) - half_x, float(da[cv.X].max()) + half_x, float(da[cv.Y].min()) - half_y, float(da[cv.Y].max()) + half_y]
