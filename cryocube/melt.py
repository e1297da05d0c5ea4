r"""Surface-melt detection from Sentinel-1 backscatter: wet-snow flags per scene, melt seasons per year.

Wet snow absorbs C-band microwaves, so backscatter drops while the surface is
wet (Nagler et al. 2016, Remote Sensing 8(4):348; Li et al. 2023, Geo-spatial
Information Science, over Greenland). Each scene is compared, pixel by pixel,
with a dry reference acquired in the same geometry (same relative orbit):

* **reference** (:func:`dry_reference`): per relative orbit, the mean in linear
  power of the reference scenes (winter months by default), in dB:
  ``sigma_ref = 10 log10(mean(10^(sigma / 10)))``.
* **ratio** ``R = sigma - sigma_ref`` (dB) per polarization.
* ``method="threshold"`` (single polarization): melt where ``R < threshold_db``
  (default -3 dB).
* ``method="nagler"`` (dual polarization, Nagler et al. 2016 eq. 2):
  ``R_C = W R_cross + (1 - W) R_co`` with the incidence-angle weight ::

      W = 1                                        theta < theta1
      W = k (1 + (theta2 - theta) / (theta2 - theta1))   theta1 <= theta <= theta2
      W = k                                        theta > theta2

  ``theta1 = 20, theta2 = 45`` degrees, ``k = 0.5``; melt where ``R_C < -2 dB``.
  Nagler uses the local incidence angle; cryocube uses the cube's
  ``incidence_angle`` (or the scene-centre ``view_incidence_angle``).

Speckle is reduced before the comparison by a ``window_px`` x ``window_px``
box average in linear power (NaN-aware; multilooking, as Nagler's processing
does). The per-scene result is a flag (1 melt, 0 dry, -1 unknown).

:func:`melt_season` turns the flags into per-year products: melt onset and end
(day of year of the first and last melt scene of runs of at least
``min_scenes`` consecutive melt observations) and the number of melt days
(each observation stands for the time half-way to its neighbours).

Layout: pure numpy kernels (``*_kernel``, :func:`nagler_weight`) on arrays with
time as the last axis, wrapped by ``xr.apply_ufunc(dask="parallelized")`` over
``(time, y, x)`` cubes with the whole time axis in one chunk
(:func:`cryocube.chunking.temporal_chunks`). Nothing computes at call time.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

import cryocube
from cryocube import conventions as cv
from cryocube.chunking import temporal_chunks

#: Values of the ``melt`` flag.
MELT, DRY, UNKNOWN = 1, 0, -1
METHODS = ("threshold", "nagler")
DEFAULT_THRESHOLD_DB = {"threshold": -3.0, "nagler": -2.0}
#: Nagler et al. (2016) weight parameters: theta1, theta2 (degrees) and k.
NAGLER_THETA1_DEG, NAGLER_THETA2_DEG, NAGLER_K = 20.0, 45.0, 0.5
#: Winter months whose scenes form the dry reference by default (northern hemisphere).
DEFAULT_REFERENCE_MONTHS = (1, 2, 3)

_FLAG_ATTRS = {
    "long_name": "surface melt (wet snow) flag",
    "flag_values": [UNKNOWN, DRY, MELT],
    "flag_meanings": "unknown dry melt",
    "units": "1",
}


# =========================================================================== #
# numpy kernels (time on the last axis)
# =========================================================================== #
def nagler_weight(theta_deg: np.ndarray, *, theta1_deg: float = NAGLER_THETA1_DEG,
                  theta2_deg: float = NAGLER_THETA2_DEG, k: float = NAGLER_K) -> np.ndarray:
    """Weight ``W`` of the cross-polarized ratio in Nagler's ``R_C`` (see the module doc); NaN stays NaN."""
    theta = np.asarray(theta_deg, dtype=np.float32)
    ramp = k * (1.0 + (theta2_deg - theta) / (theta2_deg - theta1_deg))
    return np.where(theta < theta1_deg, 1.0, np.where(theta > theta2_deg, k, ramp)).astype(np.float32)


