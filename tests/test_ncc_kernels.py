"""Compiled NCC kernels: grid surfaces with shared cell products, exact masked NCC (checked against direct formulas)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from cryocube.ncc_kernels import GROUP_POINTS, cell_px, grid_surfaces, masked_ncc_around, window_statistics

CHIP, SEARCH, STEP = 32, 6, 8


def texture(shape: tuple[int, int], seed: int, offset: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) + offset).astype(np.float32)


def direct_ncc(reference: np.ndarray, secondary: np.ndarray, top: int, left: int, prior: tuple[int, int],
               chip: int = CHIP, search: int = SEARCH) -> np.ndarray:
    """The NCC formula evaluated pixel by pixel in float64 (the truth)."""
    t = reference[top : top + chip, left : left + chip].astype(np.float64)
    t = t - t.mean()
    out = np.empty((2 * search + 1, 2 * search + 1))
    for u in range(2 * search + 1):
        for v in range(2 * search + 1):
            y, x = top + prior[0] + u - search, left + prior[1] + v - search
            w = secondary[y : y + chip, x : x + chip].astype(np.float64)
            w = w - w.mean()
            out[u, v] = (t * w).sum() / np.sqrt((t * t).sum() * (w * w).sum())
    return out


def grid(n_rows: int, n_cols: int, margin: int, step: int = STEP) -> tuple[np.ndarray, np.ndarray]:
    return margin + step * np.arange(n_rows, dtype=np.int64), margin + step * np.arange(n_cols, dtype=np.int64)


def surfaces_of(reference, secondary, tops, lefts, prior_r, prior_c, fast, chip=CHIP, step=STEP, search=SEARCH):
    out = np.full((tops.size * lefts.size, 2 * search + 1, 2 * search + 1), np.nan, dtype=np.float32)
    grid_surfaces(reference, secondary, tops, lefts, prior_r, prior_c, fast, chip, cell_px(chip, step), search, out)
    return out


@pytest.mark.parametrize("offset", [0.0, 50.0])
def test_grid_surfaces_equal_the_ncc_formula_and_opencv(offset):
    """Random priors (one group spread wide enough to be matched point by point): every fast point's surface is the
    direct float64 NCC within 1e-6, and OpenCV's within 1e-5. With a mean 260x the texture's std (offset 50), OpenCV's
    float32 surfaces are off by up to ~4e-3 while these stay within 1e-6."""
    rng = np.random.default_rng(3)
    ref = texture((300, 300), 0, offset)
    sec = np.roll(ref, (2, -3), axis=(0, 1)) + 0.3 * texture((300, 300), 1)
    tops, lefts = grid(24, 28, 40)
    prior_r = rng.integers(-2, 3, (24, 28))
    prior_c = rng.integers(-2, 3, (24, 28))
    prior_r[3, 4] = 25  # spreads its group beyond MAX_GROUP_SPREAD surfaces: point-by-point path
    fast = rng.random((24, 28)) > 0.15
    out = surfaces_of(ref, sec, tops, lefts, prior_r, prior_c, fast)
    assert np.isnan(out[~fast.ravel()]).all()  # other points untouched
    result = np.empty((2 * SEARCH + 1,) * 2, dtype=np.float32)
    opencv_error = 0.0
    for k in np.flatnonzero(fast.ravel())[::7].tolist() + [3 * 28 + 4]:
        i, j = divmod(k, 28)
        truth = direct_ncc(ref, sec, tops[i], lefts[j], (prior_r[i, j], prior_c[i, j]))
        np.testing.assert_allclose(out[k], truth, atol=1e-6)
        y, x = tops[i] + prior_r[i, j] - SEARCH, lefts[j] + prior_c[i, j] - SEARCH
        window = sec[y : y + CHIP + 2 * SEARCH, x : x + CHIP + 2 * SEARCH]
        cv2.matchTemplate(window, ref[tops[i] : tops[i] + CHIP, lefts[j] : lefts[j] + CHIP], cv2.TM_CCOEFF_NORMED, result=result)
        opencv_error = max(opencv_error, np.abs(result - truth).max())
        if offset == 0:
            np.testing.assert_allclose(out[k], result, atol=1e-5)
    if offset:
        assert opencv_error > 1e-4  # the check can tell: OpenCV loses digits to the mean
    assert np.unravel_index(np.argmax(out[5 * 28 + 6]), out.shape[1:]) == (2 - prior_r[5, 6] + SEARCH, -3 - prior_c[5, 6] + SEARCH)


def test_surfaces_do_not_depend_on_the_image_origin_nor_the_group():
    """The same point matched in a crop starting elsewhere (other groups, other group edges) and alone gives
    bit-identical surfaces: results cannot depend on the chunking."""
    ref, sec = texture((420, 420), 5), texture((420, 420), 6)
    sec = (0.7 * np.roll(ref, 1, axis=1) + 0.3 * sec).astype(np.float32)
    n = GROUP_POINTS + 10
    tops, lefts = grid(n, n, 20)
    zeros = np.zeros((n, n), dtype=np.int64)
    whole = surfaces_of(ref, sec, tops, lefts, zeros, zeros, np.ones((n, n), bool)).reshape(n, n, -1)
    for dy, dx, first in ((24, 40, 4), (8, 8, 1), (17, 3, 5)):  # crop origin (px) and first grid point kept
        sub_ref, sub_sec = ref[dy:, dx:], sec[dy:, dx:]
        keep = np.arange(first, n)
        sub_tops, sub_lefts = tops[keep] - dy, lefts[keep] - dx
        m = keep.size
        sub_zeros = np.zeros((m, m), dtype=np.int64)
        part = surfaces_of(sub_ref, sub_sec, sub_tops, sub_lefts, sub_zeros, sub_zeros, np.ones((m, m), bool))
        np.testing.assert_array_equal(part.reshape(m, m, -1), whole[first:, first:])
    alone = surfaces_of(ref, sec, tops[7:8], lefts[9:10], zeros[:1, :1], zeros[:1, :1], np.ones((1, 1), bool))
    np.testing.assert_array_equal(alone[0].ravel(), whole[7, 9])


def test_flat_windows_get_zero_and_other_cells():
    """A flat patch of the secondary gives NCC 0 where a window lies inside it (OpenCV's convention); a 64-px chip
    on a 16-px grid (cells of 16 px) matches the formula too."""
    ref, sec = texture((300, 300), 8), texture((300, 300), 8)
    sec[100:200, 100:200] = 2.5
    tops, lefts = grid(12, 12, 40, step=16)
    zeros = np.zeros((12, 12), dtype=np.int64)
    out = surfaces_of(ref, sec, tops, lefts, zeros, zeros, np.ones((12, 12), bool), chip=64, step=16, search=4)
    k = 4 * 12 + 4  # chip at (104, 104): every window of +-4 px lies inside the flat patch
    assert tops[4] == 104 and np.all(out[k] == 0)
    truth = direct_ncc(ref, sec, tops[1], lefts[2], (0, 0), chip=64, search=4)
    np.testing.assert_allclose(out[1 * 12 + 2], truth, atol=1e-6)


def test_window_statistics_equal_numpy():
    image = texture((90, 80), 9, 3.0)
    mean, inv_std = window_statistics(image, 24, 8)
    windows = np.lib.stride_tricks.sliding_window_view(image.astype(np.float64), (24, 24))
    np.testing.assert_allclose(mean, windows.mean(axis=(2, 3)), rtol=1e-12)
    np.testing.assert_allclose(inv_std, 1 / (windows.std(axis=(2, 3)) * 24), rtol=1e-9)


def test_masked_ncc_around_is_the_ncc_over_pixels_valid_in_both():
    rng = np.random.default_rng(2)
    image = texture((50, 50), 10, 7.0)
    image_valid = rng.random((50, 50)) > 0.2
    image[~image_valid] = np.nan
    template = texture((16, 16), 11).astype(np.float64)
    template_valid = rng.random((16, 16)) > 0.1
    out = masked_ncc_around(template, template_valid, image, image_valid, 12, 15, 100.0)
    for a in range(3):
        for b in range(3):
            window = image[11 + a : 27 + a, 14 + b : 30 + b].astype(np.float64)
            both = template_valid & image_valid[11 + a : 27 + a, 14 + b : 30 + b]
            assert out[a, b] == pytest.approx(np.corrcoef(template[both], window[both])[0, 1], abs=1e-12)
    assert np.all(masked_ncc_around(template, template_valid, image, image_valid, 12, 15, 250.0) == -np.inf)
