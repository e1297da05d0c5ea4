"""Offset-tracking kernel: normalized cross-correlation of chips, on plain numpy arrays.

For every chip centre ``(r, c)`` (pixel indices) the reference chip
``R = reference[r - h : r - h + chip, c - h : c - h + chip]`` (``h = chip // 2``)
is matched against the secondary window of the same chip shifted by every
integer offset ``(u, v)`` with ``|u|, |v| <= search`` around the prior ``(p_r, p_c)``:

    NCC(u, v) = sum (R - mean R)(S_uv - mean S_uv) / (N std(R) std(S_uv))

(OpenCV's ``TM_CCOEFF_NORMED``). On a regular grid, the chips fully valid in
both images are matched together by :func:`cryocube.ncc_kernels.grid_surfaces`,
which computes the products of overlapping chips once (cells of
``gcd(chip, step)`` px): 20-25 us per point against OpenCV's 60-70 us for 32-px
chips, +-12 px, step 8, same surfaces within 6e-8. The other chips (partly
valid, scattered points, coherent matching) get one OpenCV ``matchTemplate``
call each. Everything after the matching is vectorised over all chips of a block:

* integer peak ``(k_r, k_c)``; sub-pixel peak by a 2-D quadratic least-squares fit
  to ``ln NCC`` over the 3 x 3 neighbourhood (a 2-D Gaussian peak with a cross term,
  so that peaks elongated along any direction are not biased), falling back to the
  NCC itself where a value is not positive and to a 3-point fit per axis where the
  2-D fit has no maximum within 1 px. Measured against separable 3-point Gaussian
  fits: RMSE 0.13 -> 0.08-0.10 px on real Landsat texture, pixel-locking bias
  0.026 -> 0.006 px;
* 1-sigma errors from the peak curvature ``rho'' = a - 2 b + c`` (1/px^2):
  ``sigma^2 = (1 - rho) / (rho * n_eff * |rho''|)`` with ``n_eff = N / A_corr``
  the number of independent samples in the chip, ``A_corr = 2 pi / |rho''|`` being
  the area (px^2) of the correlation peak of a Gaussian-shaped texture, plus a
  floor of :data:`SUBPIXEL_FLOOR_PX` in quadrature. This is the Cramér-Rao-type
  bound for intensity correlation (e.g. Rosen et al. 2004) written with the
  measured peak width. Measured calibration (actual RMSE / estimated): 0.5-1.2 on
  sheared synthetic and real textures (Landsat, Sentinel-1 EW), 0.9-1.0 on the
  bundled glacier; conservative (0.15-0.35) for pure translations of smooth
  textures; tests check it stays within a factor of 4;
* ``snr``: the peak over the highest competing peak, a local maximum of the
  surface outside the ``5 x 5`` pixels around the peak, or a value on the edge of
  the searched area there (``>= 1``; low values mean an ambiguous match). The
  flank of a broad or elongated main peak is no competitor: with the plain highest
  value outside the ``5 x 5`` pixels, 1.1 % of the clean chips of the Sentinel-1 EW
  sea-ice scene (streaky texture, every one within 0.11 px of the truth, NCC >= 0.99)
  had ``snr < 1.1`` and were rejected;
* ``valid_fraction``: the smaller of the valid (finite) pixel fractions of the
  reference chip and of the matched secondary chip;
* ``centroid_*``: the chip's centroid tensor ``K`` (:func:`centroid_tensor`): a
  match measures the displacement where the chip's texture information lies,
  ``K : J`` away from the chip centre's in a flow of gradient ``J``;
  :func:`cryocube.offset_filters.recentre_displacements` removes that.

Complex (coherent) correlation: for complex64 (SLC) images the surface is the
magnitude of the complex correlation coefficient, without mean removal (SLC
speckle has zero mean),

    CCC(u, v) = |sum R conj(S_uv)| / sqrt(sum |R|^2 sum |S_uv|^2)

computed with two 2-channel OpenCV ``TM_CCORR`` calls per chip (real and
imaginary parts of ``sum R conj(S)``) and the power of every shifted window from
an integral image. The same peak, sub-pixel, error and quality steps follow.
CCC locks on the speckle phase and beats intensity correlation where coherence
is high (Bamler & Eineder 2005: the Cramér-Rao bounds
``sigma_CCC = sqrt(3 / 2N) sqrt(1 - g^2) / (pi g)`` and
``sigma_ICC = sqrt(3 / 10N) sqrt(2 + 5 g^2 - 7 g^4) / (pi g^2)`` px for ``N``
independent samples, both times ``OSF^1.5``). Nodata pixels are zero in both
chips, which removes them from every sum (no mean to estimate), so no masked
refinement is needed.

Nodata (NaN) is never correlated: chips below ``min_valid_fraction`` are not
matched (flag :attr:`OffsetFlag.NODATA`); partly valid reference chips are matched
with OpenCV's masked NCC (means, variances and products over the chip's valid
pixels only); NaN pixels of secondary windows are replaced by the window's valid
mean to find the integer peak, and where the matched secondary chip (+-1 px)
holds nodata, the 3 x 3 values around the peak are recomputed exactly over the
pixels valid in both chips (hill-climbing to the exact maximum) before the
sub-pixel fit.
"""

