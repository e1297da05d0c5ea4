r"""Test scenes for offset tracking with exact, known displacement truth.

Every scene is a pair of images (``reference``, ``secondary``) and the
displacement that maps one onto the other, so that an offset tracker (intensity
cross-correlation) can be scored against the truth.

Conventions
-----------
* A *position* is ``(row, col)`` in pixel units, float64; pixel ``[i, j]`` of an
  image is the point sample at position ``(i, j)`` (the pixel centre), the same
  convention as :func:`scipy.ndimage.map_coordinates`.
* A displacement ``d(q) = (dy_px, dx_px)`` is in pixels along rows (``dy_px``,
  positive = towards larger row indices, i.e. *down* in a north-up image, so
  ``dy_px = -v_north * dt / pixel_size``) and along columns (``dx_px``, positive
  = towards larger column indices).
* The feature at position ``q`` in the reference image is found at ``q + d(q)``
  in the secondary image::

      secondary(q + d(q)) = reference(q)

  Truth grids are ``d`` evaluated at the **reference** pixel positions, which is
  what a tracker that matches reference chips centred on pixel ``q`` reports.
* The secondary is built by the inverse mapping ``secondary(p) = reference(q(p))``
  where ``q(p)`` solves ``q + d(q) = p``; :meth:`Flow.invert` solves it by the
  fixed-point iteration ``q_{k+1} = p - d(q_k)`` from ``q_0 = p - d(p)``, to
  ``1e-10`` px. It converges where ``d`` is a contraction (Lipschitz constant
  below 1 px/px, i.e. strain below 100 %), which holds for every flow here with
  its default parameters.

Exactness
---------
* :func:`texture_pair` evaluates a continuous, band-limited random texture
  (:class:`BandLimitedTexture`) at the exact positions: no interpolation. The
  cosines are evaluated in float32 after an exact float64 phase reduction, so
  the values carry an absolute error of about ``1e-6`` on a unit-variance texture
  (the float32 resolution of the images); ``float64=True`` gives ~1e-12 at ~5x
  the cost. Equivalent position error: ~1e-7 px.
* :func:`warp_image` warps a *real* image with a quintic spline; its
  interpolation error is the only non-exact part of these scenes (see there).

Real data
---------
:func:`real_texture` and :func:`columbia_flow` read the read-only sample data in
:data:`SHARED_DATA_DIR` (``/work/shared/data`` next to the repository). Nothing is
copied into the repository; a missing file raises :class:`FileNotFoundError`
naming the path.

Everything is pure numpy/scipy (rasterio, a cryocube dependency, only to read
the real rasters) and deterministic given the seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage, special

__all__ = [
    "SHARED_DATA_DIR",
    "REAL_TEXTURES",
    "COLUMBIA_VX",
    "COLUMBIA_VY",
    "Flow",
    "CosineSum",
    "BandLimitedTexture",
    "pixel_grid",
    "uniform_flow",
    "shear_flow",
    "columbia_flow",
    "texture_pair",
    "saturated_texture_pair",
    "warp_image",
    "add_nodata_stripe",
    "decorrelate_patch",
    "clean_chip_mask",
    "real_texture",
]

#: Read-only sample data shared next to the repository (``/work/shared/data``).
SHARED_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"

#: Real single-band textures for :func:`real_texture`, relative to :data:`SHARED_DATA_DIR`.
REAL_TEXTURES: dict[str, str] = {
    # Landsat-7 ETM+ B4 (NIR), 2000-10-30, uint8 DN, 655 x 800 px at 30 m, no nodata;
    # ~21 % of the pixels are saturated (255) over snow: textureless, realistically.
    "khumbu_landsat": "landsat7_everest_khumbu_single_scene/LE71400412000304SGS00_B4.tif",
    # Sentinel-1B EW GRDM HH sigma0 in dB (float32), 2020-03-01, 701 x 1135 px at 100 m, sea ice.
    "s1_ew": "s1_ew_seaice_drift_pair/"
    "clip_HH_S1B_EW_GRDM_1SDH_20200301T083237_20200301T083346_020496_026D68_5471_adjusted.tif",
}

#: ITS_LIVE ALA G0120 "0000" mosaic over Columbia Glacier: vx, vy in m/yr, EPSG:3413, 120 m,
#: 375 x 389 px, nodata -32767 (relative to :data:`SHARED_DATA_DIR`).
COLUMBIA_VX = "oggm_itslive_alaska_columbia/crop_ALA_G0120_0000_vx.tif"
COLUMBIA_VY = "oggm_itslive_alaska_columbia/crop_ALA_G0120_0000_vy.tif"

_TWO_PI = 2.0 * math.pi
_CHUNK_POINTS = 1024  # points per block in CosineSum evaluation (block = 1024 x n_modes)

FieldFunction = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def pixel_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(rows, cols)`` (px, float64) of the pixel centres of an image of ``shape``."""
    rows, cols = np.indices(tuple(shape), dtype=np.float64)
    return rows, cols


