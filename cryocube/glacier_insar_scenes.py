"""Synthetic glacier interferogram with exact truth, for re-differential D-InSAR.

A fast outlet glacier flowing along ``+x`` through stable rock, seen by a
Sentinel-1-like radar over a short (6-day) pair. The flow speed is scaled so
that the largest line-of-sight (LoS) phase gradient is a chosen multiple of the
unwrapping limit (π rad per pixel; default 3×), so direct unwrapping must fail.
Decorrelation noise follows the distributed-target model: two circular
Gaussian signals with coherence ``γ`` averaged over ``nlooks`` looks
(Bamler & Hartl 1998, Inverse Problems 14 R1-R54), which also gives a sample
coherence. An "offset-tracking" velocity field goes with it: the truth blurred
(the finite chip size), scaled by a small bias and corrupted by smooth random
error, as the prior for :func:`cryocube.redifferential.redifferential_unwrap`.

Sign conventions are those of :mod:`cryocube.redifferential`: ``d_LoS``
positive towards the radar, ``φ = -4π/λ · d_LoS``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import ndimage

from cryocube import conventions as cv
from cryocube.conventions import phase_to_displacement
from cryocube.redifferential import S1_WAVELENGTH_M, los_unit_vector


def _profile(eta: np.ndarray) -> np.ndarray:
    """Across-flow speed profile ``(1 - η²)²`` for ``|η| < 1``, else 0: smooth (C¹) shear margins."""
    return np.where(np.abs(eta) < 1, (1 - eta**2) ** 2, 0.0)


def glacier_interferogram(*, shape: tuple[int, int] = (160, 240), pixel_m: float = 50.0, dt_days: float = 6.0,
                          wavelength_m: float = S1_WAVELENGTH_M, gradient_factor: float = 3.0, half_width_px: float = 36.0,
                          incidence_deg: float = 39.0, heading_deg: float = -12.0,
                          coherence_glacier: float = 0.7, coherence_rock: float = 0.9, nlooks: int = 20,
                          velocity_blur_px: float = 2.0, velocity_bias: float = 0.02, velocity_noise: float = 0.02,
                          velocity_noise_scale_px: float = 10.0, seed: int = 0) -> xr.Dataset:
    """A glacier interferogram whose steepest LoS phase gradient is ``gradient_factor · π`` rad per pixel.

    Parameters
    ----------
    shape
        ``(ny, nx)`` pixels.
    pixel_m
        Pixel spacing (m) of the map grid (x east, y north).
    dt_days
        Interval of the pair (days).
    wavelength_m
        Radar wavelength (m).
    gradient_factor
        Largest ``|∇φ|`` (one-pixel finite difference) as a multiple of π rad/px.
    half_width_px
        Half width of the glacier (px); the glacier axis is the middle row.
    incidence_deg, heading_deg
        Incidence angle and satellite heading (degrees clockwise from north) giving the LoS vector.
    coherence_glacier, coherence_rock
        True coherence on the glacier and on rock; a decorrelated (γ = 0.05) patch sits on the glacier.
    nlooks
        Independent looks averaged into each pixel.
    velocity_blur_px
        Gaussian blur (px) of the truth in the offset-tracking field.
    velocity_bias
        Relative scale error of the offset-tracking field (0.02: 2 % too fast).
    velocity_noise
        Standard deviation of its random error, as a fraction of the maximum speed.
    velocity_noise_scale_px
        Correlation length (px, Gaussian smoothing) of that random error.
    seed
        Random seed.

    Returns
    -------
    xarray.Dataset
        ``interferogram`` (complex64), ``coherence`` (sample coherence), ``true_coherence``,
        ``true_phase`` (rad), ``true_los_displacement`` (m, towards the radar), ``vx``/``vy``
        (true velocity, m/yr), ``vx_offsets``/``vy_offsets`` (offset-tracking-like field, m/yr),
        ``glacier``/``stable`` masks; attrs ``wavelength_m``, ``dt_days``, ``incidence_deg``,
        ``heading_deg``, ``los_unit_vector`` (east, north, up), ``max_phase_gradient_rad_per_px``.
    """
    if gradient_factor <= 0 or half_width_px <= 2 or nlooks < 1:
        raise ValueError("gradient_factor must be > 0, half_width_px > 2 and nlooks >= 1")
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    eta = (yy - (ny - 1) / 2) / half_width_px
    glacier = np.abs(eta) < 1
    along = 0.4 + 0.6 * xx / (nx - 1)  # speeds up downstream
    e, n, u = los_unit_vector(incidence_deg, heading_deg)
    shape_speed = _profile(eta) * along  # speed (m/yr) for a unit maximum speed
    unit_phase = e * shape_speed * dt_days / 365.25 / phase_to_displacement(wavelength_m)
    steepest = max(np.abs(np.diff(unit_phase, axis=0)).max(), np.abs(np.diff(unit_phase, axis=1)).max())
    speed_max = gradient_factor * np.pi / steepest  # m/yr
    vx, vy = speed_max * shape_speed, np.zeros(shape)
    d_los = (e * vx + n * vy) * dt_days / 365.25
    phase = d_los / phase_to_displacement(wavelength_m)

    gamma = np.where(glacier, coherence_glacier, coherence_rock)
    patch = ((xx - 0.3 * nx) ** 2 + (yy - (ny - 1) / 2) ** 2) < (0.25 * half_width_px) ** 2
    gamma = np.where(patch, 0.05, gamma)
    cshape = shape + (int(nlooks),)
    a = (rng.standard_normal(cshape) + 1j * rng.standard_normal(cshape)) / np.sqrt(2)
    b = (rng.standard_normal(cshape) + 1j * rng.standard_normal(cshape)) / np.sqrt(2)
    g = gamma[..., None]
    s1, s2 = a * np.exp(1j * phase[..., None]), g * a + np.sqrt(1 - g**2) * b
    cross = (s1 * np.conj(s2)).mean(-1)
    sample_coherence = np.abs(cross) / np.sqrt((np.abs(s1) ** 2).mean(-1) * (np.abs(s2) ** 2).mean(-1))

    noise = ndimage.gaussian_filter(rng.standard_normal((2,) + shape), (0, velocity_noise_scale_px, velocity_noise_scale_px))
    noise *= velocity_noise * speed_max / noise.std()
    vx_off = (1 + velocity_bias) * ndimage.gaussian_filter(vx, velocity_blur_px) + noise[0]
    vy_off = (1 + velocity_bias) * ndimage.gaussian_filter(vy, velocity_blur_px) + noise[1]

    coords = {cv.Y: xr.Variable(cv.Y, np.arange(ny)[::-1] * float(pixel_m), {"units": "m", "long_name": "northing"}),
              cv.X: xr.Variable(cv.X, np.arange(nx) * float(pixel_m), {"units": "m", "long_name": "easting"})}

    def var(values: np.ndarray, units: str, long_name: str) -> tuple:
        return ((cv.Y, cv.X), values, {"units": units, "long_name": long_name})

    return xr.Dataset(
        {"interferogram": var(cross.astype(np.complex64), "1", "complex interferogram, reference times conjugate secondary"),
         "coherence": var(sample_coherence.astype(np.float32), "1", f"sample coherence ({nlooks} looks)"),
         "true_coherence": var(gamma.astype(np.float32), "1", "true coherence"),
         "true_phase": var(phase, "rad", "true unwrapped LoS phase"),
         "true_los_displacement": var(d_los, "m", "true LoS displacement, positive towards the radar"),
         "vx": var(vx, "m/yr", "true velocity along x"),
         "vy": var(vy, "m/yr", "true velocity along y"),
         "vx_offsets": var(vx_off, "m/yr", "offset-tracking-like velocity along x (blurred, biased, noisy)"),
         "vy_offsets": var(vy_off, "m/yr", "offset-tracking-like velocity along y (blurred, biased, noisy)"),
         "glacier": var(glacier, "1", "glacier mask"),
         "stable": var(~glacier, "1", "stable rock mask")},
        coords=coords,
        attrs={"wavelength_m": float(wavelength_m), "dt_days": float(dt_days), "incidence_deg": float(incidence_deg),
               "heading_deg": float(heading_deg), "los_unit_vector": [float(e), float(n), float(u)], "nlooks": int(nlooks),
               "max_phase_gradient_rad_per_px": float(gradient_factor * np.pi), "max_speed_m_yr": float(speed_max)})
