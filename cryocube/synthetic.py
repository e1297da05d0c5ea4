r"""A synthetic Greenland outlet glacier with exact, documented truth.

The simulator produces Sentinel-1 (HH/HV backscatter, dB) and Sentinel-2 (B04/B08
reflectance) scenes of a 5.12 km x 5.12 km area in EPSG:3413 near Jakobshavn
Isbrae, together with the exact answers that later algorithms must recover:
the ice-flow field and the displacement between any two times (offset tracking,
velocity time series), the backscatter-versus-incidence slope (incidence-angle
normalisation) and the melt onset/end dates (melt detection).

Everything is pure numpy/scipy and deterministic: every random draw comes from
:func:`numpy.random.default_rng` seeded with a documented constant (``*_SEED``).

Coordinates and time
--------------------
* Positions ``x``, ``y`` are EPSG:3413 metres (NSIDC Sea Ice Polar Stereographic
  North). Internally all formulas use scene-centred coordinates
  ``(x - CENTER_X, y - CENTER_Y)`` so that float64 keeps ~1e-12 m precision.
* Pixels are point samples of continuous fields **at pixel centres** (no area
  averaging), on :data:`S1_GRID` (40 m, 128 x 128) and :data:`S2_GRID` (20 m,
  256 x 256); both cover :data:`BOUNDS`.
* A time ``t`` is any datetime-like value (``numpy.datetime64``, ``datetime``
  (naive = UTC), ISO string, pandas ``Timestamp``) or a float number of days since
  :data:`REFERENCE_EPOCH` (2019-07-01T00:00Z). ``tau(t) = days(t) / 365.25`` is
  the time since the epoch in years, the unit in which velocities (m/yr) are
  integrated.

Ice flow (truth for offset tracking)
------------------------------------
A straight glacier channel crosses the scene through its centre, flowing in map
direction ``e_s = (cos a, sin a)`` with ``a = FLOW_DIRECTION_DEG = 200`` degrees
counter-clockwise from +x (towards -x and slightly -y). With along-flow and
across-flow coordinates ``s = d . e_s`` and ``n = d . e_n``, ``e_n = (-sin a, cos a)``,
``d = (x - CENTER_X, y - CENTER_Y)``::

    speed(s, n) = V_CENTRE * (1 + s / ACCELERATION_LENGTH) * f(2 n / CHANNEL_WIDTH)   [m/yr]
    f(r)        = (1 - r**2)**2  for |r| < 1,  else 0        (C1-smooth lateral shear)
    (vx, vy)    = speed * e_s

``V_CENTRE = 4000 m/yr``, ``ACCELERATION_LENGTH = 25 km``, ``CHANNEL_WIDTH = 2400 m``;
the fastest pixel of the scene is ~4.5 km/yr, i.e. ~1.9 S1 pixels (40 m) in 6 days.
The velocity is exactly zero outside the channel (``|n| >= CHANNEL_WIDTH / 2``:
bedrock, :func:`stable_mask`).

Advection. A surface feature carries a Lagrangian label ``R`` (its "reference
position"); at time ``t`` the feature with label ``R`` sits at the position ``p``
that solves ::

    R = R_t(p) = p - v(p) * tau(t)                                              (1)

so every advected field is ``F(p, t) = F0(R_t(p))`` with ``F0`` a continuous field
that can be evaluated at any real position: warped images are exact, without
interpolation. (1) is the *definition* of the kinematics of this synthetic world;
it is invertible because ``det dR_t/dp = 1 - tau * dspeed/ds > 0.95`` for
``|tau| <= 0.3`` yr (2019-04-01 to 2019-10-15). The feature at ``p`` at ``t1`` is at
``q = p + D`` at ``t2`` with ::

    q - v(q) tau2 = p - v(p) tau1   <=>   D = v(p + D) tau2 - v(p) tau1          (2)

:func:`displacement` solves (2) by fixed-point iteration to float64 precision.
Because ``v = speed * e_s`` the iteration Jacobian ``tau2 * e_s (grad speed)^T`` has
rank one and its only non-zero eigenvalue is ``tau2 * dspeed/ds`` (< 0.06): the
error shrinks at least 16-fold per step after the first.

Elevation
---------
``z = Z_CENTRE - Z_GRADIENT * s + Z_MARGIN * (1 - ice_fraction)`` [m]: 500 m at the
centre, rising inland (upstream, -s) by 0.08 m per m, and 150 m higher on the
bedrock margins; ~250 m to ~910 m in the scene.

Sentinel-1 backscatter (dB)
---------------------------
For polarization ``pol`` in ``("hh", "hv")``, acquisition time ``t`` and the
incidence angle map ``theta`` of the acquisition's orbit state::

    sigma0_model = base(pol) + slope(pol) * (theta - THETA_REF_DEG)
                   + MELT_DROP_DB[pol] * wet(p, t) + TEXTURE_CONTRAST_DB[pol] * T(R_t(p))
    sigma0       = sigma0_model + 10 log10(G_frozen) + 10 log10(G_indep)       (3)

* ``base = BASE_ROCK_DB + (BASE_ICE_DB - BASE_ROCK_DB) * ice_fraction`` with
  ``ice_fraction`` a smooth step from 0 (bedrock) to 1 (ice) across the margin.
* ``slope = SLOPE_LOW_DB_PER_DEG + (SLOPE_HIGH - SLOPE_LOW) * e``, with
  ``e = clip((z - 200) / 800, 0, 1)``: HH -0.10 (low) to -0.18 (high) dB/degree,
  HV -0.14 to -0.19 dB/degree. ``THETA_REF_DEG = 35``.
* ``theta``: ascending 33 -> 38 degrees linearly from the west to the east scene
  edge, descending 41 -> 36 degrees (deliberately exaggerated across-track
  variation, so normalisation is testable on a 5 km scene).
* ``wet = onset <= doy(t) < end`` (Eulerian, by pixel location) with
  ``onset = 125 + z / 25`` and ``end = 285 - z / 25`` (fractional day of year, 2019;
  lower = earlier onset and later end). ``MELT_DROP_DB = -6 (HH), -5 (HV)``.
* ``T`` is :func:`texture_field`: a band-limited random field (unit variance,
  wavelengths 120 m to 2 km), advected with the ice.
* Speckle is multiplicative gamma noise of unit mean in linear power with
  equivalent number of looks ``ENL = 4.4`` in total, split in two independent
  factors: ``G_frozen`` (``ENL_FROZEN = 5.75``) is a fixed, ice-advected pattern per
  (track, polarization), so repeat-pass offset tracking has texture to lock onto,
  and ``G_indep`` (``ENL_INDEPENDENT = 22``) is drawn fresh, i.i.d. per pixel, for
  every acquisition (temporal decorrelation). ``1/4.4 = 1/5.75 + 1/22 + 1/(5.75*22)``.
  ``G_frozen = Q_gamma(ENL_FROZEN, Phi(g(R_t(p)))) / ENL_FROZEN``: a Gaussian
  band-limited field ``g`` (wavelengths 90 to 320 m) mapped through the normal CDF
  ``Phi`` and the gamma quantile function, so it is exactly gamma-distributed
  (to the accuracy with which a sum of 64 random cosines is Gaussian: excess
  kurtosis -3/128). Because the
  mean of ``10 log10 G`` is negative, ``E[sigma0] = sigma0_model +``
  :func:`speckle_db_bias` (about -0.49 dB).
* Stored values are rounded to multiples of ``DB_QUANTUM = 2**-10`` dB so that the
  files do not depend on the last bit of ``cos`` on a given CPU.

Sentinel-2 reflectance
----------------------
``rho_b = base_b * exp(S2_CONTRAST[b] * T(R_t(p)) + S2_FINE_CONTRAST[b] * T_fine(R_t(p)))``
with ``base_b = S2_BASE_ROCK[b] + (S2_BASE_ICE[b] - S2_BASE_ROCK[b]) * ice_fraction``
and ``T_fine`` (:func:`fine_texture_field`, wavelengths 50-120 m) advected like
``T``; the exponential keeps reflectance positive (relative contrast ~8 %).
Under a cloud (:func:`s2_cloud_mask`, an ellipse per scene) ``rho_b = S2_CLOUD[b]``.
Digital numbers: ``round(rho / 1e-4)`` as uint16, 0 = nodata (one scene has a
swath edge, :func:`s2_nodata_mask`). No melt signal in S2. As in real L1C
products, the image is a mosaic of detectors (:func:`s2_detector`: slanted
stripes, the same for every scene of the orbit), each with its own geolocation
error of up to :data:`S2_DETECTOR_ERROR_M` per axis and scene
(:func:`s2_detector_errors`): pixel ``p`` of detector ``k`` shows the ground at
``p - error[k]``, so offset maps carry per-detector jumps
(:func:`s2_detector_jump`) that :func:`cryocube.correct_detector_offsets` removes.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

import numpy as np
from scipy import special

from cryocube.grid import Grid

__all__ = [
    "BOUNDS",
    "CRS",
    "REFERENCE_EPOCH",
    "S1_GRID",
    "S2_GRID",
    "RandomField",
    "S1Acquisition",
    "S2Scene",
    "S2_N_DETECTORS",
    "Track",
    "TRACKS",
    "base_backscatter",
    "backscatter_slope",
    "day_of_year",
    "days_since_epoch",
    "displacement",
    "elevation",
    "fine_texture_field",
    "frozen_speckle",
    "glacier_mask",
    "grid_xy",
    "ice_fraction",
    "incidence_angle",
    "is_wet",
    "melt_end_doy",
    "melt_onset_doy",
    "reference_position",
    "s1_acquisitions",
    "s1_sigma0_db",
    "s1_sigma0_model_db",
    "s2_cloud_cover",
    "s2_cloud_mask",
    "s2_detector",
    "s2_detector_errors",
    "s2_detector_jump",
    "s2_digital_numbers",
    "s2_nodata_mask",
    "s2_reflectance",
    "s2_scenes",
    "speckle_db_bias",
    "speed",
    "stable_mask",
    "texture",
    "texture_field",
    "truth_dataset",
    "velocity",
]

# --------------------------------------------------------------------------- #
# Scene geometry
# --------------------------------------------------------------------------- #
CRS: Final = "EPSG:3413"
#: Scene centre (EPSG:3413 m), near the lower trunk of Jakobshavn Isbrae.
CENTER_X: Final = -185000.0
CENTER_Y: Final = -2275000.0
#: Scene width and height (m); a multiple of 40 m.
EXTENT_M: Final = 5120.0
#: ``(left, bottom, right, top)`` of the scene, aligned to 40 m (and 20 m).
BOUNDS: Final = (CENTER_X - EXTENT_M / 2, CENTER_Y - EXTENT_M / 2, CENTER_X + EXTENT_M / 2, CENTER_Y + EXTENT_M / 2)
#: Sentinel-1 grid: 40 m pixels, 128 x 128.
S1_GRID: Final = Grid(CRS, 40.0, BOUNDS)
#: Sentinel-2 grid: 20 m pixels, 256 x 256, same extent.
S2_GRID: Final = Grid(CRS, 20.0, BOUNDS)

# --------------------------------------------------------------------------- #
# Time
# --------------------------------------------------------------------------- #
#: t0 of equation (1): features sit at their reference positions at this instant.
REFERENCE_EPOCH: Final = np.datetime64("2019-07-01T00:00:00", "ns")
DAYS_PER_YEAR: Final = 365.25

# --------------------------------------------------------------------------- #
# Ice flow
# --------------------------------------------------------------------------- #
#: Flow direction, degrees counter-clockwise from the map +x axis.
FLOW_DIRECTION_DEG: Final = 200.0
#: Speed on the channel axis at the scene centre (m/yr).
V_CENTRE_M_PER_YR: Final = 4000.0
#: Speed grows by V_CENTRE * s / ACCELERATION_LENGTH_M downstream (m).
ACCELERATION_LENGTH_M: Final = 25000.0
#: Full width of the moving channel (m); speed is zero for |n| >= CHANNEL_WIDTH_M / 2.
CHANNEL_WIDTH_M: Final = 2400.0
#: Stable ground starts this far outside the channel edge (m), so that windows
#: centred in :func:`stable_mask` see little moving ice.
STABLE_BUFFER_M: Final = 200.0
#: Width (m) of the smooth ice/bedrock facies transition centred on the channel edge.
FACIES_TRANSITION_M: Final = 300.0

_COS_A: Final = math.cos(math.radians(FLOW_DIRECTION_DEG))
_SIN_A: Final = math.sin(math.radians(FLOW_DIRECTION_DEG))

# --------------------------------------------------------------------------- #
# Elevation and melt
# --------------------------------------------------------------------------- #
Z_CENTRE_M: Final = 500.0
Z_GRADIENT: Final = 0.08  # m of rise per m upstream
Z_MARGIN_M: Final = 150.0
MELT_ONSET_DOY_AT_SEA_LEVEL: Final = 125.0
MELT_END_DOY_AT_SEA_LEVEL: Final = 285.0
MELT_METRES_PER_DAY: Final = 25.0  # onset 1 day later / end 1 day earlier per 25 m

# --------------------------------------------------------------------------- #
# Sentinel-1 backscatter model
# --------------------------------------------------------------------------- #
Pol = Literal["hh", "hv"]
POLARIZATIONS: Final = ("hh", "hv")
THETA_REF_DEG: Final = 35.0
BASE_ICE_DB: Final = {"hh": -6.0, "hv": -13.0}
BASE_ROCK_DB: Final = {"hh": -10.0, "hv": -19.0}
SLOPE_LOW_DB_PER_DEG: Final = {"hh": -0.10, "hv": -0.14}
SLOPE_HIGH_DB_PER_DEG: Final = {"hh": -0.18, "hv": -0.19}
SLOPE_Z_LOW_M: Final = 200.0
SLOPE_Z_HIGH_M: Final = 1000.0
MELT_DROP_DB: Final = {"hh": -6.0, "hv": -5.0}
TEXTURE_CONTRAST_DB: Final = {"hh": 1.5, "hv": 1.0}
ENL: Final = 4.4
ENL_FROZEN: Final = 5.75
ENL_INDEPENDENT: Final = 22.0
DB_QUANTUM: Final = 2.0**-10

# --------------------------------------------------------------------------- #
# Sentinel-2 reflectance model
# --------------------------------------------------------------------------- #
S2_BANDS: Final = ("B04", "B08")
S2_BASE_ICE: Final = {"B04": 0.60, "B08": 0.50}
S2_BASE_ROCK: Final = {"B04": 0.14, "B08": 0.22}
S2_CONTRAST: Final = {"B04": 0.08, "B08": 0.07}  # relative (log) contrast
S2_FINE_CONTRAST: Final = {"B04": 0.05, "B08": 0.04}  # relative (log) contrast
S2_CLOUD: Final = {"B04": 0.85, "B08": 0.80}
S2_SCALE: Final = 1e-4

# --------------------------------------------------------------------------- #
# Seeds (numpy.random.default_rng / SeedSequence entropy)
# --------------------------------------------------------------------------- #
TEXTURE_SEED: Final = 3413
FINE_TEXTURE_SEED: Final = 3414
FROZEN_SPECKLE_SEED: Final = 4400  # entropy [4400, relative_orbit, pol index]
INDEPENDENT_SPECKLE_SEED: Final = 4401  # entropy [4401, relative_orbit, acquisition index, pol index]


# =========================================================================== #
# Helpers
# =========================================================================== #
def days_since_epoch(t: Any) -> float:
    """Time ``t`` as float days since :data:`REFERENCE_EPOCH` (2019-07-01T00:00Z).

    A number is taken to be days already; a naive ``datetime`` is taken as UTC.
    """
    if isinstance(t, (int, float, np.integer, np.floating)) and not isinstance(t, bool):
        return float(t)
    if hasattr(t, "to_datetime64"):  # pandas Timestamp
        t = t.to_datetime64()
    if isinstance(t, _dt.datetime) and t.tzinfo is not None:
        t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    if isinstance(t, str) and t.endswith("Z"):
        t = t[:-1]
    return float((np.datetime64(t, "ns") - REFERENCE_EPOCH) / np.timedelta64(1, "D"))


def _tau(t: Any) -> float:
    """Years since the epoch (velocity time unit)."""
    return days_since_epoch(t) / DAYS_PER_YEAR


def day_of_year(t: Any) -> float:
    """Fractional day of year of ``t`` (UTC): 1.0 at 1 January 00:00, 1.5 at noon."""
    days = days_since_epoch(t)
    stamp = REFERENCE_EPOCH + np.timedelta64(round(days * 86400e9), "ns")
    year_start = stamp.astype("datetime64[Y]").astype("datetime64[ns]")
    return float((stamp - year_start) / np.timedelta64(1, "D")) + 1.0


def grid_xy(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """2-D arrays ``(x, y)`` of pixel-centre coordinates, shape ``grid.shape``."""
    return np.meshgrid(grid.x_coords(), grid.y_coords())


def _local(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(x, dtype=np.float64) - CENTER_X, np.asarray(y, dtype=np.float64) - CENTER_Y


def _sn(u: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along-flow ``s`` and across-flow ``n`` from scene-centred ``(u, w)``."""
    return u * _COS_A + w * _SIN_A, -u * _SIN_A + w * _COS_A


