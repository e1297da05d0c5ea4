"""Offset-tracking test scenes: flows, exact texture pairs, warping, damage masks, real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cryocube import offset_scenes as sc
from cryocube.offset_scenes import (
    BandLimitedTexture,
    CosineSum,
    Flow,
    add_nodata_stripe,
    clean_chip_mask,
    columbia_flow,
    decorrelate_patch,
    pixel_grid,
    real_texture,
    shear_flow,
    texture_pair,
    uniform_flow,
    warp_image,
)


def _swirl(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A smooth flow whose inverse needs the iteration (gradient below 0.5 px/px)."""
    dy = 2.5 * np.sin(2 * np.pi * cols / 50.0) + 1.5 * np.cos(2 * np.pi * rows / 70.0)
    dx = 2.0 * np.cos(2 * np.pi * rows / 60.0) * np.sin(2 * np.pi * cols / 45.0) - 1.0
    return dy, dx


SWIRL = Flow(_swirl, "swirl")


def _random_positions(n: int, shape: tuple[int, int], seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, shape[0] - 1, n), rng.uniform(0, shape[1] - 1, n)


def _shared(relative: str) -> pytest.MarkDecorator:
    path = sc.SHARED_DATA_DIR / relative
    return pytest.mark.skipif(not path.is_file(), reason=f"shared sample data absent: {path}")


needs_columbia = _shared(sc.COLUMBIA_VX)


# --------------------------------------------------------------------------- flows
def test_shear_flow_reaches_plus_minus_max_along_its_direction_and_is_smooth() -> None:
    shape, max_px, angle = (96, 160), 8.0, 30.0
    flow = shear_flow(shape, max_px=max_px, angle_deg=angle)
    dy, dx = flow.grid(shape)
    assert dy.shape == dx.shape == shape and dy.dtype == np.float64
    a = math.radians(angle)
    e_r, e_c = -math.sin(a), math.cos(a)  # counter-clockwise from +col as displayed (rows down)
    signed = dy * e_r + dx * e_c
    np.testing.assert_allclose(dy - signed * e_r, 0.0, atol=1e-12)  # parallel to the flow direction
    np.testing.assert_allclose(dx - signed * e_c, 0.0, atol=1e-12)
    assert signed.max() == pytest.approx(max_px, abs=1e-12)
    assert signed.min() == pytest.approx(-max_px, abs=1e-12)
    assert np.hypot(dy, dx).max() == pytest.approx(max_px, abs=1e-12)
    n_half = 0.5 * (shape[0] - 1) * math.cos(a) + 0.5 * (shape[1] - 1) * math.sin(a)
    grad_r, grad_c = np.gradient(signed)
    assert np.hypot(grad_r, grad_c).max() <= math.pi / 2 * max_px / n_half * (1 + 1e-9)
    second = np.abs(np.diff(signed, 2, axis=0)).max() + np.abs(np.diff(signed, 2, axis=1)).max()
    assert second < 0.01  # no kinks
    # the continuous flow agrees with the grids at the pixel centres
    r, c = _random_positions(50, shape)
    ri, ci = np.rint(r).astype(int), np.rint(c).astype(int)
    np.testing.assert_allclose(flow(ri, ci)[0], dy[ri, ci], atol=1e-12)


def test_shear_flow_at_zero_degrees_runs_along_columns_from_minus_to_plus_max_over_rows() -> None:
    dy, dx = shear_flow((21, 30), max_px=5.0, angle_deg=0.0).grid((21, 30))
    np.testing.assert_allclose(dy, 0.0, atol=1e-12)
    np.testing.assert_allclose(dx[0], -5.0)
    np.testing.assert_allclose(dx[-1], 5.0)
    np.testing.assert_allclose(dx[10], 0.0, atol=1e-12)


@pytest.mark.parametrize("flow", [SWIRL, shear_flow((80, 90), max_px=6.0, angle_deg=-70.0)], ids=["swirl", "shear"])
def test_invert_solves_q_plus_d_of_q_equals_p(flow: Flow) -> None:
    q_r, q_c = _random_positions(2000, (80, 90))
    dy, dx = flow(q_r, q_c)
    back_r, back_c = flow.invert(q_r + dy, q_c + dx)
    np.testing.assert_allclose(back_r, q_r, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back_c, q_c, rtol=0, atol=1e-9)


