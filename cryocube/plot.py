"""Quicklook PNGs of cubes (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from cryocube import conventions as cv


def quicklook(
    ds: xr.Dataset,
    path: str | Path,
    *,
    variables: Sequence[str] | None = None,
    n_scenes: int = 3,
    title: str | None = None,
) -> Path:
    """Save a grid of scenes (rows: variables, columns: scenes spread over time) as PNG.

    Parameters
    ----------
    ds
        A cube with dims ``(time, y, x)``.
    path
        Output PNG file.
    variables
        Variables to show (default: every ``(time, y, x)`` variable except ``incidence_angle``).
    n_scenes
        Number of scenes per row, evenly spread between the first and last date.
    title
        Figure title.

    Returns
    -------
    Path
        The PNG written. Only the shown scenes are computed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if variables is None:
        variables = [name for name, var in ds.data_vars.items() if var.dims == (cv.TIME, cv.Y, cv.X) and name != cv.INCIDENCE_ANGLE]
    if not variables:
        raise ValueError("quicklook: the dataset has no (time, y, x) variable to show")
    picks = np.unique(np.linspace(0, ds.sizes[cv.TIME] - 1, min(n_scenes, ds.sizes[cv.TIME])).round().astype(int))
    fig, axes = plt.subplots(len(variables), len(picks), figsize=(3.2 * len(picks), 3.0 * len(variables)), squeeze=False, constrained_layout=True)
    extent = [float(ds[cv.X].min()), float(ds[cv.X].max()), float(ds[cv.Y].min()), float(ds[cv.Y].max())]
    for row, name in enumerate(variables):
        scenes = ds[name].isel({cv.TIME: picks}).values
        finite = scenes[np.isfinite(scenes)]
        vmin, vmax = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        for col, index in enumerate(picks):
            ax = axes[row, col]
            image = ax.imshow(scenes[col], extent=extent, vmin=vmin, vmax=vmax, cmap="gray", origin="upper")
            date = np.datetime_as_string(ds[cv.TIME].values[index], unit="D")
            ax.set_title(f"{name} {date}", fontsize=9)
            ax.tick_params(labelsize=6)
        fig.colorbar(image, ax=axes[row, -1], label=ds[name].attrs.get("units", ""), shrink=0.8)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
