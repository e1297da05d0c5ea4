"""Melt detection: kernels against hand-computed values, synthetic scenes with exact melt truth, laziness, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

import cryocube as cc
from cryocube import melt, melt_kernels, melt_scenes
from cryocube.melt import (DRY, MELT, UNKNOWN, classify_kernel, detect_melt, dry_reference, melt_ratio_kernel,
                           melt_season, multilook_power, nagler_weight, reference_power_kernel, season_kernel)
from cryocube.testing import raise_if_dask_computes

REVISIT_DAYS = 6.0


@pytest.fixture(scope="module")
def scene():
    return melt_scenes.melt_cube()


def interior(mask: np.ndarray, window_px: int) -> np.ndarray:
    """Pixels of ``mask`` whose whole ``window_px`` box lies in the mask (no mixing across zone edges)."""
    return ndimage.binary_erosion(mask, np.ones((window_px, window_px)), border_value=1) if window_px > 1 else mask


# --------------------------------------------------------------------------- kernels
def test_nagler_weight_matches_the_paper():
    theta = np.array([10.0, 20.0, 32.5, 45.0, 50.0, np.nan])
    expected = [1.0, 1.0, 0.75, 0.5, 0.5]
    np.testing.assert_allclose(nagler_weight(theta)[:5], expected, rtol=1e-6)
    assert np.isnan(nagler_weight(theta)[5]) or nagler_weight(theta)[5] in (0.5, 1.0)


def test_reference_is_the_linear_power_mean_per_group():
    power = 10 ** (np.array([-10.0, -20.0, 0.0, np.nan, -3.0], dtype=np.float32).reshape(5, 1) / 10)  # 5 scenes, 1 pixel
    groups = np.array([0, 0, 1, 1, 0])
    is_ref = np.array([True, True, True, True, False])
    ref = reference_power_kernel(power, groups, is_ref, 2)
    np.testing.assert_allclose(ref[:, 0], [(0.1 + 0.01) / 2, 1.0], rtol=1e-6)  # NaN scene skipped
    ratio = melt_ratio_kernel(power, groups=groups, is_reference=is_ref, n_groups=2)
    np.testing.assert_allclose(ratio[4, 0], -3.0 - 10 * np.log10(0.055), rtol=1e-5)
    theta = np.full((5, 1), 32.5, np.float32)  # W = 0.75
    nagler = melt_ratio_kernel(power, power / 10, theta, groups=groups, is_reference=is_ref, n_groups=2)
    np.testing.assert_allclose(nagler, ratio, rtol=1e-5)  # same ratio on both polarizations


def test_multilook_averages_power_and_keeps_nodata():
    image = np.full((5, 5), -10.0, dtype=np.float32)
    image[2, 2] = 0.0
    image[0, 0] = np.nan
    out = multilook_power(np.pad(image, 1, constant_values=np.nan), 3)
    assert out.shape == (5, 5)
    np.testing.assert_allclose(out[2, 2], (8 * 0.1 + 1.0) / 9, rtol=1e-5)
    np.testing.assert_allclose(out[1, 0], (4 * 0.1) / 4, rtol=1e-5)  # edge: 5 valid pixels of the 6 inside the image
    assert np.isnan(out[0, 0])
    full = multilook_power(np.full((4, 4), -10.0, np.float32), 3)  # all valid: the fast path
    np.testing.assert_allclose(full, 0.1, rtol=1e-5)


def test_multilook_bits_do_not_depend_on_nodata_elsewhere():
    """A pixel whose window is all valid gets the same bits with or without NaN elsewhere in the block (both paths)."""
    image = np.random.default_rng(1).normal(-10.0, 2.0, (30, 30)).astype(np.float32)
    with_nan = image.copy()
    with_nan[0, 0] = np.nan
    np.testing.assert_array_equal(multilook_power(with_nan, 3)[2:, 2:], multilook_power(image, 3)[2:, 2:])


@pytest.mark.parametrize("window_px", [1, 3, 5, 7])
def test_multilook_matches_a_brute_force_mean_of_the_finite_pixels(window_px):
    """Each window's mean linear power over its finite pixels (NaN and infinities skipped), NaN at non-finite centres."""
    rng = np.random.default_rng(window_px)
    h = window_px // 2
    padded = rng.normal(-10.0, 3.0, (23 + 2 * h, 31 + 2 * h)).astype(np.float32)
    padded[rng.random(padded.shape) < 0.15] = np.nan
    padded[5:9, 3:12] = np.nan  # a nodata patch
    if window_px > 1:  # a 1-px window is the power itself, infinities included
        padded[12, 20] = np.inf
    power = 10 ** (padded.astype(np.float64) / 10)
    expected = np.full((23, 31), np.nan)
    for y in range(23):
        for x in range(31):
            window = power[y:y + window_px, x:x + window_px]
            if np.isfinite(power[y + h, x + h]):
                expected[y, x] = window[np.isfinite(window)].mean()
    np.testing.assert_allclose(multilook_power(padded, window_px), expected, rtol=2e-6)


