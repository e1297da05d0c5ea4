"""Ice velocity from offset-tracking displacements, and calibration over stable ground.

Two steps after :func:`cryocube.offsets.track_offsets`:

- :func:`offsets_to_velocity` turns displacements (m, reference to secondary date)
  into velocities (m/yr) with propagated 1-sigma errors. Elementwise, lazy.
- :func:`calibrate_stable` removes the residual offset (co-registration, orbit
  errors) that stable ground (bedrock, slow ice) shows, as a constant (median) or a
  robustly fitted plane. It computes the stable-point sample; the output stays lazy.

Output variables use the ITS_LIVE names ``vx``, ``vy``, ``v``, ``vx_error``,
``vy_error``, ``v_error`` (``DESIGN.md`` section 4).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import cryocube
from cryocube import conventions as cv

#: Days per (Julian) year, the conversion of m/day to m/yr.
DAYS_PER_YEAR = 365.25

#: Scale from the median absolute deviation to a Gaussian standard deviation.
MAD_TO_SIGMA = 1.4826

#: Quality variables of an offset-tracking result carried over unchanged.
QUALITY_VARIABLES = ("ncc", "snr", "valid_fraction", "flag")

_VARIABLE_ATTRS = {name: cv.VARIABLE_ATTRS[name] for name in ("vx", "vy", "v", "vx_error", "vy_error", "v_error")}

_METRE_NAMES = frozenset({"metre", "meter", "metres", "meters", "m"})


# --------------------------------------------------------------------------- numpy helpers
def _median_mad(values: np.ndarray) -> tuple[float, float]:
    """Median and unscaled median absolute deviation of a 1-D finite sample."""
    median = float(np.median(values))
    return median, float(np.median(np.abs(values - median)))


def _fit_plane_robust(
    values: np.ndarray, x: np.ndarray, y: np.ndarray, *, n_sigma: float = 3.0, max_iterations: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``values ≈ a + b*x + c*y`` by least squares after discarding outliers.

    Iterative outlier rejection: fit by least squares on the current inliers, then
    keep the points whose residual lies within ``n_sigma * 1.4826 * MAD`` of the
    median residual (MAD over all points, unscaled; 1.4826 * MAD estimates the
    standard deviation of Gaussian noise), and repeat until the inlier set no
    longer changes (or ``max_iterations``). The first fit uses all points.

    Parameters
    ----------
    values, x, y
        1-D float arrays of the same length, all finite.
    n_sigma
        Rejection threshold in Gaussian-equivalent standard deviations.
    max_iterations
        Upper bound on the number of refits.

    Returns
    -------
    coefficients
        ``[a, b, c]`` (float64) in the units of ``values`` and ``values`` per unit of ``x``/``y``.
    inliers
        Boolean mask of the points used in the final fit.

    Raises
    ------
    ValueError
        Fewer than 3 points, or all points on one line (the plane is undetermined).
    """
    values, x, y = (np.asarray(a, dtype=np.float64) for a in (values, x, y))
    # Centre and scale the coordinates: projected coordinates are ~1e6 m, which
    # would make the normal equations ill-conditioned.
    x0, y0 = float(np.mean(x)), float(np.mean(y))
    scale = max(float(np.ptp(x)), float(np.ptp(y)), 1.0)
    design = np.column_stack([np.ones_like(x), (x - x0) / scale, (y - y0) / scale])
    if values.size < 3 or np.linalg.matrix_rank(design) < 3:
        raise ValueError("cannot fit a plane: fewer than 3 stable points or all of them on one line")
    inliers = np.ones(values.size, dtype=bool)
    for _ in range(max_iterations):
        solution = np.linalg.lstsq(design[inliers], values[inliers], rcond=None)[0]
        residuals = values - design @ solution
        median, mad = _median_mad(residuals)
        new_inliers = np.abs(residuals - median) <= n_sigma * MAD_TO_SIGMA * mad
        if np.array_equal(new_inliers, inliers) or np.linalg.matrix_rank(design[new_inliers]) < 3:
            break
        inliers = new_inliers
    a, b, c = solution
    b, c = b / scale, c / scale
    return np.array([a - b * x0 - c * y0, b, c]), inliers


