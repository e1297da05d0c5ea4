"""Sea-ice drift quicklook: drift vectors as a quiver over the dB image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from cryocube import conventions as cv
from cryocube.plot._common import _extent, _pyplot, _save

__all__ = ["drift_quiver"]


def drift_quiver(drift: xr.Dataset, image: xr.DataArray, path: str | Path, *, every: int = 1, title: str | None = None,
                 vmin: float | None = None, vmax: float | None = None) -> Path:
    """Save a PNG of the accepted drift vectors (arrows in km, coloured by speed) over the reference dB image.

    Parameters
    ----------
    drift
        Output of :func:`cryocube.ice_drift.track_ice_drift` (``displacement_x``,
        ``displacement_y`` in m, ``u``, ``v`` in m/s, ``flag``).
    image
        ``(y, x)`` backscatter (dB) on the images' grid (e.g. the reference).
    path
        Where to write the PNG.
    every
        Plot every ``every``-th grid point along each axis.
    title
        Figure title (default: the acquisition times from ``drift.attrs``).
    vmin, vmax
        Grey-scale limits of the image (dB); default its 2nd and 98th percentiles.
    """
    if int(every) != every or every < 1:
        raise ValueError(f"every must be an integer >= 1, got {every!r}")
    missing = {"displacement_x", "displacement_y", "u", "v"} - set(drift.data_vars)
    if missing:
        raise ValueError(f"drift lacks {sorted(missing)}: pass a track_ice_drift result")
    plt = _pyplot()
    if cv.TIME in image.dims:
        image = image.squeeze(cv.TIME)
    values = np.asarray(image.values, dtype=np.float32)
    low, high = np.nanpercentile(values, [2, 98]) if vmin is None or vmax is None else (vmin, vmax)
    sub = drift.isel({cv.Y: slice(None, None, int(every)), cv.X: slice(None, None, int(every))}).compute()
    xx, yy = np.meshgrid(sub[cv.X].values, sub[cv.Y].values)
    dx, dy = sub.displacement_x.values, sub.displacement_y.values
    speed = np.hypot(sub.u.values, sub.v.values)
    ok = np.isfinite(dx) & np.isfinite(dy)
    height, width = values.shape
    fig, ax = plt.subplots(figsize=(9, 9 * height / width + 0.8))
    ax.imshow(values, cmap="gray", vmin=vmin if vmin is not None else low, vmax=vmax if vmax is not None else high,
              extent=_extent(image), origin="upper", interpolation="nearest")
    arrows = ax.quiver(xx[ok], yy[ok], dx[ok], dy[ok], speed[ok], angles="xy", scale_units="xy", scale=1.0,
                       cmap="viridis", width=0.0025)
    fig.colorbar(arrows, ax=ax, label="drift speed (m/s)", shrink=0.8)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    if title is None:
        title = f"ice drift {drift.attrs.get('reference_time', '')} to {drift.attrs.get('secondary_time', '')}"
    ax.set_title(f"{title}\n{int(ok.sum())} vectors, arrows = displacement at map scale")
    return _save(fig, path)
