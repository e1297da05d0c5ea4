"""track_offsets against exact truth: shifts, shear, sign conventions, nodata, priors, chunking, laziness, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from cryocube import smooth_offsets, track_offsets
from cryocube.offset_filters import smooth
from cryocube.offset_filters import consistency_flags
from cryocube.offset_kernel import OffsetFlag
from cryocube.testing import raise_if_dask_computes


def texture(shape: tuple[int, int], seed: int = 0, sigma: float = 1.2) -> np.ndarray:
    """Smooth random texture (float64, unit-ish variance)."""
    rng = np.random.default_rng(seed)
    t = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return t / t.std()


def shift_periodic(image: np.ndarray, drow: float, dcol: float) -> np.ndarray:
    """Content moved by (drow, dcol) px, exactly, with periodic boundaries (Fourier shift)."""
    return np.real(np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(image), (drow, dcol))))


def row_shear(image: np.ndarray, amplitude: float) -> tuple[np.ndarray, callable]:
    """Content moved along columns by d(row) = amplitude sin(2 pi row / n): returns the secondary and d.

    d depends on the row only and moves along columns, so the inverse mapping is exact:
    secondary(r, c) = image(r, c - d(r)) (quintic spline interpolation of a smooth texture).
    """
    n = image.shape[0]

    def d(row):
        return amplitude * np.sin(2 * np.pi * np.asarray(row) / n)

    rows, cols = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float64)
    return ndimage.map_coordinates(image, [rows, cols - d(rows)], order=5, mode="grid-wrap"), d


def image(values: np.ndarray, spacing: float = 10.0, y_up: bool = False) -> xr.DataArray:
    rows, cols = values.shape
    y = (1.0 if y_up else -1.0) * spacing * np.arange(rows) + 5000.0
    return xr.DataArray(values.astype(np.float32), dims=("y", "x"), coords={"y": y, "x": 100.0 + spacing * np.arange(cols)})


def rows_cols(result: xr.Dataset, ref: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Chip-centre positions of the result in (fractional) pixel indices of the reference."""
    sy = float(ref.y[1] - ref.y[0])
    sx = float(ref.x[1] - ref.x[0])
    return (result.y.values - float(ref.y[0])) / sy, (result.x.values - float(ref.x[0])) / sx


def test_uniform_subpixel_shift_and_sign_conventions():
    base = texture((256, 256))
    moved = shift_periodic(base, 2.4, -1.7)  # content moves 2.4 rows down, 1.7 columns left
    for y_up in (False, True):
        ref, sec = image(base, y_up=y_up), image(moved, y_up=y_up)
        r = track_offsets(ref, sec).compute()
        inner = r.isel(y=slice(4, -4), x=slice(4, -4))
        assert (inner.flag == 0).all()
        expected_dy = 2.4 * 10.0 * (1 if y_up else -1)  # rows go down, y goes down unless y_up
        for got, expected in ((inner.dx.values, -17.0), (inner.dy.values, expected_dy)):
            err_px = (got - expected) / 10.0
            assert np.sqrt(np.mean(err_px**2)) < 0.05 and np.abs(err_px).max() < 0.2
        assert inner.dx.attrs["units"] == "m"