# --------------------------------------------------------------------------- xarray helpers
def _speed_and_error(vx: xr.DataArray, vy: xr.DataArray, vx_error: xr.DataArray | None,
                     vy_error: xr.DataArray | None) -> dict[str, xr.DataArray]:
    """``v`` and, when both component errors are given, ``v_error`` (elementwise, lazy).

    ``v_error = hypot(vx * vx_error, vy * vy_error) / v`` (first-order propagation
    of independent component errors); where ``v == 0`` the derivative is undefined
    and ``max(vx_error, vy_error)`` is used.
    """
    v = np.hypot(vx, vy).astype(np.float32)
    out = {"v": v}
    if vx_error is not None and vy_error is not None:
        moving = v > 0
        propagated = np.hypot(vx * vx_error, vy * vy_error) / v.where(moving, 1.0)
        at_rest = np.maximum(vx_error, vy_error).where(v == 0)  # NaN where v is NaN
        out["v_error"] = xr.where(moving, propagated, at_rest).astype(np.float32)
    for name, values in out.items():
        values.attrs = dict(_VARIABLE_ATTRS[name])
    return out


def _check_projected_metres(ds: xr.Dataset, what: str) -> Any:
    crs = ds.rio.crs
    if crs is None:
        raise ValueError(f"{what} has no CRS: velocity in m/yr needs a projected CRS in metres "
                         "(write one with ds.rio.write_crs(...))")
    units = str(crs.linear_units).lower() if crs.is_projected else "degrees"
    if not crs.is_projected or units not in _METRE_NAMES:
        raise ValueError(f"{what} has CRS {crs.to_string()} in {units}: velocity in m/yr needs a "
                         "projected CRS in metres (reproject the images, e.g. to EPSG:3413)")
    return crs