from __future__ import annotations

from enum import IntEnum

import cv2
import numpy as np

from cryocube.ncc_kernels import MIN_CELL_PX, cell_px, grid_surfaces, masked_ncc_around

#: Axes of the chip-centroid tensor ``K[a, k, l]`` (see :func:`centroid_tensor`): ``r`` rows, ``c`` columns.
CENTROID_OUTPUTS = tuple(f"centroid_{a}{k}{l}" for a in "rc" for k in "rc" for l in "rc")
#: ``K`` is rounded to ``1 / CENTROID_QUANTUM`` px, so that the summation order of a block's integral
#: images, which depends on where the block starts, cannot change it (results do not depend on chunking).
CENTROID_QUANTUM = 1024
#: Order of the values along the last axis of :func:`match_block`'s result.
OUTPUTS = ("drow", "dcol", "drow_error", "dcol_error", "ncc", "snr", "valid_fraction", "flag", *CENTROID_OUTPUTS)
#: Number of values :func:`match_block` returns per point (last axis).
N_OUTPUTS = len(OUTPUTS)
#: Half size (px) of the zone around the peak excluded when looking for the second peak.
SECOND_PEAK_EXCLUSION_PX = 2
#: ``snr`` below which a second peak on the main peak's flank is replaced by the true competitor (see :func:`_second_peaks`).
FLANK_SEARCH_BELOW_SNR = 2.0
#: Error floor (px) of the 3-point sub-pixel fit itself (its measured systematic error), added in quadrature.
SUBPIXEL_FLOOR_PX = 0.02
#: Below this standard deviation (relative to the block's) a chip is textureless.
MIN_RELATIVE_STD = 1e-3


class OffsetFlag(IntEnum):
    """Why a point was rejected (0: accepted). Stored as ``uint8`` in the ``flag`` variable."""

    OK = 0
    NODATA = 1  #: too few valid pixels in the reference chip or the matched secondary chip
    NO_TEXTURE = 2  #: the reference chip is (nearly) constant: nothing to correlate
    SEARCH_EDGE = 3  #: the correlation peak lies on the edge of the searched (or valid) area
    LOW_NCC = 4  #: peak correlation below ``min_ncc``
    LOW_SNR = 5  #: peak not distinct from the second peak (``snr < min_snr``)
    TOO_FAST = 6  #: displacement larger than the allowed maximum
    INCONSISTENT = 7  #: differs from its neighbours by more than the local tolerance
    IMPRECISE = 8  #: 1-sigma error estimate above ``max_error_px`` (e.g. a partly decorrelated chip)


