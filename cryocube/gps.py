r"""Validation against GPS and stable ground (Greenland Ice Sheet CCI style), and surge detection.

Three tools:

* :func:`project_gps` projects GPS velocities ``(v_e, v_n, v_u)`` onto the SAR
  line of sight (LoS) and the SAR azimuth (flight) direction, the way the Greenland
  Ice Sheet CCI intercomparison (Remote Sensing, 2018) compares GPS with InSAR /
  offset-tracking components.
* :func:`validation_stats` tabulates, per velocity component, the number of
  points, the median and the MAD of ``SAR - GPS`` at GPS stations and of the SAR
  velocity over stable ground (bedrock), as the CCI tables do.
* :func:`detect_surge` flags glacier surges in a velocity time series (per pixel,
  per flowline point, or one series) with the rule documented there; the kernel
  :func:`surge_kernel` is pure numpy.

MAD is the **unscaled** median absolute deviation ``median(|d - median(d)|)``,
as in the CCI paper and in :mod:`cryocube.velocity` / :mod:`cryocube.validation`
(multiply by 1.4826 for a Gaussian standard deviation).

Geometry (used by :func:`project_gps`)
--------------------------------------
Local East-North-Up frame at the target. Let ``u`` be the unit LoS vector pointing
**from the ground target to the radar**; ``phi`` is the angle, counter-clockwise
(towards North) from East, of the horizontal projection of ``u``; ``theta`` is the
elevation angle of ``u`` above the horizontal (``theta = 90 deg - incidence`` on a
flat Earth). Then ::

    u     = (cos(theta) cos(phi), cos(theta) sin(phi), sin(theta))        in (E, N, U)
    v_los = v_e cos(theta) cos(phi) + v_n cos(theta) sin(phi) + v_u sin(theta)

``v_los > 0`` is motion towards the radar. The azimuth (flight) direction is
horizontal and perpendicular to the ground track of the LoS. Sentinel-1 looks to
the **right** of its flight direction, so the target lies to the right of the
track and the target-to-radar vector points to the **left** of the flight
direction: flight = LoS ground direction turned clockwise by 90 deg, i.e. at angle
``phi - 90 deg`` from East ::

    v_az = v_e cos(phi - 90) + v_n sin(phi - 90) = v_e sin(phi) - v_n cos(phi)

``v_az > 0`` is motion along the flight direction. Worked example: a satellite
flying due North (flight angle 90 deg) looks East, the target is East of the
radar, the target-to-radar vector points West: ``phi = 180``, and ``phi - 90 = 90``
is North, the flight direction. Over Greenland, ascending Sentinel-1 passes fly
roughly NNW (heading ~345 deg clockwise from North, angle ~105 deg from East) and
look ENE, so ``phi ~ 195 deg``; descending passes fly roughly SSW (angle ~255 deg)
and look WNW, so ``phi ~ 345 deg``; ``theta ~ 50 deg`` for a 40 deg incidence.
Ice flowing West at 100 m/yr then gives ``v_los ~ +62.1`` m/yr ascending (towards
the radar, which is West of the target) and ``~ -62.1`` descending, and
``v_az ~ +25.9`` m/yr on both (both tracks have a westward component).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
import xarray as xr

import cryocube
from cryocube import conventions as cv

#: Days per (Julian) year, the conversion of m/day to m/yr (as in :mod:`cryocube.velocity`).
DAYS_PER_YEAR: Final = 365.25

#: Column groups of the table returned by :func:`validation_stats`.
GPS_GROUP: Final = "SAR-GPS"
STABLE_GROUP: Final = "stable"


# =========================================================================== projection
def _check_angle(value: Any, name: str, low: float, high: float) -> None:
    """Check finite, in-range angles when they are plain numbers / numpy (never computes dask)."""
    if isinstance(value, xr.DataArray) and value.chunks is not None:
        return
    arr = np.asarray(value.values if isinstance(value, xr.DataArray) else value, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size != arr.size:
        raise ValueError(f"{name} must be finite degrees, got non-finite values")
    if finite.size and (finite.min() < low or finite.max() > high):
        raise ValueError(f"{name} must lie in [{low}, {high}] degrees, got values in "
                         f"[{finite.min()}, {finite.max()}]")


def project_gps(ve: Any, vn: Any, vu: Any, *, phi_deg: Any, theta_deg: Any) -> tuple[Any, Any]:
    r"""Project GPS velocity (East, North, Up) onto the SAR line of sight and azimuth.

    Conventions (module docstring, with a worked example): ``phi_deg`` is the angle
    from East, counter-clockwise, of the ground projection of the unit vector from
    the target **to the radar**; ``theta_deg`` its elevation above the horizontal.
    For a right-looking SAR (Sentinel-1) ::

        v_los = ve cos(theta) cos(phi) + vn cos(theta) sin(phi) + vu sin(theta)
        v_az  = ve cos(phi - 90) + vn sin(phi - 90) = ve sin(phi) - vn cos(phi)

    ``v_los`` is positive towards the radar, ``v_az`` positive along the flight
    direction (which is at ``phi - 90`` degrees from East).

    Parameters
    ----------
    ve, vn, vu
        East, North, Up velocity (any unit; m/yr usually), numpy arrays, scalars or
        xarray objects; broadcast together (xarray by dimension name).
    phi_deg
        Angle (degrees) of the ground-projected target-to-radar vector from East,
        counter-clockwise; scalar or array broadcastable against the velocities
        (e.g. per pixel). Any value (taken modulo 360).
    theta_deg
        Elevation angle (degrees, in [-90, 90]) of the target-to-radar vector
        above the horizontal (``90 - incidence angle`` on a flat Earth).

    Returns
    -------
    (v_los, v_azimuth)
        Same unit and type as the inputs (xarray if any input is).

    Raises
    ------
    ValueError
        ``phi_deg`` / ``theta_deg`` not finite, or ``theta_deg`` outside [-90, 90]
        (checked for numpy and in-memory inputs only).
    """
    _check_angle(phi_deg, "phi_deg", -math.inf, math.inf)
    _check_angle(theta_deg, "theta_deg", -90.0, 90.0)
    phi = np.deg2rad(phi_deg)
    theta = np.deg2rad(theta_deg)
    cos_t = np.cos(theta)
    v_los = ve * cos_t * np.cos(phi) + vn * cos_t * np.sin(phi) + vu * np.sin(theta)
    v_az = ve * np.sin(phi) - vn * np.cos(phi)
    return v_los, v_az


# =========================================================================== validation table
def _median_mad_n(values: np.ndarray) -> tuple[int, float, float]:
    """``(n, median, unscaled MAD)`` of the finite values (``(0, nan, nan)`` if none)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0, math.nan, math.nan
    median = float(np.median(values))
    return int(values.size), median, float(np.median(np.abs(values - median)))


