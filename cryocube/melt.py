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

Layout: pure numpy kernels (``*_kernel``, :func:`nagler_weight`,
:func:`multilook_power`) on arrays with time as the first axis, their per-scene
loops compiled in :mod:`cryocube.melt_kernels`. Detection runs as
one fused task per ``(time, y, x)`` tile holding the whole time axis
(:func:`cryocube.chunking.temporal_chunks`), read once: ``map_blocks`` of the
(optional) incidence normalization, the multilook, the per-orbit reference and
the ratio over each tile but its 1-px inner ring, and over the 2-px seams between
tiles from thin bands the tiles leave (:func:`cryocube.chunking.seam_map`; the
seams are the output's chunks between the tiles); the flags and the seasons are
``xr.apply_ufunc(..., dask="parallelized")``. Nothing computes at call time. Chunk
layout matters: open stores with ``open_cube(store, chunks="temporal")``, and let
:func:`detect_melt` normalize (``model_or_slope=``) rather than normalizing the
cube first.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

import cryocube
from cryocube import conventions as cv
from cryocube.chunking import HaloBlock, seam_map, temporal_chunks
from cryocube.incidence import REFERENCE_ANGLE_DEG, grid_template, incidence_angle_of, resolve_slope
from cryocube.melt_kernels import box_mean, nagler_combination, normalize_db

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
# numpy kernels (time on the first axis: blocks are contiguous (T, y, x) arrays)
# =========================================================================== #
_DB_TO_LN: Final = np.float32(np.log(10.0) / 10.0)


def db_to_power(db: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``10^(db/10)`` in float32 (``exp`` is several times faster than ``power``), into ``out`` (may be ``db``) when given."""
    out = np.multiply(db, _DB_TO_LN, dtype=np.float32, out=out)
    return np.exp(out, out=out)


def power_to_db(power: np.ndarray) -> np.ndarray:
    """``10 log10(power)`` in float32, **overwriting** ``power`` when it is a float32 array."""
    out = np.log10(power, out=power) if isinstance(power, np.ndarray) and power.dtype == np.float32 else np.log10(power, dtype=np.float32)
    out *= np.float32(10.0)
    return out


def _nagler_ramp(theta1_deg: float, theta2_deg: float, k: float) -> tuple[np.float32, np.float32]:
    """Slope (1/degree) and offset of the ramp ``k (1 + (theta2 - theta) / (theta2 - theta1))``, float32."""
    return np.float32(-k / (theta2_deg - theta1_deg)), np.float32(k * (1.0 + theta2_deg / (theta2_deg - theta1_deg)))


def nagler_weight(theta_deg: np.ndarray, *, theta1_deg: float = NAGLER_THETA1_DEG,
                  theta2_deg: float = NAGLER_THETA2_DEG, k: float = NAGLER_K) -> np.ndarray:
    """Weight ``W`` of the cross-polarized ratio in Nagler's ``R_C`` (see the module doc), float32.

    The ramp ``k (1 + (theta2 - theta) / (theta2 - theta1))`` equals 1 at ``theta1`` and
    ``k`` at ``theta2``, so the piecewise definition is the ramp clipped to ``[k, 1]``.
    """
    slope, offset = _nagler_ramp(theta1_deg, theta2_deg, k)
    weight = np.multiply(theta_deg, slope, dtype=np.float32)
    weight += offset
    return np.clip(weight, np.float32(k), np.float32(1.0), out=weight)


def multilook_power(padded_db: np.ndarray, window_px: int, *, overwrite: bool = False,
                    out: np.ndarray | None = None) -> np.ndarray:
    """NaN-aware ``window_px`` box mean, in linear power, of one 2-D scene padded with a halo.

    Parameters
    ----------
    padded_db
        Backscatter (dB) of shape ``(ny + 2h, nx + 2h)``, ``h = window_px // 2``: the
        scene plus ``h`` pixels of context on every side (NaN beyond the image).
    window_px
        Odd window edge (px).
    overwrite
        Use ``padded_db`` (float32) as scratch space for the linear power (saves an allocation).
    out
        float32 ``(ny, nx)`` array to write the result into (allocated when None).

    Returns
    -------
    np.ndarray
        Mean linear power ``(ny, nx)`` (float32) over the finite pixels of each window;
        NaN where the centre pixel is NaN. The box sums are compiled
        (:func:`cryocube.melt_kernels.box_mean`): 0.26 ms per 512 x 512 scene with
        or without a 40 x 100 px nodata patch, against 0.44-0.50 ms and 2.6 ms with
        the separable numpy sums they replaced (same bits).
    """
    h = window_px // 2
    if h == 0:
        return db_to_power(padded_db, out=out)
    power = db_to_power(padded_db, out=padded_db if overwrite else None)
    if out is None:
        out = np.empty((power.shape[0] - 2 * h, power.shape[1] - 2 * h), dtype=np.float32)
    return box_mean(power, h, out)


def reference_power_kernel(power: np.ndarray, groups: np.ndarray, is_reference: np.ndarray, n_groups: int) -> np.ndarray:
    """Dry reference per group: mean linear power of the group's valid reference scenes.

    Parameters
    ----------
    power
        Linear backscatter power (multilooked), ``(T, ...)``.
    groups
        Group index (0 .. n_groups-1) of each scene, shape ``(T,)``.
    is_reference
        True for the scenes that form the reference, shape ``(T,)``.
    n_groups
        Number of groups.

    Returns
    -------
    np.ndarray
        float32 ``(n_groups, ...)``; NaN where a pixel has no valid reference scene.
    """
    total = np.zeros((n_groups,) + power.shape[1:], dtype=np.float32)
    invalid = np.zeros((n_groups,) + power.shape[1:], dtype=np.float32)
    scenes = np.zeros((n_groups,) + (1,) * (power.ndim - 1), dtype=np.float32)
    for i in np.flatnonzero(is_reference):
        g = groups[i]
        scenes[g] += 1
        valid = np.isfinite(power[i])
        if valid.all():  # the common case: one addition
            total[g] += power[i]
        else:
            total[g] += np.where(valid, power[i], np.float32(0.0))
            invalid[g] += ~valid
    with np.errstate(divide="ignore", invalid="ignore"):
        total /= scenes - invalid
    return total


def melt_ratio_kernel(co: np.ndarray | HaloBlock, cross: np.ndarray | HaloBlock | None = None,
                      theta_deg: np.ndarray | None = None,
                      ref_co_power: np.ndarray | None = None, ref_cross_power: np.ndarray | None = None, *,
                      groups: np.ndarray, is_reference: np.ndarray, n_groups: int,
                      window_px: int | None = None,
                      normalizations: Sequence[Callable[[int, np.ndarray, np.ndarray], np.ndarray]] | None = None,
                      ) -> np.ndarray:
    """Melt ratio (dB): single-polarization ``R = 10 log10(P / P_ref)`` or, with ``cross``, Nagler's ``R_C``.

    Parameters
    ----------
    co, cross
        Co- and cross-polarized scenes: linear power ``(T, ...)`` when ``window_px``
        is None, else :class:`~cryocube.chunking.HaloBlock` of backscatter in dB with
        a halo of ``window_px // 2`` px, multilooked scene by scene
        (:func:`multilook_power`).
    theta_deg
        Incidence angle (degrees), ``(T, ny, nx)``; needed with ``cross``.
    ref_co_power, ref_cross_power
        Dry references ``(G, ny, nx)`` (linear power); the mean of each group's
        reference scenes (:func:`reference_power_kernel`) when None.
    groups, is_reference, n_groups
        Group index per scene, reference scenes, number of groups.
    window_px
        Multilook window (px) of halo-padded dB inputs; None for power inputs.
    normalizations
        Per polarization (co, cross), ``normalize(i, padded_db, out)``: padded scene
        ``i`` (dB) normalized to the reference incidence angle, written into ``out``
        (a buffer of the padded scene's shape); halo-padded inputs only.

    Returns
    -------
    np.ndarray
        float32 ``(T, ny, nx)``: ``R_co`` or ``W R_cross + (1 - W) R_co`` (dB).
        Computed one scene at a time so that every temporary stays in the CPU cache,
        in buffers allocated once (fresh memory is slow to touch); the multilooked
        reference scenes (``(n_reference, ny, nx)`` per polarization) are kept from
        the reference pass and reused, so every scene is multilooked once.
    """
    picked = np.flatnonzero(is_reference)
    row = np.full(groups.size, -1)
    row[picked] = np.arange(picked.size)
    shape = (co.shape if window_px is None else co.tile.shape)[1:]
    # Scratch, allocated once (fresh memory is slow to touch). The compiled loops never
    # write in place: LLVM's overlap check sends in-place loops down the scalar path.
    if window_px is not None:  # a padded scene (dB), then normalized (dB, then power)
        buffer = np.empty((shape[0] + 2 * co.halo, shape[1] + 2 * co.halo), dtype=np.float32)
        normalized = np.empty_like(buffer)
    looked = np.empty(shape, dtype=np.float32)  # a scene's multilooked power, then the cross-polarized log ratio
    log_co = np.empty(shape, dtype=np.float32)  # the co-polarized log ratio before the Nagler combination
    theta = np.empty(shape, dtype=np.float32)  # a contiguous copy of the scene's angles (a view is not flat)

    normalize_co, normalize_cross = normalizations if normalizations is not None else (None, None)

    def scene(a: np.ndarray | HaloBlock, i: int, normalize: Callable[[int, np.ndarray, np.ndarray], np.ndarray] | None,
              out: np.ndarray) -> np.ndarray:
        if window_px is None:
            out[...] = a[i]
            return out
        padded = a.scene(i, buffer)  # without a halo, the tile's own scene (never overwritten)
        if normalize is not None:
            padded = normalize(i, padded, normalized)
        return multilook_power(padded, window_px, overwrite=padded is buffer or padded is normalized, out=out)

    def reference(a: np.ndarray | HaloBlock, given: np.ndarray | None,
                  normalize: Callable[[int, np.ndarray, np.ndarray], np.ndarray] | None,
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """The reference power and, when computed here, the reference scenes it averaged (reused by the ratios)."""
        if given is not None:
            return given, None
        looks = np.empty((picked.size,) + shape, dtype=np.float32)
        for k, i in enumerate(picked):
            scene(a, i, normalize, looks[k])
        return reference_power_kernel(looks, groups[picked], np.ones(picked.size, bool), n_groups), looks

    def log_ratio(a: np.ndarray | HaloBlock, ref: np.ndarray, looks: np.ndarray | None, i: int,
                  normalize: Callable[[int, np.ndarray, np.ndarray], np.ndarray] | None, out: np.ndarray) -> np.ndarray:
        """``log10(P / P_ref)`` of scene ``i``, into ``out``."""
        power = looks[row[i]] if looks is not None and row[i] >= 0 else scene(a, i, normalize, looked)
        return np.log10(np.divide(power, ref[groups[i]], out=out, dtype=np.float32), out=out)

    ref_co, looks_co = reference(co, ref_co_power, normalize_co)
    ref_cross, looks_cross = reference(cross, ref_cross_power, normalize_cross) if cross is not None else (None, None)
    ramp, offset = _nagler_ramp(NAGLER_THETA1_DEG, NAGLER_THETA2_DEG, NAGLER_K)
    out = np.empty((groups.size,) + shape, dtype=np.float32)
    for i in range(groups.size):
        if cross is None:
            log_ratio(co, ref_co, looks_co, i, normalize_co, out[i])
            out[i] *= np.float32(10.0)
        else:
            co_ratio = log_ratio(co, ref_co, looks_co, i, normalize_co, log_co)
            cross_ratio = log_ratio(cross, ref_cross, looks_cross, i, normalize_cross, looked)
            np.copyto(theta, theta_deg[i])
            nagler_combination(co_ratio.reshape(-1), cross_ratio.reshape(-1), theta.reshape(-1), ramp, offset,
                               np.float32(NAGLER_K), out[i].reshape(-1))
    return out


def reference_block_kernel(block: HaloBlock, *, window_px: int, groups: np.ndarray, is_reference: np.ndarray,
                           n_groups: int) -> np.ndarray:
    """Dry reference (dB) ``(G, ny, nx)`` of a block of dB scenes with their halo: only reference scenes are multilooked."""
    picked = np.flatnonzero(is_reference)
    power = np.stack([multilook_power(block.scene(i), window_px) for i in picked])
    with np.errstate(divide="ignore", invalid="ignore"):
        return power_to_db(reference_power_kernel(power, groups[picked], np.ones(picked.size, bool), n_groups))


def melt_block_kernel(co_db: HaloBlock, cross_db: HaloBlock | None = None, theta_deg: np.ndarray | None = None,
                      ref_co_db: np.ndarray | None = None, ref_cross_db: np.ndarray | None = None,
                      theta_halo: HaloBlock | None = None, co_slope: HaloBlock | None = None,
                      cross_slope: HaloBlock | None = None, *, window_px: int, groups: np.ndarray,
                      is_reference: np.ndarray, n_groups: int, slope_db_per_deg: Sequence[float | None] = (None, None),
                      reference_angle_deg: float | None = None) -> np.ndarray:
    """The whole melt ratio of a block: :func:`melt_ratio_kernel` on dB blocks with their halo, references in dB.

    ``co_db``/``cross_db`` hold ``(T, ny, nx)`` tiles and ``h = window_px // 2``-px
    neighbour strips; ``theta_deg`` ``(T, ny, nx)``; given references ``(G, ny, nx)``.
    With ``theta_halo`` (incidence angle, degrees, with the same halo; it then also
    gives the Nagler weight) the scenes are first normalized to
    ``reference_angle_deg``: ``sigma - s (theta - theta_ref)`` (dB), with ``s`` per
    polarization the ``co_slope``/``cross_slope`` map (dB/degree, ``(T or 1, ny, nx)``
    with the halo) or else the scalar in ``slope_db_per_deg`` (co, cross), in float32
    exactly as :func:`cryocube.incidence.normalize_linear_block`.
    """
    def power(db: np.ndarray | None) -> np.ndarray | None:
        return None if db is None else db_to_power(db)

    padded_shape = (co_db.tile.shape[1] + 2 * co_db.halo, co_db.tile.shape[2] + 2 * co_db.halo)
    theta_buffer = np.empty(padded_shape, np.float32)

    def normalization(slope_map: HaloBlock | None, slope: float | None) -> Callable[[int, np.ndarray, np.ndarray], np.ndarray]:
        slope_buffer = np.empty(padded_shape, np.float32)  # the scalar slope everywhere, or the map's padded scene
        if slope_map is None:
            slope_buffer[...] = np.float32(slope)

        def normalize(i: int, padded_db: np.ndarray, out: np.ndarray) -> np.ndarray:
            s = slope_buffer if slope_map is None else slope_map.scene(min(i, slope_map.tile.shape[0] - 1), slope_buffer)
            theta = theta_halo.scene(i, theta_buffer)
            normalize_db(padded_db.reshape(-1), theta.reshape(-1), np.float32(reference_angle_deg), s.reshape(-1),
                         out.reshape(-1))
            return out
        return normalize

    normalizations = None
    if theta_halo is not None:
        theta_deg = theta_halo.tile
        normalizations = [normalization(m, v) for m, v in zip((co_slope, cross_slope), slope_db_per_deg)]
    return melt_ratio_kernel(co_db, cross_db, theta_deg, power(ref_co_db), power(ref_cross_db), groups=groups,
                             is_reference=is_reference, n_groups=n_groups, window_px=window_px,
                             normalizations=normalizations)


def classify_kernel(ratio_db: np.ndarray, threshold_db: float) -> np.ndarray:
    """Melt flag (int8): MELT where ``ratio < threshold``, DRY where finite and not, UNKNOWN where NaN."""
    flags = np.less(ratio_db, threshold_db, out=np.empty(np.shape(ratio_db), dtype=bool)).view(np.int8)  # 0/1, no copy
    flags -= np.isnan(ratio_db)  # NaN compares False (DRY = 0); DRY - 1 = UNKNOWN
    return flags


def _time_first(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """Adapt a time-first reduction kernel to ``apply_ufunc``, which hands the core dim (time) last (a view, no copy)."""
    def wrapped(*arrays: np.ndarray, **kwargs: Any) -> Any:
        return kernel(*(np.moveaxis(a, -1, 0) for a in arrays), **kwargs)
    return wrapped


def _scan_runs(is_melt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Length of the run of consecutive melt observations each scene belongs to (0 where not melt).

    Unknown scenes neither count nor break a run. Loops over time, vectorized over pixels.
    """
    n = is_melt.shape[0]
    forward = np.zeros(is_melt.shape, dtype=np.int32)
    backward = np.zeros(is_melt.shape, dtype=np.int32)
    run = np.zeros(is_melt.shape[1:], dtype=np.int32)
    for i in range(n):
        run = np.where(valid[i], np.where(is_melt[i], run + 1, 0), run)
        forward[i] = run
    run[...] = 0
    for i in range(n - 1, -1, -1):
        run = np.where(valid[i], np.where(is_melt[i], run + 1, 0), run)
        backward[i] = run
    return np.where(is_melt, forward + backward - 1, 0)


def _neighbour_times(valid: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Time of the previous and of the next valid observation of every scene (NaN where none)."""
    n = valid.shape[0]
    previous = np.full(valid.shape, np.nan)
    following = np.full(valid.shape, np.nan)
    last = np.full(valid.shape[1:], np.nan)
    for i in range(n):
        previous[i] = last
        last = np.where(valid[i], t[i], last)
    last[...] = np.nan
    for i in range(n - 1, -1, -1):
        following[i] = last
        last = np.where(valid[i], t[i], last)
    return previous, following


def season_kernel(flags: np.ndarray, t_days: np.ndarray, start_days: float, end_days: float,
                  min_scenes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Melt onset, melt end, melt days and valid-scene count of one season.

    Parameters
    ----------
    flags
        Melt flags (int8, MELT/DRY/UNKNOWN), shape ``(T, ...)``, scenes in time order.
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
    seen = counted.any(axis=0)
    first = np.argmax(counted, axis=0)
    last = n - 1 - np.argmax(counted[::-1], axis=0)
    onset = np.where(seen, t[first], np.nan)
    end = np.where(seen, t[last], np.nan)
    previous, following = _neighbour_times(valid, t)
    tt = t.reshape((n,) + (1,) * (flags.ndim - 1))
    previous = np.where(np.isnan(previous), tt - (following - tt), previous)
    following = np.where(np.isnan(following), tt + (tt - previous), following)
    lower = np.clip(np.where(np.isnan(previous), tt, (previous + tt) / 2.0), start_days, end_days)
    upper = np.clip(np.where(np.isnan(following), tt, (tt + following) / 2.0), start_days, end_days)
    days = np.where(counted, upper - lower, 0.0).sum(axis=0)
    days = np.where(valid.any(axis=0), days, np.nan)
    return (onset.astype(np.float32), end.astype(np.float32), days.astype(np.float32),
            valid.sum(axis=0).astype(np.int16))


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


def _check_reference_scenes(labels: np.ndarray, groups: np.ndarray, is_reference: np.ndarray, group_by: str,
                            reference: Any, reference_months: Sequence[int]) -> str:
    """The reference period in words; raises when a group has no reference scene."""
    period = f"{reference[0]} to {reference[1]}" if reference is not None else f"months {tuple(reference_months)}"
    for g, label in enumerate(labels.tolist()):
        if not np.any(is_reference & (groups == g)):
            raise ValueError(f"no reference scene for {group_by}={label!r} in {period}; "
                             "pass reference=(start, end) covering dry (winter) scenes of every orbit")
    return period


def _roles(kernel: Callable[..., np.ndarray], roles: Sequence[str]) -> Callable[..., np.ndarray]:
    """``kernel`` taking its array arguments by keyword ``roles`` in the order given (optional inputs)."""
    return partial(_call_with_roles, kernel, tuple(roles))


def _call_with_roles(kernel: Callable[..., np.ndarray], roles: tuple[str, ...], *arrays: np.ndarray, **kwargs: Any) -> np.ndarray:
    return kernel(**dict(zip(roles, arrays)), **kwargs)


def _temporal(var: xr.DataArray) -> xr.DataArray:
    """``var`` with the whole time axis in one chunk (dask-backed inputs only).

    Spatial chunks are kept when time is whole already (the flags of
    :func:`detect_melt`: merging its seams back into the tiles would make every
    tile wait for its neighbours); otherwise the tiles of :func:`temporal_chunks`.
    """
    if var.chunks is None or len(var.chunksizes[cv.TIME]) == 1:
        return var
    return var.chunk(temporal_chunks(var))


def _tiles_of_plain(kernel: Callable[..., np.ndarray], n_padded: int, *blocks: HaloBlock, **kwargs: Any) -> np.ndarray:
    """``kernel`` on halo blocks, the inputs after the first ``n_padded`` reduced to their region (no halo)."""
    return kernel(*blocks[:n_padded], *(b.tile for b in blocks[n_padded:]), **kwargs)


def _run_blocks(kernel: Callable[..., np.ndarray], padded: Sequence[xr.DataArray], plain: Sequence[xr.DataArray],
                halo: int, n_out: int, **kwargs: Any) -> np.ndarray | da.Array:
    """Run a time-first block kernel over ``(T, y, x)`` tiles holding the whole time axis.

    ``padded`` variables (time, y, x) reach the kernel as :class:`HaloBlock`: a
    region and its ``halo``-px surroundings (NaN beyond the array's edges);
    ``plain`` variables (``(T or G, y, x)``) as arrays of the region. The output is
    ``(n_out, y, x)`` float32, numpy for numpy inputs, else a dask array over the
    tiles of :func:`cryocube.chunking.temporal_chunks` run by
    :func:`cryocube.chunking.seam_map`: every tile is read once, computed alone but
    for its 1-px inner ring, and the rings of touching tiles (2-px seams, which are
    also the output's chunks between the tiles) come from thin bands the tiles
    leave. One fused task per tile (multilook, reference, ratio) measured 2x
    faster and 4x leaner than a multilook task followed by a temporal task.

    100 x 2048 x 2048 cube from Zarr chunked (4, 512, 512) (``benchmarks/melt.py``):
    9.1-12.7 s with a peak of 1.5-1.7 GB when the seams came in (7.0-9.8 s with
    the compiled per-scene loops and zarrs reads); the second, independent read of
    every tile the seams replaced (for the neighbours' strips) took 14.8-16.5 s
    (peak 1.5 GB), and strips cut from the tiles themselves had kept neighbourhoods
    of full-time tiles in memory (1.9-3.5 GB).
    """
    padded = [v.transpose(cv.TIME, cv.Y, cv.X) for v in padded]
    plain = [v.transpose(..., cv.Y, cv.X) for v in plain]
    if all(v.chunks is None for v in (*padded, *plain)):
        blocks = [HaloBlock.isolated(np.asarray(v.values, dtype=np.float32), halo) for v in padded]
        return kernel(*blocks, *(np.asarray(v.values) for v in plain), **kwargs)
    tiles = temporal_chunks(padded[0])
    data = [v.chunk(tiles).data.astype(np.float32) for v in padded]
    yx = data[0].chunks[1:]
    data += [v.chunk({v.dims[0]: -1, cv.Y: yx[0], cv.X: yx[1]}).data for v in plain]
    return seam_map(partial(_tiles_of_plain, kernel, len(padded)), data, halo, n_out=n_out, dtype=np.float32, **kwargs)


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
    period = _check_reference_scenes(labels, groups, is_reference, group_by, reference, reference_months)
    group_dim = group_by if group_by in cube.coords else "group"
    out = {}
    for name in variables:
        data = _run_blocks(reference_block_kernel, [cube[name]], [], window_px // 2, labels.size, window_px=window_px,
                           groups=groups, is_reference=is_reference, n_groups=labels.size)
        out[name] = xr.DataArray(data, dims=(group_dim, cv.Y, cv.X), coords={cv.Y: cube[cv.Y], cv.X: cube[cv.X]},
                                 attrs={"units": "dB", "long_name": f"dry reference {name} backscatter (mean in linear power)"})
    ref_items = cube["item_id"].values[is_reference].tolist() if "item_id" in cube.coords else []
    ds = xr.Dataset(out, coords={group_dim: labels})
    return ds.assign_attrs(reference_period=period, reference_scenes=int(is_reference.sum()),
                           reference_item_ids=ref_items, window_px=int(window_px))


def _incidence(cube: xr.Dataset) -> xr.DataArray:
    """Incidence angle (degrees) on ``(time, y, x)``, from :func:`cryocube.incidence.incidence_angle_of`."""
    theta, _ = incidence_angle_of(cube)
    return theta.broadcast_like(cube[[cv.Y, cv.X]].to_array().isel(variable=0, drop=True)) if theta.ndim == 1 else theta


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
    model_or_slope: Any = None,
    reference_angle_deg: float = REFERENCE_ANGLE_DEG,
    dem: xr.DataArray | None = None,
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
    model_or_slope, reference_angle_deg, dem
        When ``model_or_slope`` is given, the backscatter is first normalized to
        ``reference_angle_deg`` inside the melt tasks, exactly (bit for bit) as
        ``detect_melt(normalize_incidence(cube, model_or_slope=..., reference_angle_deg=...,
        dem=...))`` with the linear method (same accepted slopes: number, ``(y, x)``
        map, :class:`~cryocube.incidence.IncidenceSlopeModel`, dict per variable), but
        in one pass: no normalized copy of the cube is materialized by dask, nor
        recomputed for the halo strips. The cube must not be normalized already.

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
    is_reference = np.zeros(groups.size, dtype=bool)
    padded = [cube[name] for name in names]
    padded_roles = ["co_db", "cross_db"][: len(names)]
    plain: list[xr.DataArray] = []
    roles: list[str] = []
    fused: dict[str, Any] = {}
    if model_or_slope is not None:
        maps, fused, normalization = _fused_normalization(cube, names, model_or_slope, reference_angle_deg, dem)
        padded.append(_incidence(cube).astype(np.float32))
        padded_roles.append("theta_halo")
        for role, slope_map in zip(("co_slope", "cross_slope"), maps):
            if slope_map is not None:
                padded.append(slope_map)
                padded_roles.append(role)
    elif method == "nagler":
        plain.append(_incidence(cube).astype(np.float32))
        roles.append("theta_deg")
    if isinstance(reference, xr.Dataset):
        given = _check_reference(reference, cube, names, labels, group_by)
        plain += [given[name] for name in names]
        roles += ["ref_co_db", "ref_cross_db"][: len(names)]
        period, n_reference = given.attrs.get("reference_period", "given"), given.attrs.get("reference_scenes", -1)
    else:
        is_reference = _reference_scenes(cube, reference, reference_months)
        period = _check_reference_scenes(labels, groups, is_reference, group_by, reference, reference_months)
        n_reference = int(is_reference.sum())
    data = _run_blocks(_roles(melt_block_kernel, padded_roles + roles), padded, plain, window_px // 2,
                       cube.sizes[cv.TIME], window_px=int(window_px), groups=groups, is_reference=is_reference,
                       n_groups=labels.size, **fused)
    dims = (cv.TIME, cv.Y, cv.X)
    ratio = xr.DataArray(data, dims=dims)
    flags = xr.apply_ufunc(classify_kernel, ratio, kwargs={"threshold_db": threshold},
                           dask="parallelized", output_dtypes=[np.int8])
    params = {"method": method, "threshold_db": threshold, "variables": list(names), "group_by": group_by,
              "window_px": int(window_px), "reference": period}
    if fused:
        params["incidence_normalization"] = normalization
    out = xr.Dataset({
        "melt": flags.transpose(*dims).assign_attrs(_FLAG_ATTRS),
        "ratio_db": ratio.transpose(*dims).assign_attrs(
            units="dB", long_name="backscatter change vs dry reference" if method == "threshold" else "Nagler combined ratio R_C"),
    })
    out = out.assign_coords({k: v for k, v in cube.coords.items() if set(v.dims) <= set(dims)})
    return out.assign_attrs({
        cv.ATTR_VERSION: cryocube.__version__,
        cv.ATTR_ITEMS: cube.attrs.get(cv.ATTR_ITEMS, []),
        cv.ATTR_PARAMS: json.dumps(params),
        "melt_method": method,
        "threshold_db": threshold,
        "reference_period": params["reference"],
        "reference_scenes": n_reference,
    })


def _fused_normalization(cube: xr.Dataset, names: Sequence[str], model_or_slope: Any, reference_angle_deg: float,
                         dem: xr.DataArray | None) -> tuple[list[xr.DataArray | None], dict[str, Any], dict[str, Any]]:
    """Slopes of the linear normalization done inside the melt tasks: per variable a ``(time or 1, y, x)`` float32
    map or None, the kernel's scalar keywords and a description for the attrs."""
    if not (np.isfinite(reference_angle_deg) and 0 <= reference_angle_deg < 90):
        raise ValueError(f"reference_angle_deg must be in [0, 90) degrees, got {reference_angle_deg!r}")
    maps: list[xr.DataArray | None] = []
    scalars: list[float | None] = []
    sources = {}
    for name in names:
        if "incidence_normalization" in cube[name].attrs:
            raise ValueError(f"variable {name!r} is already normalized ({cube[name].attrs['incidence_normalization']}); "
                             "pass model_or_slope only for backscatter that is not")
        slope, sources[name], _ = resolve_slope(model_or_slope, name, cube, dem, grid_template(cube, name))
        if isinstance(slope, xr.DataArray):
            slope = slope.astype(np.float32)
            maps.append(slope if cv.TIME in slope.dims else slope.expand_dims({cv.TIME: 1}))
            scalars.append(None)
        else:
            maps.append(None)
            scalars.append(float(slope))
    scalars += [None] * (2 - len(scalars))
    return (maps, {"slope_db_per_deg": tuple(scalars), "reference_angle_deg": float(reference_angle_deg)},
            {"method": "linear", "reference_angle_deg": float(reference_angle_deg), "slope_source": sources})


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
            _time_first(season_kernel), sub, input_core_dims=[[cv.TIME]], output_core_dims=[[], [], [], []],
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

