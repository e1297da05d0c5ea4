r"""Synthetic SLC pairs with exact truth for DInSAR and multi-aperture interferometry (MAI).

:func:`slc_pair` simulates two coregistered single-look complex images of a
scene with a fast outlet glacier between stable rock, topography and a perpendicular
baseline, with controlled coherence and a known 2-D surface velocity.

Signal model
------------
* Grid: rows = azimuth (row index increasing with azimuth time, i.e. along the
  flight direction), columns = ground range (increasing away from the radar).
  Coordinates ``y`` (m along track) and ``x`` (m of ground range).
* Reflectivity ``r``: circular complex Gaussian speckle, band-limited to the
  processed bandwidths: the azimuth (Doppler) spectrum is a rectangle of width
  ``azimuth_bandwidth`` (processed Doppler bandwidth / PRF) centred on zero
  Doppler, the range spectrum one of width ``range_bandwidth`` (chirp bandwidth /
  range sampling rate); unit mean power. The spectrum is generated on the
  periodic grid, so ``r`` is a trigonometric polynomial that can be evaluated
  exactly anywhere.
* ``s1(p) = r(p)`` and ::

      s2(p) = gamma(p) r(q(p)) exp(-i phi(p)) + sqrt(1 - gamma(p)^2) n(p),   q + d(q) = p

  with ``d`` the displacement in pixels (``secondary(q + d) = reference(q)``, the
  convention of :mod:`cryocube.offset_scenes`, inverted with
  :meth:`~cryocube.offset_scenes.Flow.invert`), ``n`` independent speckle of the
  same spectrum and ``phi`` the interferometric phase of ``s1 conj(s2)``
  (:mod:`cryocube.coherent` conventions)::

      phi = -4 pi v_los dt / lambda  +  4 pi B_perp h / (lambda R sin(theta))

  ``r(q(p))`` is evaluated **exactly** (band-limited resampling) by a type-2
  non-uniform FFT (FINUFFT, tolerance 1e-9): a sub-pixel azimuth shift is a linear
  phase in the azimuth spectrum, so MAI sub-apertures see exactly the physics of a
  real SLC. The expected coherence of the pair is ``gamma sinc(b_az d_az)
  sinc(b_rg d_rg)`` (the speckle autocorrelation of a rectangular spectrum at the
  shift), stored as the ``coherence`` truth.
* Geometry: flat Earth (flattened interferogram), constant incidence, a
  right-looking sensor with heading ``heading_deg`` (clockwise from North). Ice
  moves horizontally (no vertical velocity), so ::

      v_los = -v_ground_range sin(incidence)          (positive towards the radar)

  East/North components follow from the heading and match
  :func:`cryocube.gps.project_gps` (tested).

Sensor constants (:data:`ERS`, :data:`SENTINEL1_IW`)
----------------------------------------------------
ERS-1/2 (the 1-day tandem of the CCI DInSAR task): wavelength 5.66 cm (5.3 GHz),
PRF 1680 Hz with 1378 Hz processed Doppler bandwidth (``b_az = 0.82``), range
sampling 18.96 MHz with a 15.55 MHz chirp (``b_rg = 0.82``), azimuth pixel 3.98 m,
slant-range pixel 7.9 m = 20.2 m on the ground at 23 deg incidence, slant range
~850 km, 10 m antenna. Sentinel-1 IW (single burst treated as stripmap; TOPS
Doppler steering is not simulated): 5.547 cm, azimuth pixel 13.9 m, 327 Hz
processed bandwidth of a 486.5 Hz azimuth sampling (``b_az = 0.67``), 2.33 m slant
range at ~39 deg (3.7 m ground), 56.5 MHz of 64.35 MHz (``b_rg = 0.88``),
~880 km, 12.3 m antenna.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial

import finufft
import numpy as np
import pandas as pd
import xarray as xr

from cryocube import conventions as cv
from cryocube.coherent import topographic_phase
from cryocube.gps import DAYS_PER_YEAR, project_gps
from cryocube.offset_scenes import Flow

__all__ = ["SarGeometry", "ERS", "SENTINEL1_IW", "OutletGlacier", "slc_pair", "gps_points", "look_angles",
           "speckle_spectrum"]


@dataclass(frozen=True)
class SarGeometry:
    """Acquisition geometry and sensor constants of a simulated pair (units in the names)."""

    wavelength_m: float
    azimuth_spacing_m: float
    ground_range_spacing_m: float
    incidence_deg: float
    slant_range_m: float
    azimuth_bandwidth: float  # processed Doppler bandwidth / PRF
    range_bandwidth: float  # chirp bandwidth / range sampling rate
    antenna_length_m: float
    heading_deg: float = 345.0  # clockwise from North (~ascending over Greenland)
    baseline_perp_m: float = 100.0

    def __post_init__(self) -> None:
        for name in ("wavelength_m", "azimuth_spacing_m", "ground_range_spacing_m", "slant_range_m",
                     "antenna_length_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("azimuth_bandwidth", "range_bandwidth"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in (0, 1] (bandwidth / sampling rate), got {getattr(self, name)!r}")
        if not 0 < self.incidence_deg < 90:
            raise ValueError(f"incidence_deg must lie in (0, 90), got {self.incidence_deg!r}")


ERS = SarGeometry(wavelength_m=0.0566, azimuth_spacing_m=3.98, ground_range_spacing_m=20.2, incidence_deg=23.0,
                  slant_range_m=850e3, azimuth_bandwidth=1378.0 / 1680.0, range_bandwidth=15.55 / 18.96,
                  antenna_length_m=10.0)
SENTINEL1_IW = SarGeometry(wavelength_m=0.05547, azimuth_spacing_m=13.9, ground_range_spacing_m=3.7,
                           incidence_deg=39.0, slant_range_m=880e3, azimuth_bandwidth=327.0 / 486.5,
                           range_bandwidth=56.5 / 64.35, antenna_length_m=12.3)


@dataclass(frozen=True)
class OutletGlacier:
    r"""A straight outlet glacier between stable rock.

    The centreline passes through the scene centre at ``flow_angle_deg`` from the
    azimuth axis towards increasing ground range. Speed across the glacier
    (distance ``n`` from the centreline, half-width ``W``) ::

        speed(n) = max_speed (1 - (n / W)^2)^2   for |n| < W, else 0

    (zero at the margins, maximum shear ``1.54 max_speed / W``). Topography: rock
    rises ``relief_m`` above the valley, ``h = relief (1 - exp(-(n / 2W)^2))``.
    ``half_width`` is a fraction of the scene's ground-range extent.
    """

    max_speed_m_per_yr: float = 300.0
    flow_angle_deg: float = 20.0
    half_width: float = 0.22
    relief_m: float = 400.0

    def frame(self, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int],
              geometry: SarGeometry) -> tuple[np.ndarray, np.ndarray]:
        """Across-flow distance ``n`` (m) and half-width ``W`` (m) at pixel positions."""
        a = math.radians(self.flow_angle_deg)
        y = (rows - (shape[0] - 1) / 2) * geometry.azimuth_spacing_m
        x = (cols - (shape[1] - 1) / 2) * geometry.ground_range_spacing_m
        return y * math.sin(a) - x * math.cos(a), self.half_width * shape[1] * geometry.ground_range_spacing_m

    def velocity(self, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int],
                 geometry: SarGeometry) -> tuple[np.ndarray, np.ndarray]:
        """``(v_azimuth, v_ground_range)`` (m/yr) at pixel positions."""
        n, w = self.frame(rows, cols, shape, geometry)
        t = np.clip(n / w, -1.0, 1.0)
        speed = self.max_speed_m_per_yr * (1.0 - t**2) ** 2
        a = math.radians(self.flow_angle_deg)
        return speed * math.cos(a), speed * math.sin(a)


def _glacier_displacement(glacier: OutletGlacier, shape: tuple[int, int], geometry: SarGeometry, dt_days: float,
                          rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v_az, v_gr = glacier.velocity(rows, cols, shape, geometry)
    years = dt_days / DAYS_PER_YEAR
    return v_az * years / geometry.azimuth_spacing_m, v_gr * years / geometry.ground_range_spacing_m


def speckle_spectrum(shape: tuple[int, int], azimuth_bandwidth: float, range_bandwidth: float,
                     rng: np.random.Generator) -> np.ndarray:
    r"""Spectrum (``numpy.fft`` order) of unit-power circular Gaussian speckle, rectangular in both axes.

    Bins with ``|f_az| <= b_az / 2`` and ``|f_rg| <= b_rg / 2`` (cycles/pixel) hold
    i.i.d. complex Gaussians of variance ``N^2 / K`` (``K`` bins kept), so that
    ``ifft2`` has unit mean power.
    """
    fy = np.abs(np.fft.fftfreq(shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(shape[1]))[None, :]
    band = (fy <= azimuth_bandwidth / 2) & (fx <= range_bandwidth / 2)
    scale = math.sqrt(shape[0] * shape[1] / band.sum() / 2.0) * math.sqrt(shape[0] * shape[1])
    white = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return white * band * scale


def _evaluate(spectrum: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``ifft2(spectrum)`` evaluated exactly at real positions (type-2 NUFFT, periodic)."""
    n1, n2 = spectrum.shape
    out = finufft.nufft2d2((2 * np.pi / n1) * rows.ravel(), (2 * np.pi / n2) * cols.ravel(),
                           np.fft.fftshift(spectrum), isign=1, eps=1e-9)
    return out.reshape(rows.shape) / (n1 * n2)