def test_nagler_combination_is_the_weighted_ratio_bit_for_bit():
    """The compiled combination equals ``R_co + W (R_cross - R_co)`` with :func:`nagler_weight`, NaN angles included."""
    rng = np.random.default_rng(3)
    log_co, log_cross = rng.normal(0.0, 0.3, (2, 400)).astype(np.float32)
    theta = rng.uniform(10.0, 55.0, 400).astype(np.float32)  # both clipped ends of the ramp and the ramp itself
    theta[:5] = [np.nan, 20.0, 45.0, -np.inf, np.inf]
    r_co, r_cross = log_co * np.float32(10), log_cross * np.float32(10)
    expected = r_co + (r_cross - r_co) * nagler_weight(theta)
    slope, offset = melt._nagler_ramp(melt.NAGLER_THETA1_DEG, melt.NAGLER_THETA2_DEG, melt.NAGLER_K)
    out = melt_kernels.nagler_combination(log_co, log_cross, theta, slope, offset, np.float32(melt.NAGLER_K),
                                          np.empty(400, np.float32))
    np.testing.assert_array_equal(out, expected)
    assert np.isnan(out[0]) and np.isfinite(out[1:]).all()


def test_classify_flags():
    flags = classify_kernel(np.array([-5.0, -3.0, 1.0, np.nan]), -3.0)
    assert flags.tolist() == [MELT, DRY, DRY, UNKNOWN]


def test_season_kernel_by_hand():
    # scenes every 6 days; one isolated false alarm (day 13), an unknown scene inside the melt run
    t = np.array([1.0, 7.0, 13.0, 19.0, 25.0, 31.0, 37.0, 43.0, 49.0])
    f = np.array([DRY, DRY, MELT, DRY, MELT, UNKNOWN, MELT, MELT, DRY], dtype=np.int8)
    onset, end, days, n = season_kernel(f[:, None], t, 1.0, 366.0, 2)
    assert onset[0] == 25.0 and end[0] == 43.0 and n[0] == 8
    # counted scenes 25, 37, 43: [22, 31], [31, 40], [40, 46] -> 24 days (the unknown scene's time is shared)
    assert days[0] == pytest.approx(24.0)
    onset1, _, days1, _ = season_kernel(f[:, None], t, 1.0, 366.0, 1)
    assert onset1[0] == 13.0 and days1[0] == pytest.approx(30.0)
    none = season_kernel(np.full((9, 1), DRY, np.int8), t, 1.0, 366.0, 2)
    assert np.isnan(none[0][0]) and none[2][0] == 0.0
    unknown = season_kernel(np.full((9, 1), UNKNOWN, np.int8), t, 1.0, 366.0, 2)
    assert np.isnan(unknown[2][0]) and unknown[3][0] == 0