def multilook_db_kernel(image_db: np.ndarray, window_px: int) -> np.ndarray:
    """NaN-aware ``window_px`` box mean of the last two axes, in linear power, back in dB.

    Pixels that are NaN stay NaN; elsewhere the mean uses the valid pixels of the
    window (edges: the part of the window inside the array).
    """
    if window_px <= 1:
        return image_db
    valid = np.isfinite(image_db)
    power = np.where(valid, np.power(np.float32(10.0), image_db / np.float32(10.0)), np.float32(0.0))
    size = (1,) * (image_db.ndim - 2) + (window_px, window_px)
    total = ndimage.uniform_filter(power, size=size, mode="constant")
    count = ndimage.uniform_filter(valid.astype(np.float32), size=size, mode="constant")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.float32(10.0) * np.log10(total / count)
    return np.where(valid, out, np.nan).astype(np.float32)


def reference_db_kernel(sigma_db: np.ndarray, groups: np.ndarray, is_reference: np.ndarray, n_groups: int) -> np.ndarray:
    """Dry reference per group: ``10 log10(nanmean(10^(sigma/10)))`` over the reference scenes of each group.

    Parameters
    ----------
    sigma_db
        Backscatter (dB), shape ``(..., T)``.
    groups
        Group index (0 .. n_groups-1) of each scene, shape ``(T,)``.
    is_reference
        True for the scenes that form the reference, shape ``(T,)``.
    n_groups
        Number of groups.

    Returns
    -------
    np.ndarray
        float32 ``(..., n_groups)``; NaN where a pixel has no valid reference scene.
    """
    out = np.full(sigma_db.shape[:-1] + (n_groups,), np.nan, dtype=np.float32)
    for g in range(n_groups):
        selected = sigma_db[..., (groups == g) & is_reference]
        if selected.shape[-1] == 0:
            continue
        valid = np.isfinite(selected)
        count = valid.sum(axis=-1)
        power = np.where(valid, np.power(np.float32(10.0), selected / np.float32(10.0)), np.float32(0.0)).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[..., g] = np.where(count > 0, np.float32(10.0) * np.log10(power / np.maximum(count, 1)), np.nan)
    return out