def test_invert_raises_when_the_flow_is_not_a_contraction() -> None:
    expanding = Flow(lambda r, c: (2.0 * r, 0.0 * c), "expanding")
    with pytest.raises(RuntimeError, match="did not converge"):
        expanding.invert(np.array([1.0, 2.0]), np.array([0.0, 0.0]), max_iter=50)


# --------------------------------------------------------------------------- textures
def test_cosine_sum_matches_the_direct_formula_far_from_the_origin() -> None:
    field = CosineSum.random(np.random.default_rng(3), 200, 3.0, 20.0)
    r, c = _random_positions(3000, (5000, 5000))
    direct = field.amplitude * np.cos(2 * np.pi * (np.multiply.outer(r, field.freq_row)
                                                   + np.multiply.outer(c, field.freq_col) + field.phase)).sum(1)
    np.testing.assert_allclose(field(r, c, float64=True), direct, rtol=0, atol=1e-9)
    np.testing.assert_allclose(field(r, c), direct, rtol=0, atol=5e-6)  # float32 cosines
    grid = field(*pixel_grid((128, 128)))
    assert abs(grid.mean()) < 0.1 and 0.85 < grid.std() < 1.15


@pytest.mark.parametrize("kind", ["optical", "sar"])
def test_secondary_at_the_displaced_position_equals_the_reference(kind: str) -> None:
    texture = BandLimitedTexture.random(11, kind=kind)
    q_r, q_c = _random_positions(500, (64, 64), seed=2)
    dy, dx = SWIRL(q_r, q_c)
    # the secondary is T(q(p)); evaluated at p = q + d(q) it must give back T(q)
    secondary = texture(*SWIRL.invert(q_r + dy, q_c + dx), float64=True)
    np.testing.assert_allclose(secondary, texture(q_r, q_c, float64=True), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("kind", ["optical", "sar"])
def test_texture_pair_samples_the_continuous_texture_without_interpolation(kind: str) -> None:
    shape = (48, 56)
    flow = shear_flow(shape, max_px=4.0)
    reference, secondary, dy, dx = texture_pair(shape, flow, seed=5, kind=kind)
    assert reference.dtype == secondary.dtype == np.float32 and reference.shape == secondary.shape == shape
    np.testing.assert_array_equal(np.stack([dy, dx]), np.stack(flow.grid(shape)))
    texture = BandLimitedTexture.random(5, kind=kind)
    rows, cols = pixel_grid(shape)
    # independent route: float64 cosines; for a pure shear the inverse is exactly q = p - d(p)
    scale = float(reference.std())
    np.testing.assert_allclose(reference, texture(rows, cols, float64=True), rtol=0, atol=3e-6 * scale)
    ddy, ddx = flow(rows, cols)
    np.testing.assert_allclose(secondary, texture(rows - ddy, cols - ddx, float64=True), rtol=0, atol=3e-6 * scale)
    assert np.abs(secondary - reference).mean() > 0.1 * scale  # something did move


@pytest.mark.parametrize("kind", ["optical", "sar"])
def test_integer_uniform_flow_shifts_the_reference_exactly(kind: str) -> None:
    reference, secondary, dy, dx = texture_pair((40, 50), uniform_flow(3, -2), seed=1, kind=kind)
    assert np.all(dy == 3.0) and np.all(dx == -2.0)
    # the feature at (r, c) in the reference is at (r + 3, c - 2) in the secondary
    shifted = np.roll(reference, (3, -2), axis=(0, 1))
    np.testing.assert_array_equal(secondary[3:, :-2], shifted[3:, :-2])
    assert not np.array_equal(secondary, reference)


def test_sar_texture_is_a_positive_speckled_intensity_of_mean_one() -> None:
    reference, *_ = texture_pair((128, 128), uniform_flow(0, 0), kind="sar")
    assert reference.min() > 0
    assert reference.mean() == pytest.approx(1.0, abs=0.08)
    assert 0.5 < reference.std() / reference.mean() < 1.2  # 4-look speckle times texture
    optical, *_ = texture_pair((128, 128), uniform_flow(0, 0), kind="optical")
    assert abs(float(np.corrcoef(optical.ravel(), np.log(reference).ravel())[0, 1])) > 0.3  # same base field


def test_texture_pair_noise_is_independent_and_relative_to_the_texture_std() -> None:
    flow = uniform_flow(0, 0)
    clean, _, _, _ = texture_pair((96, 96), flow, seed=4)
    reference, secondary, _, _ = texture_pair((96, 96), flow, seed=4, noise=0.2)
    noise_ref, noise_sec = reference - clean, secondary - clean
    assert noise_ref.std() == pytest.approx(0.2 * clean.std(), rel=0.05)
    assert noise_sec.std() == pytest.approx(0.2 * clean.std(), rel=0.05)
    assert abs(np.corrcoef(noise_ref.ravel(), noise_sec.ravel())[0, 1]) < 0.05


# --------------------------------------------------------------------------- warping real images
def _analytic(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return (np.cos(2 * np.pi * (rows / 17.0 + cols / 23.0)) + 0.5 * np.sin(2 * np.pi * (cols / 11.0 - rows / 29.0))
            + 0.3 * np.cos(2 * np.pi * rows / 9.0 + 1.0) + 10.0)


@pytest.mark.parametrize("flow", [SWIRL, shear_flow((96, 128), max_px=4.0)], ids=["swirl", "shear"])
def test_warp_image_matches_the_analytic_warp_in_the_interior(flow: Flow) -> None:
    shape = (96, 128)
    rows, cols = pixel_grid(shape)
    warped = warp_image(_analytic(rows, cols), flow)
    expected = _analytic(*flow.invert(rows, cols))
    interior = (slice(12, -12), slice(12, -12))
    assert np.isfinite(warped[interior]).all()
    error = np.abs(warped[interior] - expected[interior]).max() / np.ptp(expected)
    assert error < 1e-3


def test_warp_image_shifts_by_an_integer_flow_exactly_and_is_nan_outside() -> None:
    image = _analytic(*pixel_grid((40, 50)))
    warped = warp_image(image, uniform_flow(3, -2))
    rows, cols = pixel_grid(image.shape)
    np.testing.assert_array_equal(np.isnan(warped), (rows < 3) | (cols > 50 - 1 - 2))
    shifted = np.roll(image, (3, -2), axis=(0, 1))
    np.testing.assert_allclose(warped[3:, :-2], shifted[3:, :-2], rtol=1e-6)


def test_warp_image_spreads_nodata_only_over_the_spline_footprint() -> None:
    image, stripe = add_nodata_stripe(_analytic(*pixel_grid((40, 60))), col_start=30, width=4)
    warped = warp_image(image, uniform_flow(0, 1.5))
    source_col = np.arange(60) - 1.5  # q = p - d
    # NaN: q off the image, or less than order // 2 + 1 = 3 px from the stripe (cols 30-33)
    expected = (source_col < 0) | ((source_col > 30 - 3) & (source_col < 33 + 3))
    np.testing.assert_array_equal(np.isnan(warped), np.broadcast_to(expected, warped.shape))
    assert np.flatnonzero(expected).tolist() == [0, 1, *range(29, 38)]
    rows, q_cols = np.broadcast_arrays(pixel_grid(image.shape)[0], source_col)
    error = np.abs(warped - _analytic(rows, q_cols)).max(axis=0) / np.ptp(image[np.isfinite(image)])
    interior = ~expected & (np.arange(60) >= 12) & (np.arange(60) < 48)  # away from the image border
    assert error[interior].max() < 5e-3  # the filled stripe leaks in only a little ...
    assert error[interior & ((source_col < 30 - 8) | (source_col > 33 + 8))].max() < 2e-4  # ... and decays


# --------------------------------------------------------------------------- damage
def test_add_nodata_stripe_sets_full_height_columns_to_nan() -> None:
    image = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    out, mask = add_nodata_stripe(image, col_start=10, width=5)
    assert out.dtype == np.float32 and image.dtype == np.uint8  # a new array
    expected = np.zeros((20, 30), bool)
    expected[:, 10:15] = True
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(np.isnan(out), expected)
    np.testing.assert_array_equal(out[~mask], image[~mask])


def test_decorrelate_patch_replaces_a_disc_with_independent_noise_of_the_same_statistics() -> None:
    reference, *_ = texture_pair((80, 80), uniform_flow(0, 0), seed=9)
    reference = 5.0 + 2.0 * reference
    out, mask = decorrelate_patch(reference, center=(40.0, 30.0), radius=12.0, seed=3)
    rows, cols = pixel_grid(reference.shape)
    np.testing.assert_array_equal(mask, (rows - 40) ** 2 + (cols - 30) ** 2 <= 144)
    np.testing.assert_array_equal(out[~mask], reference[~mask])
    old, new = reference[mask], out[mask]
    assert new.mean() == pytest.approx(old.mean(), abs=0.2 * float(old.std()))
    assert new.std() == pytest.approx(float(old.std()), rel=0.15)
    assert abs(np.corrcoef(old, new)[0, 1]) < 0.15
    assert np.isfinite(reference).all()  # input untouched


@pytest.mark.parametrize(("chip", "margin"), [(7, 0), (8, 0), (8, 3)])
def test_clean_chip_mask_matches_a_brute_force_window_check(chip: int, margin: int) -> None:
    affected = np.random.default_rng(0).random((30, 41)) < 0.01
    clean = clean_chip_mask(affected, chip, margin_px=margin)
    h = chip // 2
    for r in range(30):
        for c in range(41):
            top, left, size = r - h - margin, c - h - margin, chip + 2 * margin
            inside = top >= 0 and left >= 0 and top + size <= 30 and left + size <= 41
            expected = inside and not affected[max(top, 0):top + size, max(left, 0):left + size].any()
            assert clean[r, c] == expected, (r, c)


def test_clean_chip_mask_with_a_stripe_and_a_patch() -> None:
    image = np.zeros((64, 64), np.float32)
    image, stripe = add_nodata_stripe(image, col_start=30, width=4)
    image, patch = decorrelate_patch(image, center=(10, 10), radius=3, seed=0)
    clean = clean_chip_mask(stripe | patch, 9)
    assert not clean[:, 26:38].any() and clean[40:56, 5:25].all() and clean[30, 45]
    assert not clean[10, 10] and not clean[10, 15]


# --------------------------------------------------------------------------- real data
def test_real_texture_and_columbia_flow_name_the_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        real_texture("s1_ew", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="crop_ALA_G0120_0000_vx.tif"):
        columbia_flow((32, 32), data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown texture"):
        real_texture("nope")


@pytest.mark.parametrize(("name", "full_shape", "min_std"), [
    pytest.param("khumbu_landsat", (655, 800), 20.0, marks=_shared(sc.REAL_TEXTURES["khumbu_landsat"])),
    pytest.param("s1_ew", (701, 1135), 0.5, marks=_shared(sc.REAL_TEXTURES["s1_ew"])),
])
def test_real_textures_load_finite_with_texture(name: str, full_shape: tuple[int, int], min_std: float) -> None:
    full = real_texture(name)
    assert full.shape == full_shape and full.dtype == np.float32
    crop = real_texture(name, (256, 200))
    assert crop.shape == (256, 200) and np.isfinite(crop).all() and crop.std() > min_std
    top, left = full_shape[0] // 2 - 128, full_shape[1] // 2 - 100
    np.testing.assert_array_equal(crop, full[top:top + 256, left:left + 200])
    np.testing.assert_array_equal(real_texture(name, (10, 10), center=(5, 5)), full[:10, :10])
    with pytest.raises(ValueError, match="does not fit"):
        real_texture(name, (full_shape[0] + 1, 10))
    if name == "s1_ew":
        assert -25.0 < crop.min() and crop.max() < 0.0  # sigma0 in dB


@needs_columbia
def test_columbia_flow_is_the_scaled_itslive_field_with_rows_pointing_south() -> None:
    import rasterio

    with rasterio.open(sc.SHARED_DATA_DIR / sc.COLUMBIA_VX) as ds:
        vx = ds.read(1).astype(float)
    with rasterio.open(sc.SHARED_DATA_DIR / sc.COLUMBIA_VY) as ds:
        vy = ds.read(1).astype(float)
    valid = (vx != -32767) & (vy != -32767)
    # On the mosaic's own grid, unsmoothed, the cubic spline interpolates the nodes exactly.
    flow = columbia_flow(vx.shape, max_px=5.0, smooth_px=0.0)
    dy, dx = flow.grid(vx.shape)
    k = 5.0 / np.hypot(vx[valid], vy[valid]).max()
    np.testing.assert_allclose(dy[valid], -k * vy[valid], rtol=0, atol=1e-9)
    np.testing.assert_allclose(dx[valid], k * vx[valid], rtol=0, atol=1e-9)
    # Smoothed (default), on another grid: largest speed exactly max_px, same directions on the fast ice.
    shape = (256, 250)
    smooth = columbia_flow(shape, max_px=8.0)
    sdy, sdx = smooth.grid(shape)
    assert np.hypot(sdy, sdx).max() == pytest.approx(8.0, abs=1e-12)
    r, c = np.nonzero(np.hypot(sdy, sdx) > 4.0)
    step = min((vx.shape[0] - 1) / (shape[0] - 1), (vx.shape[1] - 1) / (shape[1] - 1))
    src_r = np.rint((vx.shape[0] - 1 - (shape[0] - 1) * step) / 2 + r * step).astype(int)
    src_c = np.rint((vx.shape[1] - 1 - (shape[1] - 1) * step) / 2 + c * step).astype(int)
    raw_vy, raw_vx = vy[src_r, src_c], vx[src_r, src_c]
    along_rows = np.abs(raw_vy) > 0.5 * np.hypot(raw_vx, raw_vy)  # clearly north- or southward
    along_cols = np.abs(raw_vx) > 0.5 * np.hypot(raw_vx, raw_vy)
    assert along_rows.sum() > 20 and along_cols.sum() > 20
    assert np.mean(np.sign(sdy[r, c][along_rows]) == -np.sign(raw_vy[along_rows])) > 0.95
    assert np.mean(np.sign(sdx[r, c][along_cols]) == np.sign(raw_vx[along_cols])) > 0.95
    assert np.corrcoef(sdy[r, c], -raw_vy)[0, 1] > 0.9 and np.corrcoef(sdx[r, c], raw_vx)[0, 1] > 0.9


def test_texture_pair_secondary_is_the_texture_at_the_iterated_inverse() -> None:
    shape = (40, 44)
    reference, secondary, dy, dx = texture_pair(shape, SWIRL, seed=8)
    rows, cols = pixel_grid(shape)
    q_r, q_c = SWIRL.invert(rows, cols)
    fy, fx = SWIRL(q_r, q_c)
    np.testing.assert_allclose(q_r + fy, rows, atol=1e-9)
    np.testing.assert_allclose(q_c + fx, cols, atol=1e-9)
    texture = BandLimitedTexture.random(8)
    np.testing.assert_allclose(secondary, texture(q_r, q_c, float64=True), rtol=0, atol=3e-6)
    one_step = texture(rows - dy, cols - dx, float64=True)  # q0 = p - d(p) alone is not the answer
    assert np.abs(secondary - one_step).max() > 0.1


@needs_columbia
def test_columbia_texture_pair_is_exact_through_the_iterated_inverse() -> None:
    shape = (96, 96)
    flow = columbia_flow(shape, max_px=6.0)
    reference, secondary, dy, dx = texture_pair(shape, flow, seed=2)
    texture = BandLimitedTexture.random(2)
    q_r, q_c = _random_positions(400, shape, seed=5)
    fy, fx = flow(q_r, q_c)
    assert np.hypot(fy, fx).max() > 1.0
    np.testing.assert_allclose(texture(*flow.invert(q_r + fy, q_c + fx), float64=True),
                               texture(q_r, q_c, float64=True), rtol=0, atol=1e-8)
    assert np.hypot(dy, dx).max() == pytest.approx(6.0, abs=1e-12)