def pixel_index(coord: np.ndarray, values: np.ndarray, name: str, labels: Sequence[str]) -> np.ndarray:
    """Nearest-pixel index of ``values`` on the 1-D ``coord``; error naming points outside the grid."""
    if coord.size == 0:
        raise ValueError(f"product has an empty {name} dimension")
    half = 0.5 * (abs(float(coord[1] - coord[0])) if coord.size > 1 else 0.0)
    low, high = float(coord.min()) - half, float(coord.max()) + half
    outside = ~np.isfinite(values) | (values < low) | (values > high)
    if outside.any():
        bad = [f"{labels[i]} ({name}={values[i]})" for i in np.flatnonzero(outside)]
        raise ValueError(f"gps_points outside the product grid ({name} in [{low}, {high}]): {', '.join(bad)}")
    return np.abs(values[:, None] - coord[None, :]).argmin(axis=1)


def _sample_points(field: xr.DataArray, iy: np.ndarray, ix: np.ndarray, window_px: int) -> np.ndarray:
    """Values of ``field`` (y, x) at pixel indices; NaN-median over a ``window_px`` square (clipped at edges)."""
    if window_px == 1:
        return np.asarray(field.isel({cv.Y: xr.DataArray(iy, dims="point"),
                                      cv.X: xr.DataArray(ix, dims="point")}).values, dtype=np.float64)
    half = window_px // 2
    ny, nx = field.sizes[cv.Y], field.sizes[cv.X]
    out = np.empty(iy.size)
    for k, (j, i) in enumerate(zip(iy, ix)):
        block = np.asarray(field.isel({cv.Y: slice(max(j - half, 0), min(j + half + 1, ny)),
                                       cv.X: slice(max(i - half, 0), min(i + half + 1, nx))}).values, dtype=np.float64)
        block = block[np.isfinite(block)]
        out[k] = np.median(block) if block.size else math.nan
    return out