# =========================================================================== #
# Flows
# =========================================================================== #
@dataclass(frozen=True)
class Flow:
    """A displacement field ``d(q) = (dy_px, dx_px)`` (px) evaluable at any real position.

    Parameters
    ----------
    field
        ``field(rows, cols) -> (dy_px, dx_px)`` on float64 arrays of one shape.
    name
        A label for reprs and messages.
    """

    field: FieldFunction
    name: str = "flow"

    def __call__(self, rows: np.ndarray | float, cols: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """``(dy_px, dx_px)`` (px, float64) at positions ``(rows, cols)`` (px, broadcast together)."""
        rows, cols = np.broadcast_arrays(np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64))
        dy, dx = self.field(rows, cols)
        return (np.broadcast_to(np.asarray(dy, dtype=np.float64), rows.shape).copy(),
                np.broadcast_to(np.asarray(dx, dtype=np.float64), rows.shape).copy())

    def grid(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Truth grids ``(dy_px, dx_px)``: ``d`` at the pixel centres of an image of ``shape``."""
        return self(*pixel_grid(shape))

    def invert(self, rows: np.ndarray | float, cols: np.ndarray | float, *, tol_px: float = 1e-10,
               max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
        """Reference positions ``q`` whose feature lands at ``p = (rows, cols)``: ``q + d(q) = p``.

        Fixed-point iteration ``q_{k+1} = p - d(q_k)`` from ``q_0 = p - d(p)``,
        per point until the update is at most ``tol_px`` (px) in both components
        (points that converged are not evaluated again).

        Returns
        -------
        q_rows, q_cols
            float64 arrays (px) of the broadcast shape of ``rows`` and ``cols``.

        Raises
        ------
        RuntimeError
            If a point has not converged after ``max_iter`` iterations (``d`` is
            not a contraction there) or ``d`` is not finite.
        """
        p_r, p_c = (a.ravel() for a in np.broadcast_arrays(np.asarray(rows, dtype=np.float64),
                                                           np.asarray(cols, dtype=np.float64)))
        shape = np.broadcast_shapes(np.shape(rows), np.shape(cols))
        dy, dx = self(p_r, p_c)
        q_r, q_c = p_r - dy, p_c - dx
        active = np.arange(p_r.size)
        change = math.inf
        for _ in range(max_iter):
            if active.size == 0:
                return q_r.reshape(shape), q_c.reshape(shape)
            dy, dx = self(q_r[active], q_c[active])
            new_r, new_c = p_r[active] - dy, p_c[active] - dx
            step = np.maximum(np.abs(new_r - q_r[active]), np.abs(new_c - q_c[active]))
            if not np.all(np.isfinite(step)):
                raise RuntimeError(f"{self.name}: non-finite displacement during inversion")
            q_r[active], q_c[active] = new_r, new_c
            change = float(step.max())
            active = active[step > tol_px]
        if active.size == 0:
            return q_r.reshape(shape), q_c.reshape(shape)
        raise RuntimeError(f"{self.name}: inverse mapping did not converge in {max_iter} iterations at "
                           f"{active.size} point(s) (last update {change:.3g} px); the flow is not a contraction")


def _uniform(dy_px: float, dx_px: float, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.full(rows.shape, dy_px), np.full(rows.shape, dx_px)


def uniform_flow(dy_px: float, dx_px: float) -> Flow:
    """A constant displacement ``(dy_px, dx_px)`` (px) everywhere (an integer one shifts images exactly)."""
    return Flow(partial(_uniform, float(dy_px), float(dx_px)), f"uniform({dy_px}, {dx_px})")


def _shear(center: tuple[float, float], direction: tuple[float, float], n_half: float, max_px: float,
           rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e_r, e_c = direction
    # Across-flow coordinate n = (q - centre) . e_n with e_n = (e_c, -e_r) perpendicular to e.
    n = (rows - center[0]) * e_c - (cols - center[1]) * e_r
    speed = max_px * np.sin(0.5 * math.pi * n / n_half)
    return speed * e_r, speed * e_c


def shear_flow(shape: tuple[int, int], *, max_px: float = 8.0, angle_deg: float = 30.0) -> Flow:
    r"""A smooth shear flow over an image of ``shape``, like a glacier's cross-profile.

    ``d(q) = s(n) e`` with flow direction ``e = (-sin a, cos a)`` (row, col), i.e.
    ``angle_deg = a`` counter-clockwise from the +column axis as the image is
    displayed (row 0 at the top; the map convention of a north-up image), and
    across-flow coordinate ``n = (q - centre) . (cos a, sin a)`` (px) from the
    image centre ``((H - 1) / 2, (W - 1) / 2)``::

        s(n) = max_px * sin(pi/2 * n / n_half)     (px)

    ``n_half`` is the largest ``|n|`` over the image's corner pixels, so along the
    image the signed speed ``s`` runs from exactly ``-max_px`` to ``+max_px``
    (reached at two opposite corner pixels) and the shear ``|ds/dn|`` is at most
    ``pi/2 * max_px / n_half`` px/px. Since ``d`` is along ``e`` and ``s`` depends on
    ``n`` only, the inverse mapping is exact after the first iteration.

    Parameters
    ----------
    shape
        ``(rows, cols)`` of the image the profile spans.
    max_px
        Largest displacement magnitude (px).
    angle_deg
        Flow direction (degrees, see above).

    Returns
    -------
    Flow
        ``flow.grid(shape)`` gives the truth grids ``(dy_px, dx_px)``.
    """
    height, width = shape
    a = math.radians(angle_deg)
    direction = (-math.sin(a), math.cos(a))
    n_half = 0.5 * (height - 1) * abs(math.cos(a)) + 0.5 * (width - 1) * abs(math.sin(a))
    if n_half <= 0.0:
        raise ValueError(f"shape {shape} has no extent across the flow direction {angle_deg} deg")
    center = (0.5 * (height - 1), 0.5 * (width - 1))
    return Flow(partial(_shear, center, direction, n_half, float(max_px)),
                f"shear(max_px={max_px}, angle_deg={angle_deg})")


# =========================================================================== #
# Continuous textures
# =========================================================================== #
@dataclass(frozen=True, eq=False)
class CosineSum:
    """``f(r, c) = amplitude * sum_j cos(2 pi (fr_j r + fc_j c + phase_j))``, zero-mean and unit-variance.

    ``fr``, ``fc`` are spatial frequencies in cycles/px along rows and columns,
    ``phase`` in turns; ``amplitude = sqrt(2 / n_modes)`` gives a spatial variance of 1.
    """

    freq_row: np.ndarray
    freq_col: np.ndarray
    phase: np.ndarray

    @property
    def amplitude(self) -> float:
        """The common amplitude of the modes, ``sqrt(2 / n_modes)``."""
        return math.sqrt(2.0 / self.phase.size)

    @classmethod
    def random(cls, rng: np.random.Generator, n_modes: int, min_wavelength_px: float,
               max_wavelength_px: float) -> CosineSum:
        """Log-uniform wavelengths in ``[min, max]`` px, uniform directions and phases (drawn in that order)."""
        if not 0.0 < min_wavelength_px <= max_wavelength_px:
            raise ValueError(f"need 0 < min_wavelength_px <= max_wavelength_px, got {min_wavelength_px}, {max_wavelength_px}")
        wavelength = np.exp(rng.uniform(math.log(min_wavelength_px), math.log(max_wavelength_px), n_modes))
        direction = rng.uniform(0.0, _TWO_PI, n_modes)
        phase = rng.uniform(0.0, 1.0, n_modes)
        return cls(np.sin(direction) / wavelength, np.cos(direction) / wavelength, phase)

    def __call__(self, rows: np.ndarray | float, cols: np.ndarray | float, *, float64: bool = False) -> np.ndarray:
        """Values (float64) at positions ``(rows, cols)`` (px, broadcast together).

        Phases are computed in float64 and reduced to ``[-1/2, 1/2]`` turn exactly;
        the cosines are taken in float32 (absolute error ~1e-6) unless ``float64``.
        Each point's value does not depend on the other points (bit-identical
        wherever it is evaluated). Works on blocks of 1024 points x all modes.
        """
        rows, cols = np.broadcast_arrays(np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64))
        r, c = rows.ravel(), cols.ravel()
        out = np.empty(r.size, dtype=np.float64)
        n_modes = self.phase.size
        turns = np.empty((_CHUNK_POINTS, n_modes))
        whole = np.empty((_CHUNK_POINTS, n_modes))
        cosine = np.empty((_CHUNK_POINTS, n_modes), dtype=np.float64 if float64 else np.float32)
        for start in range(0, r.size, _CHUNK_POINTS):
            m = min(_CHUNK_POINTS, r.size - start)
            t, w, y = turns[:m], whole[:m], cosine[:m]
            np.multiply(r[start:start + m, None], self.freq_row, out=t)
            np.multiply(c[start:start + m, None], self.freq_col, out=w)
            t += w
            t += self.phase
            np.rint(t, out=w)
            t -= w
            np.multiply(t, _TWO_PI, out=y, casting="same_kind")
            np.cos(y, out=y)
            out[start:start + m] = y.sum(axis=1, dtype=np.float64)
        out *= self.amplitude
        return out.reshape(rows.shape)


TextureKind = Literal["optical", "sar"]


@dataclass(frozen=True, eq=False)
class BandLimitedTexture:
    r"""A continuous random surface texture, evaluable at any real position (px).

    * ``kind="optical"``: ``T = B``, the band-limited field ``B`` (:class:`CosineSum`,
      mean 0, variance 1, wavelengths ``min..max_wavelength_px``).
    * ``kind="sar"``: a linear intensity (mean ~1) ``T = exp(c B - c^2 / 2) * G``,
      with ``c = contrast`` and a gamma speckle ``G = gammaincinv(L, ndtr(S)) / L``
      (mean 1, variance ``1 / L``, ``L = looks``) obtained from a second field ``S``
      of fine wavelengths ``min_wavelength_px..2 min_wavelength_px``. The speckle is a
      function of position, so it moves with the surface (as for a coherent,
      "frozen" scatterer): it is trackable signal, not noise.

    Build with :meth:`random`.
    """

    kind: TextureKind
    base: CosineSum
    speckle: CosineSum | None = None
    looks: float = 4.0
    contrast: float = 0.5

    @classmethod
    def random(cls, seed: int | list[int] = 0, *, kind: TextureKind = "optical", n_modes: int = 200,
               min_wavelength_px: float = 3.0, max_wavelength_px: float = 20.0, looks: float = 4.0,
               contrast: float = 0.5) -> BandLimitedTexture:
        """Draw a texture from ``numpy.random.default_rng(seed)``: ``B`` first, then (SAR) ``S``.

        ``B`` is therefore the same for both kinds with one seed. Wavelengths in px;
        3 px (the default minimum) keeps ``B`` above the 2 px Nyquist wavelength.
        """
        if kind not in ("optical", "sar"):
            raise ValueError(f"kind must be 'optical' or 'sar', got {kind!r}")
        rng = np.random.default_rng(seed)
        base = CosineSum.random(rng, n_modes, min_wavelength_px, max_wavelength_px)
        speckle = CosineSum.random(rng, n_modes, min_wavelength_px, 2.0 * min_wavelength_px) if kind == "sar" else None
        return cls(kind, base, speckle, float(looks), float(contrast))

    def __call__(self, rows: np.ndarray | float, cols: np.ndarray | float, *, float64: bool = False) -> np.ndarray:
        """Texture values (float64; dimensionless, or linear intensity for SAR) at ``(rows, cols)`` (px)."""
        value = self.base(rows, cols, float64=float64)
        if self.speckle is None:
            return value
        gamma = special.gammaincinv(self.looks, special.ndtr(self.speckle(rows, cols, float64=float64))) / self.looks
        return np.exp(self.contrast * value - 0.5 * self.contrast**2) * gamma


def texture_pair(shape: tuple[int, int], flow: Flow, *, seed: int = 0, kind: TextureKind = "optical",
                 noise: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An exact image pair of a continuous random texture displaced by ``flow``.

    ``reference(p) = T(p)`` and ``secondary(p) = T(q(p))`` with ``q(p) + d(q(p)) = p``
    (:meth:`Flow.invert`), where ``T = BandLimitedTexture.random(seed, kind=kind)``:
    both images sample the same continuous function, so the pair is exact (no
    interpolation; values to ~1e-6 of the texture std).

    Parameters
    ----------
    shape
        ``(rows, cols)`` of both images.
    flow
        The displacement ``d`` (px).
    seed
        Seed of the texture; the noise uses ``default_rng([seed, 1])`` (reference)
        and ``default_rng([seed, 2])`` (secondary).
    kind
        ``"optical"`` (zero-mean, unit-variance) or ``"sar"`` (linear intensity with
        moving gamma speckle), see :class:`BandLimitedTexture`.
    noise
        Standard deviation of the additive, independent Gaussian noise added to
        each image, relative to the standard deviation of the noise-free
        reference image (0: none).

    Returns
    -------
    reference, secondary
        float32 images of ``shape``.
    dy_truth, dx_truth
        float64 truth ``d`` (px) at the reference pixel centres (:meth:`Flow.grid`).
    """
    texture = BandLimitedTexture.random(seed, kind=kind)
    rows, cols = pixel_grid(shape)
    reference = texture(rows, cols)
    secondary = texture(*flow.invert(rows, cols))
    if noise > 0.0:
        sigma = noise * float(reference.std())
        reference = reference + np.random.default_rng([seed, 1]).normal(0.0, sigma, reference.shape)
        secondary = secondary + np.random.default_rng([seed, 2]).normal(0.0, sigma, secondary.shape)
    dy, dx = flow(rows, cols)
    return reference.astype(np.float32), secondary.astype(np.float32), dy, dx