def slc_pair(shape: tuple[int, int] = (512, 256), *, geometry: SarGeometry = ERS, dt_days: float = 1.0,
             glacier: OutletGlacier | None = None,
             uniform_velocity_m_per_yr: tuple[float, float] | None = None, coherence_ice: float = 0.7,
             coherence_rock: float = 0.9, seed: int = 0) -> xr.Dataset:
    r"""Simulate a coregistered SLC pair with exact velocity, topography and coherence truth.

    Parameters
    ----------
    shape
        ``(rows, cols)`` = (azimuth, range) pixels.
    geometry
        Sensor and acquisition constants (:data:`ERS` default, :data:`SENTINEL1_IW`).
    dt_days
        Time between the acquisitions (days), e.g. 1 for the ERS tandem.
    glacier
        The outlet glacier (default ``OutletGlacier()``); ignored when
        ``uniform_velocity_m_per_yr`` is given.
    uniform_velocity_m_per_yr
        ``(v_azimuth, v_ground_range)`` (m/yr) everywhere instead of the glacier:
        a flat scene (no topography, no rock), all pixels "ice" with ``coherence_ice``.
    coherence_ice, coherence_rock
        Coherence ``gamma`` in (0, 1] on the glacier and on the rock.
    seed
        ``numpy.random.default_rng`` seed.

    Returns
    -------
    xr.Dataset
        On ``(y, x)`` (m along track, m of ground range): ``slc1``, ``slc2``
        (complex64, unit mean power, attrs = the geometry and ``dt_days``) and the
        truth: ``v_azimuth``, ``v_ground_range``, ``v_los``, ``ve``, ``vn``, ``vu``
        (m/yr), ``d_azimuth`` (m), ``dem`` (m), ``topo_phase`` and ``phase`` (rad,
        of ``s1 conj(s2)``), ``coherence`` (expected, including the speckle shift),
        ``ice`` and ``stable`` (bool). Numpy-backed: ``.chunk()`` it for dask.
    """
    if len(shape) != 2 or min(shape) < 8:
        raise ValueError(f"shape must be two sizes >= 8, got {shape!r}")
    for name, value in (("coherence_ice", coherence_ice), ("coherence_rock", coherence_rock)):
        if not 0 < value <= 1:
            raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    if not dt_days > 0:
        raise ValueError(f"dt_days must be > 0, got {dt_days!r}")
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape, dtype=np.float64)
    if uniform_velocity_m_per_yr is not None:
        v_az_u, v_gr_u = (float(v) for v in uniform_velocity_m_per_yr)
        years = dt_days / DAYS_PER_YEAR
        flow = Flow(partial(_uniform_px, v_az_u * years / geometry.azimuth_spacing_m,
                            v_gr_u * years / geometry.ground_range_spacing_m), "uniform")
        v_az, v_gr = np.full(shape, v_az_u), np.full(shape, v_gr_u)
        ice, stable, dem = np.ones(shape, bool), np.zeros(shape, bool), np.zeros(shape)
    else:
        glacier = OutletGlacier() if glacier is None else glacier
        flow = Flow(partial(_glacier_displacement, glacier, shape, geometry, dt_days), "outlet glacier")
        v_az, v_gr = glacier.velocity(rows, cols, shape, geometry)
        n, w = glacier.frame(rows, cols, shape, geometry)
        ice, stable = np.abs(n) < w, np.abs(n) >= 1.1 * w
        dem = glacier.relief_m * (1.0 - np.exp(-(n / (2 * w)) ** 2))
    gamma = np.where(ice, coherence_ice, coherence_rock)
    inc = math.radians(geometry.incidence_deg)
    v_los = -v_gr * math.sin(inc)
    topo = topographic_phase(dem, baseline_perp_m=geometry.baseline_perp_m, wavelength_m=geometry.wavelength_m,
                             slant_range_m=geometry.slant_range_m, incidence_deg=geometry.incidence_deg)
    phase = -4.0 * math.pi * v_los * (dt_days / DAYS_PER_YEAR) / geometry.wavelength_m + topo

    first = speckle_spectrum(shape, geometry.azimuth_bandwidth, geometry.range_bandwidth, rng)
    noise = speckle_spectrum(shape, geometry.azimuth_bandwidth, geometry.range_bandwidth, rng)
    s1 = np.fft.ifft2(first)
    q_rows, q_cols = flow.invert(rows, cols)
    s2 = gamma * _evaluate(first, q_rows, q_cols) * np.exp(-1j * phase) + np.sqrt(1 - gamma**2) * np.fft.ifft2(noise)
    d_az_px, d_gr_px = flow.grid(shape)
    expected = gamma * np.sinc(geometry.azimuth_bandwidth * d_az_px) * np.sinc(geometry.range_bandwidth * d_gr_px)

    h = math.radians(geometry.heading_deg)
    ve = v_az * math.sin(h) + v_gr * math.cos(h)
    vn = v_az * math.cos(h) - v_gr * math.sin(h)
    attrs = {**asdict(geometry), "dt_days": float(dt_days), "seed": int(seed)}
    dims = (cv.Y, cv.X)
    coords = {cv.Y: np.arange(shape[0]) * geometry.azimuth_spacing_m,
              cv.X: np.arange(shape[1]) * geometry.ground_range_spacing_m}

    def var(values: np.ndarray, units: str, long_name: str) -> tuple:
        return dims, values, {"units": units, "long_name": long_name}

    slc_attrs = {"units": "1", **attrs}
    return xr.Dataset({
        "slc1": (dims, s1.astype(np.complex64), {**slc_attrs, "long_name": "reference SLC"}),
        "slc2": (dims, s2.astype(np.complex64), {**slc_attrs, "long_name": "secondary SLC"}),
        "v_azimuth": var(v_az, "m/yr", "true velocity along the flight direction"),
        "v_ground_range": var(v_gr, "m/yr", "true velocity along ground range (away from the radar)"),
        "v_los": var(v_los, "m/yr", "true line-of-sight velocity, positive towards the radar"),
        "ve": var(ve, "m/yr", "true velocity East"),
        "vn": var(vn, "m/yr", "true velocity North"),
        "vu": var(np.zeros(shape), "m/yr", "true velocity Up"),
        "d_azimuth": var(d_az_px * geometry.azimuth_spacing_m, "m", "true azimuth displacement"),
        "dem": var(dem, "m", "surface height"),
        "topo_phase": var(topo, "rad", "topographic phase of s1 conj(s2)"),
        "phase": var(phase, "rad", "true interferometric phase of s1 conj(s2)"),
        "coherence": var(expected, "1", "expected coherence (gamma times speckle autocorrelation at the shift)"),
        "ice": (dims, ice, {"long_name": "glacier ice"}),
        "stable": (dims, stable, {"long_name": "stable rock"}),
    }, coords=coords, attrs=attrs)