def validation_stats(
    product: xr.Dataset,
    *,
    gps_points: pd.DataFrame | None = None,
    stable_mask: xr.DataArray | None = None,
    components: Sequence[str] = ("vx", "vy", "v"),
    window_px: int = 1,
    label_column: str | None = None,
) -> pd.DataFrame:
    r"""CCI-style validation table: ``SAR - GPS`` at stations and SAR velocity over stable ground.

    For each component ``c`` (a variable of ``product``):

    * ``SAR-GPS``: ``d_i = product[c](station i) - gps_points[c][i]`` over the
      stations where both are finite; ``N``, ``median(d)``, ``MAD = median(|d -
      median(d)|)`` (unscaled, as the paper and :mod:`cryocube.velocity`).
    * ``stable``: ``product[c]`` over the pixels where ``stable_mask`` is True and
      the product is finite; ``N``, median and unscaled MAD (the velocity should be
      zero there; for the speed ``v`` the median is biased positive by the noise).

    A station is sampled at the nearest pixel (``window_px=1``) or as the NaN-median
    of the ``window_px x window_px`` pixels centred on it (clipped at the grid edge).
    The GPS values must be in the product's frame: ``vx``/``vy`` on the map axes
    (rotate East/North to the map grid first), ``v_los``/``v_azimuth`` from
    :func:`project_gps`. **Computes** the sampled points and the masked product.

    Parameters
    ----------
    product
        Velocity on ``(y, x)`` (e.g. ``vx``, ``vy``, ``v`` in m/yr, or ``v_los``,
        ``v_azimuth``), with 1-D ``y``/``x`` coordinates in map units.
    gps_points
        One row per station: columns ``x``, ``y`` (map coordinates, the product's
        CRS and units) and one column per component with the GPS value (same unit
        as the product). NaN GPS values are skipped. None: the ``SAR-GPS`` columns
        hold ``N = 0`` and NaN.
    stable_mask
        Boolean ``(y, x)`` DataArray on exactly the product's grid, True on stable
        ground. None: the ``stable`` columns hold ``N = 0`` and NaN.
    components
        Variables of ``product`` to evaluate, one table row each.
    window_px
        Odd window size (pixels) for sampling the stations.
    label_column
        Column of ``gps_points`` naming the stations in error messages (default:
        ``"station"`` or ``"name"`` when present, else the row index).

    Returns
    -------
    pandas.DataFrame
        Index ``component``; columns a two-level index ``(group, statistic)`` with
        groups ``"SAR-GPS"`` and ``"stable"`` and statistics ``"N"``, ``"median"``,
        ``"MAD"`` (the layout of the CCI tables), e.g.
        ``table.loc["vx", ("SAR-GPS", "median")]``. Values in the product's unit.

    Raises
    ------
    ValueError
        A component missing from ``product`` or from ``gps_points``; ``gps_points``
        without ``x``/``y``; stations outside the grid (named); a component not on
        ``(y, x)``; ``stable_mask`` not boolean or on another grid; bad ``window_px``.
    """
    components = list(components)
    if not components:
        raise ValueError("components is empty: name at least one variable of product")
    missing = [c for c in components if c not in product.data_vars]
    if missing:
        raise ValueError(f"components {missing} not in product (variables: {list(product.data_vars)})")
    for c in components:
        if set(product[c].dims) != {cv.Y, cv.X}:
            raise ValueError(f"product[{c!r}] has dims {product[c].dims}; validation_stats needs (y, x)")
    if int(window_px) != window_px or window_px < 1 or window_px % 2 == 0:
        raise ValueError(f"window_px must be a positive odd integer, got {window_px}")
    window_px = int(window_px)

    rows: dict[str, list[float]] = {c: [0, math.nan, math.nan, 0, math.nan, math.nan] for c in components}

    if gps_points is not None:
        lacking = [c for c in ("x", "y", *components) if c not in gps_points.columns]
        if lacking:
            raise ValueError(f"gps_points lacks columns {lacking} (has {list(gps_points.columns)}): it needs x, y "
                             "and one column per component")
        if label_column is None:
            label_column = next((c for c in ("station", "name") if c in gps_points.columns), None)
        labels = ([str(v) for v in gps_points[label_column]] if label_column is not None
                  else [f"row {v}" for v in gps_points.index])
        xs = np.asarray(gps_points["x"], dtype=np.float64)
        ys = np.asarray(gps_points["y"], dtype=np.float64)
        ix = pixel_index(np.asarray(product[cv.X].values, dtype=np.float64), xs, "x", labels)
        iy = pixel_index(np.asarray(product[cv.Y].values, dtype=np.float64), ys, "y", labels)
        for c in components:
            sar = _sample_points(product[c].transpose(cv.Y, cv.X), iy, ix, window_px)
            rows[c][0:3] = _median_mad_n(sar - np.asarray(gps_points[c], dtype=np.float64))

    if stable_mask is not None:
        if set(stable_mask.dims) != {cv.Y, cv.X}:
            raise ValueError(f"stable_mask has dims {stable_mask.dims}; it must be (y, x) on the product's grid")
        for dim in (cv.Y, cv.X):
            a, b = np.asarray(stable_mask[dim].values), np.asarray(product[dim].values)
            if a.shape != b.shape or not np.allclose(a, b, rtol=0.0, atol=1e-6 * max(1.0, float(np.abs(b).max()))):
                raise ValueError(f"stable_mask is on another grid than product ({dim}: {a.size} values "
                                 f"[{a.min() if a.size else None}, {a.max() if a.size else None}] vs {b.size} values "
                                 f"[{b.min()}, {b.max()}]); regrid it first")
        if stable_mask.dtype != bool:
            raise ValueError(f"stable_mask must be boolean, got dtype {stable_mask.dtype}")
        mask = np.asarray(stable_mask.transpose(cv.Y, cv.X).values, dtype=bool)
        for c in components:
            values = np.asarray(product[c].transpose(cv.Y, cv.X).values, dtype=np.float64)
            rows[c][3:6] = _median_mad_n(values[mask])

    columns = pd.MultiIndex.from_product([[GPS_GROUP, STABLE_GROUP], ["N", "median", "MAD"]],
                                         names=["group", "statistic"])
    table = pd.DataFrame([rows[c] for c in components], index=pd.Index(components, name="component"),
                         columns=columns)
    for group in (GPS_GROUP, STABLE_GROUP):
        table[(group, "N")] = table[(group, "N")].astype(np.int64)
    return table


