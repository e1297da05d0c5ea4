"""Accuracy statistics of velocity products against a reference (truth, GPS, stable ground).

Statistics follow the Greenland Ice Sheet CCI intercomparison: the median and the
MAD (median absolute deviation, unscaled) of the differences, with the RMSE and
the number of points alongside.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr


def difference_stats(difference: np.ndarray) -> dict[str, float]:
    """``n``, ``median``, ``mad`` (unscaled), ``rmse`` of the finite values of ``difference``."""
    values = np.asarray(difference, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"n": 0, "median": float("nan"), "mad": float("nan"), "rmse": float("nan")}
    median = float(np.median(values))
    return {"n": int(values.size), "median": median, "mad": float(np.median(np.abs(values - median))),
            "rmse": float(np.sqrt(np.mean(values**2)))}


def velocity_errors(velocity: xr.Dataset, vx_ref: xr.DataArray, vy_ref: xr.DataArray,
                    masks: Mapping[str, xr.DataArray]) -> dict[str, dict[str, dict[str, float]]]:
    """Statistics of ``vx - vx_ref``, ``vy - vy_ref`` and of the vector difference's length, per mask.

    Parameters
    ----------
    velocity
        With ``vx``, ``vy`` (m/yr) on ``(y, x)``; NaN where rejected.
    vx_ref, vy_ref
        Reference velocity (m/yr) on the same points.
    masks
        Boolean DataArrays on the same points, by name (e.g. ``glacier``, ``stable``).

    Returns
    -------
    dict
        ``{mask: {"vx": stats, "vy": stats, "vector": stats, "coverage": fraction}}``
        with :func:`difference_stats`; ``coverage`` is the fraction of the mask's
        points with a returned value. Computes the inputs.
    """
    ex = (velocity["vx"] - vx_ref).values
    ey = (velocity["vy"] - vy_ref).values
    out = {}
    for name, mask in masks.items():
        m = np.asarray(mask.values, dtype=bool)
        out[name] = {"vx": difference_stats(ex[m]), "vy": difference_stats(ey[m]), "vector": difference_stats(np.hypot(ex, ey)[m]),
                     "coverage": float(np.isfinite(ex[m]).mean()) if m.any() else float("nan")}
    return out