def saturated_texture_pair(shape: tuple[int, int], flow: Flow, *, saturated_fraction: float = 0.2,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An exact pair of an optical texture whose bright patches are saturated, like snow in Landsat images.

    The scene is ``S = min(B + 2 L, level)``: ``B`` the optical texture of
    :func:`texture_pair` (seed ``seed``), ``L`` a unit-variance brightness field of
    wavelengths 60-240 px (:class:`CosineSum`, ``default_rng([seed, 3])``, 50
    modes) and ``level`` the ``1 - saturated_fraction`` quantile of ``B + 2 L`` over
    the reference. Clipping is pointwise, so both images still sample one function
    exactly (``secondary(p) = S(q(p))``): the truth is exact, but the saturated
    patches carry no texture and the chips beside them see texture on one side
    only. Truth: ``flow.grid(shape)``.

    Returns
    -------
    reference, secondary
        float32 images of ``shape``.
    """
    if not 0.0 <= saturated_fraction < 1.0:
        raise ValueError(f"saturated_fraction must be in [0, 1), got {saturated_fraction!r}")
    texture = BandLimitedTexture.random(seed)
    light = CosineSum.random(np.random.default_rng([seed, 3]), 50, 60.0, 240.0)
    rows, cols = pixel_grid(shape)
    reference = texture(rows, cols) + 2.0 * light(rows, cols)
    level = float(np.quantile(reference, 1.0 - saturated_fraction))
    q_rows, q_cols = flow.invert(rows, cols)
    secondary = texture(q_rows, q_cols) + 2.0 * light(q_rows, q_cols)
    return np.minimum(reference, level).astype(np.float32), np.minimum(secondary, level).astype(np.float32)


# =========================================================================== #
# Warping real images, and damaging them
# =========================================================================== #
def warp_image(image: np.ndarray, flow: Flow, *, order: int = 5) -> np.ndarray:
    """Displace a real image by ``flow``: ``secondary(p) = image(q(p))``, ``q + d(q) = p``.

    The truth is ``flow.grid(image.shape)`` (``d`` at the reference pixel
    centres), as for :func:`texture_pair`.

    ``image`` is interpolated at ``q`` with a spline of ``order`` (quintic by
    default) after the usual prefilter (:func:`scipy.ndimage.map_coordinates`,
    boundary mode ``"nearest"``). This interpolation is the only non-exact part:
    its error grows with the image's content near the Nyquist frequency (for
    smooth content, wavelengths >= ~8 px, below ~1e-3 of the signal; for
    pixel-scale texture, such as speckle or saturated edges, it can reach several
    percent) and near the image border (the boundary condition reaches ~10 px in).

    Non-finite input pixels are filled with their nearest valid neighbour for the
    spline; output pixels are NaN where ``q`` lies outside the image or less than
    ``order // 2 + 1`` px (along rows or along columns) from a non-finite input
    pixel, i.e. where the support of the spline basis at ``q`` reaches it. Beyond
    that, the filled values still leak in through the prefilter, decaying
    geometrically (by ~0.43 per px for the quintic spline).

    Returns
    -------
    numpy.ndarray
        float32 image of ``image.shape``.
    """
    values = np.asarray(image, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {values.shape}")
    height, width = values.shape
    q_r, q_c = flow.invert(*pixel_grid(values.shape))
    bad = ~np.isfinite(values)
    if bad.all():
        return np.full(values.shape, np.nan, dtype=np.float32)
    if bad.any():
        nearest = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
        values = values[tuple(nearest)]
    out = ndimage.map_coordinates(values, [q_r, q_c], order=order, mode="nearest", prefilter=True)
    invalid = (q_r < 0) | (q_r > height - 1) | (q_c < 0) | (q_c > width - 1)
    if bad.any():
        reach = order // 2  # dilate, then any bilinear neighbour of q: distance < reach + 1 px
        near_bad = ndimage.binary_dilation(bad, structure=np.ones((2 * reach + 1, 2 * reach + 1), dtype=bool))
        invalid |= ndimage.map_coordinates(near_bad.astype(np.float64), [q_r, q_c], order=1, mode="nearest") > 0
    out[invalid] = np.nan
    return out.astype(np.float32)


def complex_speckle_pair(shape: tuple[int, int], *, shift_px: tuple[float, float], coherence: float,
                         oversampling: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two SLC images of fully developed speckle, the second shifted by ``shift_px`` with coherence ``coherence``.

    The scene is circular complex Gaussian white noise band-limited to a square
    ``1 / oversampling`` of the sampled band (an SLC oversampled by that factor,
    like an ampcor-style 2x oversampling). The secondary is

        s2 = g * shift(s1) + sqrt(1 - g^2) * n

    with ``shift`` the exact band-limited (Fourier) translation, ``secondary(q + d)
    = reference(q)`` as in this module's convention, and ``n`` independent speckle
    of the same spectrum, so the complex coherence between the matched images is
    exactly ``g`` in expectation. The images are periodic (the FFT shift wraps).

    Parameters
    ----------
    shape
        ``(rows, cols)``.
    shift_px
        ``(dy_px, dx_px)``: uniform displacement (px) from reference to secondary.
    coherence
        ``g`` in ``(0, 1]``.
    oversampling
        Sampling rate over bandwidth (>= 1).
    seed
        ``numpy.random.default_rng`` seed.

    Returns
    -------
    reference, secondary
        complex64 arrays of ``shape`` with unit mean power.
    """
    if not 0 < coherence <= 1:
        raise ValueError(f"coherence must be in (0, 1], got {coherence!r}")
    if not oversampling >= 1:
        raise ValueError(f"oversampling must be >= 1, got {oversampling!r}")
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    band = (np.abs(fy) <= 0.5 / oversampling) & (np.abs(fx) <= 0.5 / oversampling)
    scale = np.sqrt(band.size / band.sum() / 2)

    def speckle_spectrum() -> np.ndarray:
        white = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        return np.fft.fft2(white) * band * scale

    first = speckle_spectrum()
    noise = speckle_spectrum()
    ramp = np.exp(-2j * np.pi * (fy * shift_px[0] + fx * shift_px[1]))
    reference = np.fft.ifft2(first)
    secondary = np.fft.ifft2(coherence * first * ramp + np.sqrt(1 - coherence**2) * noise)
    return reference.astype(np.complex64), secondary.astype(np.complex64)


