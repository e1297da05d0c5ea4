"""Synthetic permafrost interferogram stack with exact truth, for SBAS tests, demo and benchmark.

:func:`permafrost_stack` simulates a small-baseline Sentinel-1 network over a
permafrost plateau (after the Beiluhe setting of the issue): thaw slumps
subsiding up to 35 mm/yr, a frost-heave mound rising 20 mm/yr, seasonal
amplitudes above 10 mm in the slumps, per-date atmospheric phase screens,
decorrelation noise whose variance follows the coherence (Tough et al. 1995 phase
PDF with ``n_looks`` looks, as Gaussian noise of that variance), optional 2*pi
unwrapping errors in a fraction of the interferogram pixels, optional network
gaps and nodata.

Phase convention of :mod:`cryocube.sbas`: ``phi_date = -4 pi / lambda * d_date``
(``d`` positive towards the satellite), ``phi_pair = phi(date2) - phi(date1)``.

Deformation model (the one :func:`cryocube.deformation.fit_deformation` fits)::

    d(t) = v * (tau - tau_0) + A * cos(2 pi tau - phase),   tau = years since 2000-01-01

The returned truth holds ``displacement`` (deformation relative to the first
date) and ``recoverable_displacement`` (deformation plus the atmosphere of each
date, relative to the first date: what an SBAS inversion can recover, since the
atmosphere of a date is common to all its pairs).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

import cryocube
from cryocube import conventions as cv
from cryocube.conventions import phase_to_displacement
from cryocube.sbas_kernel import coherence_weights, phase_variance_lut
from cryocube.velocity_series import DAYS_PER_YEAR

#: Epoch of ``tau`` (years) in the seasonal model.
SEASON_EPOCH = np.datetime64("2000-01-01", "ns")


def sbas_network(n_dates: int, *, max_span: int = 3, n_pairs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Small-baseline pairs: every date with its next ``max_span`` dates, shortest spans first.

    With ``n_pairs``, pairs are taken by increasing span (then date) until there
    are ``n_pairs`` (spans beyond ``max_span`` are added as needed): 60 dates and
    204 pairs give all 1-3-step pairs plus 30 4-step pairs.

    Returns
    -------
    node1, node2
        ``(P,)`` int date indices, ``node1 < node2``, sorted by ``(node1, node2)``.
    """
    if n_dates < 2:
        raise ValueError(f"n_dates must be >= 2, got {n_dates}")
    spans = range(1, n_dates) if n_pairs is not None else range(1, max_span + 1)
    pairs = [(i, i + s) for s in spans for i in range(n_dates - s)]
    if n_pairs is not None:
        if not (n_dates - 1 <= n_pairs <= len(pairs)):
            raise ValueError(f"n_pairs must be between {n_dates - 1} and {len(pairs)} for {n_dates} dates, got {n_pairs}")
        pairs = pairs[:n_pairs]
    pairs.sort()
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def _blobs(u: np.ndarray, w: np.ndarray, blobs: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Sum of Gaussian blobs ``(u0, w0, sigma, value)`` on normalised coordinates."""
    out = np.zeros(np.broadcast_shapes(u.shape, w.shape))
    for u0, w0, s, value in blobs:
        out += value * np.exp(-((u - u0) ** 2 + (w - w0) ** 2) / (2 * s**2))
    return out


#: Thaw slumps (subsidence) and a frost-heave mound: (u, w, sigma, velocity m/yr).
VELOCITY_BLOBS = [(0.30, 0.35, 0.07, -0.033), (0.72, 0.62, 0.05, -0.023), (0.55, 0.20, 0.06, 0.022)]
#: Seasonal amplitude (m) above the 3 mm background, in the slumps.
AMPLITUDE_BLOBS = [(0.30, 0.35, 0.08, 0.012), (0.72, 0.62, 0.06, 0.010)]


def _atmosphere(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, n_dates: int, std_m: float,
                n_modes: int = 24) -> np.ndarray:
    """Per-date smooth random screens ``(T, ny, nx)`` (m): sums of plane waves with a k^-8/3 power spectrum."""
    extent = max(np.ptp(x), np.ptp(y), 1.0)
    out = np.empty((n_dates, y.size, x.size), dtype=np.float32)
    for t in range(n_dates):
        wavelength = extent * np.exp(rng.uniform(np.log(0.15), np.log(3.0), n_modes))
        k = 2 * np.pi / wavelength
        angle = rng.uniform(0, 2 * np.pi, n_modes)
        theta = rng.uniform(0, 2 * np.pi, n_modes)
        amp = k ** (-4.0 / 3.0) * rng.standard_normal(n_modes)
        kx, ky = k * np.cos(angle), k * np.sin(angle)
        ypart = np.concatenate([amp * np.cos(np.outer(y, ky) + theta), -amp * np.sin(np.outer(y, ky) + theta)], axis=1)
        xpart = np.concatenate([np.cos(np.outer(kx, x)), np.sin(np.outer(kx, x))], axis=0)
        field = ypart @ xpart
        field -= field.mean()
        out[t] = field * (std_m / max(field.std(), 1e-12))
    return out


def permafrost_stack(*, shape: tuple[int, int] = (60, 80), n_dates: int = 30, max_span: int = 3,
                     n_pairs: int | None = None, revisit_days: float = 12.0, start: str = "2019-01-05",
                     pixel_m: float = 30.0, wavelength_m: float = 0.05546576, n_looks: int = 8,
                     atmosphere_m: float = 0.004, decorrelation_days: float = 150.0,
                     unwrap_error_fraction: float = 0.0, disconnect_after: int | None = None,
                     nodata: bool = True, seed: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
    """A synthetic small-baseline interferogram stack over permafrost, and its truth.

    Parameters
    ----------
    shape
        ``(ny, nx)`` pixels.
    n_dates, max_span, n_pairs
        Network (:func:`sbas_network`).
    revisit_days
        Days between consecutive dates.
    start
        First date.
    pixel_m
        Pixel spacing (m); ``x`` east, ``y`` north (decreasing), UTM-like metres.
    wavelength_m
        Radar wavelength (Sentinel-1 C band by default).
    n_looks
        Independent looks of the coherence/noise model (stored as ``attrs["n_looks"]``).
    atmosphere_m
        Spatial standard deviation of each date's atmospheric delay (m, LoS).
    decorrelation_days
        Temporal decorrelation constant: ``coherence = gamma_0(y, x) * exp(-dt / decorrelation_days)``.
    unwrap_error_fraction
        Fraction of the ``(pair, y, x)`` values given a ``+-2 pi`` unwrapping error.
    disconnect_after
        If set, every pair from a date ``<= disconnect_after`` to a later one is
        missing (NaN) in the western half of the scene, splitting its network in
        two there (the eastern half stays connected).
    nodata
        A round lake without data in every pair.
    seed
        Random seed (the result is a pure function of the arguments).

    Returns
    -------
    ifgs, truth
        ``ifgs`` in the layout of :func:`cryocube.interferograms.open_interferograms`
        (``unwrapped_phase``, ``coherence`` ``(pair, y, x)`` float32; ``date1``,
        ``date2``, ``dt_days`` on ``pair``; attrs ``wavelength_m``, ``n_looks``,
        ``incidence_deg``); ``truth`` with ``displacement`` and
        ``recoverable_displacement`` ``(time, y, x)`` (m), ``atmosphere`` (m),
        ``velocity`` (m/yr), ``annual_amplitude`` (m), ``annual_phase`` (rad),
        ``unwrap_error`` ``(pair, y, x)`` int8 cycles, ``lake`` mask.
    """
    ny, nx = (int(s) for s in shape)
    if ny < 2 or nx < 2:
        raise ValueError(f"shape must be at least (2, 2), got {shape}")
    if not 0 <= unwrap_error_fraction < 1:
        raise ValueError(f"unwrap_error_fraction must be in [0, 1), got {unwrap_error_fraction}")
    rng = np.random.default_rng(seed)
    node1, node2 = sbas_network(n_dates, max_span=max_span, n_pairs=n_pairs)
    if disconnect_after is not None and not 0 <= disconnect_after < n_dates - 1:
        raise ValueError(f"disconnect_after must be a date index in [0, {n_dates - 2}], got {disconnect_after}")
    times = pd.Timestamp(start).to_datetime64().astype("datetime64[ns]") + \
        (np.arange(n_dates) * revisit_days * 86400e9).astype("timedelta64[ns]")
    x = 500_000.0 + pixel_m * (np.arange(nx) + 0.5)
    y = 3_850_000.0 - pixel_m * (np.arange(ny) + 0.5)
    u = (np.arange(nx) + 0.5)[None, :] / nx
    w = (np.arange(ny) + 0.5)[:, None] / ny
    velocity = -0.002 + _blobs(u, w, VELOCITY_BLOBS)
    amplitude = 0.003 + _blobs(u, w, AMPLITUDE_BLOBS)
    season_phase = 2 * np.pi * 60.0 / DAYS_PER_YEAR  # maximum uplift (frost heave) around 1 March
    tau = ((times - SEASON_EPOCH) / np.timedelta64(1, "D")) / DAYS_PER_YEAR
    model = velocity[None] * (tau - tau[0])[:, None, None] + amplitude[None] * np.cos(2 * np.pi * tau - season_phase)[:, None, None]
    deformation = (model - model[:1]).astype(np.float32)
    atmosphere = _atmosphere(rng, y - y.mean(), x - x.mean(), n_dates, atmosphere_m)
    recoverable = (deformation + atmosphere) - (deformation[:1] + atmosphere[:1])
    to_phase = 1 / phase_to_displacement(wavelength_m)
    date_phase = (deformation + atmosphere) * np.float32(to_phase)

    gamma0 = np.clip(0.92 - 0.45 * _blobs(u, w, [(b[0], b[1], b[2] * 1.3, 1.0) for b in VELOCITY_BLOBS[:2]])
                     + 0.03 * rng.standard_normal((ny, nx)), 0.2, 0.97)
    lake = ((u - 0.15) ** 2 + (w - 0.8) ** 2 < 0.07**2) if nodata else np.zeros((ny, nx), dtype=bool)
    variance = phase_variance_lut(n_looks)[1]
    dt_days = (node2 - node1) * float(revisit_days)
    n_pairs_total = node1.size
    phase = np.empty((n_pairs_total, ny, nx), dtype=np.float32)
    coherence = np.empty((n_pairs_total, ny, nx), dtype=np.float32)
    errors = np.zeros((n_pairs_total, ny, nx), dtype=np.int8)
    west = np.broadcast_to(u < 0.5, (ny, nx))
    for p in range(n_pairs_total):
        coh = (gamma0 * np.exp(-dt_days[p] / decorrelation_days)).astype(np.float32)
        sigma = np.sqrt(coherence_weights(coh, variance)).astype(np.float32)
        value = date_phase[node2[p]] - date_phase[node1[p]] + sigma * rng.standard_normal((ny, nx), dtype=np.float32)
        if unwrap_error_fraction > 0:
            hit = rng.random((ny, nx)) < unwrap_error_fraction
            errors[p] = np.where(hit, rng.choice(np.array([-1, 1], dtype=np.int8), size=(ny, nx)), 0)
            value = value + np.float32(2 * np.pi) * errors[p]
        missing = lake.copy()
        if disconnect_after is not None and node1[p] <= disconnect_after < node2[p]:
            missing |= west
        phase[p] = np.where(missing, np.nan, value)
        coherence[p] = np.where(missing, np.nan, coh)

    pair_coords = {"date1": (cv.PAIR, times[node1]), "date2": (cv.PAIR, times[node2]),
                   "dt_days": (cv.PAIR, dt_days.astype(np.float64))}
    params = dict(shape=[ny, nx], n_dates=n_dates, max_span=max_span, n_pairs=n_pairs, revisit_days=revisit_days,
                  start=start, pixel_m=pixel_m, atmosphere_m=atmosphere_m, decorrelation_days=decorrelation_days,
                  unwrap_error_fraction=unwrap_error_fraction, disconnect_after=disconnect_after, nodata=nodata, seed=seed)
    attrs = {"wavelength_m": float(wavelength_m), "n_looks": int(n_looks), "incidence_deg": 39.0,
             "processor": "cryocube.insar_scenes.permafrost_stack", cv.ATTR_VERSION: cryocube.__version__,
             cv.ATTR_PARAMS: json.dumps(params)}
    ifgs = xr.Dataset(
        {"unwrapped_phase": ((cv.PAIR, cv.Y, cv.X), phase, {"units": "rad", "long_name": "unwrapped interferometric phase"}),
         "coherence": ((cv.PAIR, cv.Y, cv.X), coherence, {"units": "1", "long_name": "interferometric coherence"})},
        coords={cv.Y: (cv.Y, y, {"units": "m"}), cv.X: (cv.X, x, {"units": "m"}), **pair_coords}, attrs=attrs)
    truth = xr.Dataset(
        {"displacement": ((cv.TIME, cv.Y, cv.X), deformation, {"units": "m", "long_name": "LoS deformation relative to the first date"}),
         "recoverable_displacement": ((cv.TIME, cv.Y, cv.X), recoverable.astype(np.float32),
                                      {"units": "m", "long_name": "deformation + atmosphere relative to the first date"}),
         "atmosphere": ((cv.TIME, cv.Y, cv.X), atmosphere, {"units": "m", "long_name": "atmospheric LoS delay of each date"}),
         "velocity": ((cv.Y, cv.X), velocity.astype(np.float32), {"units": "m/yr", "long_name": "LoS velocity"}),
         "annual_amplitude": ((cv.Y, cv.X), amplitude.astype(np.float32), {"units": "m", "long_name": "annual amplitude"}),
         "annual_phase": ((), season_phase, {"units": "rad", "long_name": "annual phase (maximum at tau = phase / 2 pi)"}),
         "unwrap_error": ((cv.PAIR, cv.Y, cv.X), errors, {"units": "1", "long_name": "2 pi unwrapping errors (cycles)"}),
         "lake": ((cv.Y, cv.X), lake, {"long_name": "pixels without data"})},
        coords={cv.TIME: times, cv.Y: y, cv.X: x, **pair_coords}, attrs={"wavelength_m": float(wavelength_m)})
    return ifgs, truth
