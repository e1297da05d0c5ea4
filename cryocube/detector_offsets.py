"""Sentinel-2 detector jumps in offset maps: estimate them on stable ground and remove them.

The MSI focal plane is a staggered row of 12 detectors; each has its own small
geolocation error, so an offset (or velocity) map between two dates carries a
constant jump inside every detector footprint (or every pair of footprints of
the two dates). Li, Mao et al. (2023, IJAEOG 121:103378) estimate the jump of a
footprint as the offset of its stable area (ice-sheet areas slower than 40 m/yr)
and subtract it before the time-series inversion. Here the jump of label ``k``
is the median of the stable points carrying ``k`` (robust to moving ice
misclassified as stable); labels with fewer than ``min_points`` stable points are
left uncorrected and reported (their offset is NaN).

Labels come from the L1C detector-footprint masks (``MSK_DETFOO``), as a raster
of detector numbers per scene. Given the footprints of both dates, a point's
label is the pair ``(reference detector, secondary detector)``, because the jump
is the difference of the two detectors' errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xarray as xr

import cryocube
from cryocube import conventions as cv

#: Speed (m/yr) below which a point counts as stable when ``stable_mask`` is a speed map (Li, Mao et al. 2023).
STABLE_SPEED_M_PER_YR = 40.0
LABEL_DIM = "detector"


def detector_medians(values: np.ndarray, labels: np.ndarray, stable: np.ndarray, *, n_labels: int,
                     min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``values`` over the stable points of each label.

    Parameters
    ----------
    values
        ``(..., y, x)`` offsets or velocities (any unit; NaN = missing).
    labels
        ``(y, x)`` int labels in ``[0, n_labels)``; negative = no detector.
    stable
        ``(y, x)`` bool: points on stable ground.
    n_labels
        Number of labels.
    min_points
        Labels with fewer finite stable points get NaN.

    Returns
    -------
    medians, counts
        ``(..., n_labels)`` float32 medians (units of ``values``) and ``(..., n_labels)``
        int32 numbers of finite stable points used.
    """
    lead = values.shape[:-2]
    flat = values.reshape(-1, values.shape[-2] * values.shape[-1])
    medians = np.full((flat.shape[0], n_labels), np.nan, dtype=np.float32)
    counts = np.zeros((flat.shape[0], n_labels), dtype=np.int32)
    use = (stable & (labels >= 0)).ravel()
    label = labels.ravel()
    for k in np.unique(label[use]).tolist():
        sample = flat[:, use & (label == k)]
        finite = np.isfinite(sample)
        counts[:, k] = finite.sum(axis=1)
        enough = counts[:, k] >= min_points
        if enough.any():
            medians[enough, k] = np.nanmedian(sample[enough], axis=1)
    return medians.reshape(*lead, n_labels), counts.reshape(*lead, n_labels)


