r"""A year of synthetic Sentinel-1 HH/HV scenes with exact melt truth, for testing melt detection.

The scene (EPSG:3413, 40 m pixels) has three zones side by side along x:

* **dry snow** (first quarter of the columns): never melts;
* **wet snow** (middle half): wet from ``onset`` to ``end`` (fractional day of
  year, varying smoothly with the row: ``onset = ONSET_FIRST + ONSET_SPAN * r``,
  ``end = END_FIRST - END_SPAN * r``, ``r = row / (ny - 1)``); backscatter drops by
  ``WET_DROP_DB`` while wet;
* **bare ice** (last quarter): wet over the same period as the wet-snow row, but
  the response is weak or inverted (``BARE_ICE_CHANGE_DB``: HH +1.5 dB, HV -1.0 dB),
  as over Greenland's bare-ice zone (Li et al. 2023).

Two tracks see every pixel every ``revisit_days`` days: descending (relative
orbit 25, 10:05 UTC, incidence 41 -> 36 degrees west to east) and ascending
(relative orbit 90, 20:39 UTC, 33 -> 38 degrees), with backscatter
``base + SLOPE_DB_PER_DEG * (theta - 35) + change * wet + N(0, NATURAL_SD_DB) + speckle``,
the speckle ``10 log10(G)`` with ``G ~ Gamma(enl, 1/enl)`` independent per pixel,
scene and polarization. A pixel is wet at time ``t`` when
``onset <= doy(t) < end``.

Deterministic: every draw comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import xarray as xr

from cryocube import conventions as cv

ZONES: Final = ("dry_snow", "wet_snow", "bare_ice")
BASE_DB: Final = {"dry_snow": {"hh": -6.0, "hv": -14.0}, "wet_snow": {"hh": -7.0, "hv": -15.0}, "bare_ice": {"hh": -11.0, "hv": -21.0}}
WET_DROP_DB: Final = {"hh": -5.0, "hv": -4.5}
BARE_ICE_CHANGE_DB: Final = {"hh": 1.5, "hv": -1.0}
ONSET_FIRST, ONSET_SPAN = 150.3, 20.0
END_FIRST, END_SPAN = 250.7, 15.0
SLOPE_DB_PER_DEG: Final = -0.12
NATURAL_SD_DB: Final = 0.3
TRACKS: Final = (("descending", 25, "10:05:12", 41.0, 36.0), ("ascending", 90, "20:39:45", 33.0, 38.0))


def zone_map(shape: tuple[int, int]) -> np.ndarray:
    """Zone index per pixel (0 dry snow, 1 wet snow, 2 bare ice) by column quarter."""
    ny, nx = shape
    col = np.arange(nx)
    zone = np.where(col < nx // 4, 0, np.where(col < nx - nx // 4, 1, 2))
    return np.broadcast_to(zone, shape).copy()


def melt_window(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """True onset and end (fractional day of year) per pixel; NaN in the dry-snow zone."""
    ny, nx = shape
    r = np.linspace(0.0, 1.0, ny)[:, None] * np.ones((1, nx))
    onset = ONSET_FIRST + ONSET_SPAN * r
    end = END_FIRST - END_SPAN * r
    dry = zone_map(shape) == 0
    return np.where(dry, np.nan, onset), np.where(dry, np.nan, end)


def acquisition_times(year: int, revisit_days: int) -> pd.DatetimeIndex:
    """Scene times: both tracks every ``revisit_days`` days from 2 January of ``year``, sorted."""
    days = pd.date_range(f"{year}-01-02", f"{year}-12-31", freq=f"{revisit_days}D")
    times = [day + pd.Timedelta(clock) for day in days for _, _, clock, _, _ in TRACKS]
    return pd.DatetimeIndex(sorted(times))


def melt_cube(
    shape: tuple[int, int] = (40, 64),
    *,
    year: int = 2019,
    revisit_days: int = 6,
    enl: float = 4.4,
    seed: int = 0,
) -> tuple[xr.Dataset, xr.Dataset]:
    """A year of HH/HV scenes (dB) with known melt, and its truth.

    Parameters
    ----------
    shape
        ``(ny, nx)`` pixels (40 m).
    year
        Calendar year of the scenes.
    revisit_days
        Days between passes of each track.
    enl
        Equivalent number of looks of the speckle (gamma, unit mean).
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    cube, truth
        ``cube``: dims ``(time, y, x)``, variables ``hh``, ``hv`` (dB, float32),
        ``incidence_angle`` (degree), per-scene coords ``orbit_state``,
        ``relative_orbit``, ``item_id``; CRS EPSG:3413.
        ``truth``: ``zone`` (0/1/2, see :data:`ZONES`), ``melt_onset_doy``,
        ``melt_end_doy`` (NaN in the dry-snow zone) on ``(y, x)`` and ``wet``
        (bool, ``(time, y, x)``).
    """
    ny, nx = shape
    rng = np.random.default_rng(seed)
    times = acquisition_times(year, revisit_days)
    zone = zone_map(shape)
    onset, end = melt_window(shape)
    doy = np.asarray((times - pd.Timestamp(year=year, month=1, day=1)) / pd.Timedelta(days=1)) + 1.0
    wet = (onset[None] <= doy[:, None, None]) & (doy[:, None, None] < end[None])
    track_of = {clock: track for track in TRACKS for clock in [track[2]]}
    tracks = [track_of[t.strftime("%H:%M:%S")] for t in times]
    frac = (np.arange(nx) + 0.5) / nx
    theta = np.stack([np.broadcast_to(w + (e - w) * frac, shape) for _, _, _, w, e in tracks]).astype(np.float32)
    data = {}
    for pol in ("hh", "hv"):
        base = np.choose(zone, [BASE_DB[z][pol] for z in ZONES])
        change = np.where(zone == 2, BARE_ICE_CHANGE_DB[pol], WET_DROP_DB[pol])
        natural = rng.normal(0.0, NATURAL_SD_DB, (times.size, ny, nx))
        speckle = 10.0 * np.log10(rng.gamma(enl, 1.0 / enl, (times.size, ny, nx)))
        sigma = base[None] + SLOPE_DB_PER_DEG * (theta - 35.0) + change[None] * wet + natural + speckle
        data[pol] = ((cv.TIME, cv.Y, cv.X), sigma.astype(np.float32), dict(cv.VARIABLE_ATTRS[pol]))
    data[cv.INCIDENCE_ANGLE] = ((cv.TIME, cv.Y, cv.X), theta, dict(cv.VARIABLE_ATTRS[cv.INCIDENCE_ANGLE]))
    x = -200000.0 + 40.0 * (np.arange(nx) + 0.5)
    y = -2200000.0 - 40.0 * (np.arange(ny) + 0.5)
    coords = {
        cv.TIME: times.values.astype("datetime64[ns]"),
        cv.Y: y,
        cv.X: x,
        "orbit_state": (cv.TIME, np.array([tr[0] for tr in tracks])),
        "relative_orbit": (cv.TIME, np.array([tr[1] for tr in tracks], dtype=np.int32)),
        "item_id": (cv.TIME, np.array([f"MELT_SYN_{t:%Y%m%dT%H%M%S}" for t in times])),
    }
    cube = xr.Dataset(data, coords=coords, attrs={"source": "cryocube.melt_scenes", "enl": enl, "seed": seed})
    cube = cube.rio.write_crs(cv.DEFAULT_CRS)
    truth = xr.Dataset(
        {
            "zone": ((cv.Y, cv.X), zone, {"flag_values": [0, 1, 2], "flag_meanings": " ".join(ZONES)}),
            "melt_onset_doy": ((cv.Y, cv.X), onset, {"units": "day of year"}),
            "melt_end_doy": ((cv.Y, cv.X), end, {"units": "day of year"}),
            "wet": ((cv.TIME, cv.Y, cv.X), wet),
        },
        coords={cv.TIME: coords[cv.TIME], cv.Y: y, cv.X: x},
    )
    return cube, truth
