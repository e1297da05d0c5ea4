"""Quicklook PNGs of scene cubes, velocity maps, melt products and station series."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from cryocube import conventions as cv
from cryocube.plot._common import _extent, _pyplot, _save


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
        Variables to show (default: every ``(time, y, x)`` variable except ``incidence_angle`` and ``detector_footprint``).
    n_scenes
        Number of scenes per row, evenly spread between the first and last date.
    title
        Figure title.

    Returns
    -------
    Path
        The PNG written. Only the shown scenes are computed.
    """
    plt = _pyplot()
    if variables is None:
        variables = [name for name, var in ds.data_vars.items() if var.dims == (cv.TIME, cv.Y, cv.X) and name not in (cv.INCIDENCE_ANGLE, cv.DETECTOR_FOOTPRINT)]
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
    return _save(fig, path)


def velocity_quicklook(
    velocity: xr.Dataset,
    path: str | Path,
    *,
    background: xr.DataArray | None = None,
    n_arrows: int = 16,
    title: str | None = None,
) -> Path:
    """Save the speed ``v`` (m/yr) as colours over an image, with arrows of ``(vx, vy)``.

    Parameters
    ----------
    velocity
        Output of :func:`cryocube.offsets_to_velocity` (``vx``, ``vy``, ``v`` on ``(y, x)``).
    path
        Output PNG file.
    background
        A ``(y, x)`` image drawn in grey under the speed (e.g. the reference scene).
    n_arrows
        Arrows along the longer side.
    title
        Figure title.

    Returns
    -------
    Path
        The PNG written (computes the velocity and the background).
    """
    plt = _pyplot()
    v = velocity.compute()
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    if background is not None:
        image = background.squeeze().transpose(cv.Y, cv.X).values
        finite = image[np.isfinite(image)]
        low, high = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        ax.imshow(image, extent=_extent(background), cmap="gray", vmin=low, vmax=high, origin="upper")
    speed = ax.imshow(v["v"].transpose(cv.Y, cv.X).values, extent=_extent(v["v"]), cmap="viridis", alpha=0.6, origin="upper")
    fig.colorbar(speed, ax=ax, label=f"speed ({v['v'].attrs.get('units', 'm/yr')})", shrink=0.8)
    stride = max(1, max(v.sizes[cv.Y], v.sizes[cv.X]) // n_arrows)
    sub = v.isel({cv.Y: slice(stride // 2, None, stride), cv.X: slice(stride // 2, None, stride)})
    ax.quiver(sub[cv.X].values, sub[cv.Y].values, sub["vx"].transpose(cv.Y, cv.X).values, sub["vy"].transpose(cv.Y, cv.X).values,
              color="white", angles="xy", pivot="middle")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.tick_params(labelsize=7)
    ax.set_title(title or f"{velocity.attrs.get('reference_time', '')} -> {velocity.attrs.get('secondary_time', '')}", fontsize=9)
    return _save(fig, path)


def aws_melt_plot(temperature: xr.DataArray, melt_days: xr.DataArray, path: str | Path, *, title: str | None = None) -> Path:
    """Save a station's air temperature against time with its melt days shaded, as PNG.

    Parameters
    ----------
    temperature
        1-D air temperature on ``time`` (°C, e.g. ``Temperature_Avg`` of
        :func:`cryocube.read_aws_logger`).
    melt_days
        Daily melt flags on ``time`` (1 melt, 0 no melt, NaN unknown) from
        :func:`cryocube.aws_melt_days`: melt days shaded red, unknown days grey; its
        ``threshold_c`` attribute (default 0 °C) is drawn as a dashed line.
    path
        Output PNG file.
    title
        Figure title (default: the melt rule).

    Returns
    -------
    Path
        The PNG written (computes both inputs).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5), constrained_layout=True)
    one_day = np.timedelta64(1, "D")
    flags = melt_days.values.astype(np.float64)
    for day, flag in zip(melt_days[cv.TIME].values, flags, strict=True):
        if flag == 1:
            ax.axvspan(day, day + one_day, color="tab:red", alpha=0.25, linewidth=0)
        elif np.isnan(flag):
            ax.axvspan(day, day + one_day, color="0.6", alpha=0.3, linewidth=0)
    ax.plot(temperature[cv.TIME].values, temperature.values, color="k", linewidth=0.8, label="air temperature")
    ax.axhline(float(melt_days.attrs.get("threshold_c", 0.0)), color="tab:blue", linestyle="--", linewidth=0.8, label="threshold")
    ax.fill_between([], [], color="tab:red", alpha=0.25, label=f"melt day ({int(np.sum(flags == 1))})")
    ax.fill_between([], [], color="0.6", alpha=0.3, label=f"unknown ({int(np.sum(np.isnan(flags)))})")
    ax.set_ylabel(f"air temperature ({temperature.attrs.get('units', 'degC')})")
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(labelsize=7)
    ax.set_title(title or melt_days.attrs.get("rule", "AWS melt days"), fontsize=9)
    return _save(fig, path)


def melt_maps(season: xr.Dataset, path: str | Path, *, year: int | None = None, title: str | None = None) -> Path:
    """Save maps of melt onset (day of year) and melt days for one season, as PNG.

    Parameters
    ----------
    season
        Output of :func:`cryocube.melt_season` (``melt_onset``, ``melt_days`` on ``(year, y, x)``).
    path
        Output PNG file.
    year
        Season to show (default: the first).
    title
        Figure title.

    Returns
    -------
    Path
        The PNG written (computes the selected season).
    """
    plt = _pyplot()
    one = (season.isel(year=0) if year is None else season.sel(year=year)).compute()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), constrained_layout=True)
    panels = (("melt_onset", "melt onset (day of year)", "plasma"), ("melt_days", "melt days", "viridis"))
    for ax, (name, label, cmap) in zip(axes, panels):
        image = ax.imshow(one[name].transpose(cv.Y, cv.X).values, extent=_extent(one[name]), cmap=cmap, origin="upper")
        fig.colorbar(image, ax=ax, label=label, shrink=0.85)
        ax.set_title(f"{label}, {int(one['year'])}", fontsize=9)
        ax.set_xlabel("x (m)")
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("y (m)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def melt_timeseries(
    cube: xr.Dataset,
    melt: xr.Dataset,
    points: Sequence[tuple[float, float]],
    path: str | Path,
    *,
    variable: str = "hh",
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Save backscatter against time at a few points, with the detected melt scenes shaded, as PNG.

    Parameters
    ----------
    cube
        The ``(time, y, x)`` backscatter cube (dB) melt was detected on.
    melt
        Output of :func:`cryocube.detect_melt` on ``cube``.
    points
        ``(x, y)`` positions in the cube's coordinate units; the nearest pixel is used.
    path
        Output PNG file.
    variable
        Backscatter variable to draw.
    labels
        One label per point (default: the coordinates).
    title
        Figure title.

    Returns
    -------
    Path
        The PNG written (computes the selected pixels only).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(len(points), 1, figsize=(9, 2.2 * len(points)), sharex=True, squeeze=False, constrained_layout=True)
    times = cube[cv.TIME].values
    for k, (x, y) in enumerate(points):
        ax = axes[k, 0]
        at = {cv.X: x, cv.Y: y}
        sigma = cube[variable].sel(at, method="nearest").values
        flags = melt["melt"].sel(at, method="nearest").values
        for orbit in np.unique(cube["relative_orbit"].values) if "relative_orbit" in cube.coords else [None]:
            sel = np.ones(times.size, bool) if orbit is None else cube["relative_orbit"].values == orbit
            ax.plot(times[sel], sigma[sel], ".-", ms=3, lw=0.8, label=f"{variable} R{orbit:03d}" if orbit is not None else variable)
        for t0, t1, wet in zip(times[:-1], times[1:], flags[:-1] == 1):
            if wet:
                ax.axvspan(t0, t1, color="tab:blue", alpha=0.15, lw=0)
        ax.set_ylabel(f"{variable} (dB)")
        ax.set_title(labels[k] if labels else f"x={x:.0f} m, y={y:.0f} m (shaded: detected melt)", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def velocity_series_plot(series: xr.Dataset, points: Sequence[tuple[float, float]], path: str | Path, *,
                         labels: Sequence[str] | None = None, truth: Sequence[float] | None = None,
                         title: str | None = None) -> Path:
    """Save speed against time at a few points of a velocity time series, as PNG.

    Each interval of :func:`cryocube.invert_velocity` is drawn as a horizontal bar
    from ``time_start`` to ``time_end`` with its 1-sigma error; undetermined intervals
    are gaps. ``truth`` adds one dashed reference speed per point (m/yr).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)
    starts, ends = series["time_start"].values, series["time_end"].values
    for k, (x, y) in enumerate(points):
        at = series.sel({cv.X: x, cv.Y: y}, method="nearest")
        speed = at["v"].values
        error = np.hypot(at["vx_error"].values, at["vy_error"].values) if "vx_error" in at else np.zeros_like(speed)
        color = f"C{k}"
        ax.hlines(speed, starts, ends, color=color, lw=2, label=labels[k] if labels else f"x={x:.0f}, y={y:.0f}")
        ax.errorbar(series[cv.TIME].values, speed, yerr=error, fmt="none", ecolor=color, alpha=0.6)
        if truth is not None:
            ax.axhline(truth[k], color=color, ls="--", lw=0.8)
    ax.set_ylabel(f"speed ({series['v'].attrs.get('units', 'm/yr')})")
    ax.legend(fontsize=7)
    ax.set_title(title or "velocity time series (bars: intervals; dashed: truth)", fontsize=9)
    return _save(fig, path)