def subtract_detector_medians(values: np.ndarray, labels: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """``values (..., y, x)`` minus the median ``(..., n_labels)`` of each point's label (unchanged where it has none)."""
    jump = np.nan_to_num(medians, nan=0.0)[..., np.clip(labels, 0, None)]
    return (values - np.where(labels >= 0, jump, 0.0)).astype(values.dtype)


def _on_points(field: xr.DataArray, template: xr.DataArray, name: str) -> xr.DataArray:
    """``field`` (y, x) sampled at the nearest pixel of every point of ``template``."""
    if not isinstance(field, xr.DataArray) or not {cv.Y, cv.X} <= set(field.dims):
        raise TypeError(f"{name} must be a DataArray with dims (y, x)")
    for dim in (cv.Y, cv.X):
        lo, hi = sorted((float(field[dim].min()), float(field[dim].max())))
        step = abs(float(field[dim][1] - field[dim][0])) if field.sizes[dim] > 1 else 0.0
        inside = (template[dim] >= lo - step) & (template[dim] <= hi + step)
        if not bool(inside.all()):
            raise ValueError(f"{name} does not cover the offsets' {dim!r} range")
    return field.sel({cv.Y: template[cv.Y], cv.X: template[cv.X]}, method="nearest").assign_coords(
        {cv.Y: template[cv.Y], cv.X: template[cv.X]})


def _labels(footprints: xr.DataArray | Sequence[xr.DataArray], template: xr.DataArray) -> tuple[xr.DataArray, int, str]:
    """Point labels, their number, and how they were formed."""
    if isinstance(footprints, xr.DataArray):
        parts = [footprints]
    elif isinstance(footprints, Sequence) and len(footprints) == 2:
        parts = list(footprints)
    else:
        raise TypeError("detector_footprints must be a (y, x) DataArray of detector numbers, or a (reference, secondary) pair of them")
    sampled = []
    for i, part in enumerate(parts):
        points = _on_points(part, template, "detector_footprints" if len(parts) == 1 else f"detector_footprints[{i}]")
        values = np.asarray(points.values)
        if not np.issubdtype(values.dtype, np.integer) and not np.all(np.isnan(values) | (values == np.round(values))):
            raise ValueError("detector_footprints must hold whole detector numbers")
        sampled.append(np.where(np.isfinite(values), values, -1).astype(np.int64))
    n = int(max(s.max() for s in sampled)) + 1
    if len(sampled) == 1:
        label = sampled[0]
        return xr.DataArray(label, dims=(cv.Y, cv.X)), max(n, 1), "detector"
    label = np.where((sampled[0] >= 0) & (sampled[1] >= 0), sampled[0] * n + sampled[1], -1)
    return xr.DataArray(label, dims=(cv.Y, cv.X)), max(n * n, 1), "reference_detector * n + secondary_detector"


def _stable(stable_mask: xr.DataArray, template: xr.DataArray, stable_speed: float) -> xr.DataArray:
    points = _on_points(stable_mask, template, "stable_mask")
    if points.dtype == bool:
        return points.drop_vars([c for c in points.coords if c not in (cv.Y, cv.X)])
    return (abs(points) < stable_speed).drop_vars([c for c in points.coords if c not in (cv.Y, cv.X)])


def correct_detector_offsets(offsets: xr.Dataset, detector_footprints: xr.DataArray | Sequence[xr.DataArray], *,
                             stable_mask: xr.DataArray, variables: Sequence[str] | None = None,
                             stable_speed_m_per_yr: float = STABLE_SPEED_M_PER_YR, min_points: int = 20) -> xr.Dataset:
    """Remove Sentinel-2 detector jumps from offsets or velocities, estimated on stable ground.

    Parameters
    ----------
    offsets
        Output of :func:`cryocube.track_offsets`, :func:`cryocube.track_pairs` or
        :func:`cryocube.offsets_to_velocity`: dims ``(y, x)`` or ``(pair, y, x)``.
    detector_footprints
        Detector number per pixel (int, e.g. from the L1C ``MSK_DETFOO`` masks; NaN
        or negative = none) on any grid covering the offsets (sampled at the nearest
        pixel), or a ``(reference, secondary)`` pair of such rasters: each point is
        then labelled by its pair of detectors.
    stable_mask
        Stable ground: a bool ``(y, x)`` DataArray, or a speed map (m/yr) whose
        points slower than ``stable_speed_m_per_yr`` count as stable.
    variables
        Variables to correct (default: ``dx``, ``dy`` if present, else ``vx``, ``vy``).
    stable_speed_m_per_yr
        Threshold (m/yr) when ``stable_mask`` is a speed map.
    min_points
        Least finite stable points a label needs to be corrected.

    Returns
    -------
    xr.Dataset
        ``offsets`` with the variables corrected, and per variable
        ``<name>_detector_offset`` (the subtracted jumps, ``(..., detector)``, NaN
        where a label had too few stable points) and ``n_stable`` (points used).
        Lazy: one task per pair (the whole point grid of a pair, which is small).
    """
    if variables is None:
        variables = [v for v in ("dx", "dy") if v in offsets] or [v for v in ("vx", "vy") if v in offsets]
    missing = [v for v in variables if v not in offsets]
    if not variables or missing:
        raise ValueError(f"offsets has no variable {missing or ['dx', 'dy', 'vx', 'vy']}: pass variables=[...]")
    if int(min_points) < 1:
        raise ValueError(f"min_points must be >= 1, got {min_points!r}")
    template = offsets[variables[0]]
    labels, n_labels, how = _labels(detector_footprints, template)
    stable = _stable(stable_mask, template, float(stable_speed_m_per_yr))
    out = offsets.copy()
    core = [[cv.Y, cv.X]] * 3
    for name in variables:
        values = offsets[name].chunk({cv.Y: -1, cv.X: -1}) if offsets[name].chunks is not None else offsets[name]
        medians, counts = xr.apply_ufunc(
            detector_medians, values, labels, stable, input_core_dims=core,
            output_core_dims=[[LABEL_DIM], [LABEL_DIM]], dask="parallelized", output_dtypes=[np.float32, np.int32],
            kwargs={"n_labels": n_labels, "min_points": int(min_points)},
            dask_gufunc_kwargs={"output_sizes": {LABEL_DIM: n_labels}},
        )
        corrected = xr.apply_ufunc(subtract_detector_medians, values, labels, medians,
                                   input_core_dims=[[cv.Y, cv.X], [cv.Y, cv.X], [LABEL_DIM]],
                                   output_core_dims=[[cv.Y, cv.X]], dask="parallelized", output_dtypes=[values.dtype])
        out[name] = corrected.transpose(*offsets[name].dims).assign_attrs(offsets[name].attrs)
        out[f"{name}_detector_offset"] = medians.assign_attrs(
            units=offsets[name].attrs.get("units", ""), long_name=f"detector jump removed from {name} (median over stable points)")
        out["n_stable"] = counts.assign_attrs(units="1", long_name="stable points per detector label")
    out = out.assign_coords({LABEL_DIM: np.arange(n_labels)})
    out[LABEL_DIM].attrs["long_name"] = how
    params = {"variables": list(variables), "min_points": int(min_points), "labels": how,
              "stable": "mask" if stable_mask.dtype == bool else f"speed < {stable_speed_m_per_yr} m/yr"}
    out.attrs.update({"detector_correction": "Li, Mao et al. 2023, IJAEOG 121:103378", cv.ATTR_VERSION: cryocube.__version__,
                      "detector_correction_parameters": json.dumps(params)})
    return out