def test_shear_accuracy_bias_and_no_pixel_locking():
    """Linear shear from -8 to +8 px across the rows: the truth's fractional parts are uniform."""
    base = texture((1200, 600), seed=1)
    n = base.shape[0]

    def d(row):
        return -8.0 + 16.0 * np.asarray(row, dtype=np.float64) / (n - 1)

    rows, cols = np.mgrid[0:n, 0 : base.shape[1]].astype(np.float64)
    moved = ndimage.map_coordinates(base, [rows, cols - d(rows)], order=5, mode="grid-wrap")
    ref = image(base)
    r = track_offsets(ref, image(moved)).compute()
    rows, cols = rows_cols(r, ref)
    truth = d(rows)[:, None] * np.ones(cols.size)
    ok = (r.flag.values == 0) & (cols[None, :] > 40) & (cols[None, :] < 560) & (rows[:, None] > 20) & (rows[:, None] < n - 20)
    assert ok.sum() > 0.95 * ((cols > 40) & (cols < 560)).sum() * ((rows > 20) & (rows < n - 20)).sum()
    err = r.dx.values[ok] / 10.0 - truth[ok]
    assert np.sqrt(np.mean(err**2)) <= 0.07
    assert abs(err.mean()) <= 0.01
    assert np.sqrt(np.nanmean((r.dy.values[ok] / 10.0) ** 2)) <= 0.07
    # pixel locking: the error must not depend on the fractional part of the truth...
    frac = truth[ok] - np.floor(truth[ok])
    bins = np.floor(frac * 10).astype(int)
    binned_bias = np.array([err[bins == k].mean() for k in range(10)])
    assert np.abs(binned_bias).max() < 0.02, binned_bias
    # ...and the fractional parts of the estimates are flat (chi-square against uniform, 9 dof, p = 0.01)
    est = r.dx.values[ok] / 10.0
    counts, _ = np.histogram(est - np.floor(est), bins=10, range=(0, 1))
    expected = counts.sum() / 10
    assert np.sum((counts - expected) ** 2 / expected) < 21.7, counts


def test_pixel_locking_test_can_fail():
    """The binned-bias check above catches a plain rounding estimator (all locking, no sub-pixel)."""
    truth = np.linspace(-8, 8, 5001)
    err = np.round(truth) - truth
    frac = truth - np.floor(truth)
    bins = np.floor(frac * 10).astype(int)
    assert np.abs([err[bins == k].mean() for k in range(10)]).max() > 0.02


def test_nodata_stripe_and_decorrelated_patch():
    rng = np.random.default_rng(5)
    base = texture((400, 400), seed=2)
    moved, d = row_shear(base, 3.0)
    moved[:, 200:230] = np.nan  # nodata stripe
    yy, xx = np.mgrid[0:400, 0:400]
    patch = (yy - 120) ** 2 + (xx - 100) ** 2 < 50**2
    moved[patch] = rng.standard_normal(patch.sum())  # decorrelated
    ref = image(base)
    r = track_offsets(ref, image(moved)).compute()
    rows, cols = rows_cols(r, ref)
    truth = d(rows)[:, None] * np.ones(cols.size)
    err = np.abs(r.dx.values / 10.0 - truth)
    returned = np.isfinite(r.dx.values)
    assert (err[returned] <= 1.0).all() and (np.abs(r.dy.values[returned]) <= 10.0).all()
    # chips fully inside the scene and away from the stripe and the patch (in the secondary, at the truth)
    bad = ~np.isfinite(moved) | patch
    bad_cover = ndimage.maximum_filter(bad.astype(np.uint8), size=32 + 8) > 0  # chip + |shift| margin
    r_idx = np.clip(np.round(rows).astype(int), 0, 399)
    c_idx = np.clip(np.round(cols).astype(int), 0, 399)
    inside = (rows[:, None] >= 16) & (rows[:, None] <= 383) & (cols[None, :] >= 20) & (cols[None, :] <= 379)
    clean = inside & ~bad_cover[np.ix_(r_idx, c_idx)]
    assert clean.sum() > 500
    assert (returned[clean] & (err[clean] <= 1.0)).mean() >= 0.99
    # the patch and the stripe are rejected with reasons, not returned wrong
    in_patch = patch[np.ix_(r_idx, c_idx)] & ~ndimage.binary_erosion(patch, iterations=1)[np.ix_(r_idx, c_idx)] | ndimage.binary_erosion(patch, iterations=20)[np.ix_(r_idx, c_idx)]
    assert set(np.unique(r.flag.values[in_patch & ~returned])) <= {int(f) for f in OffsetFlag} - {0}


