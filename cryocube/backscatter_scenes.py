r"""Small backscatter cubes with a known incidence slope, for incidence-angle normalization.

:func:`backscatter_scenes` builds an in-memory Sentinel-1-like cube (``hh``, ``hv`` in
dB, ``incidence_angle`` in degrees, EPSG:3413) over West Greenland with exact truth:
the slope ``s = d sigma0 / d theta`` (dB/degree) of each polarization is a *linear*
function of longitude, latitude, elevation and day of year, the model that
:func:`cryocube.incidence.fit_incidence_slope` fits (Chen, Li et al. 2022, *Remote
Sensing* 14(21):5534).

Grid
----
``shape = (50, 40)`` pixels of 10 km by default, ``x`` from -300 km to +100 km and
``y`` from -2900 km to -2400 km (EPSG:3413): latitude 63.5-68.1 degrees north,
longitude -52.1 to -42.6 degrees. A pixel here stands for a sample location, not an
area average: the speckle is that of one pixel with :data:`ENL` looks.

Model (per polarization ``pol``, scene at time ``t`` with incidence map ``theta``)
------------------------------------------------------------------------------------
::

    s(pol)     = c0 + c_lon (lon - LON0) + c_lat (lat - LAT0) + c_z (z - Z0) + c_doy (doy - DOY0)
    sigma0     = base(pol) + season(doy) + s(pol) * (theta - THETA_REF_DEG) + 10 log10(G)      [dB]

with the centred coefficients :data:`SLOPE_MODEL` (``LON0 = -47``, ``LAT0 = 66``,
``Z0 = 1250`` m, ``DOY0 = 180``), so ``s`` spans about -0.24 to -0.10 dB/degree (HH)
and -0.24 to -0.14 dB/degree (HV). ``doy`` is the fractional day of year of the
scene's own time (1.0 = 1 January 00:00 UTC). ``base`` depends on elevation;
``season = 0.5 cos(2 pi (doy_k - 200) / 365.25)`` dB with ``doy_k`` the day of year of
pair ``k``'s date, the same for both scenes of a pair. ``G`` is gamma speckle of unit mean with ``enl``
looks, drawn independently for every pixel, scene and polarization (seed
:data:`SEED`), so the asc - desc residuals of different pixels and pairs are
independent and ``var(10 log10 G) = (10 / ln 10)^2 * trigamma(enl)`` (2.19 dB std at
ENL 4.4, the Sentinel-1 IW GRDH value). Its mean bias cancels in asc - desc.
Because ``doy`` differs by ~0.5 day inside a pair, ``asc - desc = s * dtheta`` holds to
``c_doy * 0.55 day * 10 degrees`` (< 1e-3 dB), the only approximation.

DEM: ``z = 1250 + 800 sin(2.5 pi u + 0.3) cos(1.7 pi v) + 300 (u - 0.5)`` m with
``u``, ``v`` the pixel-centre positions scaled to [0, 1] west->east and south->north
(about 160 to 2340 m; not collinear with longitude or latitude).

Acquisitions
------------
Pair ``k`` (``k = 0 .. n_pairs - 1``) is on date ``FIRST_DATE + 16 k`` days: an
ascending scene at 20:39 UTC and a descending one at 10:05 UTC the same day
(``k`` even, 10.57 h apart) or at 09:48 UTC the next day (``k`` odd, 13.15 h apart).
Incidence angle maps (degrees; ascending looks east, descending west)::

    theta_asc  = 31 + 9 u + 1 v + offset(asc orbit)       orbits 90 / 163, offsets 0 / +2
    theta_desc = 44 - 9 u - 1 v + offset(desc orbit)      orbits 25 / 98,  offsets 0 / -2

so ``theta_asc - theta_desc`` runs from about -17 to +9 degrees, mostly negative.
Options: one extra ascending scene 5 days after the last pair (``unpaired_scene``,
in no pair within 24 h); a swath-edge stripe (the 4 westernmost columns NaN) in the
descending scene of pair 0 (``nodata_stripe``: overlap fraction 0.9 for 40 columns);
a wet-snow outlier (``wet_pair=k``: the ascending scene of pair ``k`` drops by
:data:`WET_DROP_DB` where ``z < 1000`` m, the melt-day outlier of real data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

from cryocube import conventions as cv
from cryocube.incidence import day_of_year, lonlat

__all__ = ["BackscatterScenes", "ENL", "SLOPE_MODEL", "THETA_REF_DEG", "backscatter_scenes", "physical_coefficients"]

CRS: Final = "EPSG:3413"
#: Default grid: (left, top) corner (EPSG:3413 m) and pixel size (m).
LEFT: Final = -300_000.0
TOP: Final = -2_400_000.0
RESOLUTION_M: Final = 10_000.0
#: Seed of every random draw.
SEED: Final = 20221105
#: Reference angle of the model (degrees).
THETA_REF_DEG: Final = 35.0
#: Default equivalent number of looks of the speckle (Sentinel-1 IW GRDH).
ENL: Final = 4.4
#: Drop (dB) of the wet-snow outlier.
WET_DROP_DB: Final = -3.0
FIRST_DATE: Final = np.datetime64("2021-04-10", "ns")
DAYS_BETWEEN_PAIRS: Final = 16

#: Centring of the predictors in :data:`SLOPE_MODEL`.
CENTRES: Final = {"lon": -47.0, "lat": 66.0, "elevation": 1250.0, "doy": 180.0}
#: Centred slope model per polarization: ``c0`` (dB/degree at the centres) and the
#: rates per degree_east, degree_north, m and day (dB/degree per unit).
SLOPE_MODEL: Final = {
    "hh": {"c0": -0.17, "lon": 0.0, "lat": 0.010, "elevation": -3.0e-5, "doy": 1.0e-4},
    "hv": {"c0": -0.19, "lon": 0.002, "lat": 0.008, "elevation": -2.0e-5, "doy": 0.0},
}
_BASE_DB: Final = {"hh": (-9.0, 3.0), "hv": (-16.0, 2.0)}  # (at z = 0, gain over 2500 m)

_TRACKS: Final = {  # relative orbit -> (orbit state, incidence offset in degrees)
    90: ("ascending", 0.0), 163: ("ascending", 2.0), 25: ("descending", 0.0), 98: ("descending", -2.0)}


def physical_coefficients(pol: str) -> dict[str, float]:
    """The true model as ``intercept + sum_k beta_k p_k`` (physical units, predictors at zero)."""
    model = SLOPE_MODEL[pol]
    out = {name: float(model[name]) for name in CENTRES}
    out["intercept"] = float(model["c0"] - sum(model[name] * CENTRES[name] for name in CENTRES))
    return out


def _true_slope(pol: str, lon: np.ndarray, lat: np.ndarray, z: np.ndarray, doy: float) -> np.ndarray:
    model = SLOPE_MODEL[pol]
    values = {"lon": lon, "lat": lat, "elevation": z, "doy": doy}
    return model["c0"] + sum(model[name] * (values[name] - CENTRES[name]) for name in CENTRES)


@dataclass(frozen=True)
class BackscatterScenes:
    """A synthetic cube and its exact truth.

    Attributes
    ----------
    cube
        ``(time, y, x)``: ``hh``, ``hv`` (dB, float32), ``incidence_angle`` (degree,
        float32); coords on ``time``: ``orbit_state``, ``relative_orbit``, ``platform``,
        ``item_id``, ``view_incidence_angle`` (scene mean, degrees); CRS EPSG:3413.
    dem
        ``(y, x)`` elevation (m), float64, on the cube's grid.
    truth
        ``lon``, ``lat`` (degrees), ``elevation`` (m), ``base_hh``, ``base_hv`` (dB at
        ``THETA_REF_DEG`` before season and speckle) on ``(y, x)``; ``slope_hh``,
        ``slope_hv`` (dB/degree) and ``model_hh``, ``model_hv`` (noise-free dB) on
        ``(time, y, x)``; ``doy`` on ``time``.
    coefficients
        Per polarization, :func:`physical_coefficients`.
    pairs
        The known pairs: ``ascending_index``, ``descending_index`` (positions along ``time``).
    enl
        Equivalent number of looks of the speckle.
    """

    cube: xr.Dataset
    dem: xr.DataArray
    truth: xr.Dataset
    coefficients: dict[str, dict[str, float]]
    pairs: pd.DataFrame
    enl: float


def _schedule(n_pairs: int, unpaired_scene: bool) -> list[tuple[np.datetime64, int, int | None]]:
    """``(time, relative_orbit, pair number or None)`` of every scene, in acquisition order."""
    scenes = []
    for k in range(n_pairs):
        day = FIRST_DATE + np.timedelta64(DAYS_BETWEEN_PAIRS * k, "D")
        asc = day + np.timedelta64(20 * 60 + 39, "m")
        desc = day + (np.timedelta64(10 * 60 + 5, "m") if k % 2 == 0 else np.timedelta64(24 * 60 + 9 * 60 + 48, "m"))
        scenes += [(asc, (90, 163)[k % 2], k), (desc, (25, 98)[(k // 2) % 2], k)]
    if unpaired_scene:
        last = FIRST_DATE + np.timedelta64(DAYS_BETWEEN_PAIRS * (n_pairs - 1) + 5, "D")
        scenes.append((last + np.timedelta64(20 * 60 + 39, "m"), 90, None))
    return sorted(scenes, key=lambda s: s[0])


def backscatter_scenes(*, n_pairs: int = 10, enl: float = ENL, shape: tuple[int, int] = (50, 40),
                       resolution: float = RESOLUTION_M, unpaired_scene: bool = True, nodata_stripe: bool = True,
                       wet_pair: int | None = None, seed: int = SEED) -> BackscatterScenes:
    """Build the cube described in the module docstring, with its exact truth.

    Parameters
    ----------
    n_pairs
        Number of ascending/descending pairs (>= 2 so that ``doy`` varies).
    enl
        Equivalent number of looks of the gamma speckle (``inf``: no speckle).
    shape
        ``(rows, columns)``; the grid starts at (:data:`LEFT`, :data:`TOP`).
    resolution
        Pixel size (m).
    unpaired_scene, nodata_stripe, wet_pair
        Options of the module docstring.
    seed
        Seed of the speckle.
    """
    if n_pairs < 2:
        raise ValueError(f"n_pairs must be >= 2, got {n_pairs}")
    if wet_pair is not None and not 0 <= wet_pair < n_pairs:
        raise ValueError(f"wet_pair must be in [0, {n_pairs}), got {wet_pair}")
    ny, nx = shape
    x = LEFT + resolution * (np.arange(nx) + 0.5)
    y = TOP - resolution * (np.arange(ny) + 0.5)
    u = ((x - x[0]) / (x[-1] - x[0]))[None, :]
    v = ((y - y[-1]) / (y[0] - y[-1]))[:, None]
    z = 1250 + 800 * np.sin(2.5 * math.pi * u + 0.3) * np.cos(1.7 * math.pi * v) + 300 * (u - 0.5)
    xx, yy = np.meshgrid(x, y)
    lon, lat = lonlat(xx, yy, CRS)

    rng = np.random.default_rng(seed)
    scenes = _schedule(n_pairs, unpaired_scene)
    times = np.array([s[0] for s in scenes], dtype="datetime64[ns]")
    doys = day_of_year(times)
    base = {pol: _BASE_DB[pol][0] + _BASE_DB[pol][1] * z / 2500 for pol in SLOPE_MODEL}
    data: dict[str, list[np.ndarray]] = {name: [] for name in ("hh", "hv", "incidence_angle", "slope_hh", "slope_hv",
                                                                "model_hh", "model_hv")}
    for (time, orbit, pair), doy in zip(scenes, doys):
        state, offset = _TRACKS[orbit]
        theta = (31 + 9 * u + v if state == "ascending" else 44 - 9 * u - v) + offset
        theta = np.broadcast_to(theta, shape)
        day = FIRST_DATE + np.timedelta64(DAYS_BETWEEN_PAIRS * (n_pairs if pair is None else pair), "D")
        season = 0.5 * math.cos(2 * math.pi * (float(day_of_year(day)[0]) - 200) / 365.25)
        for pol in ("hh", "hv"):
            slope = _true_slope(pol, lon, lat, z, doy)
            model = base[pol] + season + slope * (theta - THETA_REF_DEG)
            if pair == wet_pair and pair is not None and state == "ascending":
                model = np.where(z < 1000, model + WET_DROP_DB, model)
            speckle = 10 * np.log10(rng.gamma(enl, 1 / enl, shape)) if math.isfinite(enl) else 0.0
            sigma = model + speckle
            if nodata_stripe and pair == 0 and state == "descending":
                sigma = np.where(np.arange(nx)[None, :] < 4, np.nan, sigma)
            data[pol].append(sigma.astype(np.float32))
            data[f"slope_{pol}"].append(slope)
            data[f"model_{pol}"].append(model)
        data["incidence_angle"].append(theta.astype(np.float32))

    dims = (cv.TIME, cv.Y, cv.X)
    states = [_TRACKS[s[1]][0] for s in scenes]
    coords = {
        cv.TIME: times, cv.Y: y, cv.X: x,
        "orbit_state": (cv.TIME, np.array(states)),
        "relative_orbit": (cv.TIME, np.array([s[1] for s in scenes], dtype=np.int32)),
        "platform": (cv.TIME, np.full(len(scenes), "sentinel-1a")),
        "item_id": (cv.TIME, np.array([f"SYN_BS_{str(t)[:19].replace('-', '').replace(':', '')}_{o:03d}"
                                       for t, o, _ in scenes])),
        "view_incidence_angle": (cv.TIME, np.array([float(a.mean()) for a in data["incidence_angle"]])),
    }
    cube = xr.Dataset(
        {name: (dims, np.stack(data[name]), dict(cv.VARIABLE_ATTRS[name])) for name in ("hh", "hv", "incidence_angle")},
        coords=coords, attrs={"source": "cryocube.backscatter_scenes", "enl": float(enl)},
    ).rio.write_crs(CRS)
    dem = xr.DataArray(z, dims=(cv.Y, cv.X), coords={cv.Y: y, cv.X: x}, name="elevation",
                       attrs={"units": "m", "long_name": "surface elevation"}).rio.write_crs(CRS)
    grid_vars = {"lon": (lon, "degree_east"), "lat": (lat, "degree_north"), "elevation": (z, "m"),
                 "base_hh": (base["hh"], "dB"), "base_hv": (base["hv"], "dB")}
    truth = xr.Dataset(
        {**{k: ((cv.Y, cv.X), a, {"units": unit}) for k, (a, unit) in grid_vars.items()},
         **{k: (dims, np.stack(data[k]), {"units": "dB/degree" if k.startswith("slope") else "dB"})
            for k in ("slope_hh", "slope_hv", "model_hh", "model_hv")},
         "doy": (cv.TIME, doys, {"units": "day"})},
        coords={cv.TIME: times, cv.Y: y, cv.X: x}, attrs={"theta_ref_deg": THETA_REF_DEG},
    )
    index = {(s[2], _TRACKS[s[1]][0]): i for i, s in enumerate(scenes) if s[2] is not None}
    pairs = pd.DataFrame({"ascending_index": [index[k, "ascending"] for k in range(n_pairs)],
                          "descending_index": [index[k, "descending"] for k in range(n_pairs)]})
    return BackscatterScenes(cube, dem, truth, {pol: physical_coefficients(pol) for pol in SLOPE_MODEL}, pairs,
                             float(enl))