# =========================================================================== surge detection
def surge_kernel(
    speed: np.ndarray,
    t_days: np.ndarray,
    *,
    factor: float = 3.0,
    threshold: float = 365.25,
    quiescent_quantile: float = 0.2,
    min_duration_days: float = 90.0,
    departure_factor: float = 1.25,
) -> tuple[np.ndarray, ...]:
    r"""Surge onset, end, peak and count per series (pure numpy; time is the **first** axis).

    Rule, per series (NaN observations are skipped: they neither count nor break
    anything):

    1. **Quiescent level** ``q`` = the ``quiescent_quantile`` quantile of the valid
       speeds.
    2. **Surge core**: a run of consecutive valid observations with
       ``speed > max(factor * q, threshold)``; a run closes at the first valid
       observation at or below that level. A run counts as a surge when
       ``t_last - t_first >= min_duration_days`` (so short pulses and summer
       speed-ups that do not reach ``factor * q`` are not surges).
    3. The surge reported is the counted run with the highest peak speed;
       ``count`` is the number of counted runs.
    4. **Onset**: the last valid observation before the core with
       ``speed <= departure_factor * q``, and the valid observation after it; the
       onset is the time where the straight line between them crosses
       ``departure_factor * q``. **End**: likewise with the first valid observation
       after the core at or below ``departure_factor * q`` and the valid one before
       it. Onset (end) is NaN when the series starts (ends) above that level, i.e.
       the surge began before (was still going at the end of) the record.

    Parameters
    ----------
    speed
        Speed (m/yr), shape ``(time, ...)``.
    t_days
        Observation times (days, any origin, strictly increasing), shape ``(time,)``.
    factor
        Core level as a multiple of the quiescent level (dimensionless).
    threshold
        Absolute core level (m/yr) that the speed must also exceed.
    quiescent_quantile
        Quantile (0-1) of the series taken as the quiescent level.
    min_duration_days
        Shortest core (days between its first and last observation) counted.
    departure_factor
        Onset/end level as a multiple of the quiescent level (> 1).

    Returns
    -------
    onset, end, peak_speed, peak_time, count, quiescent
        Arrays of shape ``speed.shape[1:]``: onset, end and peak time in the units
        and origin of ``t_days`` (float, NaN where none), peak speed and quiescent
        level in m/yr (float; peak NaN where no surge), count as int16.
    """
    speed = np.asarray(speed, dtype=np.float64)
    t = np.asarray(t_days, dtype=np.float64)
    if speed.ndim < 1 or speed.shape[0] != t.size:
        raise ValueError(f"speed's first axis ({speed.shape[:1]}) must match t_days ({t.size})")
    shape = speed.shape[1:]
    s = speed.reshape(t.size, -1).T  # (pixel, time)
    n_pix, n_t = s.shape
    valid = np.isfinite(s)
    has_data = valid.any(axis=1)
    q = np.full(n_pix, np.nan)
    if has_data.any():
        with np.errstate(all="ignore"):
            q[has_data] = np.nanquantile(s[has_data], quiescent_quantile, axis=1)
    core_level = np.maximum(factor * q, threshold)
    low_level = departure_factor * q
    with np.errstate(invalid="ignore"):
        core = valid & (s > core_level[:, None])
        low = valid & (s <= low_level[:, None])

    # runs of core observations, state machine over time vectorized over pixels
    in_run = np.zeros(n_pix, dtype=bool)
    start = np.zeros(n_pix, dtype=np.int64)
    last = np.zeros(n_pix, dtype=np.int64)
    peak = np.full(n_pix, -np.inf)
    peak_i = np.zeros(n_pix, dtype=np.int64)
    best_peak = np.full(n_pix, -np.inf)
    best_start = np.full(n_pix, -1, dtype=np.int64)
    best_last = np.full(n_pix, -1, dtype=np.int64)
    best_peak_i = np.full(n_pix, -1, dtype=np.int64)
    count = np.zeros(n_pix, dtype=np.int16)

    def close(which: np.ndarray) -> None:
        ok = which & (t[last] - t[start] >= min_duration_days)
        count[ok] += 1
        better = ok & (peak > best_peak)
        best_peak[better], best_start[better] = peak[better], start[better]
        best_last[better], best_peak_i[better] = last[better], peak_i[better]

    for i in range(n_t):
        c = core[:, i]
        new = c & ~in_run
        start[new] = i
        peak[new] = -np.inf
        higher = c & (s[:, i] > peak)
        peak[higher], peak_i[higher] = s[higher, i], i
        last[c] = i
        ended = in_run & valid[:, i] & ~c
        close(ended)
        in_run = (in_run & ~ended) | c
    close(in_run)

    found = best_start >= 0
    idx = np.arange(n_t)[None, :]
    onset = np.full(n_pix, np.nan)
    end = np.full(n_pix, np.nan)
    # onset: last low observation before the core start, interpolated to the next valid one
    a = np.where(low & (idx < best_start[:, None]), idx, -1).max(axis=1) if n_t else np.full(n_pix, -1)
    ok = found & (a >= 0)
    b = np.where(valid & (idx > a[:, None]), idx, n_t).min(axis=1)
    onset[ok] = _crossing(t, s, low_level, a[ok], b[ok], ok)
    # end: first low observation after the core, interpolated from the previous valid one
    c_ = np.where(low & (idx > best_last[:, None]), idx, n_t).min(axis=1)
    ok = found & (c_ < n_t)
    d = np.where(valid & (idx < c_[:, None]), idx, -1).max(axis=1)
    end[ok] = _crossing(t, s, low_level, d[ok], c_[ok], ok)

    peak_speed = np.where(found, best_peak, np.nan)
    peak_time = np.where(found, t[np.clip(best_peak_i, 0, None)] if n_t else np.nan, np.nan)
    out = (onset, end, peak_speed, peak_time, count, q)
    return tuple(o.reshape(shape) for o in out)