def test_edges_are_kept():
    big = texture((320, 320), seed=3)
    crop = (slice(32, 288), slice(32, 288))  # no wrapped content in the secondary
    ref = image(big[crop])
    r = track_offsets(ref, image(shift_periodic(big, 0.0, 1.5)[crop])).compute()
    ring = np.zeros(r.flag.shape, dtype=bool)
    ring[:2], ring[-2:], ring[:, :2], ring[:, -2:] = True, True, True, True
    accepted = r.flag.values == 0
    assert accepted[ring].mean() > 0.8  # partial chips along the edges are still matched
    np.testing.assert_allclose(r.dx.values[ring & accepted], 15.0, atol=1.0)  # 0.1 px


def test_priors_shift_the_search_window():
    base = texture((300, 300), seed=4)
    moved = shift_periodic(base, 0.0, 30.0)  # 30 px along x, far beyond search_px=6
    ref, sec = image(base), image(moved)
    without = track_offsets(ref, sec, search_px=6).compute()
    assert np.isnan(without.dx.values).mean() > 0.95  # rejected, not wrong
    with_prior = track_offsets(ref, sec, search_px=6, prior_dx=300.0).compute()
    inner = with_prior.isel(y=slice(4, -4), x=slice(6, -6))
    np.testing.assert_allclose(inner.dx.values, 300.0, atol=0.5)
    prior_map = xr.full_like(ref, 300.0)
    from_map = track_offsets(ref, sec, search_px=6, prior_dx=prior_map).compute()
    xr.testing.assert_allclose(from_map[["dx", "dy"]], with_prior[["dx", "dy"]])


def test_search_px_map():
    base = texture((200, 200), seed=6)
    moved = shift_periodic(base, 0.0, 5.0)
    ref = image(base)
    search = xr.full_like(ref, 10.0).where(ref.x < 1100, 3.0)  # too small on the east half
    r = track_offsets(ref, image(moved), search_px=search).compute()
    east, west = r.x.values > 1200, r.x.values < 1000
    assert np.isnan(r.dx.values[:, east]).all()
    assert (r.flag.values[2:-2][:, east] != 0).all()
    np.testing.assert_allclose(r.dx.values[2:-2][:, west][:, 2:], 50.0, atol=0.5)


def test_one_chunk_equals_many_odd_chunks_and_is_lazy():
    base = texture((300, 260), seed=7)
    moved, _ = row_shear(base, 4.0)
    ref, sec = image(base), image(moved)
    one = track_offsets(ref, sec).compute()
    with raise_if_dask_computes():
        lazy = track_offsets(ref.chunk({"y": 37, "x": 61}), sec.chunk({"y": 53, "x": 29}))
    xr.testing.assert_identical(one, lazy.compute())


def test_two_pairs_in_one_graph_keep_their_own_results():
    """Regression: a fixed dask key name made two track_offsets in one graph share (and swap) their results."""
    base = texture((160, 160), seed=3)
    ref = image(base)
    a, b = (track_offsets(ref, image(shift_periodic(base, 0.0, d)), search_px=6) for d in (1.5, -2.5))
    both = xr.concat([a, b], dim="pair").compute()
    np.testing.assert_allclose(np.nanmedian(both.dx.values[0]), 15.0, atol=0.2)  # 10 m pixels
    np.testing.assert_allclose(np.nanmedian(both.dx.values[1]), -25.0, atol=0.2)


