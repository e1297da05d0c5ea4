"""Offset-assisted ("re-differential") D-InSAR for fast glaciers, and the TOPS burst-overlap azimuth ramp.

Where a glacier moves so fast that the interferometric phase changes by more
than π rad between neighbouring pixels, no unwrapper can recover it. Feng et
al. (2023, Remote Sensing of Environment 285:113394) simulate the phase of the
motion measured by offset tracking (or a mean velocity field), subtract it,
unwrap the low-gradient "re-differential" residual and add the simulated phase
back:

.. math::

    r = W\\{\\arg(I\\, e^{-i φ_{sim}})\\},\\qquad φ = U(r) + φ_{sim}

The result is congruent with the interferogram (it differs from its wrapped
phase by whole cycles), so the offset field only has to be good to a fraction
of a wavelength *in gradient*, not in value.

Sign convention (the same everywhere in cryocube): ``d_LoS`` is positive
towards the radar, and the interferometric phase is ``φ = -4π/λ · d_LoS``
(reference times conjugate secondary). The LoS unit vector points from the
ground to the satellite, in the grid's ``(x, y, up)`` axes, taken as
(east, north, up).

TOPS burst overlaps (Sentinel-1 IW): along-track motion ``Δx`` between the
acquisitions makes a phase ``φ_az = 2π · f_DC · Δx / v_g`` that depends on the
Doppler centroid ``f_DC`` at which a pixel was seen; across a burst boundary
``f_DC`` jumps by ``Δf_DC`` (the two looks of the overlap), so the
interferogram jumps by ``Δφ = 2π · Δf_DC · Δx / v_g`` (the enhanced spectral
diversity relation ``Δφ = 2π Δf_DC Δt`` with ``Δt = Δx / v_g``;
Prats-Iraola et al. 2012, IEEE TGRS 50(10) 4024-4033; Yagüe-Martínez et al.
2016, IEEE TGRS 54(4) 2220-2234; applied to glaciers by Feng et al. 2023).
:func:`burst_overlap_ramp` gives that phase from a prior azimuth velocity, and
:func:`redifferential_unwrap` removes it before unwrapping.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

import cryocube
from cryocube import conventions as cv
from cryocube.conventions import phase_to_displacement
from cryocube.unwrap import align_components, goldstein, unwrap

#: Sentinel-1 C-band radar wavelength (m).
S1_WAVELENGTH_M = 0.05546576
#: Approximate ground speed of the Sentinel-1 IW beam footprint (m/s): azimuth pixel spacing ~14.1 m over the azimuth time interval 2.0556 ms.
S1_GROUND_VELOCITY_M_S = 6850.0
#: Days per year used to turn velocities (m/yr) into displacements.
DAYS_PER_YEAR = 365.25

ArrayLike = float | np.ndarray | xr.DataArray


def los_unit_vector(incidence_deg: ArrayLike, heading_deg: ArrayLike) -> tuple[Any, Any, Any]:
    """Ground-to-satellite unit vector (east, north, up) of a right-looking SAR.

    With incidence ``θ`` and heading ``h`` (flight direction, degrees clockwise
    from north), the radar looks towards azimuth ``h + 90°``, so

    .. math:: \\hat{l} = (-\\sin θ \\cos h,\\; \\sin θ \\sin h,\\; \\cos θ)

    Parameters
    ----------
    incidence_deg
        Incidence angle (degrees), scalar or per pixel.
    heading_deg
        Satellite heading (degrees clockwise from north), e.g. about -12 for an ascending Sentinel-1 pass.

    Returns
    -------
    tuple
        ``(east, north, up)`` components (dimensionless), same type as the inputs.
    """
    theta, h = np.deg2rad(incidence_deg), np.deg2rad(heading_deg)
    return -np.sin(theta) * np.cos(h), np.sin(theta) * np.sin(h), np.cos(theta)


def azimuth_component(vx: ArrayLike, vy: ArrayLike, heading_deg: ArrayLike) -> ArrayLike:
    """Component of a horizontal vector (east ``vx``, north ``vy``) along the flight direction ``heading_deg``: ``vx sin h + vy cos h``."""
    h = np.deg2rad(heading_deg)
    return vx * np.sin(h) + vy * np.cos(h)


def _los_vector(los: tuple | None, incidence_deg: ArrayLike | None, heading_deg: ArrayLike | None) -> tuple:
    if los is not None:
        if len(los) != 3:
            raise ValueError(f"los_unit_vector must be (east, north, up), got {los!r}")
        return tuple(los)
    if incidence_deg is None or heading_deg is None:
        raise ValueError("give either los_unit_vector=(east, north, up) or both incidence_deg and heading_deg")
    return los_unit_vector(incidence_deg, heading_deg)


def simulate_phase(velocity_or_offsets: xr.Dataset | xr.DataArray, *, dt_days: float | None = None,
                   wavelength_m: float = S1_WAVELENGTH_M, los_unit_vector: tuple | None = None,
                   incidence_deg: ArrayLike | None = None, heading_deg: ArrayLike | None = None) -> xr.DataArray:
    """Interferometric phase of a known motion: ``φ = -4π/λ · d_LoS``, ``d_LoS = l · d`` positive towards the radar.

    Parameters
    ----------
    velocity_or_offsets
        One of: a Dataset with ``vx``, ``vy`` (and optionally ``vz``) in m/yr,
        e.g. the output of offset tracking + ``invert_velocity`` or a mean
        velocity field (displacement ``d = v · dt_days / 365.25``); a Dataset
        with ``dx``, ``dy`` (optionally ``dz``) in m over the same interval as
        the interferogram (the output of ``track_offsets`` on the same pair); or
        a DataArray of LoS velocity (m/yr, positive towards the radar).
    dt_days
        Interval of the interferogram (days); needed for velocities.
    wavelength_m
        Radar wavelength (m).
    los_unit_vector
        Ground-to-satellite unit vector ``(east, north, up)`` (scalars or DataArrays); or give
    incidence_deg, heading_deg
        to compute it with :func:`los_unit_vector`.

    Returns
    -------
    xarray.DataArray
        Simulated unwrapped phase (rad), lazy where the input is; NaN where the input is.
    """
    if not float(wavelength_m) > 0:
        raise ValueError(f"wavelength_m must be > 0, got {wavelength_m!r}")
    if isinstance(velocity_or_offsets, xr.DataArray):
        d_los, source = _need_dt(dt_days) * velocity_or_offsets / DAYS_PER_YEAR, "LoS velocity"
    elif isinstance(velocity_or_offsets, xr.Dataset):
        east, north, up = _los_vector(los_unit_vector, incidence_deg, heading_deg)
        ds = velocity_or_offsets
        if {"vx", "vy"} <= set(ds.data_vars):
            scale, names, source = _need_dt(dt_days) / DAYS_PER_YEAR, ("vx", "vy", "vz"), "velocity"
        elif {"dx", "dy"} <= set(ds.data_vars):
            scale, names, source = 1.0, ("dx", "dy", "dz"), "offsets"
        else:
            raise ValueError(f"velocity_or_offsets must hold vx, vy (m/yr) or dx, dy (m); it has {sorted(map(str, ds.data_vars))}")
        d_los = scale * (east * ds[names[0]] + north * ds[names[1]] + (up * ds[names[2]] if names[2] in ds else 0.0))
    else:
        raise TypeError(f"velocity_or_offsets must be an xarray Dataset or DataArray, got {type(velocity_or_offsets).__name__}")
    phase = d_los / phase_to_displacement(wavelength_m)
    phase.attrs = {"units": "rad", "long_name": f"interferometric phase simulated from {source}", "wavelength_m": float(wavelength_m),
                   "sign_convention": "phase = -4 pi / wavelength * d_LoS, d_LoS positive towards the radar"}
    return phase.rename("simulated_phase")


def _need_dt(dt_days: float | None) -> float:
    if dt_days is None or not float(dt_days) > 0:
        raise ValueError(f"dt_days must be a positive number of days to turn velocities into displacements, got {dt_days!r}")
    return float(dt_days)


def burst_overlap_ramp(azimuth_displacement_m: ArrayLike, doppler_centroid_hz: ArrayLike, *,
                       ground_velocity_m_s: float = S1_GROUND_VELOCITY_M_S) -> ArrayLike:
    """Phase of along-track motion in a TOPS interferogram: ``φ_az = 2π · f_DC · Δx / v_g`` (rad).

    Pass the per-pixel Doppler centroid ``f_DC`` (a sawtooth over the bursts, see
    :func:`tops_doppler_centroid`) to get the ramp; pass the Doppler difference
    of an overlap ``Δf_DC`` to get the overlap phase jump ``Δφ = 2π Δf_DC Δx / v_g``
    (the ESD relation; references in the module docstring).

    Parameters
    ----------
    azimuth_displacement_m
        Along-track displacement ``Δx`` between the acquisitions (m, positive along the flight direction).
    doppler_centroid_hz
        Doppler centroid (Hz) at which each pixel was seen.
    ground_velocity_m_s
        Ground speed of the beam footprint (m/s).

    Returns
    -------
    Same type as the inputs: phase (rad).
    """
    if not float(ground_velocity_m_s) > 0:
        raise ValueError(f"ground_velocity_m_s must be > 0, got {ground_velocity_m_s!r}")
    return 2 * np.pi * doppler_centroid_hz * azimuth_displacement_m / float(ground_velocity_m_s)


def tops_doppler_centroid(n_rows: int, *, burst_rows: int, overlap_rows: int, overlap_doppler_hz: float) -> np.ndarray:
    """Doppler centroid (Hz) per azimuth row of a burst mosaic: a sawtooth that jumps by ``overlap_doppler_hz`` at each burst seam.

    Burst ``k`` covers rows ``[k (L - O), k (L - O) + L)`` (``L = burst_rows``,
    ``O = overlap_rows``); its Doppler centroid varies linearly with the
    row, ``f = Δf_DC / (L - O) · (r - centre_k)``, so the two looks of one
    overlap row differ by ``Δf_DC``. The mosaic takes each row from the burst
    whose centre is nearest (the seam in the middle of the overlap).

    Returns
    -------
    numpy.ndarray
        ``(n_rows,)`` Doppler centroid (Hz).
    """
    if not 0 <= overlap_rows < burst_rows:
        raise ValueError(f"need 0 <= overlap_rows < burst_rows, got {overlap_rows} and {burst_rows}")
    stride = burst_rows - overlap_rows
    rows = np.arange(n_rows, dtype=np.float64)
    centre0 = (burst_rows - 1) / 2
    burst = np.round((rows - centre0) / stride).clip(min=0)
    return overlap_doppler_hz / stride * (rows - (burst * stride + centre0))


def redifferential_unwrap(interferogram: xr.DataArray, *, simulated_phase_from: xr.Dataset | xr.DataArray, coherence: xr.DataArray,
                          dt_days: float | None = None, wavelength_m: float = S1_WAVELENGTH_M, los_unit_vector: tuple | None = None,
                          incidence_deg: ArrayLike | None = None, heading_deg: ArrayLike | None = None,
                          stable: xr.DataArray | None = None, azimuth_velocity: xr.DataArray | None = None,
                          doppler_centroid_hz: ArrayLike | None = None, ground_velocity_m_s: float = S1_GROUND_VELOCITY_M_S,
                          goldstein_alpha: float | None = None, fft_px: int = 32, min_coherence: float = 0.3,
                          nlooks: float = 1.0, cost: str = "smooth", method: str = "snaphu") -> xr.Dataset:
    """Offset-assisted D-InSAR: subtract the simulated phase, unwrap the residual, add the simulated phase back.

    Steps (Feng et al. 2023): optionally remove the TOPS burst-overlap phase of
    the prior azimuth motion (:func:`burst_overlap_ramp`); form the
    re-differential interferogram ``I · exp(-i φ_sim)``; optionally Goldstein-filter
    it (its fringes are sparse now, so filtering no longer smears them); unwrap
    it (:func:`cryocube.unwrap.unwrap`, the one whole-scene task); add ``φ_sim``
    back; shift each connected component by whole cycles so that ``stable``
    pixels sit at zero (:func:`cryocube.unwrap.align_components`). NaN in the
    simulated phase (gaps in the offsets) is taken as 0 there: plain D-InSAR.
    Lazy: nothing is computed here.

    Parameters
    ----------
    interferogram
        Complex ``(y, x)`` interferogram (reference times conjugate secondary); its ``dt_days`` coord is used when ``dt_days`` is not given.
    simulated_phase_from
        Velocity / offsets for :func:`simulate_phase`, or a simulated phase itself (a DataArray with ``units="rad"``).
    coherence
        ``(y, x)`` coherence.
    dt_days, wavelength_m, los_unit_vector, incidence_deg, heading_deg
        See :func:`simulate_phase`.
    stable
        Boolean ``(y, x)`` mask of non-moving ground for the 2π reference of each component; ``None``: SNAPHU's reference.
    azimuth_velocity
        Prior along-track velocity (m/yr, positive along the flight direction, e.g.
        :func:`azimuth_component` of the offset-tracking velocity) for the burst-overlap correction; with
    doppler_centroid_hz
        per-pixel Doppler centroid (Hz; e.g. :func:`tops_doppler_centroid` broadcast along ``x``).
    ground_velocity_m_s
        Beam ground speed (m/s) of :func:`burst_overlap_ramp`.
    goldstein_alpha, fft_px
        Goldstein filter of the residual (``None``: no filter).
    min_coherence, nlooks, cost, method
        See :func:`cryocube.unwrap.unwrap`.

    Returns
    -------
    xarray.Dataset
        ``unwrapped_phase`` (rad), ``los_displacement`` (m, towards the radar), ``residual_phase``
        (unwrapped re-differential phase, rad), ``simulated_phase`` (rad), ``connected_component``,
        and ``burst_ramp`` (rad) when corrected; parameters in attrs.
    """
    if not isinstance(interferogram, xr.DataArray) or not np.iscomplexobj(interferogram):
        raise TypeError("interferogram must be a complex xarray.DataArray")
    if dt_days is None and "dt_days" in interferogram.coords:
        dt_days = float(interferogram["dt_days"])
    if isinstance(simulated_phase_from, xr.DataArray) and simulated_phase_from.attrs.get("units") == "rad":
        sim = simulated_phase_from
    else:
        sim = simulate_phase(simulated_phase_from, dt_days=dt_days, wavelength_m=wavelength_m, los_unit_vector=los_unit_vector,
                             incidence_deg=incidence_deg, heading_deg=heading_deg)
    sim = sim.fillna(0.0).astype(np.float32)
    ifg = interferogram
    ramp = None
    if (azimuth_velocity is None) != (doppler_centroid_hz is None):
        raise ValueError("give both azimuth_velocity and doppler_centroid_hz for the burst-overlap correction, or neither")
    if azimuth_velocity is not None:
        ramp = burst_overlap_ramp(azimuth_velocity * _need_dt(dt_days) / DAYS_PER_YEAR, doppler_centroid_hz,
                                  ground_velocity_m_s=ground_velocity_m_s).fillna(0.0).astype(np.float32)
        ifg = ifg * np.exp(-1j * ramp)
    residual = ifg * np.exp(-1j * sim)
    if goldstein_alpha is not None:
        residual = goldstein(residual, alpha=goldstein_alpha, fft_px=fft_px)
    unwrapped = unwrap(residual, coherence, method=method, min_coherence=min_coherence, nlooks=nlooks, cost=cost)
    total = unwrapped.assign(unwrapped_phase=unwrapped["unwrapped_phase"] + sim)
    if stable is not None:
        total = align_components(total, stable)
    phase = total["unwrapped_phase"]
    out = xr.Dataset(coords=interferogram.coords)
    out["unwrapped_phase"] = phase.assign_attrs(units="rad", long_name="unwrapped LoS phase (re-differential + simulated)")
    out["los_displacement"] = (phase_to_displacement(wavelength_m) * phase).assign_attrs(
        units="m", long_name="LoS displacement, positive towards the radar")
    out["residual_phase"] = unwrapped["unwrapped_phase"].assign_attrs(units="rad", long_name="unwrapped re-differential (residual) phase")
    out["simulated_phase"] = sim.assign_attrs(units="rad", long_name="simulated phase subtracted before unwrapping")
    out["connected_component"] = unwrapped["connected_component"]
    if ramp is not None:
        out["burst_ramp"] = ramp.assign_attrs(units="rad", long_name="TOPS burst-overlap phase of the prior azimuth motion (removed)")
    params = dict(json.loads(unwrapped.attrs[cv.ATTR_PARAMS]), wavelength_m=float(wavelength_m), dt_days=dt_days,
                  goldstein_alpha=goldstein_alpha, fft_px=int(fft_px) if goldstein_alpha is not None else None,
                  stable_reference=stable is not None, burst_overlap_correction=ramp is not None,
                  ground_velocity_m_s=float(ground_velocity_m_s) if ramp is not None else None,
                  sign_convention="phase = -4 pi / wavelength * d_LoS, d_LoS positive towards the radar")
    out.attrs = {cv.ATTR_VERSION: cryocube.__version__, cv.ATTR_PARAMS: json.dumps(params)}
    return out