def _timestamp(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def _resolve_dt_days(attrs: dict[str, Any], dt_days: float | None) -> float:
    if dt_days is None:
        if "reference_time" not in attrs or "secondary_time" not in attrs:
            raise ValueError("dt_days is needed: pass dt_days=... (days between the reference and the "
                             "secondary date) or give the offsets attrs 'reference_time' and 'secondary_time'")
        try:
            delta = _timestamp(attrs["secondary_time"]) - _timestamp(attrs["reference_time"])
        except (ValueError, TypeError) as err:
            raise ValueError(f"dt_days cannot be derived from reference_time={attrs['reference_time']!r} and "
                             f"secondary_time={attrs['secondary_time']!r}: {err}; pass dt_days=...") from err
        dt_days = delta / pd.Timedelta(days=1)
    dt_days = float(dt_days)
    if not math.isfinite(dt_days) or dt_days <= 0:
        raise ValueError(f"dt_days must be a finite positive number of days, got {dt_days} "
                         "(secondary date must follow the reference date)")
    return dt_days


# --------------------------------------------------------------------------- public functions
def offsets_to_velocity(offsets: xr.Dataset, *, dt_days: float | None = None) -> xr.Dataset:
    """Velocity (m/yr) and its 1-sigma error from offset-tracking displacements.

    ``vx = dx / dt_days * 365.25`` and ``vy = dy / dt_days * 365.25`` (m/yr, along
    the x and y coordinates), ``v = hypot(vx, vy)``. The component errors scale the
    same way; the speed error is the first-order propagation of independent
    component errors, ``v_error = sqrt((vx * vx_error)**2 + (vy * vy_error)**2) / v``,
    and ``max(vx_error, vy_error)`` where ``v == 0``. NaN stays NaN.

    Only elementwise xarray operations: a dask-backed input gives a lazy output and
    nothing is computed.

    Parameters
    ----------
    offsets
        Result of :func:`cryocube.offsets.track_offsets` (any dims, typically
        ``(y, x)``): ``dx``, ``dy`` (displacement from the reference to the
        secondary date, m along x and y), optionally ``dx_error``, ``dy_error``
        (1-sigma, m; both or neither), and quality variables ``ncc``, ``snr``,
        ``valid_fraction``, ``flag`` which are carried over unchanged. The CRS
        (rioxarray) must be projected with metre units.
    dt_days
        Time between the reference and the secondary date (days). Default: the
        per-pair ``dt_days`` coordinate of :func:`cryocube.track_pairs` output, else
        the ``reference_time`` and ``secondary_time`` attrs (ISO strings).

    Returns
    -------
    xr.Dataset
        float32 ``vx``, ``vy``, ``v`` and, with errors, ``vx_error``, ``vy_error``,
        ``v_error`` (all m/yr, with ``units`` and ``long_name``), the quality
        variables, the input's coordinates and CRS. Attrs: the input's attrs plus
        ``dt_days`` and, when known, ``reference_time``, ``secondary_time``,
        ``reference_sensor``, ``secondary_sensor``; ``cryocube_version``.

    Raises
    ------
    ValueError
        No usable ``dt_days`` (missing times, zero, negative or non-finite), missing
        ``dx``/``dy``, only one of ``dx_error``/``dy_error``, or a CRS that is
        missing, geographic or not in metres.
    """
    missing = [name for name in ("dx", "dy") if name not in offsets.data_vars]
    if missing:
        raise ValueError(f"offsets lacks {missing}: expected the output of track_offsets (dx, dy in m)")
    has_errors = ("dx_error" in offsets.data_vars, "dy_error" in offsets.data_vars)
    if has_errors[0] != has_errors[1]:
        raise ValueError("offsets has only one of dx_error and dy_error: give both or neither")
    crs = _check_projected_metres(offsets, "offsets")
    if dt_days is None and "dt_days" in offsets.coords and offsets["dt_days"].ndim == 1:  # pairs of track_pairs
        dt = offsets["dt_days"].astype(np.float64)
        if not bool((np.isfinite(dt) & (dt > 0)).all()):
            raise ValueError("the offsets' dt_days coordinate must hold finite positive numbers of days")
        per_year: float | xr.DataArray = DAYS_PER_YEAR / dt  # m -> m/yr, per pair
    else:
        dt_days = _resolve_dt_days(offsets.attrs, dt_days)
        per_year = DAYS_PER_YEAR / dt_days  # m -> m/yr

    def scaled(name: str) -> xr.DataArray:
        return (offsets[name] * per_year).astype(np.float32)

    vx, vy = scaled("dx"), scaled("dy")
    errors = (scaled("dx_error"), scaled("dy_error")) if has_errors[0] else (None, None)
    variables: dict[str, xr.DataArray] = {"vx": vx, "vy": vy}
    if has_errors[0]:
        variables.update(vx_error=errors[0], vy_error=errors[1])
    for name, values in variables.items():
        values.attrs = dict(_VARIABLE_ATTRS[name])
    variables.update(_speed_and_error(vx, vy, *errors))
    order = ("vx", "vy", "v", "vx_error", "vy_error", "v_error")
    variables = {name: variables[name] for name in order if name in variables}
    variables.update({name: offsets[name] for name in QUALITY_VARIABLES if name in offsets.data_vars})

    attrs = dict(offsets.attrs)
    if dt_days is not None:
        attrs["dt_days"] = dt_days
    attrs[cv.ATTR_VERSION] = cryocube.__version__
    out = xr.Dataset(variables, coords=offsets.coords, attrs=attrs)
    return out.rio.write_crs(crs)


def calibrate_stable(
    velocity: xr.Dataset,
    stable_mask: xr.DataArray | None = None,
    *,
    max_speed: float | None = 40.0,
    plane: bool = False,
    min_points: int = 10,
) -> xr.Dataset:
    """Remove the residual velocity that stable ground shows (median or robust plane).

    Stable points are ``stable_mask`` (e.g. bedrock) when given, else the points
    with ``v < max_speed``; in both cases only points with finite ``vx`` and ``vy``
    (and ``flag == 0`` when a ``flag`` variable exists) count. ``max_speed`` is not
    applied when ``stable_mask`` is given (pass ``mask & (velocity.v < 40)`` to
    combine them).

    Correction, applied to ``vx`` and ``vy`` separately: ``plane=False`` subtracts
    the median over the stable points; ``plane=True`` subtracts a plane
    ``a + b*x + c*y`` (x, y: map coordinates in m) fitted by least squares with
    iterative outlier rejection: refit on the points whose residual is within
    ``3 * 1.4826 * MAD`` of the median residual until the inlier set is stable.
    ``v`` and ``v_error`` are recomputed; ``vx_error``/``vy_error`` are unchanged
    (the uncertainty of the correction itself is not added).

    **Computes** the stable-point sample (``vx`` and ``vy`` where stable, in one
    ``compute`` so a shared upstream graph runs once): persist an expensive input
    first. The output is built by elementwise operations on the input, so it stays
    lazy where the input was (and computing it runs the input's graph again).

    Parameters
    ----------
    velocity
        Output of :func:`offsets_to_velocity`: ``vx``, ``vy`` (m/yr) on dims
        ``(y, x)``, optionally ``vx_error``, ``vy_error``, ``flag``.
    stable_mask
        Boolean DataArray on the same ``(y, x)`` grid, True on stable ground.
    max_speed
        Speed threshold (m/yr) selecting stable points when ``stable_mask`` is None.
    plane
        Fit and remove a plane instead of a constant.
    min_points
        Fewest stable points accepted.

    Returns
    -------
    xr.Dataset
        ``velocity`` with corrected ``vx``, ``vy``, ``v`` (and ``v_error``), same
        attrs plus: ``calibration`` ("median" or "plane"), ``stable_criterion``,
        ``stable_points`` (count), ``stable_median_vx_before``,
        ``stable_median_vy_before``, ``stable_mad_vx_before``,
        ``stable_mad_vy_before`` and the same ``..._after`` (m/yr; MAD is the
        unscaled median absolute deviation, ``median(|v - median(v)|)``), and
        ``calibration_vx_coefficients``, ``calibration_vy_coefficients``: ``[a, b,
        c]`` of the subtracted ``a + b*x + c*y`` (a in m/yr, b and c in m/yr per m;
        ``[median, 0, 0]`` for the median). Plane mode adds
        ``calibration_vx_inliers``, ``calibration_vy_inliers`` (points in the final fit).

    Raises
    ------
    ValueError
        Fewer than ``min_points`` stable points (the message gives the count and
        the criterion), no criterion (``stable_mask`` and ``max_speed`` both None),
        a mask on another grid, or ``vx``/``vy`` not on dims ``(y, x)``.
    TypeError
        ``stable_mask`` is not boolean.
    """
    for name in ("vx", "vy"):
        if name not in velocity.data_vars or set(velocity[name].dims) != {cv.Y, cv.X}:
            raise ValueError(f"velocity needs a variable {name!r} on dims ({cv.Y}, {cv.X})")
    vx, vy = velocity["vx"], velocity["vy"]
    stable = np.isfinite(vx) & np.isfinite(vy)
    if "flag" in velocity.data_vars:
        stable = stable & (velocity["flag"] == 0)
    if stable_mask is not None:
        if stable_mask.dtype != bool:
            raise TypeError(f"stable_mask must be boolean, got dtype {stable_mask.dtype}")
        try:
            aligned, _ = xr.align(stable_mask, vx, join="exact")
        except ValueError as err:
            raise ValueError(f"stable_mask is not on the velocity's (y, x) grid: {err}") from err
        stable = stable & aligned
        criterion = "stable_mask"
    elif max_speed is not None:
        stable = stable & (np.hypot(vx, vy) < float(max_speed))
        criterion = f"v < {float(max_speed):g} m/yr"
    else:
        raise ValueError("no stable-ground criterion: give stable_mask or max_speed")

    # One compute for both components: an upstream graph shared by vx and vy runs once.
    sample = xr.Dataset({"vx": vx.where(stable), "vy": vy.where(stable)}).transpose(cv.Y, cv.X).compute()
    rows, cols = np.nonzero(np.isfinite(sample["vx"].values) & np.isfinite(sample["vy"].values))
    count = int(rows.size)
    if count < min_points:
        raise ValueError(f"only {count} stable points ({criterion}, finite vx/vy, flag == 0), "
                         f"fewer than min_points={min_points}")
    x = np.asarray(sample[cv.X].values, dtype=np.float64)[cols]
    y = np.asarray(sample[cv.Y].values, dtype=np.float64)[rows]

    attrs: dict[str, Any] = {"calibration": "plane" if plane else "median", "stable_criterion": criterion,
                             "stable_points": count}
    corrected: dict[str, xr.DataArray] = {}
    for name in ("vx", "vy"):
        values = sample[name].values[rows, cols].astype(np.float64)
        if plane:
            coefficients, inliers = _fit_plane_robust(values, x, y)
            attrs[f"calibration_{name}_inliers"] = int(inliers.sum())
        else:
            coefficients = np.array([_median_mad(values)[0], 0.0, 0.0])
        a, b, c = (float(k) for k in coefficients)
        after = values - (a + b * x + c * y)
        for when, stats in (("before", _median_mad(values)), ("after", _median_mad(after))):
            attrs[f"stable_median_{name}_{when}"], attrs[f"stable_mad_{name}_{when}"] = stats
        attrs[f"calibration_{name}_coefficients"] = [a, b, c]
        correction = a + b * velocity[cv.X] + c * velocity[cv.Y] if plane else a
        corrected[name] = (velocity[name] - correction).astype(np.float32).transpose(*velocity[name].dims)

    corrected.update(_speed_and_error(corrected["vx"], corrected["vy"], velocity.get("vx_error"),
                                      velocity.get("vy_error")))
    for name, values in corrected.items():  # keep the input's variable attrs
        if name in velocity.data_vars:
            values.attrs = {**velocity[name].attrs, **values.attrs}
    out = velocity.assign(corrected)
    if velocity.rio.crs is not None:  # grid_mapping on the new variables
        out = out.rio.write_crs(velocity.rio.crs)
    out.attrs = {**velocity.attrs, **attrs, cv.ATTR_VERSION: cryocube.__version__,
                 "calibration_parameters": json.dumps({"max_speed": max_speed, "plane": plane,
                                                       "min_points": min_points,
                                                       "stable_mask": stable_mask is not None})}
    return out
