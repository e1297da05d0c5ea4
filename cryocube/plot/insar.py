"""Quicklooks of SBAS products: a LoS velocity map and displacement time series at chosen points."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from cryocube import conventions as cv
from cryocube.plot._common import _extent, _pyplot, _save


def sbas_velocity_map(fit: xr.Dataset, path: str | Path, *, variable: str = "velocity", scale: float = 1000.0,
                      units: str = "mm/yr", points: Sequence[tuple[float, float]] | None = None,
                      limits: tuple[float, float] | None = None, title: str | None = None) -> Path:
    """Save a LoS velocity map (output of :func:`cryocube.deformation.fit_deformation`) as PNG.

    Parameters
    ----------
    fit
        Dataset with ``variable`` on ``(y, x)`` (m/yr).
    path
        Output PNG.
    variable
        Variable to draw (e.g. ``"annual_amplitude"``, then ``units="mm"``).
    scale, units
        Values are multiplied by ``scale`` and labelled ``units`` (default mm/yr).
    points
        ``(y, x)`` points to mark (e.g. those of :func:`sbas_timeseries_plot`).
    limits
        Colour limits (in scaled units); default symmetric 2-98 percentiles for a
        velocity, 0-98 percentile otherwise.
    title
        Figure title (default: the variable and the reference of the series).

    Returns
    -------
    Path
        The PNG written (computes the variable).
    """
    if variable not in fit.data_vars:
        raise ValueError(f"fit has no variable {variable!r}; it has {sorted(map(str, fit.data_vars))}")
    plt = _pyplot()
    da = fit[variable].transpose(cv.Y, cv.X).compute()
    values = da.values * scale
    finite = values[np.isfinite(values)]
    if limits is None:
        if variable == "velocity":
            bound = float(np.percentile(np.abs(finite), 98)) if finite.size else 1.0
            limits = (-bound, bound)
        else:
            limits = (0.0, float(np.percentile(finite, 98)) if finite.size else 1.0)
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    image = ax.imshow(values, extent=_extent(da), origin="upper", vmin=limits[0], vmax=limits[1],
                      cmap="RdBu" if variable == "velocity" else "viridis")
    fig.colorbar(image, ax=ax, label=f"{variable} ({units}); + towards satellite" if variable == "velocity"
                 else f"{variable} ({units})", shrink=0.8)
    for k, (y, x) in enumerate(points or []):
        ax.plot(x, y, marker="o", mfc="none", color=f"C{k}", ms=9, mew=2)
    reference = json.loads(fit.attrs.get("reference", "null") or "null")
    if isinstance(reference, dict) and reference.get("kind") == "area":
        x0, y0, x1, y1 = reference["bounds"]
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="k", lw=1)
    elif isinstance(reference, dict) and reference.get("kind") == "point":
        ax.plot(reference["x"], reference["y"], marker="s", color="k")
    for axis, dim in ((ax.set_xlabel, cv.X), (ax.set_ylabel, cv.Y)):
        units = da[dim].attrs.get("units")
        axis(f"{dim} ({units})" if units else dim)
    ax.tick_params(labelsize=7)
    ax.set_title(title or f"SBAS {variable} (reference: {reference.get('kind') if isinstance(reference, dict) else 'none'})",
                 fontsize=9)
    return _save(fig, path)


def sbas_timeseries_plot(ts: xr.Dataset, points: Sequence[tuple[float, float]], path: str | Path, *,
                         labels: Sequence[str] | None = None, truth: xr.DataArray | None = None,
                         fit: xr.Dataset | None = None, title: str | None = None) -> Path:
    """Save the LoS displacement time series at ``(y, x)`` points (nearest pixels) as PNG, in mm.

    Parameters
    ----------
    ts
        Output of :func:`cryocube.sbas.invert_sbas` (``displacement`` ``(time, y, x)``, m).
    points
        ``(y, x)`` coordinates.
    path
        Output PNG.
    labels
        One label per point.
    truth
        Optional ``(time, y, x)`` true displacement (m), drawn dashed.
    fit
        Optional :func:`cryocube.deformation.fit_deformation` output: the fitted
        velocity (and annual amplitude) are written in the legend.
    title
        Figure title.

    Returns
    -------
    Path
        The PNG written.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)
    times = ts[cv.TIME].values
    for k, (y, x) in enumerate(points):
        at = ts["displacement"].sel({cv.Y: y, cv.X: x}, method="nearest").compute()
        label = labels[k] if labels else f"y={y:g}, x={x:g}"
        if fit is not None and "velocity" in fit:
            f = fit.sel({cv.Y: y, cv.X: x}, method="nearest").compute()
            label += f": v={1000 * float(f['velocity']):.1f}±{1000 * float(f['velocity_error']):.1f} mm/yr"
            if "annual_amplitude" in f:
                label += f", A={1000 * float(f['annual_amplitude']):.1f} mm"
        ax.plot(times, 1000 * at.values, marker=".", color=f"C{k}", label=label)
        if truth is not None:
            ax.plot(times, 1000 * truth.sel({cv.Y: y, cv.X: x}, method="nearest").values, ls="--", color=f"C{k}", lw=0.8)
    ax.set_ylabel("LoS displacement (mm, + towards satellite)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(title or "SBAS displacement time series" + (" (dashed: truth)" if truth is not None else ""), fontsize=9)
    return _save(fig, path)
