"""Compiled per-scene loops of the melt ratio: normalization, multilook, Nagler combination (numba).

numpy evaluates the melt ratio of one scene in about fifteen whole-scene passes
(each a trip through the cache and, for 512 x 512 scenes, through most of L2).
These loops fuse them, one image row at a time, and are written so that LLVM
vectorizes them: contiguous inner loops over a row, offsets taken as slices (an
index ``x + k`` with a runtime ``k`` kept the box sum scalar: 255 us instead of
76 us per 512 x 512 scene), ``error_model="numpy"`` (no zero-division branch) and
no floating-point reductions. ``exp`` and ``log10`` stay with numpy, whose SIMD
versions beat the scalar libm calls numba would make.

Every result is the **same float32 operations in the same order** as the numpy
expressions they replace (no fast-math, so no contraction into fused
multiply-adds): bit-identical to them, whatever block a pixel falls in.
"""

from __future__ import annotations

import numba
import numpy as np

_COMPILE = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(**_COMPILE)
def _rows_with_gaps(image: np.ndarray) -> np.ndarray:
    """True for each row of ``image`` holding a NaN or an infinity (``v - v`` is 0 only for finite ``v``)."""
    gaps = np.zeros(image.shape[0], dtype=np.bool_)
    for y in range(image.shape[0]):
        row = image[y]
        gap = False
        for x in range(row.size):
            gap |= row[x] - row[x] != 0
        gaps[y] = gap
    return gaps


@numba.njit(**_COMPILE)
def _along_row(sums: np.ndarray, size: int, out: np.ndarray) -> None:
    """``out[x] = ((sums[x] + sums[x + 1]) + sums[x + 2]) ...`` over ``size`` terms."""
    right = sums[1:]
    for x in range(out.size):
        out[x] = sums[x] + right[x]
    for k in range(2, size):
        right = sums[k:]
        for x in range(out.size):
            out[x] += right[x]


@numba.njit(**_COMPILE)
def box_mean(padded: np.ndarray, half: int, out: np.ndarray) -> np.ndarray:
    """Mean over the finite values of every ``(2 half + 1)`` square window, into ``out``.

    Parameters
    ----------
    padded
        float32 ``(ny + 2 half, nx + 2 half)``: the image and ``half`` px of context
        on every side (NaN beyond the image's edge). Linear power, for the multilook.
    half
        Half window (px), ``>= 1``.
    out
        float32 ``(ny, nx)``.

    Returns
    -------
    np.ndarray
        ``out``: the window sums ``((v0 + v1) + v2) ...`` down the columns, then along the
        rows, divided by the window's area; where the window holds a NaN or an
        infinity, the sums of its finite values divided by their count (the same bits
        where the count is the area); NaN where the centre pixel is not finite.
    """
    ny, nx = out.shape
    width = padded.shape[1]
    size = 2 * half + 1
    area = np.float32(size * size)
    gaps = _rows_with_gaps(padded)
    sums = np.empty(width, dtype=np.float32)
    counts = np.empty(width, dtype=np.float32)
    window_counts = np.empty(nx, dtype=np.float32)
    for y in range(ny):
        row_out = out[y]
        if not gaps[y:y + size].any():
            first, second = padded[y], padded[y + 1]
            for x in range(width):
                sums[x] = first[x] + second[x]
            for k in range(2, size):
                more = padded[y + k]
                for x in range(width):
                    sums[x] += more[x]
            _along_row(sums, size, row_out)
            for x in range(nx):
                row_out[x] /= area
            continue
        sums[:] = 0.0
        counts[:] = 0.0
        for k in range(size):
            values = padded[y + k]
            for x in range(width):
                finite = values[x] - values[x] == 0
                sums[x] += values[x] if finite else np.float32(0.0)
                counts[x] += np.float32(1.0) if finite else np.float32(0.0)
        _along_row(sums, size, row_out)
        _along_row(counts, size, window_counts)
        centre = padded[y + half][half:]
        for x in range(nx):
            row_out[x] = row_out[x] / window_counts[x] if centre[x] - centre[x] == 0 else np.float32(np.nan)
    return out


@numba.njit(**_COMPILE)
def normalize_db(db: np.ndarray, theta_deg: np.ndarray, reference_angle_deg: np.float32, slope: np.ndarray,
                 out: np.ndarray) -> np.ndarray:
    """Linear incidence normalization of a flattened scene: ``db - (theta - theta_ref) * slope`` (dB), into ``out``.

    ``db``, ``theta_deg`` (degrees), ``slope`` (dB/degree) and ``out`` are 1-D float32 of
    one size and ``reference_angle_deg`` a float32 (a Python float would turn the
    arithmetic to float64): the operations of
    :func:`cryocube.incidence.normalize_linear_block`, fused.
    """
    for x in range(out.size):
        out[x] = db[x] - (theta_deg[x] - reference_angle_deg) * slope[x]
    return out


@numba.njit(**_COMPILE)
def nagler_combination(log_co: np.ndarray, log_cross: np.ndarray, theta_deg: np.ndarray, ramp: np.float32,
                       ramp_offset: np.float32, k: np.float32, out: np.ndarray) -> np.ndarray:
    """Nagler's ``R_C = R_co + W (R_cross - R_co)`` of a flattened scene (dB), into ``out``.

    Parameters
    ----------
    log_co, log_cross
        ``log10`` of the co- and cross-polarized power ratios (1-D float32); ``R = 10 log10``.
    theta_deg
        Incidence angle (degrees), 1-D float32.
    ramp, ramp_offset, k
        float32 weight ``W = clip(theta * ramp + ramp_offset, k, 1)`` (NaN stays NaN), as
        :func:`cryocube.melt.nagler_weight`.
    out
        1-D float32 of the same size.
    """
    ten = np.float32(10.0)
    one = np.float32(1.0)
    for x in range(out.size):
        weight = theta_deg[x] * ramp + ramp_offset
        weight = k if weight < k else weight
        weight = one if weight > one else weight
        r_co = log_co[x] * ten
        out[x] = r_co + (log_cross[x] * ten - r_co) * weight
    return out