def _smoothstep(e: np.ndarray) -> np.ndarray:
    e = np.clip(e, 0.0, 1.0)
    return e * e * (3.0 - 2.0 * e)


# =========================================================================== #
# Flow, masks, elevation
# =========================================================================== #
def _speed_local(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    s, n = _sn(u, w)
    r2 = (2.0 * n / CHANNEL_WIDTH_M) ** 2
    lateral = np.where(r2 < 1.0, (1.0 - r2) ** 2, 0.0)
    return V_CENTRE_M_PER_YR * (1.0 + s / ACCELERATION_LENGTH_M) * lateral


def speed(x: Any, y: Any) -> np.ndarray:
    """Ice speed (m/yr) at EPSG:3413 positions; zero outside the channel."""
    return _speed_local(*_local(x, y))


def velocity(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Exact velocity ``(vx, vy)`` in m/yr along map x and y (steady in time)."""
    sp = speed(x, y)
    return sp * _COS_A, sp * _SIN_A


def _across(x: Any, y: Any) -> np.ndarray:
    return _sn(*_local(x, y))[1]


def glacier_mask(x: Any, y: Any) -> np.ndarray:
    """True where the ice moves: ``|n| < CHANNEL_WIDTH_M / 2``."""
    return np.abs(_across(x, y)) < CHANNEL_WIDTH_M / 2


def stable_mask(x: Any, y: Any) -> np.ndarray:
    """True on stable bedrock: ``|n| >= CHANNEL_WIDTH_M / 2 + STABLE_BUFFER_M`` (velocity exactly 0)."""
    return np.abs(_across(x, y)) >= CHANNEL_WIDTH_M / 2 + STABLE_BUFFER_M


def ice_fraction(x: Any, y: Any) -> np.ndarray:
    """Facies weight in [0, 1]: 1 on the glacier, 0 on bedrock.

    ``smoothstep((CHANNEL_WIDTH/2 + FACIES_TRANSITION/2 - |n|) / FACIES_TRANSITION)``
    with ``smoothstep(e) = 3e^2 - 2e^3`` on ``e`` clipped to [0, 1].
    """
    n = np.abs(_across(x, y))
    return _smoothstep((CHANNEL_WIDTH_M / 2 + FACIES_TRANSITION_M / 2 - n) / FACIES_TRANSITION_M)


def elevation(x: Any, y: Any) -> np.ndarray:
    """Surface elevation (m): ``Z_CENTRE - Z_GRADIENT * s + Z_MARGIN * (1 - ice_fraction)``."""
    s, _ = _sn(*_local(x, y))
    return Z_CENTRE_M - Z_GRADIENT * s + Z_MARGIN_M * (1.0 - ice_fraction(x, y))


# =========================================================================== #
# Advection
# =========================================================================== #
def reference_position(x: Any, y: Any, t: Any) -> tuple[np.ndarray, np.ndarray]:
    """Lagrangian label ``R_t(p) = p - v(p) tau(t)`` (EPSG:3413 m) of the feature at ``(x, y)`` at ``t``."""
    u, w = _local(x, y)
    u_r, w_r = _reference_local(u, w, _tau(t))
    return u_r + CENTER_X, w_r + CENTER_Y


def _reference_local(u: np.ndarray, w: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    sp = _speed_local(u, w) * tau
    return u - sp * _COS_A, w - sp * _SIN_A


def displacement(
    x: Any, y: Any, t1: Any, t2: Any, *, tol_m: float = 1e-12, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Exact displacement (m, along map x and y) from ``t1`` to ``t2`` of the feature at ``(x, y)`` at ``t1``.

    Solves ``D = v(p + D) tau2 - v(p) tau1`` (module docstring, eq. 2) by the
    fixed-point iteration ``D_{k+1} = v(p + D_k) tau2 - v(p) tau1`` from
    ``D_0 = v(p) (tau2 - tau1)``, in scene-centred coordinates, until the largest
    update is below ``tol_m``. Raises ``RuntimeError`` if it does not converge.

    Returns
    -------
    dx, dy
        float64 arrays broadcast from ``x`` and ``y``. Zero on stable ground.
    """
    u, w = _local(x, y)
    u, w = np.broadcast_arrays(u, w)
    tau1, tau2 = _tau(t1), _tau(t2)
    sp = _speed_local(u, w)
    base_x, base_y = sp * _COS_A * tau1, sp * _SIN_A * tau1
    dx, dy = sp * _COS_A * (tau2 - tau1), sp * _SIN_A * (tau2 - tau1)
    for _ in range(max_iter):
        sq = _speed_local(u + dx, w + dy)
        new_dx = sq * _COS_A * tau2 - base_x
        new_dy = sq * _SIN_A * tau2 - base_y
        change = max(float(np.max(np.abs(new_dx - dx), initial=0.0)), float(np.max(np.abs(new_dy - dy), initial=0.0)))
        dx, dy = new_dx, new_dy
        if change <= tol_m:
            return dx, dy
    raise RuntimeError(f"displacement did not converge in {max_iter} iterations (last update {change:.3g} m)")


def pair_velocity(x: Any, y: Any, t1: Any, t2: Any) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean velocity (m/yr along x and y) between ``t1`` and ``t2`` of the feature at ``(x, y)`` at ``t1``.

    What offset tracking of the pair measures: :func:`displacement` divided by the
    interval in years of 365.25 days.
    """
    dx, dy = displacement(x, y, t1, t2)
    years = (days_since_epoch(t2) - days_since_epoch(t1)) / 365.25
    return dx / years, dy / years


# =========================================================================== #
# Continuous random fields
# =========================================================================== #
@dataclass(frozen=True)
class RandomField:
    """``F(x, y) = sum_j amplitude_j cos(kx_j (x - CENTER_X) + ky_j (y - CENTER_Y) + phase_j)``.

    Band-limited, smooth, evaluable at any real position; variance over space
    ``sum_j amplitude_j**2 / 2 = 1`` and mean ~0. Wavenumbers in rad/m.
    """

    kx: np.ndarray
    ky: np.ndarray
    phase: np.ndarray
    amplitude: np.ndarray

    @classmethod
    def random(cls, seed: int | list[int], n_modes: int, min_wavelength_m: float, max_wavelength_m: float) -> "RandomField":
        """Modes with log-uniform wavelengths in ``[min, max]`` m, uniform directions and phases, equal amplitudes.

        Draw order from ``default_rng(seed)``: wavelengths, directions, phases.
        """
        rng = np.random.default_rng(seed)
        wavelength = np.exp(rng.uniform(math.log(min_wavelength_m), math.log(max_wavelength_m), n_modes))
        direction = rng.uniform(0.0, 2 * math.pi, n_modes)
        phase = rng.uniform(0.0, 2 * math.pi, n_modes)
        k = 2 * math.pi / wavelength
        amplitude = np.full(n_modes, math.sqrt(2.0 / n_modes))
        return cls(k * np.cos(direction), k * np.sin(direction), phase, amplitude)

    def __call__(self, x: Any, y: Any) -> np.ndarray:
        u, w = _local(x, y)
        return self._eval_local(u, w)

    def _eval_local(self, u: np.ndarray, w: np.ndarray) -> np.ndarray:
        u, w = np.broadcast_arrays(u, w)
        out = np.zeros(u.shape, dtype=np.float64)
        for kx, ky, ph, a in zip(self.kx, self.ky, self.phase, self.amplitude):
            out += a * np.cos(kx * u + ky * w + ph)
        return out


@lru_cache(maxsize=None)
def texture_field() -> RandomField:
    """The surface texture ``T``: 64 modes, wavelengths 120 m to 2000 m, seed :data:`TEXTURE_SEED`."""
    return RandomField.random(TEXTURE_SEED, 64, 120.0, 2000.0)


@lru_cache(maxsize=None)
def fine_texture_field() -> RandomField:
    """Fine texture ``T_fine`` for the 20 m S2 grid: 64 modes, 50 m to 120 m, seed :data:`FINE_TEXTURE_SEED`."""
    return RandomField.random(FINE_TEXTURE_SEED, 64, 50.0, 120.0)


@lru_cache(maxsize=None)
def _frozen_speckle_field(relative_orbit: int, pol: str) -> RandomField:
    return RandomField.random([FROZEN_SPECKLE_SEED, int(relative_orbit), POLARIZATIONS.index(pol)], 64, 90.0, 320.0)


def _advected(field: RandomField, x: Any, y: Any, t: Any) -> np.ndarray:
    u, w = _local(x, y)
    return field._eval_local(*_reference_local(u, w, _tau(t)))


def texture(x: Any, y: Any, t: Any) -> np.ndarray:
    """Advected surface texture ``T(R_t(p))`` (dimensionless, unit variance) at ``(x, y)`` at time ``t``."""
    return _advected(texture_field(), x, y, t)


def frozen_speckle(x: Any, y: Any, t: Any, relative_orbit: int, pol: Pol) -> np.ndarray:
    """Ice-advected speckle factor ``G_frozen`` (linear, mean 1, gamma with ``ENL_FROZEN``) of a track and polarization."""
    g = _advected(_frozen_speckle_field(relative_orbit, pol), x, y, t)
    return special.gammaincinv(ENL_FROZEN, special.ndtr(g)) / ENL_FROZEN


def speckle_db_bias() -> float:
    """``E[10 log10(G_frozen G_indep)]`` in dB: ``10/ln 10 * sum_L (digamma(L) - ln L)`` (about -0.49 dB)."""
    return float(sum(10.0 / math.log(10.0) * (special.digamma(L) - math.log(L)) for L in (ENL_FROZEN, ENL_INDEPENDENT)))


# =========================================================================== #
# Melt
# =========================================================================== #
def melt_onset_doy(x: Any, y: Any) -> np.ndarray:
    """Melt onset, fractional day of year 2019: ``125 + elevation / 25``."""
    return MELT_ONSET_DOY_AT_SEA_LEVEL + elevation(x, y) / MELT_METRES_PER_DAY


def melt_end_doy(x: Any, y: Any) -> np.ndarray:
    """End of melt (refreeze), fractional day of year 2019: ``285 - elevation / 25``."""
    return MELT_END_DOY_AT_SEA_LEVEL - elevation(x, y) / MELT_METRES_PER_DAY


def is_wet(x: Any, y: Any, t: Any) -> np.ndarray:
    """True where the surface is wet at ``t``: ``melt_onset_doy <= day_of_year(t) < melt_end_doy``."""
    doy = day_of_year(t)
    return (melt_onset_doy(x, y) <= doy) & (doy < melt_end_doy(x, y))


# =========================================================================== #
# Sentinel-1
# =========================================================================== #
@dataclass(frozen=True)
class Track:
    """A Sentinel-1 relative orbit over the scene.

    ``incidence_west_deg``/``incidence_east_deg`` are the incidence angles at the
    west (left) and east (right) scene edges; the angle is linear in x between them.
    ``time_of_day`` is the UTC acquisition time.
    """

    orbit_state: Literal["ascending", "descending"]
    relative_orbit: int
    time_of_day: _dt.time
    incidence_west_deg: float
    incidence_east_deg: float

    @property
    def name(self) -> str:
        return f"{self.orbit_state}-R{self.relative_orbit:03d}"


#: The two tracks: descending in the morning, ascending in the evening of the same day.
TRACKS: Final = (
    Track("descending", 25, _dt.time(10, 5, 12), 41.0, 36.0),
    Track("ascending", 90, _dt.time(20, 39, 45), 33.0, 38.0),
)
S1_FIRST_DAY: Final = _dt.date(2019, 4, 2)
S1_REPEAT_DAYS: Final = 6
S1_N_REPEATS: Final = 33  # 2019-04-02 .. 2019-10-11


def _track(track: Track | str) -> Track:
    if isinstance(track, Track):
        return track
    for tr in TRACKS:
        if track in (tr.orbit_state, tr.name):
            return tr
    raise ValueError(f"unknown track {track!r}; expected one of {[t.orbit_state for t in TRACKS]} or a Track")


def incidence_angle(x: Any, y: Any, track: Track | str) -> np.ndarray:
    """Incidence angle (degrees) of a track: linear in x from the west to the east scene edge; independent of y."""
    tr = _track(track)
    frac = (np.asarray(x, dtype=np.float64) - BOUNDS[0]) / EXTENT_M
    return np.broadcast_to(tr.incidence_west_deg + (tr.incidence_east_deg - tr.incidence_west_deg) * frac, np.broadcast_shapes(np.shape(x), np.shape(y))).copy()


def backscatter_slope(x: Any, y: Any, pol: Pol) -> np.ndarray:
    """d sigma0 / d theta (dB/degree): from SLOPE_LOW (z <= 200 m) to SLOPE_HIGH (z >= 1000 m), linear in z between."""
    e = np.clip((elevation(x, y) - SLOPE_Z_LOW_M) / (SLOPE_Z_HIGH_M - SLOPE_Z_LOW_M), 0.0, 1.0)
    return SLOPE_LOW_DB_PER_DEG[pol] + (SLOPE_HIGH_DB_PER_DEG[pol] - SLOPE_LOW_DB_PER_DEG[pol]) * e


def base_backscatter(x: Any, y: Any, pol: Pol) -> np.ndarray:
    """Dry backscatter at THETA_REF_DEG without texture (dB): rock/ice blend by :func:`ice_fraction`."""
    return BASE_ROCK_DB[pol] + (BASE_ICE_DB[pol] - BASE_ROCK_DB[pol]) * ice_fraction(x, y)


def s1_sigma0_model_db(x: Any, y: Any, t: Any, track: Track | str, pol: Pol) -> np.ndarray:
    """Noise-free backscatter of eq. (3) without speckle (dB), at any positions and time."""
    theta = incidence_angle(x, y, track)
    return (
        base_backscatter(x, y, pol)
        + backscatter_slope(x, y, pol) * (theta - THETA_REF_DEG)
        + MELT_DROP_DB[pol] * is_wet(x, y, t)
        + TEXTURE_CONTRAST_DB[pol] * texture(x, y, t)
    )


@dataclass(frozen=True)
class S1Acquisition:
    """One Sentinel-1 acquisition: track, repeat number within the track, UTC time, platform."""

    track: Track
    index: int
    datetime: _dt.datetime
    platform: Literal["sentinel-1a", "sentinel-1b"]

    @property
    def item_id(self) -> str:
        sat = "S1A" if self.platform == "sentinel-1a" else "S1B"
        return f"{sat}_IW_GRDH_1SDH_{self.datetime:%Y%m%dT%H%M%S}_{self.track.orbit_state[0].upper()}{self.track.relative_orbit:03d}_SYN"


def s1_acquisitions() -> list[S1Acquisition]:
    """All S1 acquisitions, sorted by time: each track every 6 days from 2019-04-02, 33 repeats.

    Platforms alternate sentinel-1a (even index) / sentinel-1b (odd index). The
    descending (10:05:12 UTC) and ascending (20:39:45 UTC) passes share the day.
    """
    out = []
    for tr in TRACKS:
        for k in range(S1_N_REPEATS):
            day = S1_FIRST_DAY + _dt.timedelta(days=S1_REPEAT_DAYS * k)
            when = _dt.datetime.combine(day, tr.time_of_day, tzinfo=_dt.timezone.utc)
            out.append(S1Acquisition(tr, k, when, "sentinel-1a" if k % 2 == 0 else "sentinel-1b"))
    return sorted(out, key=lambda a: a.datetime)


@lru_cache(maxsize=2)
def _s1_fields(grid: Grid, acquisition: S1Acquisition) -> tuple[np.ndarray, ...]:
    """Polarization-independent fields (theta, wet, texture) of an acquisition (cached: HH and HV share them)."""
    x, y = grid_xy(grid)
    fields = (incidence_angle(x, y, acquisition.track), is_wet(x, y, acquisition.datetime), texture(x, y, acquisition.datetime))
    for a in fields:
        a.flags.writeable = False
    return fields


def s1_sigma0_db(grid: Grid, acquisition: S1Acquisition, pol: Pol) -> np.ndarray:
    """Simulated backscatter (dB, float32, ``grid.shape``) of eq. (3) with speckle, rounded to DB_QUANTUM.

    The independent speckle comes from ``default_rng([INDEPENDENT_SPECKLE_SEED,
    relative_orbit, acquisition.index, pol index]).gamma(ENL_INDEPENDENT, 1/ENL_INDEPENDENT, grid.shape)``.
    """
    x, y = grid_xy(grid)
    t = acquisition.datetime
    tr = acquisition.track
    theta, wet, tex = _s1_fields(grid, acquisition)
    model = (
        base_backscatter(x, y, pol)
        + backscatter_slope(x, y, pol) * (theta - THETA_REF_DEG)
        + MELT_DROP_DB[pol] * wet
        + TEXTURE_CONTRAST_DB[pol] * tex
    )
    frozen = frozen_speckle(x, y, t, tr.relative_orbit, pol)
    rng = np.random.default_rng([INDEPENDENT_SPECKLE_SEED, tr.relative_orbit, acquisition.index, POLARIZATIONS.index(pol)])
    indep = rng.gamma(ENL_INDEPENDENT, 1.0 / ENL_INDEPENDENT, grid.shape)
    db = model + 10.0 * np.log10(frozen * indep)
    return (np.round(db / DB_QUANTUM) * DB_QUANTUM).astype(np.float32)


# =========================================================================== #
# Sentinel-2
# =========================================================================== #
@dataclass(frozen=True)
class S2Scene:
    """One Sentinel-2 scene.

    ``cloud`` is ``None`` or an ellipse ``(x_centre, y_centre, semi_axis_x, semi_axis_y)``
    in EPSG:3413 m; ``nodata_edge_x`` is ``None`` or the x (m) at the scene's centre
    row of a swath edge ``x = nodata_edge_x + 0.3 (y - CENTER_Y)`` west of which
    pixels are nodata.
    """

    index: int
    datetime: _dt.datetime
    platform: Literal["sentinel-2a", "sentinel-2b"]
    cloud: tuple[float, float, float, float] | None = None
    nodata_edge_x: float | None = None

    @property
    def item_id(self) -> str:
        sat = "S2A" if self.platform == "sentinel-2a" else "S2B"
        return f"{sat}_MSIL2A_{self.datetime:%Y%m%dT%H%M%S}_R{S2_RELATIVE_ORBIT:03d}_SYN"


S2_RELATIVE_ORBIT: Final = 68
S2_TIME_OF_DAY: Final = _dt.time(15, 19, 11)
S2_FIRST_DAY: Final = _dt.date(2019, 4, 17)  # a sentinel-2a day
#: Days after S2_FIRST_DAY of the 15 scenes (5-day A/B grid: multiples of 10 are S2A).
S2_DAY_OFFSETS: Final = (0, 10, 15, 25, 30, 40, 55, 60, 70, 85, 95, 110, 120, 140, 160)
#: Cloud ellipses by scene index (x_centre, y_centre, semi_axis_x, semi_axis_y), m.
S2_CLOUDS: Final = {
    3: (-186200.0, -2273800.0, 900.0, 600.0),
    7: (-184000.0, -2276200.0, 1500.0, 1100.0),
    11: (-183300.0, -2273300.0, 700.0, 1300.0),
}
#: Scenes with a swath edge (nodata west of it).
S2_NODATA_EDGES: Final = {9: -186700.0}


#: MSI detector footprints: slanted stripes (as the L1C ``MSK_DETFOO`` masks show), numbered from 1.
S2_DETECTOR_WIDTH_M: Final = 1400.0
S2_DETECTOR_SLANT: Final = 0.25
S2_N_DETECTORS: Final = 5
#: Largest geolocation error (m, per axis) of one detector in one scene.
S2_DETECTOR_ERROR_M: Final = 2.0
S2_DETECTOR_SEED: Final = 2023


def s2_detector(x: Any, y: Any) -> np.ndarray:
    """Detector number (1 .. :data:`S2_N_DETECTORS`, uint8) seeing each point; the same for every scene of the orbit."""
    u = np.asarray(x, dtype=np.float64) - CENTER_X + S2_DETECTOR_SLANT * (np.asarray(y, dtype=np.float64) - CENTER_Y)
    first = -(EXTENT_M / 2) * (1 + S2_DETECTOR_SLANT)
    return np.clip(1 + np.floor((u - first) / S2_DETECTOR_WIDTH_M), 1, S2_N_DETECTORS).astype(np.uint8)


def s2_detector_errors(scene: S2Scene) -> np.ndarray:
    """Geolocation error ``(S2_N_DETECTORS + 1, 2)`` (m; columns x, y) of each detector number in ``scene`` (row 0: none).

    A feature on the ground at ``p`` appears in the image at ``p + error[detector]``,
    so an offset map between scenes ``i`` and ``j`` carries the jump
    ``error_j[k] - error_i[k]`` inside detector ``k`` (:func:`s2_detector_jump`).
    """
    errors = np.random.default_rng([S2_DETECTOR_SEED, scene.index]).uniform(-S2_DETECTOR_ERROR_M, S2_DETECTOR_ERROR_M, (S2_N_DETECTORS + 1, 2))
    errors[0] = 0.0
    return errors


def s2_detector_jump(reference: S2Scene, secondary: S2Scene) -> np.ndarray:
    """Offset jump ``(S2_N_DETECTORS + 1, 2)`` (m; x, y) of each detector between two scenes (row 0: none)."""
    return s2_detector_errors(secondary) - s2_detector_errors(reference)


def _s2_ground(x: Any, y: Any, scene: S2Scene) -> tuple[np.ndarray, np.ndarray]:
    """Ground position imaged at map position ``(x, y)`` of ``scene`` (the detector's geolocation error removed)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    error = s2_detector_errors(scene)[s2_detector(x, y)]
    return x - error[..., 0], y - error[..., 1]


def s2_scenes() -> list[S2Scene]:
    """The 15 S2 scenes (2019-04-17 .. 2019-09-24, 15:19:11 UTC), sorted by time."""
    out = []
    for i, off in enumerate(S2_DAY_OFFSETS):
        day = S2_FIRST_DAY + _dt.timedelta(days=off)
        when = _dt.datetime.combine(day, S2_TIME_OF_DAY, tzinfo=_dt.timezone.utc)
        platform = "sentinel-2a" if off % 10 == 0 else "sentinel-2b"
        out.append(S2Scene(i, when, platform, S2_CLOUDS.get(i), S2_NODATA_EDGES.get(i)))
    return out


def s2_cloud_mask(x: Any, y: Any, scene: S2Scene) -> np.ndarray:
    """True inside the scene's cloud ellipse (all False for a clear scene)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if scene.cloud is None:
        return np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    cx, cy, ax, ay = scene.cloud
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 < 1.0


def s2_nodata_mask(x: Any, y: Any, scene: S2Scene) -> np.ndarray:
    """True where the scene has no data (west of its swath edge)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if scene.nodata_edge_x is None:
        return np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    return x < scene.nodata_edge_x + 0.3 * (y - CENTER_Y)


def s2_cloud_cover(grid: Grid, scene: S2Scene) -> float:
    """``eo:cloud_cover``: percent of valid pixels of ``grid`` under the cloud, rounded to 2 decimals."""
    x, y = grid_xy(grid)
    valid = ~s2_nodata_mask(x, y, scene)
    return round(100.0 * float(np.count_nonzero(s2_cloud_mask(x, y, scene) & valid)) / float(np.count_nonzero(valid)), 2)


def s2_reflectance(x: Any, y: Any, scene: S2Scene, band: str) -> np.ndarray:
    """Surface reflectance (float64) of ``band`` ("B04"/"B08") imaged at ``(x, y)``: detector errors and clouds included, nodata not applied.

    The surface is seen through the detector's geolocation error; clouds and the
    swath edge are where the image shows them (map coordinates).
    """
    t = scene.datetime
    gx, gy = _s2_ground(x, y, scene)
    return _s2_reflectance_from(
        ice_fraction(gx, gy), texture(gx, gy, t), _advected(fine_texture_field(), gx, gy, t), s2_cloud_mask(x, y, scene), band
    )


def _s2_reflectance_from(ice: np.ndarray, tex: np.ndarray, fine: np.ndarray, cloud: np.ndarray, band: str) -> np.ndarray:
    base = S2_BASE_ROCK[band] + (S2_BASE_ICE[band] - S2_BASE_ROCK[band]) * ice
    rho = base * np.exp(S2_CONTRAST[band] * tex + S2_FINE_CONTRAST[band] * fine)
    return np.where(cloud, S2_CLOUD[band], rho)


@lru_cache(maxsize=2)
def _s2_fields(grid: Grid, scene: S2Scene) -> tuple[np.ndarray, ...]:
    """Band-independent fields of a scene on a grid (cached so that both bands share them)."""
    x, y = grid_xy(grid)
    gx, gy = _s2_ground(x, y, scene)
    t = scene.datetime
    fields = (ice_fraction(gx, gy), texture(gx, gy, t), _advected(fine_texture_field(), gx, gy, t), s2_cloud_mask(x, y, scene), s2_nodata_mask(x, y, scene))
    for a in fields:
        a.flags.writeable = False
    return fields


def s2_digital_numbers(grid: Grid, scene: S2Scene, band: str) -> np.ndarray:
    """uint16 digital numbers ``clip(round(rho / 1e-4), 1, 65535)`` on ``grid``, 0 where nodata."""
    ice, tex, fine, cloud, nodata = _s2_fields(grid, scene)
    dn = np.clip(np.round(_s2_reflectance_from(ice, tex, fine, cloud, band) / S2_SCALE), 1, 65535).astype(np.uint16)
    dn[nodata] = 0
    return dn


# =========================================================================== #
# Truth on a grid
# =========================================================================== #
def truth_dataset(grid: Grid = S1_GRID) -> "xarray.Dataset":  # noqa: F821
    """Exact time-independent truth on ``grid`` as an ``xarray.Dataset`` (coords ``y``, ``x``; CRS written).

    Variables: ``vx``, ``vy``, ``v`` (m/yr), ``glacier_mask``, ``stable_mask``,
    ``ice_fraction``, ``elevation`` (m), ``melt_onset_doy``, ``melt_end_doy``,
    ``slope_hh``, ``slope_hv`` (dB/degree), ``base_hh``, ``base_hv`` (dB),
    ``incidence_angle_ascending``, ``incidence_angle_descending`` (degree).
    """
    import xarray as xr

    x, y = grid_xy(grid)
    vx, vy = velocity(x, y)
    dims = ("y", "x")
    variables = {
        "vx": (vx, "m/yr", "velocity along x"),
        "vy": (vy, "m/yr", "velocity along y"),
        "v": (np.hypot(vx, vy), "m/yr", "speed"),
        "glacier_mask": (glacier_mask(x, y), "1", "moving ice"),
        "stable_mask": (stable_mask(x, y), "1", "stable ground"),
        "ice_fraction": (ice_fraction(x, y), "1", "ice facies weight"),
        "elevation": (elevation(x, y), "m", "surface elevation"),
        "melt_onset_doy": (melt_onset_doy(x, y), "day of year", "melt onset (2019)"),
        "melt_end_doy": (melt_end_doy(x, y), "day of year", "melt end (2019)"),
        "slope_hh": (backscatter_slope(x, y, "hh"), "dB/degree", "HH backscatter incidence slope"),
        "slope_hv": (backscatter_slope(x, y, "hv"), "dB/degree", "HV backscatter incidence slope"),
        "base_hh": (base_backscatter(x, y, "hh"), "dB", "dry HH backscatter at THETA_REF_DEG"),
        "base_hv": (base_backscatter(x, y, "hv"), "dB", "dry HV backscatter at THETA_REF_DEG"),
        "incidence_angle_ascending": (incidence_angle(x, y, "ascending"), "degree", "ascending incidence angle"),
        "incidence_angle_descending": (incidence_angle(x, y, "descending"), "degree", "descending incidence angle"),
    }
    ds = xr.Dataset(
        {k: (dims, a, {"units": u, "long_name": ln}) for k, (a, u, ln) in variables.items()},
        coords={"y": grid.y_coords(), "x": grid.x_coords()},
        attrs={"source": "cryocube.synthetic", "theta_ref_deg": THETA_REF_DEG, "reference_epoch": str(REFERENCE_EPOCH)},
    )
    try:
        import rioxarray  # noqa: F401

        ds = ds.rio.write_crs(grid.crs)
    except ImportError:  # pragma: no cover
        pass
    return ds