def test_quality_layers_and_flags():
    base = texture((200, 200), seed=8)
    moved = shift_periodic(base, 1.0, 1.0)
    base[:60, :60] = 3.0  # textureless corner
    moved[:60, :60] = 3.0
    moved[140:, 140:] = np.nan  # nodata corner
    r = track_offsets(image(base), image(moved)).compute()
    assert r.flag.values[1, 1] == OffsetFlag.NO_TEXTURE
    assert r.flag.values[-2, -2] == OffsetFlag.NODATA
    good = r.flag.values == 0
    assert (r.ncc.values[good] > 0.9).all() and (r.snr.values[good] > 1.1).all()
    assert (r.dx_error.values[good] > 0).all() and (r.dx_error.values[good] < 10.0).all()  # < 1 px
    assert (r.valid_fraction.values[good] >= 0.5).all()
    assert r.flag.attrs["flag_meanings"].split()[OffsetFlag.NO_TEXTURE] == "no_texture"


def test_consistency_filter_rejects_outliers_but_keeps_shear():
    rows, cols = np.mgrid[0:40, 0:40].astype(np.float64)
    shear = 0.5 * rows  # 0.5 px per point: steep but smooth
    flag = np.zeros(shear.shape, dtype=np.uint8)
    kept = consistency_flags(shear, np.zeros_like(shear), flag, tolerance_px=0.3, n_sigma=3.0)
    assert (kept == 0).all()
    spiked = shear.copy()
    spiked[20, 20] += 4.0
    out = consistency_flags(spiked, np.zeros_like(shear), flag, tolerance_px=0.3, n_sigma=3.0)
    assert out[20, 20] == OffsetFlag.INCONSISTENT and (np.delete(out.ravel(), 20 * 40 + 20) == 0).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chip_px": -8}, "chip_px"),
        ({"step_px": 0}, "step_px"),
        ({"search_px": 0}, "search_px"),
        ({"search_px": 200}, "larger than the scene"),
        ({"min_valid_fraction": 0}, "min_valid_fraction"),
        ({"prior_dx": float("nan")}, "prior_dx"),
    ],
)
def test_bad_parameters(kwargs, message):
    ref = image(texture((100, 100)))
    with pytest.raises(ValueError, match=message):
        track_offsets(ref, ref, **kwargs)


def test_bad_inputs():
    ref = image(texture((100, 100)))
    with pytest.raises(ValueError, match="differ in shape"):
        track_offsets(ref, ref.isel(x=slice(0, 90)))
    with pytest.raises(ValueError, match="different 'x' coordinates"):
        track_offsets(ref, ref.assign_coords(x=ref.x + 5))
    cube = xr.concat([ref, ref, ref], dim="time")
    with pytest.raises(ValueError, match="3 dates"):
        track_offsets(cube, ref)
    with pytest.raises(TypeError, match="DataArray"):
        track_offsets(ref.values, ref)


def test_smoothing_median_and_mean():
    values = np.arange(25, dtype=np.float32).reshape(5, 5)
    values[2, 2] = 100.0  # a spike: the median removes it, the mean spreads it
    values[0, 0] = np.nan
    med = smooth(values, size=3, method="median")
    assert med[2, 2] == 13.0 and np.isnan(med[0, 0])
    assert smooth(values, size=3, method="mean")[1, 1] == pytest.approx((1 + 2 + 5 + 6 + 7 + 10 + 11 + 100) / 8)
    base = texture((160, 160), seed=9)
    ref = image(base)
    offsets = track_offsets(ref, image(shift_periodic(base, 0.0, 2.0)))
    one = smooth_offsets(offsets.compute(), size=5).compute()
    lazy = smooth_offsets(offsets.chunk({"y": 7, "x": 9}), size=5).compute()
    xr.testing.assert_identical(one, lazy)
    assert one.attrs["smoothing"] == "median 5x5 points"
    with pytest.raises(ValueError, match="odd"):
        smooth_offsets(offsets, size=4)