def _uniform_px(d_az: float, d_gr: float, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.full(rows.shape, d_az), np.full(rows.shape, d_gr)


def look_angles(geometry: SarGeometry) -> tuple[float, float]:
    r"""``(phi_deg, theta_deg)`` of :func:`cryocube.gps.project_gps` for a right-looking ``geometry``.

    The target-to-radar ground direction is the flight direction ``(sin h, cos h)``
    (East, North) turned counter-clockwise by 90 deg: ``(-cos h, sin h)``;
    ``theta = 90 - incidence``.
    """
    h = math.radians(geometry.heading_deg)
    return math.degrees(math.atan2(math.sin(h), -math.cos(h))), 90.0 - geometry.incidence_deg


def gps_points(scene: xr.Dataset, n: int, *, where: str = "ice", noise_m_per_yr: float = 0.5, seed: int = 0,
               grid: xr.Dataset | None = None) -> pd.DataFrame:
    r"""Simulated GPS stations (or control points) drawn from a :func:`slc_pair` scene.

    Stations sit at random pixels of ``where`` (``"ice"`` or ``"stable"``); their
    East/North/Up velocities are the truth plus Gaussian noise of
    ``noise_m_per_yr`` (m/yr) per component, projected on the LoS and the azimuth
    with :func:`cryocube.gps.project_gps`.

    Parameters
    ----------
    grid
        Optional product grid (e.g. a multilooked interferogram): stations are then
        moved to the nearest product pixel centre and the truth is read at the
        scene pixel nearest to that centre.

    Returns
    -------
    pandas.DataFrame
        Columns ``station``, ``x``, ``y``, ``ve``, ``vn``, ``vu``, ``v_los``, ``v_azimuth`` (m/yr).
    """
    if where not in ("ice", "stable"):
        raise ValueError(f"where must be 'ice' or 'stable', got {where!r}")
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(scene[where].values.ravel())
    if candidates.size < n:
        raise ValueError(f"only {candidates.size} {where} pixels for {n} points")
    pick = rng.choice(candidates, size=n, replace=False)
    iy, ix = np.unravel_index(pick, scene[where].shape)
    ys, xs = scene[cv.Y].values[iy], scene[cv.X].values[ix]
    if grid is not None:
        ys = grid[cv.Y].values[np.abs(ys[:, None] - grid[cv.Y].values[None, :]).argmin(axis=1)]
        xs = grid[cv.X].values[np.abs(xs[:, None] - grid[cv.X].values[None, :]).argmin(axis=1)]
        iy = np.abs(ys[:, None] - scene[cv.Y].values[None, :]).argmin(axis=1)
        ix = np.abs(xs[:, None] - scene[cv.X].values[None, :]).argmin(axis=1)
    truth = {c: scene[c].values[iy, ix] + noise_m_per_yr * rng.standard_normal(n) for c in ("ve", "vn", "vu")}
    phi, theta = look_angles(SarGeometry(**{k: scene.attrs[k] for k in SarGeometry.__dataclass_fields__}))
    v_los, v_az = project_gps(truth["ve"], truth["vn"], truth["vu"], phi_deg=phi, theta_deg=theta)
    return pd.DataFrame({"station": [f"{where}{i:02d}" for i in range(n)], "x": xs, "y": ys, **truth,
                         "v_los": v_los, "v_azimuth": v_az})