# --------------------------------------------------------------------------- synthetic truth
@pytest.mark.parametrize("method", ["threshold", "nagler"])
def test_onset_and_end_within_one_revisit(scene, method):
    cube, truth = scene
    window = 3
    season = melt_season(detect_melt(cube, method=method, window_px=window)).sel(year=2019).compute()
    wet_zone = interior(truth.zone.values == 1, window)
    onset_err = season.melt_onset.values - truth.melt_onset_doy.values
    end_err = season.melt_end.values - truth.melt_end_doy.values
    within = (np.abs(onset_err) <= REVISIT_DAYS) & (np.abs(end_err) <= REVISIT_DAYS)
    assert within[wet_zone].mean() >= 0.95
    # first detection cannot precede the true onset by more than the mixing of the window (onset spans 0.5 day/row)
    assert np.nanmedian(onset_err[wet_zone]) > 0 and np.nanmedian(end_err[wet_zone]) < 0
    duration = truth.melt_end_doy.values - truth.melt_onset_doy.values
    assert np.nanmedian(np.abs(season.melt_days.values - duration)[wet_zone]) < REVISIT_DAYS / 2
    assert np.isnan(season.melt_onset.values[interior(truth.zone.values == 0, window)]).mean() > 0.99


@pytest.mark.parametrize("method", ["threshold", "nagler"])
def test_winter_false_melt_below_one_percent(scene, method):
    cube, truth = scene
    flags = detect_melt(cube, method=method).melt.values
    doy = cube.time.dt.dayofyear.values
    winter = (doy < 120) | (doy > 290)
    assert (flags[winter] == MELT).mean() < 0.01
    assert (flags == UNKNOWN).sum() == 0


def test_bare_ice_responds_weakly(scene):
    """Bare ice brightens in HH while wet: the threshold method does not see it (documented behaviour)."""
    cube, truth = scene
    flags = detect_melt(cube, method="threshold").melt.values
    bare = truth.zone.values == 2
    wet = truth.wet.values
    assert ((flags == MELT) & wet)[:, bare].sum() / wet[:, bare].sum() < 0.1


def test_without_speckle_reduction_single_pixels_are_too_noisy(scene):
    """window_px=1 on ENL 4.4 speckle: >5% winter false melt, which is why the default averages 3x3."""
    cube, _ = scene
    flags = detect_melt(cube, window_px=1).melt.values
    doy = cube.time.dt.dayofyear.values
    assert (flags[(doy < 120) | (doy > 290)] == MELT).mean() > 0.05


def test_per_orbit_reference(scene):
    """Each scene is compared with its own orbit's reference; a shared reference mixes 41/33-degree views."""
    cube, _ = scene
    res = detect_melt(cube)
    doy = cube.time.dt.dayofyear.values
    winter = (doy < 120) | (doy > 290)
    assert abs(float(res.ratio_db.isel(time=np.flatnonzero(winter)).median())) < 0.2
    single = cube.drop_vars(["relative_orbit", "orbit_state"])
    with pytest.warns(UserWarning, match="one dry reference"):
        shared = detect_melt(single, window_px=3)
    west = shared.ratio_db.isel(time=np.flatnonzero(winter), x=slice(0, 4))
    desc = single.time.dt.hour.values[np.flatnonzero(winter)] < 12
    # descending is 8 degrees steeper in the west: -0.12 dB/deg * 8 = ~-1 dB against the pooled mean
    assert float(west.isel(time=np.flatnonzero(desc)).median()) < -0.3


def test_reference_dataset_gives_the_same_answer(scene):
    cube, _ = scene
    ref = dry_reference(cube, variables=("hh", "hv"), window_px=3)
    assert ref.hh.dims == ("relative_orbit", "y", "x") and ref.attrs["reference_scenes"] > 0
    a = detect_melt(cube, method="nagler", reference=ref)
    b = detect_melt(cube, method="nagler")
    xr.testing.assert_equal(a.melt, b.melt)