def _box_sums(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Sums of ``image`` over ``size x size`` boxes with top-left corners ``(rows, cols)`` (a float64 integral image)."""
    if image.dtype == bool:
        image = image.view(np.uint8)
    elif image.dtype not in (np.uint8, np.float32, np.float64):
        image = image.astype(np.float64)
    integral = cv2.integral(np.ascontiguousarray(image), sdepth=cv2.CV_64F)
    return integral[rows + size, cols + size] - integral[rows, cols + size] - integral[rows + size, cols] + integral[rows, cols]


def _refine_masked(ref: np.ndarray, ref_valid: np.ndarray, sec: np.ndarray, sec_valid: np.ndarray, top: np.ndarray,
                   left: np.ndarray, w_top: np.ndarray, w_left: np.ndarray, kr: np.ndarray, kc: np.ndarray,
                   points: np.ndarray, chip: int, size: int, min_overlap: float) -> np.ndarray:
    """Exact masked NCC around the peaks of ``points`` (hill-climbing up to 3 steps); updates ``kr``, ``kc`` in place.

    Used where the matched secondary chip (+-1 px) holds nodata, so that the
    filled surface is not exact there. ``size`` is the surfaces' edge: the climb
    stops at their border (such peaks are then flagged). The block's halo has one
    pixel to spare, so the 3 x 3 around any surface offset lies inside it. Returns
    the ``(len(points), 3, 3)`` values.
    """
    values = np.full((points.size, 3, 3), -np.inf)
    for j, i in enumerate(points):
        t_valid = ref_valid[top[i] : top[i] + chip, left[i] : left[i] + chip]
        t = ref[top[i] : top[i] + chip, left[i] : left[i] + chip].astype(np.float64)
        t = t - t[t_valid].mean()
        for _ in range(3):
            local = masked_ncc_around(t, t_valid, sec, sec_valid, int(w_top[i] + kr[i]), int(w_left[i] + kc[i]), min_overlap)
            best_r, best_c = np.unravel_index(np.argmax(local), (3, 3))
            step_r, step_c = best_r - 1, best_c - 1
            if (step_r, step_c) == (0, 0) or not np.isfinite(local.max()):
                break
            if not (0 <= kr[i] + step_r < size and 0 <= kc[i] + step_c < size):
                break
            kr[i] += step_r
            kc[i] += step_c
        values[j] = local
    return values


def _subpixel(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak offset (px, in [-0.5, 0.5]) and curvature (1/px^2) of 3 samples ``a, b, c`` around a maximum ``b``."""
    positive = (a > 0) & (b > 0) & (c > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        curvature = a - 2 * b + c
        la, lb, lc = (np.log(np.where(positive, v, 1.0)) for v in (a, b, c))
        gauss = (la - lc) / (2 * (la - 2 * lb + lc))
        parabola = (a - c) / (2 * curvature)
    delta = np.where(positive, gauss, parabola)
    delta = np.where(np.isfinite(delta), np.clip(delta, -0.5, 0.5), 0.0)
    return delta, curvature


def match_block(
    reference: np.ndarray,
    secondary: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    prior_rows: np.ndarray,
    prior_cols: np.ndarray,
    search_px: np.ndarray,
    *,
    chip_px: int,
    max_search_px: int,
    min_valid_fraction: float,
    grid_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Match the chips centred on ``(rows, cols)`` of ``reference`` in ``secondary``.

    Parameters
    ----------
    reference, secondary
        2-D float arrays, or complex arrays for coherent matching, of the same shape (NaN = nodata). Every window
        ``[r + p_r - h - s, r + p_r - h + chip + s)`` must lie inside them (the
        caller pads with NaN).
    rows, cols
        1-D int arrays: chip-centre pixel indices (``n`` points).
    prior_rows, prior_cols
        1-D int arrays: prior offsets (px) around which to search.
    search_px
        1-D int array: search radius per point (px), ``<= max_search_px``.
    chip_px
        Chip edge (px).
    max_search_px
        Search radius (px) of the correlation surfaces.
    min_valid_fraction
        Chips with a smaller fraction of valid pixels are not matched.
    grid_shape
        ``(n_rows, n_cols)`` when the points are a regular grid (``rows``, ``cols``
        the ravelled ``meshgrid(..., indexing="ij")`` of evenly spaced rows and
        columns): chips fully valid in both images are then matched by
        :func:`cryocube.ncc_kernels.grid_surfaces`, which shares the products of
        overlapping chips (same surfaces as OpenCV's, several times faster).

    Returns
    -------
    np.ndarray
        ``(n, N_OUTPUTS)`` float32: see :data:`OUTPUTS`. ``drow``/``dcol`` are the
        displacement in px (prior included) from reference to secondary, NaN unless
        ``flag`` is 0 (:class:`OffsetFlag`); errors in px.
    """
    n = rows.size
    out = np.full((n, N_OUTPUTS), np.nan, dtype=np.float32)
    out[:, 7] = OffsetFlag.OK
    if n == 0:
        return out
    h, s, chip = chip_px // 2, max_search_px, chip_px
    coherent = np.iscomplexobj(reference)
    if coherent != np.iscomplexobj(secondary):
        raise TypeError("reference and secondary must both be complex (coherent matching) or both real")
    dtype = np.complex64 if coherent else np.float32
    ref_valid = np.isfinite(reference)
    sec_valid = np.isfinite(secondary)
    ref_filled = np.where(ref_valid, reference, 0).astype(dtype)
    sec_filled = np.where(sec_valid, secondary, 0).astype(dtype)
    top, left = rows - h, cols - h
    n_valid = _box_sums(ref_valid, top, left, chip)
    ref_fraction = n_valid / chip**2
    texture = np.abs(ref_filled) ** 2 if coherent else ref_filled  # power of complex chips
    total = _box_sums(texture, top, left, chip)
    total_sq = _box_sums(texture.astype(np.float64) ** 2, top, left, chip)
    with np.errstate(invalid="ignore", divide="ignore"):
        chip_var = total_sq / n_valid - (total / n_valid) ** 2
    block_std = float(np.std(texture[ref_valid])) if ref_valid.any() else 0.0
    textureless = ~(chip_var > (MIN_RELATIVE_STD * block_std) ** 2)

    w_top, w_left = top + prior_rows - s, left + prior_cols - s
    window_full = _box_sums(sec_valid, w_top, w_left, chip + 2 * s) == (chip + 2 * s) ** 2
    matchable = (ref_fraction >= min_valid_fraction) & ~textureless
    m = np.flatnonzero(matchable)
    out[m, len(OUTPUTS) - len(CENTROID_OUTPUTS):] = centroid_tensor(ref_filled, ref_valid, top[m], left[m], chip).reshape(
        m.size, len(CENTROID_OUTPUTS))
    surfaces = np.empty((n, 2 * s + 1, 2 * s + 1), dtype=np.float32)  # every matchable row is written below
    surfaces[~matchable] = -np.inf
    if coherent:
        _coherent_surfaces(ref_filled, sec_filled, top, left, w_top, w_left, matchable, chip, surfaces)
        _mask_outside_search(surfaces, search_px)
        kr, kc, peak = _integer_peaks(surfaces)
        return _quality(surfaces, kr, kc, peak, _neighbourhoods(surfaces, kr, kc), matchable, textureless, ref_fraction,
                        sec_valid, w_top, w_left, prior_rows, prior_cols, search_px, chip, n_valid, min_valid_fraction, out)
    per_chip = matchable.copy()
    cell = cell_px(chip, _grid_step(rows, cols, grid_shape)) if grid_shape is not None else 0
    if cell >= MIN_CELL_PX:  # chips valid in both images: shared cell products
        shared = (matchable & window_full & (ref_fraction >= 1.0)).reshape(grid_shape)
        as_grid = (a.reshape(grid_shape).astype(np.int64) for a in (top, left, prior_rows, prior_cols))
        tops, lefts, grid_prior_r, grid_prior_c = as_grid
        grid_surfaces(ref_filled, sec_filled, tops[:, 0], lefts[0], grid_prior_r, grid_prior_c, shared, chip, cell, s,
                      surfaces)
        per_chip &= ~shared.ravel()
    # the hot loop: plain Python ints and bools index faster than numpy scalars
    match, ccoeff, window = cv2.matchTemplate, cv2.TM_CCOEFF_NORMED, chip + 2 * s
    for i, t0, l0, wt, wl, full_window, full_chip in zip(
        np.flatnonzero(per_chip).tolist(), *(a[per_chip].tolist() for a in (top, left, w_top, w_left, window_full, ref_fraction >= 1.0))
    ):
        t = ref_filled[t0 : t0 + chip, l0 : l0 + chip]
        w = sec_filled[wt : wt + window, wl : wl + window]
        if not full_window:  # exact where it matters: see _refine_masked
            w = _fill_nan(w, sec_valid[wt : wt + window, wl : wl + window])
        if full_chip:
            match(w, t, ccoeff, result=surfaces[i])
        else:  # OpenCV's masked NCC: statistics over the chip's valid pixels only
            match(w, t, ccoeff, result=surfaces[i], mask=ref_valid[t0 : t0 + chip, l0 : l0 + chip].astype(np.float32))
    _mask_outside_search(surfaces, search_px)
    kr, kc, peak = _integer_peaks(surfaces)
    hood = _neighbourhoods(surfaces, kr, kc)
    # where the matched secondary chip (+-1 px) holds nodata the filled surface is not exact: refine
    near_nodata = matchable & ~window_full
    near_nodata[near_nodata] = _box_sums(sec_valid, (w_top + kr - 1)[near_nodata], (w_left + kc - 1)[near_nodata], chip + 2) < (chip + 2) ** 2
    points = np.flatnonzero(near_nodata)
    if points.size:
        local = _refine_masked(reference, ref_valid, secondary, sec_valid, top, left, w_top, w_left, kr, kc, points,
                               chip, 2 * s + 1, min_valid_fraction * chip**2)
        peak[points] = local[:, 1, 1]
        hood[points] = local
    return _quality(surfaces, kr, kc, peak, hood, matchable, textureless, ref_fraction, sec_valid, w_top, w_left,
                    prior_rows, prior_cols, search_px, chip, n_valid, min_valid_fraction, out)


def _grid_step(rows: np.ndarray, cols: np.ndarray, grid_shape: tuple[int, int]) -> int:
    """Spacing (px) of a regular grid of points (1 for a single point: any cell then divides it)."""
    n_r, n_c = grid_shape
    if n_r > 1:
        return int(rows[n_c] - rows[0])
    return int(cols[1] - cols[0]) if n_c > 1 else 1


def centroid_tensor(image: np.ndarray, valid: np.ndarray, top: np.ndarray, left: np.ndarray, chip: int) -> np.ndarray:
    """Where in its chip a match measures the displacement: the tensor ``K`` (px) of every chip, ``(n, 2, 2, 2)``.

    Matching a chip finds, to first order (the least-squares view of the
    correlation peak), the displacement averaged over the chip with the weights of
    the reference texture's gradients ``g`` (the information on each pixel):
    ``d_match = F^-1 sum_p g g^T d(p)``, ``F = sum_p g g^T``. Where the displacement
    field has the gradient ``J`` (``J[k, l] = dd_k / dx_l``, px/px, axes 0 = row,
    1 = column) around the chip centre ``c``, this is

        d_match[a] - d(c)[a] = sum_kl K[a, k, l] J[k, l],
        K[a, k, l] = sum_b F^-1[a, b] sum_p g_b g_k (p - c)_l      (px).

    ``K`` vanishes where the texture's information is centred in the chip; it
    reaches several px where texture fills one side only (saturated snow, the
    scene edge, nodata). ``g`` are central differences (``Re g conj g`` for
    complex images), zero where a difference touches nodata; the chip of
    ``(top, left)`` is ``chip x chip`` px with centre ``(top + (chip - 1) / 2,
    left + (chip - 1) / 2)``. Chips without information get ``K = 0``. Rounded
    to ``1 / CENTROID_QUANTUM`` px (an error below 1e-3 px times ``|J|``).
    """
    n = top.size
    out = np.zeros((n, 2, 2, 2))
    if n == 0:
        return out
    grads = []
    for axis in (0, 1):
        lo, mid, hi = ([slice(None)] * 2 for _ in range(3))
        lo[axis], mid[axis], hi[axis] = slice(None, -2), slice(1, -1), slice(2, None)
        g = np.zeros(image.shape, dtype=image.dtype)
        np.subtract(image[tuple(hi)], image[tuple(lo)], out=g[tuple(mid)])
        g[tuple(mid)] *= valid[tuple(lo)] & valid[tuple(mid)] & valid[tuple(hi)]
        grads.append(g)  # twice the gradient: scales F and the moments alike
    rows = np.arange(image.shape[0], dtype=np.float64)[:, None]  # float64: exact products, sums precise to ~1e-14 px
    cols = np.arange(image.shape[1], dtype=np.float64)[None, :]
    centre = (top + 0.5 * (chip - 1), left + 0.5 * (chip - 1))
    info = np.empty((n, 2, 2))
    moments = np.empty((n, 2, 2, 2))  # sum g_b g_k (p - c)_l
    for b, k in ((0, 0), (0, 1), (1, 1)):
        weight = np.real(grads[b] * np.conj(grads[k])) if np.iscomplexobj(image) else grads[b] * grads[k]
        total = _box_sums(weight, top, left, chip)
        info[:, b, k] = info[:, k, b] = total
        for l, position in enumerate((rows, cols)):
            moments[:, b, k, l] = moments[:, k, b, l] = _box_sums(weight * position, top, left, chip) - centre[l] * total
    det = info[:, 0, 0] * info[:, 1, 1] - info[:, 0, 1] ** 2
    has_info = det > 1e-12 * (info[:, 0, 0] + info[:, 1, 1]) ** 2
    inverse = np.linalg.inv(np.where(has_info[:, None, None], info, np.eye(2)))
    out[has_info] = np.einsum("nab,nbkl->nakl", inverse, moments)[has_info]
    return np.round(out * CENTROID_QUANTUM) / CENTROID_QUANTUM


def _coherent_surfaces(ref: np.ndarray, sec: np.ndarray, top: np.ndarray, left: np.ndarray, w_top: np.ndarray,
                       w_left: np.ndarray, matchable: np.ndarray, chip: int, surfaces: np.ndarray) -> None:
    """Complex correlation magnitudes (CCC, see the module docstring) of the matchable chips, into ``surfaces``.

    ``ref`` and ``sec`` are complex64 with nodata set to 0.
    """
    size = surfaces.shape[1]
    window = chip + size - 1
    sec2 = np.ascontiguousarray(np.stack([sec.real, sec.imag], axis=-1))
    power = cv2.integral(np.abs(sec).astype(np.float64) ** 2)
    match, ccorr = cv2.matchTemplate, cv2.TM_CCORR
    real = np.empty((size, size), dtype=np.float32)
    imag = np.empty((size, size), dtype=np.float32)
    for i in np.flatnonzero(matchable).tolist():
        t = ref[top[i] : top[i] + chip, left[i] : left[i] + chip]
        wt, wl = int(w_top[i]), int(w_left[i])
        w = sec2[wt : wt + window, wl : wl + window]
        match(w, np.ascontiguousarray(np.stack([t.real, t.imag], axis=-1)), ccorr, result=real)  # Re sum t conj(w)
        match(w, np.ascontiguousarray(np.stack([t.imag, -t.real], axis=-1)), ccorr, result=imag)  # Im sum t conj(w)
        p = power[wt : wt + size + chip, wl : wl + size + chip]
        window_power = p[chip:, chip:] - p[:-chip, chip:] - p[chip:, :-chip] + p[:-chip, :-chip]
        chip_power = float(np.sum(np.abs(t).astype(np.float64) ** 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            surfaces[i] = np.minimum(np.hypot(real, imag) / np.sqrt(chip_power * window_power), 1.0)


def _fill_nan(patch: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A copy of ``patch`` with invalid pixels set to the mean of the valid ones."""
    out = patch.copy()
    out[~valid] = patch[valid].mean() if valid.any() else 0.0
    return out


def _mask_outside_search(surfaces: np.ndarray, search_px: np.ndarray) -> None:
    """Set NaN, and offsets beyond each point's own search radius, to ``-inf`` (in place)."""
    s = surfaces.shape[1] // 2
    offsets = np.abs(np.arange(2 * s + 1) - s)
    smaller = np.flatnonzero(search_px < s)
    if smaller.size:
        radius = search_px[smaller, None, None]
        outside = (offsets[None, :, None] > radius) | (offsets[None, None, :] > radius)
        surfaces[smaller] = np.where(outside, -np.inf, surfaces[smaller])
    surfaces[np.isnan(surfaces)] = -np.inf


def _integer_peaks(surfaces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and value of each surface's maximum."""
    n, size, _ = surfaces.shape
    flat = surfaces.reshape(n, -1)
    k = flat.argmax(axis=1)
    kr, kc = np.divmod(k, size)
    return kr, kc, flat[np.arange(n), k].astype(np.float64)


def _neighbourhoods(surfaces: np.ndarray, kr: np.ndarray, kc: np.ndarray) -> np.ndarray:
    """The ``3 x 3`` values around each peak, ``(n, 3, 3)`` float64; ``-inf`` beyond the surface."""
    n, size, _ = surfaces.shape
    rows = kr[:, None, None] + np.arange(-1, 2)[None, :, None]
    cols = kc[:, None, None] + np.arange(-1, 2)[None, None, :]
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    values = surfaces[np.arange(n)[:, None, None], np.clip(rows, 0, size - 1), np.clip(cols, 0, size - 1)]
    return np.where(inside, values, -np.inf).astype(np.float64)


#: Least-squares fit of ``a + b u + c v + d u^2 + e u v + f v^2`` to a 3 x 3 neighbourhood (u: row, v: column offset).
_U, _V = (g.ravel() for g in np.mgrid[-1:2, -1:2].astype(np.float64))
_QUADRATIC_FIT = np.linalg.pinv(np.column_stack([np.ones(9), _U, _V, _U**2, _U * _V, _V**2]))


def _subpixel_2d(hood: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peak (row, column offsets in px) of ``(n, 3, 3)`` neighbourhoods by a 2-D quadratic fit.

    The fit is made to ``ln(NCC)`` (a 2-D Gaussian peak, which also models peaks
    elongated in any direction: the cross term ``e``) where the 9 values are
    positive, else to the NCC (a paraboloid). The stationary point solves
    ``[2d e; e 2f] [u v]' = -[b c]'``. Points whose fit has no maximum or lands
    farther than 1 px fall back to the separable 3-point fit along each axis.
    """
    positive = np.all(hood > 0, axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(positive[:, None], np.log(np.where(hood > 0, hood, 1.0)).reshape(-1, 9), hood.reshape(-1, 9))
        _, b, c, d, e, f = (values @ _QUADRATIC_FIT.T).T
        det = 4 * d * f - e * e
        u = (-2 * f * b + e * c) / det
        v = (-2 * d * c + e * b) / det
    ok = (det > 0) & (d < 0) & np.isfinite(u) & np.isfinite(v) & (np.abs(u) <= 1) & (np.abs(v) <= 1)
    du, _ = _subpixel(hood[:, 0, 1], hood[:, 1, 1], hood[:, 2, 1])
    dv, _ = _subpixel(hood[:, 1, 0], hood[:, 1, 1], hood[:, 1, 2])
    return np.where(ok, u, du), np.where(ok, v, dv)


def _second_peaks(surfaces: np.ndarray, kr: np.ndarray, kc: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """The competing peak of each surface: its highest local maximum outside the peak's exclusion zone.

    The exclusion zone is the ``5 x 5`` pixels (:data:`SECOND_PEAK_EXCLUSION_PX`)
    around the peak ``(kr, kc)``. A local maximum is at least as high as its 8
    neighbours; values on the edge of the searched area (next to ``-inf`` or the
    surface's border) count too, since a peak may lie beyond it. The highest value
    outside the zone is such a point unless a neighbour inside the zone is higher:
    then it lies on the flank of the main peak (a broad or elongated peak, e.g.
    smooth or streaky texture) and is no competitor, and those surfaces are
    searched for their true competitor where ``peak`` over it is below
    :data:`FLANK_SEARCH_BELOW_SNR` (elsewhere the match is unambiguous either way
    and that value is kept: ``snr`` is then a lower bound, and thresholds up to
    that value decide as with the full search, at a fraction of its cost).
    Returns float64 values (``-inf`` if none).
    """
    n, size, _ = surfaces.shape
    idx = np.arange(n)
    e = SECOND_PEAK_EXCLUSION_PX
    span = np.arange(-e, e + 1)
    zone = (idx[:, None, None], np.clip(kr[:, None] + span, 0, size - 1)[:, :, None],
            np.clip(kc[:, None] + span, 0, size - 1)[:, None, :])
    saved = surfaces[zone]
    surfaces[zone] = -np.inf  # blank the peak's zone in place (no copy of all surfaces), take the max, restore
    flat = surfaces.reshape(n, -1)
    k = flat.argmax(axis=1)
    second = flat[idx, k].astype(np.float64)
    surfaces[zone] = saved
    on_flank = np.zeros(n, dtype=bool)
    qr, qc = np.divmod(k, size)
    for u, v in _NEIGHBOURS:
        r, c = qr + u, qc + v
        inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
        on_flank |= inside & (surfaces[idx, np.clip(r, 0, size - 1), np.clip(c, 0, size - 1)] > second)
    with np.errstate(divide="ignore", invalid="ignore"):
        on_flank &= peak < FLANK_SEARCH_BELOW_SNR * np.maximum(second, 1e-3)
    flank = np.flatnonzero(on_flank)
    if flank.size:
        sub = surfaces[flank]
        padded = np.pad(sub, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
        candidate = np.isfinite(sub)
        local_max = np.ones(sub.shape, dtype=bool)
        at_edge = np.zeros(sub.shape, dtype=bool)
        for u, v in _NEIGHBOURS:
            neighbour = padded[:, 1 + u : 1 + u + size, 1 + v : 1 + v + size]
            at_edge |= neighbour == -np.inf
            local_max &= neighbour <= sub
        offsets = np.arange(size)
        in_zone = ((np.abs(offsets[None, :] - kr[flank, None]) <= e)[:, :, None]
                   & (np.abs(offsets[None, :] - kc[flank, None]) <= e)[:, None, :])
        candidate &= (local_max | at_edge) & ~in_zone
        second[flank] = np.where(candidate, sub, -np.inf).reshape(flank.size, -1).max(axis=1)
    return second


#: The 8 neighbours ``(row, column)`` of a pixel.
_NEIGHBOURS = [(u, v) for u in (-1, 0, 1) for v in (-1, 0, 1) if (u, v) != (0, 0)]


def _quality(
    surfaces: np.ndarray,
    kr: np.ndarray,
    kc: np.ndarray,
    peak: np.ndarray,
    hood: np.ndarray,
    matchable: np.ndarray,
    textureless: np.ndarray,
    ref_fraction: np.ndarray,
    sec_valid: np.ndarray,
    w_top: np.ndarray,
    w_left: np.ndarray,
    prior_rows: np.ndarray,
    prior_cols: np.ndarray,
    search_px: np.ndarray,
    chip: int,
    n_valid: np.ndarray,
    min_valid_fraction: float,
    out: np.ndarray,
) -> np.ndarray:
    """Sub-pixel peaks, errors, snr, valid fraction and flags (see the module docstring)."""
    n, size, _ = surfaces.shape
    s = size // 2
    # the peak must be inside the searched area, with a valid neighbour on every side for the sub-pixel fit
    edge = (np.abs(kr - s) >= search_px) | (np.abs(kc - s) >= search_px) | ~np.all(np.isfinite(hood), axis=(1, 2))
    dr, dc = _subpixel_2d(hood)
    with np.errstate(invalid="ignore"):  # -inf neighbours: flagged as edge above
        curv_r = hood[:, 0, 1] - 2 * hood[:, 1, 1] + hood[:, 2, 1]
        curv_c = hood[:, 1, 0] - 2 * hood[:, 1, 1] + hood[:, 1, 2]

    second = _second_peaks(surfaces, kr, kc, peak)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = peak / np.maximum(second, 1e-3)
        rho = np.clip(peak, 1e-6, 1 - 1e-6)
        n_eff_r = n_valid * np.abs(curv_r) / (2 * np.pi)
        n_eff_c = n_valid * np.abs(curv_c) / (2 * np.pi)
        err_r = np.sqrt((1 - rho) / (rho * np.maximum(n_eff_r, 1.0) * np.abs(curv_r)) + SUBPIXEL_FLOOR_PX**2)
        err_c = np.sqrt((1 - rho) / (rho * np.maximum(n_eff_c, 1.0) * np.abs(curv_c)) + SUBPIXEL_FLOOR_PX**2)

    match_top = w_top + kr
    match_left = w_left + kc
    sec_fraction = np.zeros(n)
    m = np.flatnonzero(matchable)
    if m.size:
        sec_fraction[m] = _box_sums(sec_valid, match_top[m], match_left[m], chip) / chip**2
    valid_fraction = np.where(matchable, np.minimum(ref_fraction, sec_fraction), ref_fraction)

    flag = np.full(n, OffsetFlag.OK, dtype=np.float32)
    flag[edge & matchable] = OffsetFlag.SEARCH_EDGE
    flag[textureless] = OffsetFlag.NO_TEXTURE
    flag[valid_fraction < min_valid_fraction] = OffsetFlag.NODATA
    ok = flag == OffsetFlag.OK
    out[:, 0] = np.where(ok, prior_rows + kr - s + dr, np.nan)
    out[:, 1] = np.where(ok, prior_cols + kc - s + dc, np.nan)
    out[:, 2] = np.where(ok, err_r, np.nan)
    out[:, 3] = np.where(ok, err_c, np.nan)
    out[:, 4] = np.where(matchable, peak, np.nan)
    out[:, 5] = np.where(matchable, snr, np.nan)
    out[:, 6] = valid_fraction
    out[:, 7] = flag
    return out