def test_error_estimate_tracks_the_actual_error():
    """More noise: larger estimated and actual errors; the estimate is within a factor of 4 of the truth.

    On exact band-limited SAR-like pairs (cryocube.offset_scenes). Measured actual / estimated: 0.28-0.35
    here (a pure translation: conservative), 0.5-1.2 on sheared synthetic and real textures.
    """
    from cryocube import offset_scenes as osc

    flow = osc.uniform_flow(0.3, 1.6)
    ratios, sigmas = [], []
    for noise in (0.05, 0.5):
        reference, secondary, _, _ = osc.texture_pair((300, 300), flow, kind="sar", noise=noise)
        r = track_offsets(image(reference), image(secondary)).compute()
        inner = r.isel(y=slice(4, -4), x=slice(4, -4))
        ok = inner.flag.values == 0
        actual = np.sqrt(np.mean((inner.dx.values[ok] / 10.0 - 1.6) ** 2))
        estimated = np.sqrt(np.mean((inner.dx_error.values[ok] / 10.0) ** 2))
        ratios.append(actual / estimated)
        sigmas.append(estimated)
    assert sigmas[1] > 1.5 * sigmas[0]
    assert all(1 / 4 < ratio < 4 for ratio in ratios), ratios


# --------------------------------------------------------------------------- #
# Coherent (complex) offset tracking
# --------------------------------------------------------------------------- #
def _slc_pair(coherence: float, shift: tuple[float, float] = (1.3, -2.6), seed: int = 1, shape: tuple[int, int] = (256, 256)):
    from cryocube.offset_scenes import complex_speckle_pair

    ref, sec = complex_speckle_pair(shape, shift_px=shift, coherence=coherence, seed=seed)
    coords = {"y": -10.0 * np.arange(shape[0]), "x": 10.0 * np.arange(shape[1])}
    return xr.DataArray(ref, dims=("y", "x"), coords=coords), xr.DataArray(sec, dims=("y", "x"), coords=coords)


def _rmse_px(off: xr.Dataset, shift: tuple[float, float]) -> float:
    # y decreases with row: dy (m) = -10 * drow; x increases: dx = 10 * dcol
    drow, dcol = -off.dy.values / 10.0, off.dx.values / 10.0
    ok = np.isfinite(drow)
    assert ok.mean() > 0.9
    return float(np.sqrt(np.mean((drow[ok] - shift[0]) ** 2 + (dcol[ok] - shift[1]) ** 2)))


def test_complex_mode_beats_intensity_at_high_coherence():
    """CCC vs ICC vs ACC on speckle with known sub-pixel shift (Bamler & Eineder 2005: CCC is the most precise)."""
    ref, sec = _slc_pair(0.95)
    kwargs = dict(chip_px=32, search_px=6, step_px=16, consistency_px=None)
    rmse = {mode: _rmse_px(track_offsets(ref, sec, mode=mode, **kwargs).compute(), (1.3, -2.6)) for mode in ("complex", "intensity", "amplitude")}
    assert rmse["complex"] < 0.06
    assert rmse["complex"] < 0.75 * rmse["intensity"]
    assert rmse["complex"] < 0.75 * rmse["amplitude"]


def test_complex_mode_chunk_independent_and_lazy():
    ref, sec = _slc_pair(0.8, seed=3)
    kwargs = dict(chip_px=16, search_px=4, step_px=8, mode="complex")
    one = track_offsets(ref, sec, **kwargs).compute()
    with raise_if_dask_computes():
        many = track_offsets(ref.chunk({"y": 72, "x": 56}), sec.chunk({"y": 72, "x": 56}), **kwargs)
    xr.testing.assert_identical(one, many.compute())


def test_complex_mode_rejects_real_input_and_prefilter():
    ref, sec = _slc_pair(0.9)
    with pytest.raises(ValueError, match="secondary has dtype float32"):
        track_offsets(ref, abs(sec).astype(np.float32), mode="complex")
    with pytest.raises(ValueError, match="mode must be one of"):
        track_offsets(ref, sec, mode="phase")
    with pytest.raises(ValueError, match="prefilter applies to real images"):
        track_offsets(ref, sec, mode="complex", prefilter="wallis")