def _crossing(t: np.ndarray, s: np.ndarray, level: np.ndarray, i0: np.ndarray, i1: np.ndarray,
              rows: np.ndarray) -> np.ndarray:
    """Time where the line between observations ``i0`` and ``i1`` (of the pixels ``rows``) crosses ``level``."""
    pix = np.flatnonzero(rows)
    s0, s1 = s[pix, i0], s[pix, i1]
    t0, t1 = t[i0], t[i1]
    with np.errstate(all="ignore"):
        frac = np.clip((level[pix] - s0) / (s1 - s0), 0.0, 1.0)
    frac = np.where(np.isfinite(frac), frac, 0.0)
    return t0 + frac * (t1 - t0)


def _days_to_datetime(days: np.ndarray, origin: np.datetime64) -> np.ndarray:
    """Float days since ``origin`` -> datetime64[ns] (NaT where NaN)."""
    out = np.full(days.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = np.isfinite(days)
    out[ok] = origin + np.round(days[ok] * 86400e9).astype(np.int64).astype("timedelta64[ns]")
    return out


def _surge_ufunc(speed: np.ndarray, *, t_days: np.ndarray, origin: np.datetime64, **kwargs: Any) -> tuple[np.ndarray, ...]:
    """apply_ufunc adapter: time is the last axis there; datetimes out."""
    onset, end, peak, peak_t, count, q = surge_kernel(np.moveaxis(speed, -1, 0), t_days, **kwargs)
    return (_days_to_datetime(onset, origin), _days_to_datetime(end, origin), peak.astype(np.float32),
            _days_to_datetime(peak_t, origin), count, q.astype(np.float32))


def detect_surge(
    velocity_series: xr.DataArray | xr.Dataset,
    *,
    speed_var: str = "v",
    factor: float = 3.0,
    threshold_m_per_day: float = 1.0,
    quiescent_quantile: float = 0.2,
    min_duration_days: float = 90.0,
    departure_factor: float = 1.25,
    dim: str = cv.TIME,
) -> xr.Dataset:
    r"""Flag glacier surges (onset, end, peak) in a speed time series, per pixel or per flowline point.

    Rule (:func:`surge_kernel`): the quiescent level ``q`` is the
    ``quiescent_quantile`` quantile of each series; a **surge** is a run of
    consecutive valid observations faster than ``max(factor * q,
    threshold_m_per_day * 365.25)`` lasting at least ``min_duration_days`` (first to
    last observation of the run). Its **onset** (**end**) is where the speed last
    rose above (first fell back to) ``departure_factor * q`` before (after) that
    run, linearly interpolated between the two bracketing observations. When
    several surges occur, the one with the highest peak is reported and
    ``surge_count`` counts them all. A seasonal (summer) speed-up that stays below
    ``factor * q``, or a faster pulse shorter than ``min_duration_days``, is not a
    surge. Onset (end) is NaT when the record starts (ends) during the surge. NaN
    observations (gaps) are skipped.

    Dimensions other than ``dim`` are independent series: ``(time, y, x)`` per
    pixel, ``(time, distance)`` along a flowline, or ``(time,)`` alone. Lazy:
    ``xr.apply_ufunc(..., dask="parallelized")`` with ``dim`` as the core
    dimension, which must be a single chunk.

    Parameters
    ----------
    velocity_series
        Speed (m/yr) DataArray, or a Dataset holding it as ``speed_var``, with a
        datetime64 ``dim`` coordinate, strictly increasing.
    speed_var
        Variable of a Dataset input holding the speed.
    factor
        Surge level as a multiple of the quiescent speed (dimensionless, > 1).
    threshold_m_per_day
        Absolute speed (m/day) a surge must also exceed (keeps noise on slow or
        stable ground from counting).
    quiescent_quantile
        Quantile (0-1) of each series taken as its quiescent speed; it must be
        below the fraction of the record spent in quiescence.
    min_duration_days
        Shortest surge (days).
    departure_factor
        Onset/end level as a multiple of the quiescent speed (> 1; the bias of
        onset/end is the time the speed takes to rise by this much).
    dim
        Name of the time dimension.

    Returns
    -------
    xr.Dataset
        On the non-time dims: ``surge_onset``, ``surge_end``, ``surge_peak_date``
        (datetime64, NaT where none), ``surge_peak_speed`` (m/yr, NaN where no
        surge), ``surge_count`` (int16), ``quiescent_speed`` (m/yr); attrs record
        the parameters and the cryocube version.

    Raises
    ------
    ValueError
        ``speed_var`` missing; ``dim`` missing, not datetime, not strictly
        increasing or in several chunks; parameters out of range.
    """
    if isinstance(velocity_series, xr.Dataset):
        if speed_var not in velocity_series.data_vars:
            raise ValueError(f"speed_var={speed_var!r} not in velocity_series (variables: "
                             f"{list(velocity_series.data_vars)})")
        speed = velocity_series[speed_var]
        source_attrs = velocity_series.attrs
    else:
        speed = velocity_series
        source_attrs = velocity_series.attrs
    if dim not in speed.dims:
        raise ValueError(f"velocity_series has no {dim!r} dimension (dims: {speed.dims}); pass dim=...")
    if dim not in speed.coords or not np.issubdtype(speed[dim].dtype, np.datetime64):
        raise ValueError(f"velocity_series needs a datetime64 {dim!r} coordinate")
    times = speed[dim].values.astype("datetime64[ns]")
    if times.size and (np.isnat(times).any() or (np.diff(times) <= np.timedelta64(0, "ns")).any()):
        raise ValueError(f"{dim!r} must be strictly increasing without NaT")
    if speed.chunks is not None and len(speed.chunks[speed.get_axis_num(dim)]) > 1:
        raise ValueError(f"{dim!r} is split into {len(speed.chunks[speed.get_axis_num(dim)])} chunks; "
                         f"detect_surge needs it in one: velocity_series.chunk({{{dim!r}: -1}})")
    if not factor > 1.0:
        raise ValueError(f"factor must be > 1, got {factor}")
    if not departure_factor >= 1.0:
        raise ValueError(f"departure_factor must be >= 1, got {departure_factor}")
    if not 0.0 <= quiescent_quantile <= 1.0:
        raise ValueError(f"quiescent_quantile must lie in [0, 1], got {quiescent_quantile}")
    if not (min_duration_days >= 0.0 and math.isfinite(min_duration_days)):
        raise ValueError(f"min_duration_days must be a finite number >= 0, got {min_duration_days}")
    if not (threshold_m_per_day >= 0.0 and math.isfinite(threshold_m_per_day)):
        raise ValueError(f"threshold_m_per_day must be a finite number >= 0, got {threshold_m_per_day}")

    origin = times[0] if times.size else np.datetime64("1970-01-01", "ns")
    t_days = (times - origin) / np.timedelta64(1, "D")
    kwargs = {"factor": float(factor), "threshold": float(threshold_m_per_day) * DAYS_PER_YEAR,
              "quiescent_quantile": float(quiescent_quantile), "min_duration_days": float(min_duration_days),
              "departure_factor": float(departure_factor)}
    dt = np.dtype("datetime64[ns]")
    onset, end, peak, peak_t, count, q = xr.apply_ufunc(
        _surge_ufunc, speed, input_core_dims=[[dim]], output_core_dims=[[]] * 6,
        kwargs={"t_days": t_days, "origin": origin, **kwargs},
        dask="parallelized", output_dtypes=[dt, dt, np.float32, dt, np.int16, np.float32],
    )
    out = xr.Dataset({
        "surge_onset": onset.assign_attrs(long_name="surge onset"),
        "surge_end": end.assign_attrs(long_name="surge end"),
        "surge_peak_speed": peak.assign_attrs(units="m/yr", long_name="peak speed during the surge"),
        "surge_peak_date": peak_t.assign_attrs(long_name="date of the peak speed"),
        "surge_count": count.assign_attrs(units="1", long_name="number of surges in the record"),
        "quiescent_speed": q.assign_attrs(units="m/yr", long_name=f"quiescent speed ({quiescent_quantile} quantile)"),
    })
    params = {**kwargs, "threshold_m_per_day": float(threshold_m_per_day), "speed_var": speed_var, "dim": dim}
    return out.assign_attrs({
        cv.ATTR_VERSION: cryocube.__version__,
        cv.ATTR_ITEMS: source_attrs.get(cv.ATTR_ITEMS, []),
        cv.ATTR_PARAMS: json.dumps(params),
    })


def synthetic_surge_series(
    *,
    start: str = "2022-01-01",
    stop: str = "2027-01-01",
    onset: str = "2023-06-01",
    peak: str = "2024-03-01",
    end: str = "2025-06-01",
    quiescent_m_per_day: float = 1.0,
    peak_m_per_day: float = 10.0,
    interval_days: tuple[int, int] = (6, 12),
    noise_fraction: float = 0.05,
    gap_fraction: float = 0.1,
    seed: int = 0,
) -> xr.DataArray:
    r"""A synthetic surge speed series (m/yr) with exact onset and end, for tests and demos.

    Speed is ``quiescent_m_per_day`` outside ``[onset, end]``, rises linearly to
    ``peak_m_per_day`` at ``peak`` and falls linearly back to quiescent at ``end``
    (defaults: 1 -> 10 -> 1 m/day over two years, loosely after the 2020s surge of
    Rimo South Glacier, Karakoram). Sampled every ``interval_days`` (random in the
    inclusive range), multiplied by ``1 + noise_fraction * N(0, 1)``, and a random
    ``gap_fraction`` of the samples set to NaN.

    Returns
    -------
    xr.DataArray
        ``(time,)`` speed in m/yr, named ``v``; attrs ``true_onset``, ``true_end``,
        ``true_peak`` (ISO dates).
    """
    rng = np.random.default_rng(seed)
    t0, t1 = np.datetime64(start, "D"), np.datetime64(stop, "D")
    steps = rng.integers(interval_days[0], interval_days[1] + 1, size=int((t1 - t0).astype(int) // interval_days[0]) + 1)
    days = np.concatenate([[0], np.cumsum(steps)])
    days = days[days <= (t1 - t0).astype(int)]
    times = t0 + days.astype("timedelta64[D]")
    rel = lambda d: float((np.datetime64(d, "D") - t0).astype(int))  # noqa: E731
    speed = np.interp(days, [rel(onset), rel(peak), rel(end)], [quiescent_m_per_day, peak_m_per_day,
                                                                quiescent_m_per_day])
    speed = speed * (1.0 + noise_fraction * rng.standard_normal(days.size)) * DAYS_PER_YEAR
    speed[rng.random(days.size) < gap_fraction] = np.nan
    return xr.DataArray(speed.astype(np.float64), dims=(cv.TIME,), coords={cv.TIME: times.astype("datetime64[ns]")},
                        name="v", attrs={"units": "m/yr", "true_onset": onset, "true_end": end, "true_peak": peak})