def _float_copy(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return np.array(image, dtype=np.result_type(image.dtype, np.float32))


def add_nodata_stripe(image: np.ndarray, *, col_start: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``image`` with the full-height columns ``col_start : col_start + width`` set to NaN.

    Returns
    -------
    image, mask
        The new float image (float32 at least) and the boolean mask of the stripe.
    """
    out = _float_copy(image)
    mask = np.zeros(out.shape, dtype=bool)
    mask[:, max(col_start, 0):max(col_start + width, 0)] = True
    out[mask] = np.nan
    return out, mask


def decorrelate_patch(image: np.ndarray, *, center: tuple[float, float], radius: float,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``image`` whose disc ``|p - center| <= radius`` (px) is independent Gaussian noise.

    The noise (``default_rng(seed)``) has the mean and standard deviation of the
    finite pixels it replaces (of the whole image if the disc has fewer than two),
    so the patch keeps its brightness but loses all correlation with the other
    image. Non-finite pixels stay as they are.

    Returns
    -------
    image, mask
        The new float image (float32 at least) and the boolean mask of the disc.
    """
    out = _float_copy(image)
    rows, cols = pixel_grid(out.shape)
    mask = (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2
    replace = mask & np.isfinite(out)
    source = out[replace] if replace.sum() >= 2 else out[np.isfinite(out)]
    out[replace] = np.random.default_rng(seed).normal(float(source.mean()), float(source.std()), int(replace.sum()))
    return out, mask


def clean_chip_mask(affected: np.ndarray, chip_px: int, *, margin_px: int = 0) -> np.ndarray:
    """Chip centres whose chip (grown by ``margin_px``) lies inside the image and avoids ``affected``.

    The chip of centre ``(r, c)`` is ``[r - h, r - h + chip_px) x [c - h, c - h + chip_px)``
    with ``h = chip_px // 2`` (the convention of :mod:`cryocube.offset_kernel`);
    ``margin_px`` grows it on every side (e.g. by the largest displacement plus the
    search radius, to cover the secondary window too). Combine the masks of both
    images (``mask_ref | mask_sec``) to get the points that must be tracked well.

    Returns
    -------
    numpy.ndarray
        Boolean array of ``affected.shape``.
    """
    affected = np.asarray(affected, dtype=bool)
    height, width = affected.shape
    size = chip_px + 2 * margin_px
    pad = size
    padded = np.pad(affected, pad, constant_values=True).astype(np.int64)
    table = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = padded.cumsum(0).cumsum(1)
    lo_r = np.arange(height) - chip_px // 2 - margin_px + pad
    lo_c = np.arange(width) - chip_px // 2 - margin_px + pad
    hi_r, hi_c = lo_r + size, lo_c + size
    count = (table[hi_r[:, None], hi_c[None, :]] - table[lo_r[:, None], hi_c[None, :]]
             - table[hi_r[:, None], lo_c[None, :]] + table[lo_r[:, None], lo_c[None, :]])
    return count == 0


# =========================================================================== #
# Real data
# =========================================================================== #
def _shared_file(relative: str, data_dir: Path | None) -> Path:
    path = (SHARED_DATA_DIR if data_dir is None else Path(data_dir)) / relative
    if not path.is_file():
        raise FileNotFoundError(f"sample data file not found: {path}")
    return path


def _read_band(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as dataset:
        values = dataset.read(1).astype(np.float64)
        nodata = dataset.nodata
    if nodata is not None:
        values[values == nodata] = np.nan
    return values


def real_texture(name: str, shape: tuple[int, int] | None = None, *, center: tuple[int, int] | None = None,
                 data_dir: Path | None = None) -> np.ndarray:
    """A real single-band image from the shared sample data, as float32.

    Parameters
    ----------
    name
        ``"khumbu_landsat"``: Landsat-7 ETM+ band 4 (NIR) over Khumbu glacier,
        2000-10-30, raw uint8 digital numbers (13-255), 655 x 800 px at 30 m; no
        nodata, but ~21 % of the pixels (snow) are saturated at 255 and so
        textureless. ``"s1_ew"``: Sentinel-1B EW GRDM HH backscatter sigma0 in
        **dB** (about -20 to -7 dB), 2020-03-01, 701 x 1135 px at 100 m over Arctic
        sea ice; no nodata. See :data:`REAL_TEXTURES`.
    shape
        ``(rows, cols)`` of the window to return (default: the whole image).
    center
        Pixel ``(row, col)`` of the window's centre (pixel ``shape // 2`` of the
        window); default the image centre.
    data_dir
        Where the sample data lie (default :data:`SHARED_DATA_DIR`).

    Raises
    ------
    FileNotFoundError
        Naming the path, if the file is absent.
    ValueError
        For an unknown ``name`` or a window that does not fit in the image.
    """
    if name not in REAL_TEXTURES:
        raise ValueError(f"unknown texture {name!r}; choose from {sorted(REAL_TEXTURES)}")
    values = _read_band(_shared_file(REAL_TEXTURES[name], data_dir))
    if shape is None:
        return values.astype(np.float32)
    height, width = values.shape
    if center is None:
        center = (height // 2, width // 2)
    top, left = center[0] - shape[0] // 2, center[1] - shape[1] // 2
    if top < 0 or left < 0 or top + shape[0] > height or left + shape[1] > width:
        raise ValueError(f"window {shape} centred at {center} does not fit in {name} ({height} x {width} px)")
    return values[top:top + shape[0], left:left + shape[1]].astype(np.float32)


def _spline_field(coefficients: tuple[np.ndarray, np.ndarray], origin: tuple[float, float], step: float,
                  scale: tuple[float, float], rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coords = np.stack([origin[0] + step * rows, origin[1] + step * cols])
    return tuple(s * ndimage.map_coordinates(k, coords, order=3, mode="nearest", prefilter=False)
                 for k, s in zip(coefficients, scale))


def columbia_flow(shape: tuple[int, int], *, max_px: float = 8.0, smooth_px: float = 6.0,
                  data_dir: Path | None = None) -> Flow:
    """The ITS_LIVE velocity field of Columbia Glacier, Alaska, as a displacement in pixels.

    The ITS_LIVE mosaic (:data:`COLUMBIA_VX`, :data:`COLUMBIA_VY`; m/yr, EPSG:3413,
    120 m, 375 x 389 px, y axis pointing north) is mapped onto an image of
    ``shape`` with one isotropic scale (the largest centred window of the
    mosaic with the image's aspect ratio, so directions are kept; the fast trunk
    of the glacier is in the upper-left part), and scaled so that the largest
    displacement over the image's pixel centres is exactly ``max_px``::

        dy_px = -k vy,   dx_px = k vx      (rows point south, columns east)

    Nodata pixels (-32767, a few dozen at the edge) are filled with the nearest
    valid value. The field is smoothed with a Gaussian of ``smooth_px`` image
    pixels (sigma) before scaling — ITS_LIVE has near-discontinuities at the
    calving front and isolated outliers, which would make the flow non-invertible
    (strain > 100 %) — and interpolated with a cubic spline, so the flow is
    smooth and evaluable at any real position (clamped to the mosaic's edge
    outside it). With the defaults the largest displacement gradient (spectral
    norm) is below 1 px/px, so the inversion converges: 0.78, 0.62, 0.51, 0.33 px/px
    for 64, 256, 512, 2000 px square images.

    Parameters
    ----------
    shape
        ``(rows, cols)`` of the image, both >= 2.
    max_px
        Largest displacement magnitude over the image (px).
    smooth_px
        Gaussian smoothing sigma in image pixels (0: none).
    data_dir
        Where the sample data lie (default :data:`SHARED_DATA_DIR`).

    Raises
    ------
    FileNotFoundError
        Naming the path, if a file is absent.
    """
    height, width = shape
    if height < 2 or width < 2:
        raise ValueError(f"shape must be at least 2 x 2, got {shape}")
    vx = _read_band(_shared_file(COLUMBIA_VX, data_dir))
    vy = _read_band(_shared_file(COLUMBIA_VY, data_dir))
    bad = ~(np.isfinite(vx) & np.isfinite(vy))
    if bad.any():
        nearest = tuple(ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True))
        vx, vy = vx[nearest], vy[nearest]
    src_h, src_w = vx.shape
    step = min((src_h - 1) / (height - 1), (src_w - 1) / (width - 1))  # mosaic px per image px
    origin = (0.5 * ((src_h - 1) - (height - 1) * step), 0.5 * ((src_w - 1) - (width - 1) * step))
    if smooth_px > 0:
        vx = ndimage.gaussian_filter(vx, smooth_px * step, mode="nearest")
        vy = ndimage.gaussian_filter(vy, smooth_px * step, mode="nearest")
    coefficients = (ndimage.spline_filter(vy, order=3, mode="nearest"),
                    ndimage.spline_filter(vx, order=3, mode="nearest"))
    raw_vy, raw_vx = _spline_field(coefficients, origin, step, (1.0, 1.0), *pixel_grid(shape))
    k = max_px / float(np.hypot(raw_vy, raw_vx).max())
    return Flow(partial(_spline_field, coefficients, origin, step, (-k, k)),
                f"columbia(shape={tuple(shape)}, max_px={max_px}, smooth_px={smooth_px})")