def ratio_db_kernel(sigma_db: np.ndarray, reference_db: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``sigma - reference`` of each scene's group (dB): ``(..., T)`` minus ``(..., G)`` picked by ``groups`` ``(T,)``."""
    return (sigma_db - np.take(reference_db, groups, axis=-1)).astype(np.float32)


def classify_kernel(ratio_db: np.ndarray, threshold_db: float) -> np.ndarray:
    """Melt flag (int8): MELT where ``ratio < threshold``, DRY where finite and not, UNKNOWN where NaN."""
    return np.where(np.isfinite(ratio_db), np.where(ratio_db < threshold_db, MELT, DRY), UNKNOWN).astype(np.int8)


def _scan_runs(is_melt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Length of the run of consecutive melt observations each scene belongs to (0 where not melt).

    Unknown scenes neither count nor break a run. Loops over time, vectorized over pixels.
    """
    n = is_melt.shape[-1]
    forward = np.zeros(is_melt.shape, dtype=np.int32)
    backward = np.zeros(is_melt.shape, dtype=np.int32)
    run = np.zeros(is_melt.shape[:-1], dtype=np.int32)
    for i in range(n):
        run = np.where(valid[..., i], np.where(is_melt[..., i], run + 1, 0), run)
        forward[..., i] = run
    run[...] = 0
    for i in range(n - 1, -1, -1):
        run = np.where(valid[..., i], np.where(is_melt[..., i], run + 1, 0), run)
        backward[..., i] = run
    return np.where(is_melt, forward + backward - 1, 0)


def _neighbour_times(valid: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Time of the previous and of the next valid observation of every scene (NaN where none)."""
    n = valid.shape[-1]
    previous = np.full(valid.shape, np.nan)
    following = np.full(valid.shape, np.nan)
    last = np.full(valid.shape[:-1], np.nan)
    for i in range(n):
        previous[..., i] = last
        last = np.where(valid[..., i], t[i], last)
    last[...] = np.nan
    for i in range(n - 1, -1, -1):
        following[..., i] = last
        last = np.where(valid[..., i], t[i], last)
    return previous, following


def season_kernel(flags: np.ndarray, t_days: np.ndarray, start_days: float, end_days: float,
                  min_scenes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Melt onset, melt end, melt days and valid-scene count of one season.

    Parameters
    ----------
    flags
        Melt flags (int8, MELT/DRY/UNKNOWN), shape ``(..., T)``, scenes in time order.
    t_days
        Scene times (days, any origin), shape ``(T,)``.
    start_days, end_days
        Season limits (days, same origin as ``t_days``); melt-day intervals are clipped to them.
    min_scenes
        Melt observations must belong to a run of at least this many consecutive
        valid melt observations to count (isolated false alarms are ignored).

    Returns
    -------
    onset, end, days, n_valid
        ``onset``/``end``: time (days) of the first/last counted melt observation,
        NaN where none; ``days``: sum over counted melt observations of the interval
        each stands for, ``[(t_prev + t)/2, (t + t_next)/2]`` (one-sided gaps mirrored
        at the first/last valid observation, clipped to the season) (days);
        ``n_valid``: valid observations (int16).
    """
    valid = flags != UNKNOWN
    counted = _scan_runs(flags == MELT, valid) >= max(1, min_scenes)
    t = np.asarray(t_days, dtype=np.float64)
    n = t.size
    seen = counted.any(axis=-1)
    first = np.argmax(counted, axis=-1)
    last = n - 1 - np.argmax(counted[..., ::-1], axis=-1)
    onset = np.where(seen, t[first], np.nan)
    end = np.where(seen, t[last], np.nan)
    previous, following = _neighbour_times(valid, t)
    previous = np.where(np.isnan(previous), t - (following - t), previous)
    following = np.where(np.isnan(following), t + (t - previous), following)
    lower = np.clip(np.where(np.isnan(previous), t, (previous + t) / 2.0), start_days, end_days)
    upper = np.clip(np.where(np.isnan(following), t, (t + following) / 2.0), start_days, end_days)
    days = np.where(counted, upper - lower, 0.0).sum(axis=-1)
    days = np.where(valid.any(axis=-1), days, np.nan)
    return (onset.astype(np.float32), end.astype(np.float32), days.astype(np.float32),
            valid.sum(axis=-1).astype(np.int16))


# =========================================================================== #
# xarray wrappers
# =========================================================================== #
def _check_backscatter(cube: xr.Dataset, names: Sequence[str]) -> None:
    if not isinstance(cube, xr.Dataset):
        raise TypeError(f"cube must be an xarray Dataset, got {type(cube).__name__}")
    for name in names:
        if name not in cube.data_vars:
            raise ValueError(f"cube has no variable {name!r}; it has {sorted(map(str, cube.data_vars))}")
        var = cube[name]
        if set(var.dims) != {cv.TIME, cv.Y, cv.X}:
            raise ValueError(f"variable {name!r} must have dims ({cv.TIME}, {cv.Y}, {cv.X}), got {var.dims}")
        units = var.attrs.get("units", "dB")
        if str(units).lower() != "db":
            raise ValueError(f"variable {name!r} has units {units!r}; melt detection needs backscatter in dB "
                             f"(convert with 10 * log10(linear))")


def scene_groups(cube: xr.Dataset, group_by: str = "relative_orbit") -> tuple[np.ndarray, np.ndarray]:
    """Group labels and the group index of each scene (scenes compared with their own group's reference).

    ``group_by`` is a per-scene coordinate (``relative_orbit`` by default, falling
    back to ``orbit_state``); without either, all scenes form one group (warned).
    """
    for name in (group_by, "orbit_state"):
        if name in cube.coords and cube[name].dims == (cv.TIME,):
            labels, index = np.unique(np.asarray(cube[name].values), return_inverse=True)
            return labels, index.astype(np.intp)
    warnings.warn(f"cube has no per-scene {group_by!r} or 'orbit_state' coordinate: all scenes share one dry reference, "
                  "which mixes viewing geometries", stacklevel=3)
    return np.array([0]), np.zeros(cube.sizes[cv.TIME], dtype=np.intp)


def _reference_scenes(cube: xr.Dataset, reference: Any, reference_months: Sequence[int]) -> np.ndarray:
    """Boolean per scene: part of the dry reference (``reference`` = (start, end) or None for ``reference_months``)."""
    times = pd.DatetimeIndex(cube[cv.TIME].values)
    if reference is None:
        return np.asarray(times.month.isin(list(reference_months)))
    if isinstance(reference, (tuple, list)) and len(reference) == 2:
        start, end = (pd.Timestamp(v) for v in reference)
        if end < start:
            raise ValueError(f"reference period ends ({end}) before it starts ({start})")
        return np.asarray((times >= start) & (times <= end))
    raise TypeError("reference must be None (use reference_months), a (start, end) pair of dates, "
                    f"or a Dataset from dry_reference(); got {type(reference).__name__}")


def _temporal(var: xr.DataArray) -> xr.DataArray:
    """``var`` with the whole time axis in one chunk (dask-backed inputs only)."""
    return var.chunk(temporal_chunks(var)) if var.chunks is not None else var


def _multilooked(var: xr.DataArray, window_px: int) -> xr.DataArray:
    """NaN-aware box average of each scene in linear power (map_overlap with a ``window_px // 2`` halo)."""
    if window_px <= 1:
        return var
    var = var.transpose(..., cv.Y, cv.X)
    if var.chunks is None:
        return var.copy(data=multilook_db_kernel(np.asarray(var.values, dtype=np.float32), window_px))
    halo = window_px // 2
    depth = {i: (halo if d in (cv.Y, cv.X) else 0) for i, d in enumerate(var.dims)}
    data = da.map_overlap(multilook_db_kernel, var.data.astype(np.float32), depth=depth, boundary="none",
                          dtype=np.float32, window_px=window_px)
    return var.copy(data=data)


def dry_reference(
    cube: xr.Dataset,
    *,
    variables: Sequence[str] = ("hh",),
    reference: tuple[Any, Any] | None = None,
    reference_months: Sequence[int] = DEFAULT_REFERENCE_MONTHS,
    group_by: str = "relative_orbit",
    window_px: int = 1,
) -> xr.Dataset:
    """Dry-snow reference backscatter per relative orbit, lazily.

    Parameters
    ----------
    cube
        ``(time, y, x)`` cube with backscatter ``variables`` in dB and a per-scene
        ``relative_orbit`` (or ``orbit_state``) coordinate.
    variables
        Backscatter variables to reference.
    reference
        ``(start, end)`` dates (inclusive) of the reference scenes; None selects
        the scenes of ``reference_months``.
    reference_months
        Months (1-12) of the reference scenes when ``reference`` is None
        (default January-March: dry winter in Greenland).
    group_by
        Per-scene coordinate defining the viewing geometry.
    window_px
        Box average (px) applied to each scene before averaging (see module doc).

    Returns
    -------
    xr.Dataset
        One variable per input, dims ``(group_by, y, x)``, in dB, with attrs listing
        the reference scenes.

    Raises
    ------
    ValueError
        A group (orbit) without any reference scene (named, with the period), bad
        variables or units.
    """
    _check_backscatter(cube, variables)
    labels, groups = scene_groups(cube, group_by)
    is_reference = _reference_scenes(cube, reference, reference_months)
    period = f"{reference[0]} to {reference[1]}" if reference is not None else f"months {tuple(reference_months)}"
    for g, label in enumerate(labels.tolist()):
        if not np.any(is_reference & (groups == g)):
            raise ValueError(f"no reference scene for {group_by}={label!r} in {period}; "
                             "pass reference=(start, end) covering dry (winter) scenes of every orbit")
    group_dim = group_by if group_by in cube.coords else "group"
    out = {}
    for name in variables:
        var = _temporal(_multilooked(cube[name], window_px)).transpose(cv.Y, cv.X, cv.TIME)
        ref = xr.apply_ufunc(
            reference_db_kernel, var, input_core_dims=[[cv.TIME]], output_core_dims=[[group_dim]],
            kwargs={"groups": groups, "is_reference": is_reference, "n_groups": labels.size},
            dask="parallelized", output_dtypes=[np.float32], dask_gufunc_kwargs={"output_sizes": {group_dim: labels.size}},
        )
        out[name] = ref.transpose(group_dim, cv.Y, cv.X).assign_attrs(
            units="dB", long_name=f"dry reference {name} backscatter (mean in linear power)")
    ref_items = cube["item_id"].values[is_reference].tolist() if "item_id" in cube.coords else []
    ds = xr.Dataset(out, coords={group_dim: labels})
    return ds.assign_attrs(reference_period=period, reference_scenes=int(is_reference.sum()),
                           reference_item_ids=ref_items, window_px=int(window_px))


def _incidence(cube: xr.Dataset) -> xr.DataArray:
    if cv.INCIDENCE_ANGLE in cube.data_vars:
        return cube[cv.INCIDENCE_ANGLE]
    if "view_incidence_angle" in cube.coords:
        return cube["view_incidence_angle"].astype(np.float32).broadcast_like(cube[[cv.Y, cv.X]].to_array().isel(variable=0, drop=True))
    raise ValueError("method='nagler' needs the incidence angle: the cube has neither an "
                     f"{cv.INCIDENCE_ANGLE!r} variable nor a 'view_incidence_angle' coordinate")


def _nagler_ratio(co: np.ndarray, cross: np.ndarray, ref_co: np.ndarray, ref_cross: np.ndarray,
                  theta: np.ndarray, groups: np.ndarray) -> np.ndarray:
    weight = nagler_weight(theta)
    return (weight * ratio_db_kernel(cross, ref_cross, groups) + (1.0 - weight) * ratio_db_kernel(co, ref_co, groups)).astype(np.float32)


def detect_melt(
    cube: xr.Dataset,
    *,
    method: str = "threshold",
    threshold_db: float | None = None,
    variable: str = "hh",
    co_pol: str = "hh",
    cross_pol: str = "hv",
    reference: tuple[Any, Any] | xr.Dataset | None = None,
    reference_months: Sequence[int] = DEFAULT_REFERENCE_MONTHS,
    group_by: str = "relative_orbit",
    window_px: int = 3,
) -> xr.Dataset:
    """Per-scene wet-snow (melt) flags by comparison with a dry reference, lazily.

    Parameters
    ----------
    cube
        ``(time, y, x)`` Sentinel-1 cube, backscatter in dB (ideally normalized to a
        reference incidence angle, :func:`cryocube.normalize_incidence`), with a
        per-scene ``relative_orbit`` coordinate.
    method
        ``"threshold"`` (one polarization, ``variable``) or ``"nagler"``
        (``co_pol`` and ``cross_pol`` combined with the incidence-angle weight).
    threshold_db
        Melt where the ratio is below this (dB, negative); default -3 dB
        (threshold) or -2 dB (nagler).
    variable, co_pol, cross_pol
        Backscatter variables used by each method.
    reference
        ``(start, end)`` dates of the dry reference scenes, a Dataset from
        :func:`dry_reference` (dims ``(relative_orbit, y, x)``), or None for the
        scenes of ``reference_months``.
    reference_months
        Reference months (1-12) when ``reference`` is None.
    group_by
        Per-scene coordinate defining the viewing geometry.
    window_px
        Box average (px, odd) in linear power before comparing; 1 disables it.

    Returns
    -------
    xr.Dataset
        ``melt`` (int8; 1 melt, 0 dry, -1 unknown) and ``ratio_db`` (float32, dB:
        ``sigma - sigma_ref``, or Nagler's ``R_C``) on the cube's dims and coords;
        attrs record the method, threshold, reference and parameters.

    Raises
    ------
    ValueError
        Unknown method, a non-negative threshold, even or non-positive
        ``window_px``, missing variables or incidence angle, units other than dB,
        an orbit without reference scenes, a reference Dataset on another grid.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    threshold = DEFAULT_THRESHOLD_DB[method] if threshold_db is None else float(threshold_db)
    if not threshold < 0:
        raise ValueError(f"threshold_db must be negative (a backscatter drop, dB), got {threshold_db!r}")
    if int(window_px) != window_px or window_px < 1 or window_px % 2 == 0:
        raise ValueError(f"window_px must be a positive odd integer, got {window_px!r}")
    names = (variable,) if method == "threshold" else (co_pol, cross_pol)
    _check_backscatter(cube, names)
    labels, groups = scene_groups(cube, group_by)
    if isinstance(reference, xr.Dataset):
        ref = _check_reference(reference, cube, names, labels, group_by)
    else:
        ref = dry_reference(cube, variables=names, reference=reference, reference_months=reference_months,
                            group_by=group_by, window_px=window_px)
    group_dim = next(d for d in ref[names[0]].dims if d not in (cv.Y, cv.X))
    looked = [_temporal(_multilooked(cube[name], window_px)).transpose(cv.Y, cv.X, cv.TIME) for name in names]
    refs = [ref[name].transpose(cv.Y, cv.X, group_dim) for name in names]
    if method == "threshold":
        func, args, core = ratio_db_kernel, [looked[0], refs[0]], [[cv.TIME], [group_dim]]
    else:
        theta = _temporal(_incidence(cube).astype(np.float32)).transpose(cv.Y, cv.X, cv.TIME)
        func, args, core = _nagler_ratio, [*looked, *refs, theta], [[cv.TIME]] * 2 + [[group_dim]] * 2 + [[cv.TIME]]
    ratio = xr.apply_ufunc(func, *args, input_core_dims=core, output_core_dims=[[cv.TIME]],
                           kwargs={"groups": groups}, dask="parallelized", output_dtypes=[np.float32])
    flags = xr.apply_ufunc(classify_kernel, ratio, kwargs={"threshold_db": threshold},
                           dask="parallelized", output_dtypes=[np.int8])
    dims = (cv.TIME, cv.Y, cv.X)
    params = {"method": method, "threshold_db": threshold, "variables": list(names), "group_by": group_by,
              "window_px": int(window_px), "reference": ref.attrs.get("reference_period", "given")}
    out = xr.Dataset({
        "melt": flags.transpose(*dims).assign_attrs(_FLAG_ATTRS),
        "ratio_db": ratio.transpose(*dims).assign_attrs(
            units="dB", long_name="backscatter change vs dry reference" if method == "threshold" else "Nagler combined ratio R_C"),
    })
    out = out.assign_coords({k: v for k, v in cube.coords.items() if k not in out.coords})
    return out.assign_attrs({
        cv.ATTR_VERSION: cryocube.__version__,
        cv.ATTR_ITEMS: cube.attrs.get(cv.ATTR_ITEMS, []),
        cv.ATTR_PARAMS: json.dumps(params),
        "melt_method": method,
        "threshold_db": threshold,
        "reference_period": params["reference"],
        "reference_scenes": ref.attrs.get("reference_scenes", -1),
    })


def _check_reference(reference: xr.Dataset, cube: xr.Dataset, names: Sequence[str], labels: np.ndarray,
                     group_by: str) -> xr.Dataset:
    """A user-given dry reference: variables present, dims (group, y, x), same grid, every orbit covered."""
    for name in names:
        if name not in reference.data_vars:
            raise ValueError(f"reference Dataset has no variable {name!r}")
    extra = [d for d in reference[names[0]].dims if d not in (cv.Y, cv.X)]
    if len(extra) != 1:
        raise ValueError(f"reference variables must have dims (group, y, x), got {reference[names[0]].dims}")
    missing = sorted(set(labels.tolist()) - set(np.asarray(reference[extra[0]].values).tolist()))
    if missing:
        raise ValueError(f"reference Dataset lacks {group_by} {missing} present in the cube")
    try:
        xr.align(reference[[cv.Y, cv.X]], cube[[cv.Y, cv.X]], join="exact")
    except ValueError as err:
        raise ValueError(f"reference Dataset is not on the cube's (y, x) grid: {err}") from err
    return reference.sel({extra[0]: labels})


def _season_bounds(times: pd.DatetimeIndex, year_start: str) -> list[tuple[int, pd.Timestamp, pd.Timestamp]]:
    """``(label_year, start, end)`` of every season (``year_start`` = "MM-DD") touched by ``times``."""
    try:
        month, day = (int(v) for v in year_start.split("-"))
        pd.Timestamp(year=2000, month=month, day=day)
    except (ValueError, AttributeError) as err:
        raise ValueError(f"year_start must be 'MM-DD', got {year_start!r}") from err
    seasons = []
    for year in range(times.min().year - 1, times.max().year + 1):
        start = pd.Timestamp(year=year, month=month, day=day)
        end = pd.Timestamp(year=year + 1, month=month, day=day)
        if ((times >= start) & (times < end)).any():
            seasons.append((year, start, end))
    return seasons


def melt_season(melt: xr.Dataset | xr.DataArray, *, year_start: str = "01-01", min_scenes: int = 2) -> xr.Dataset:
    """Melt onset, melt end and melt days per pixel and season, lazily.

    Parameters
    ----------
    melt
        Output of :func:`detect_melt` (or its ``melt`` flag variable): int8 flags on
        ``(time, y, x)``.
    year_start
        First day ("MM-DD") of each season; the season is labelled by the calendar
        year it starts in ("07-01" suits the southern hemisphere).
    min_scenes
        Only melt observations in runs of at least this many consecutive valid melt
        observations count (default 2: a single wet scene is taken as noise).

    Returns
    -------
    xr.Dataset
        Dims ``(year, y, x)``: ``melt_onset`` and ``melt_end`` (day of year of the
        label year, 1.0 = 1 January 00:00 UTC, fractional; may exceed 365 for
        seasons crossing the new year; NaN = no melt), ``melt_days`` (days),
        ``valid_scenes`` (count).
    """
    flags = melt["melt"] if isinstance(melt, xr.Dataset) else melt
    if set(flags.dims) != {cv.TIME, cv.Y, cv.X}:
        raise ValueError(f"melt flags must have dims ({cv.TIME}, {cv.Y}, {cv.X}), got {flags.dims}")
    if flags.dtype != np.int8:
        raise ValueError(f"melt flags must be int8 (MELT=1, DRY=0, UNKNOWN=-1) as detect_melt returns, got {flags.dtype}")
    if int(min_scenes) < 1:
        raise ValueError(f"min_scenes must be >= 1, got {min_scenes!r}")
    flags = flags.sortby(cv.TIME)
    times = pd.DatetimeIndex(flags[cv.TIME].values)
    per_year = []
    for year, start, end in _season_bounds(times, year_start):
        jan1 = pd.Timestamp(year=year, month=1, day=1)
        in_season = np.asarray((times >= start) & (times < end))
        sub = _temporal(flags.isel({cv.TIME: in_season})).transpose(cv.Y, cv.X, cv.TIME)
        t_days = np.asarray((times[in_season] - jan1) / pd.Timedelta(days=1), dtype=np.float64) + 1.0
        bounds = ((start - jan1) / pd.Timedelta(days=1) + 1.0, (end - jan1) / pd.Timedelta(days=1) + 1.0)
        onset, last, days, count = xr.apply_ufunc(
            season_kernel, sub, input_core_dims=[[cv.TIME]], output_core_dims=[[], [], [], []],
            kwargs={"t_days": t_days, "start_days": bounds[0], "end_days": bounds[1], "min_scenes": int(min_scenes)},
            dask="parallelized", output_dtypes=[np.float32, np.float32, np.float32, np.int16],
        )
        per_year.append(xr.Dataset({"melt_onset": onset, "melt_end": last, "melt_days": days, "valid_scenes": count})
                        .drop_vars([c for c in sub.coords if c not in (cv.Y, cv.X, "spatial_ref")], errors="ignore")
                        .expand_dims(year=[year]))
    out = xr.concat(per_year, dim="year").transpose("year", cv.Y, cv.X)
    out["melt_onset"].attrs.update(units="day of year", long_name="melt onset (first melt scene of a persistent run)")
    out["melt_end"].attrs.update(units="day of year", long_name="melt end (last melt scene of a persistent run)")
    out["melt_days"].attrs.update(units="days", long_name="melt days (time represented by melt scenes)")
    out["valid_scenes"].attrs.update(units="1", long_name="scenes with a valid melt flag")
    return out.assign_attrs({**(melt.attrs if isinstance(melt, xr.Dataset) else {}),
                             "year_start": year_start, "min_scenes": int(min_scenes)})

