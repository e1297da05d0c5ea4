"""Quicklook of re-differential D-InSAR: wrapped phase, direct unwrapping, re-differential result, truth and error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from cryocube.plot._common import _extent, _pyplot, _save


def redifferential_plot(interferogram: xr.DataArray, direct_los: xr.DataArray, redifferential_los: xr.DataArray, path: str | Path, *,
                        truth_los: xr.DataArray | None = None, title: str | None = None) -> Path:
    """Save a row of maps: wrapped phase, direct-unwrapped LoS, re-differential LoS, truth and error (cm) when given.

    Parameters
    ----------
    interferogram
        Complex ``(y, x)`` interferogram (its angle is shown, rad).
    direct_los, redifferential_los
        LoS displacement (m) from direct unwrapping and from :func:`cryocube.redifferential.redifferential_unwrap`.
    path
        Output PNG.
    truth_los
        True LoS displacement (m), if known: adds the truth and the re-differential error maps.
    title
        Figure title.

    Returns
    -------
    pathlib.Path
        The PNG written.
    """
    plt = _pyplot()
    panels = [("wrapped phase (rad)", np.angle(interferogram.values), "twilight", (-np.pi, np.pi)),
              ("direct unwrapping, LoS (m)", direct_los.values, "RdBu_r", None),
              ("re-differential, LoS (m)", redifferential_los.values, "RdBu_r", None)]
    if truth_los is not None:
        panels.append(("truth, LoS (m)", truth_los.values, "RdBu_r", None))
        panels.append(("re-differential - truth (cm)", 100 * (redifferential_los.values - truth_los.values), "PuOr", (-1, 1)))
    scale = np.nanmax(np.abs(redifferential_los.values))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), constrained_layout=True)
    extent = _extent(interferogram)
    for ax, (label, values, cmap, limits) in zip(axes, panels):
        vmin, vmax = limits if limits is not None else (-scale, scale)
        image = ax.imshow(values, extent=extent, origin="upper", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