def test_bundled_catalog_melt_against_simulator():
    """The bundled S1 catalog (April reference, Nagler, 5x5): onset and end within 6 days on >= 90% of ice pixels."""
    from cryocube import synthetic as syn

    cube = cc.build_cube(cc.search("catalogs/greenland-s1/catalog.json"), assets=["hh", "hv", "incidence_angle"])
    res = detect_melt(cube, method="nagler", reference=("2019-04-01", "2019-04-30"), window_px=5)
    season = melt_season(res).sel(year=2019).compute()
    truth = syn.truth_dataset()
    ice = truth.ice_fraction.values > 0.99
    onset_err = season.melt_onset.values - truth.melt_onset_doy.values
    end_err = season.melt_end.values - truth.melt_end_doy.values
    assert ((np.abs(onset_err) <= 6) & (np.abs(end_err) <= 6))[ice].mean() >= 0.9


def test_inputs_are_left_untouched(scene):
    """The kernels reuse scratch buffers in place: never the caller's arrays (numpy-backed cube, with and without halo)."""
    cube, _ = scene
    before = {name: cube[name].values.copy() for name in ("hh", "hv")}
    assert cube.hh.dtype == np.float32  # float32 input is handed to the kernels without a copy
    for window_px in (1, 3):
        detect_melt(cube, method="nagler", window_px=window_px)
        dry_reference(cube, variables=("hh", "hv"), window_px=window_px)
    for name, values in before.items():
        np.testing.assert_array_equal(cube[name].values, values)


@pytest.mark.parametrize("method", ["nagler", "threshold"])
def test_fused_normalization_is_bit_identical_to_normalizing_first(scene, method):
    """detect_melt(model_or_slope=...) equals detect_melt(normalize_incidence(...)) bit for bit: scalar, per-variable,
    slope-map slopes; numpy-backed, and chunked so that the halo strips cross tiles."""
    cube, _ = scene
    cube = cube.isel(time=slice(0, 60))
    rng = np.random.default_rng(3)
    slope_map = xr.full_like(cube.hh.isel(time=0, drop=True), 0.0, dtype=np.float64).copy(
        data=rng.uniform(-0.25, -0.10, (cube.sizes["y"], cube.sizes["x"])))
    for slope in (-0.12, {"hh": -0.12, "hv": -0.20}, slope_map, {"hh": slope_map, "hv": -0.15}):
        for chunks in (None, {"time": -1, "y": 13, "x": 25}):
            c = cube if chunks is None else cube.assign({k: v.chunk(chunks) for k, v in cube.data_vars.items()})
            with raise_if_dask_computes():
                fused = detect_melt(c, method=method, model_or_slope=slope, reference_angle_deg=33.0)
                two_steps = detect_melt(cc.normalize_incidence(c, model_or_slope=slope, reference_angle_deg=33.0),
                                        method=method)
            np.testing.assert_array_equal(fused.ratio_db.values, two_steps.ratio_db.values)
            np.testing.assert_array_equal(fused.melt.values, two_steps.melt.values)
    assert json.loads(fused.attrs["cryocube_parameters"])["incidence_normalization"]["reference_angle_deg"] == 33.0
    # the normalization matters: without it the ratios differ
    assert not np.array_equal(detect_melt(cube, method=method).ratio_db.values, fused.ratio_db.values)
    with pytest.raises(ValueError, match="already normalized"):
        detect_melt(cc.normalize_incidence(cube, model_or_slope=-0.12), method=method, model_or_slope=-0.12)


# --------------------------------------------------------------------------- dask
def test_lazy_and_chunk_independent(scene):
    cube, _ = scene
    expected = melt_season(detect_melt(cube, method="nagler")).compute()
    for chunks in ({"time": 7, "y": 5, "x": 9}, {"time": -1, "y": 40, "x": 64}, {"time": 50, "y": 2, "x": 17}):
        chunked = cube.assign({k: v.chunk(chunks) for k, v in cube.data_vars.items()})  # coords stay numpy, as in open_cube
        with raise_if_dask_computes():
            flags = detect_melt(chunked, method="nagler")
            season = melt_season(flags)
        assert flags.melt.chunks is not None
        xr.testing.assert_identical(season.compute(), expected)


def test_ratio_bits_do_not_depend_on_the_tiles(scene, monkeypatch):
    """Tiles of 13 x 25 px (halo strips crossing tiles; some tiles hold nodata, most do not) give the in-memory
    run's ratio bit for bit (the default tiles cover this small cube whole)."""
    cube, _ = scene
    cube = cube.isel(time=slice(0, 40)).copy(deep=True)
    cube["hh"][:, 3:6, 10:14] = np.nan
    expected = detect_melt(cube, method="nagler").ratio_db.values
    tiles = {"time": -1, "y": 13, "x": 25}
    monkeypatch.setattr("cryocube.melt.temporal_chunks", lambda *args, **kwargs: tiles)
    chunked = cube.assign({k: v.chunk(tiles) for k, v in cube.data_vars.items()})
    np.testing.assert_array_equal(detect_melt(chunked, method="nagler").ratio_db.values, expected)


def test_products_round_trip_through_zarr(scene, tmp_path, monkeypatch):
    """Seasons and flags computed over several tiles (seam chunks between them) write to Zarr and read back."""
    cube, _ = scene
    monkeypatch.setattr("cryocube.melt.temporal_chunks", lambda *args, **kwargs: {"time": -1, "y": 13, "x": 25})
    melt = detect_melt(cube.chunk({"y": 20}))
    assert len(melt.melt.chunks[1]) > 1 and len(set(melt.melt.chunks[1][:-1])) > 1  # tiles and seams
    products = melt_season(melt).merge(melt[["melt"]])
    cc.write_product(products, tmp_path / "season.zarr")
    back = xr.open_zarr(tmp_path / "season.zarr", decode_coords="all").compute()
    xr.testing.assert_allclose(back, products.compute())
    assert back.rio.crs is not None


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": "ratio"}, "method must be one of"),
    ({"threshold_db": 3.0}, "threshold_db must be negative"),
    ({"window_px": 4}, "window_px must be a positive odd"),
    ({"variable": "vv"}, "no variable 'vv'"),
    ({"reference": ("2019-06-01", "2019-05-01")}, "ends"),
])
def test_clear_errors(scene, kwargs, match):
    cube, _ = scene
    with pytest.raises(ValueError, match=match):
        detect_melt(cube, **kwargs)


def test_errors_for_units_incidence_and_flags(scene):
    cube, _ = scene
    with pytest.raises(ValueError, match="no reference scene for relative_orbit=25 in months"):
        detect_melt(cube.sel(time=slice("2019-04-01", None)))
    with pytest.raises(ValueError, match="units 'linear'"):
        detect_melt(cube.assign(hh=cube.hh.assign_attrs(units="linear")))
    with pytest.raises(ValueError, match="incidence angle"):
        detect_melt(cube.drop_vars("incidence_angle"), method="nagler")
    with pytest.raises(ValueError, match="int8"):
        melt_season(detect_melt(cube).melt.astype(float))
    with pytest.raises(ValueError, match="MM-DD"):
        melt_season(detect_melt(cube), year_start="July")


def test_validate_against_a_station_in_the_wet_snow_zone(scene):
    """validate_melt takes detect_melt's output; a station whose daily melt is the truth agrees with the map."""
    cube, truth = scene
    row, col = 20, 32  # wet-snow zone
    onset, end = float(truth.melt_onset_doy[row, col]), float(truth.melt_end_doy[row, col])
    days = xr.DataArray(np.arange(1, 366), dims="time").astype(float)
    station = xr.DataArray(((days >= np.floor(onset) + 1) & (days < np.floor(end))).astype(float).values, dims="time",
                           coords={"time": np.datetime64("2019-01-01") + (np.arange(365)).astype("timedelta64[D]")})
    result = cc.validate_melt(detect_melt(cube, method="nagler"), station, x=float(cube.x[col]), y=float(cube.y[row]))
    assert result.n_used >= 110 and result.accuracy >= 0.95 and result.kappa >= 0.85
    assert result.tp + result.fn == int(station.sel(time=cube.time.dt.floor("D").values).sum())

