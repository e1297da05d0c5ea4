"""Incidence-angle normalization (Chen, Li et al. 2022) against synthetic cubes with a known slope."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import special

import cryocube as cc
from cryocube import synthetic
from cryocube.backscatter_scenes import THETA_REF_DEG, backscatter_scenes
from cryocube.incidence import (
    IncidenceSlopeModel,
    day_of_year,
    fit_incidence_slope,
    normalize_incidence,
    pair_orbits,
)
from cryocube.testing import raise_if_dask_computes

NAMES = ("intercept", "lon", "lat", "elevation", "doy")
DB = 10 / math.log(10)


@pytest.fixture(scope="module")
def noisy():  # Sentinel-1 GRDH speckle: ENL 4.4, 2.19 dB per scene
    return backscatter_scenes()


@pytest.fixture(scope="module")
def clean():  # multilooked speckle: ENL 200, 0.31 dB per scene
    return backscatter_scenes(enl=200.0)


def asc_desc(ds: xr.Dataset, pairs: pd.DataFrame, var: str) -> np.ndarray:
    """``(pair, y, x)`` asc - desc differences (dB, float64)."""
    values = ds[var].values.astype(np.float64)
    return values[pairs["ascending_index"].to_numpy()] - values[pairs["descending_index"].to_numpy()]


def medians(ds: xr.Dataset, pairs: pd.DataFrame, var: str) -> tuple[float, float]:
    """(a) median of asc - desc over all pixels and pairs; (b) median |.| of the per-pixel mean over pairs."""
    diff = asc_desc(ds, pairs, var)
    return float(np.nanmedian(diff)), float(np.nanmedian(np.abs(np.nanmean(diff, axis=0))))


def theoretical_se(scenes, pol: str) -> np.ndarray:
    """1-sigma errors of least squares with the exact speckle variance: sqrt(diag(s^2 (X^T X)^-1))."""
    cube, truth, pairs = scenes.cube, scenes.truth, pair_orbits(scenes.cube)
    dtheta = asc_desc(cube, pairs, "incidence_angle")
    ok = np.isfinite(asc_desc(cube, pairs, pol))
    shape = dtheta.shape
    columns = [np.ones(shape), *(np.broadcast_to(truth[k].values, shape) for k in ("lon", "lat", "elevation")),
               np.broadcast_to(pairs["doy"].to_numpy()[:, None, None], shape)]
    x = np.stack([dtheta[ok] * c[ok] for c in columns], axis=1)
    norm = np.linalg.norm(x, axis=0)
    variance = 2 * DB**2 * special.polygamma(1, scenes.enl)  # var(10 log10 G_asc - 10 log10 G_desc)
    return np.sqrt(variance * np.diag(np.linalg.inv((x / norm).T @ (x / norm)))) / norm


# --------------------------------------------------------------------------- generator
def test_generator_truth_and_noise_free_differences() -> None:
    sc = backscatter_scenes(enl=math.inf, nodata_stripe=False)
    for pol in ("hh", "hv"):
        slope = sc.truth[f"slope_{pol}"]
        assert -0.25 <= float(slope.min()) and float(slope.max()) <= -0.10
        beta = sc.coefficients[pol]
        t = sc.truth
        rebuilt = beta["intercept"] + sum(beta[k] * t[k] for k in ("lon", "lat", "elevation")) + beta["doy"] * t["doy"]
        np.testing.assert_allclose(rebuilt.transpose(*slope.dims), slope, atol=1e-12)
        diff = asc_desc(sc.cube, sc.pairs, pol)
        expected = asc_desc(sc.truth.assign(s=slope * (sc.cube.incidence_angle - THETA_REF_DEG)), sc.pairs, "s")
        np.testing.assert_allclose(diff, expected, atol=2e-3)  # float32 storage + 0.5 day of doy inside a pair
    assert float(sc.truth.lat.min()) < 64 and float(sc.truth.lat.max()) > 68
    assert sc.cube.rio.crs.to_epsg() == 3413


# --------------------------------------------------------------------------- pair_orbits
def test_pair_orbits_finds_the_known_pairs(noisy) -> None:
    pairs = pair_orbits(noisy.cube, variable="hh")
    pd.testing.assert_frame_equal(pairs[["ascending_index", "descending_index"]].reset_index(drop=True), noisy.pairs)
    assert np.allclose(pairs["hours_apart"].to_numpy(), [10 + 34 / 60, 13 + 9 / 60] * 5)
    states = noisy.cube.orbit_state.values
    assert (states[pairs.ascending_index] == "ascending").all() and (states[pairs.descending_index] == "descending").all()
    assert pairs["overlap_fraction"].tolist() == [0.9] + [1.0] * 9
    assert set(pairs.columns) >= {"ascending_time", "descending_time", "doy", "ascending_relative_orbit",
                                  "descending_relative_orbit"}
    unpaired = set(range(noisy.cube.sizes["time"])) - set(pairs.ascending_index) - set(pairs.descending_index)
    assert unpaired == {noisy.cube.sizes["time"] - 1}


def test_pair_orbits_nearest_first_and_time_limit(noisy) -> None:
    t0 = np.datetime64("2021-06-01T00:00", "ns")
    hours = [0, 10, 20, 45]
    cube = noisy.cube.isel(time=slice(0, 4)).assign_coords(
        time=[t0 + np.timedelta64(h, "h") for h in hours],
        orbit_state=("time", ["ascending", "descending", "descending", "ascending"]))
    pairs = pair_orbits(cube, max_hours=24)
    assert pairs[["ascending_index", "descending_index"]].values.tolist() == [[0, 1]]  # not (0, 2): 20 h > 10 h
    pairs = pair_orbits(cube, max_hours=30)
    assert pairs[["ascending_index", "descending_index"]].values.tolist() == [[0, 1], [3, 2]]
    assert pairs["hours_apart"].tolist() == [10.0, 25.0]
    with pytest.raises(ValueError, match=r"max_hours=5: the closest are 10.0 h apart"):
        pair_orbits(cube, max_hours=5)


def test_pair_orbits_errors(noisy) -> None:
    with pytest.raises(ValueError, match="orbit_state"):
        pair_orbits(noisy.cube.drop_vars("orbit_state"))
    ascending = noisy.cube.isel(time=noisy.cube.orbit_state == "ascending")
    with pytest.raises(ValueError, match="0 descending"):
        pair_orbits(ascending)
    with pytest.raises(ValueError, match="max_hours"):
        pair_orbits(noisy.cube, max_hours=0)


# --------------------------------------------------------------------------- fit
@pytest.mark.parametrize("scenes", ["noisy", "clean"])
def test_fit_recovers_coefficients_within_standard_errors(scenes: str, request) -> None:
    sc = request.getfixturevalue(scenes)
    model = fit_incidence_slope(sc.cube, dem=sc.dem)
    assert model.predictors == ("lon", "lat", "elevation", "doy")
    noise_std = math.sqrt(2 * special.polygamma(1, sc.enl)) * DB
    for pol in ("hh", "hv"):
        beta, se = np.array(model.coefficients[pol]), np.array(model.standard_errors[pol])
        truth = np.array([sc.coefficients[pol][k] for k in NAMES])
        assert np.all(np.abs(beta - truth) < 3 * se), (pol, (beta - truth) / se)
        # calibration: the reported errors are those of an efficient estimator (Huber: 95 % of
        # least squares efficiency under Gaussian noise), neither inflated nor too optimistic
        ratio = se / theoretical_se(sc, pol)
        assert np.all((0.85 < ratio) & (ratio < 1.2)), ratio
        d = model.diagnostics[pol]
        assert d["n_pairs"] == 10 and d["n_samples"] == 10 * 2000 - 4 * 50 and d["converged"]
        assert 0.9 < d["residual_std_db"] / noise_std < 1.05
    assert len(model.pairs) == 10 and model.parameters["loss"] == "huber"


def test_fit_is_robust_to_wet_snow_outliers() -> None:
    sc = backscatter_scenes(enl=200.0, wet_pair=3)
    truth = np.array([sc.coefficients["hh"][k] for k in NAMES])

    def z_scores(**kwargs) -> np.ndarray:
        m = fit_incidence_slope(sc.cube, dem=sc.dem, variables=("hh",), **kwargs)
        return (np.array(m.coefficients["hh"]) - truth) / np.array(m.standard_errors["hh"])

    assert np.max(np.abs(z_scores(loss="tukey"))) < 3
    assert np.max(np.abs(z_scores(robust=False))) > 5


def test_model_evaluation_and_summary(clean) -> None:
    model = fit_incidence_slope(clean.cube, dem=clean.dem, predictors=("elevation", "lat"))
    b = model.coefficients["hv"]
    assert model.slope(lat=66.0, elevation=1000.0, variable="hv") == pytest.approx(b[0] + b[1] * 1000 + b[2] * 66)
    slope_map = model.slope_map(clean.cube, variable="hv", dem=clean.dem)
    assert slope_map.dims == ("y", "x") and slope_map.attrs["units"] == "dB/degree"
    np.testing.assert_allclose(slope_map, b[0] + b[1] * clean.truth.elevation + b[2] * clean.truth.lat, rtol=1e-12)
    with pytest.raises(ValueError, match=r"needs \['lat'\]"):
        model.slope(elevation=1000.0)
    with pytest.raises(ValueError, match="'vv' was not fitted"):
        model.slope(lat=66.0, elevation=1000.0, variable="vv")
    text = repr(model)
    assert "elevation" in text and "±" in text and "dB/degree per m" in text and "n_pairs=10" in text
    full = fit_incidence_slope(clean.cube, dem=clean.dem, variables=("hh",))
    assert full.slope_map(clean.cube, dem=clean.dem).dims == ("time", "y", "x")  # doy from the cube's times
    constant = fit_incidence_slope(clean.cube, predictors=(), variables=("hh",))
    assert constant.slope_map(clean.cube).shape == (50, 40)


def test_fit_errors(noisy) -> None:
    cube, dem = noisy.cube, noisy.dem
    with pytest.raises(ValueError, match="'elevation' needs dem"):
        fit_incidence_slope(cube)
    with pytest.raises(ValueError, match="dem is not on the cube's grid"):
        fit_incidence_slope(cube, dem=dem.assign_coords(x=dem.x + 500.0))
    with pytest.raises(ValueError, match="predictors must be"):
        fit_incidence_slope(cube, predictors=("lon", "slope"))
    with pytest.raises(ValueError, match=r"no ascending/descending pair within max_hours=2"):
        fit_incidence_slope(cube, dem=dem, max_hours=2)
    with pytest.raises(ValueError, match=r"\['doy'\] are constant"):
        fit_incidence_slope(cube.isel(time=[0, 1]), dem=dem)
    with pytest.raises(ValueError, match="no CRS"):
        fit_incidence_slope(cube.drop_vars("spatial_ref"), predictors=("lat",))


# --------------------------------------------------------------------------- normalization
def test_normalization_removes_the_asc_desc_difference(noisy, clean) -> None:
    for sc in (noisy, clean):
        model = fit_incidence_slope(sc.cube, dem=sc.dem)
        linear = normalize_incidence(sc.cube, model_or_slope=model, dem=sc.dem, reference_angle_deg=THETA_REF_DEG)
        cos2 = normalize_incidence(sc.cube, method="cosn", reference_angle_deg=THETA_REF_DEG)
        for pol in ("hh", "hv"):
            a_model, b_model = medians(linear, sc.pairs, pol)
            a_cos2, b_cos2 = medians(cos2, sc.pairs, pol)
            a_none, b_none = medians(sc.cube, sc.pairs, pol)
            assert abs(a_model) < 0.02 < 0.05 < abs(a_cos2) < abs(a_none)
            assert b_model < b_cos2 < b_none
            if sc is clean:  # speckle averaged down enough for the per-pixel criterion
                assert b_model < 0.1 < b_cos2


def test_normalization_exact_formulas(noisy) -> None:
    cube = noisy.cube
    theta = cube.incidence_angle.values.astype(np.float64)
    out = normalize_incidence(cube, model_or_slope=-0.15, reference_angle_deg=30.0)
    np.testing.assert_allclose(out.hh, cube.hh.values + 0.15 * (theta - 30.0), rtol=1e-6)
    assert out.hh.dtype == np.float32 and out.hh.attrs["units"] == "dB"
    assert out.hh.attrs["slope_source"] == "scalar -0.15 dB/degree" and out.hh.attrs["reference_angle_deg"] == 30.0
    slope_map = noisy.truth.slope_hh.isel(time=0, drop=True)
    out = normalize_incidence(cube, model_or_slope={"hh": slope_map, "hv": -0.2}, reference_angle_deg=30.0)
    np.testing.assert_allclose(out.hh, cube.hh.values - slope_map.values * (theta - 30.0), rtol=1e-6)
    np.testing.assert_allclose(out.hv, cube.hv.values + 0.2 * (theta - 30.0), rtol=1e-6)
    out = normalize_incidence(cube, method="cosn", n=1.5, reference_angle_deg=30.0)
    expected = cube.hv.values + 15 * np.log10(np.cos(np.radians(30.0)) / np.cos(np.radians(theta)))
    np.testing.assert_allclose(out.hv, expected, rtol=1e-6)
    assert out.hv.attrs["incidence_normalization"] == "cosn" and out.hv.attrs["cosn_exponent"] == 1.5
    scene = normalize_incidence(cube.drop_vars("incidence_angle"), model_or_slope=-0.15, reference_angle_deg=30.0)
    view = cube.view_incidence_angle.values[:, None, None]
    np.testing.assert_allclose(scene.hh, cube.hh.values + 0.15 * (view - 30.0), rtol=1e-6)
    assert scene.hh.attrs["incidence_source"] == "view_incidence_angle"


def test_lazy_and_chunking_invariant(clean) -> None:
    cube, dem = clean.cube, clean.dem
    model = fit_incidence_slope(cube, dem=dem)
    expected = normalize_incidence(cube, model_or_slope=model, dem=dem)
    def chunk(chunks: dict) -> xr.Dataset:  # data variables only: per-scene coords stay numpy, as in build_cube
        return cube.assign({name: cube[name].chunk(chunks) for name in cube.data_vars})

    one = chunk({"time": -1, "y": -1, "x": -1})
    odd = chunk({"time": (4, 9, 8), "y": (7, 11, 13, 19), "x": (3, 17, 20)})
    for chunked in (one, odd):
        with raise_if_dask_computes():
            lazy = normalize_incidence(chunked, model_or_slope=model, dem=dem)
            baseline = normalize_incidence(chunked, method="cosn")
            model.slope_map(chunked, variable="hv", dem=dem)
        for name in ("hh", "hv"):
            assert lazy[name].chunks == chunked[name].chunks == baseline[name].chunks
            np.testing.assert_array_equal(lazy[name].values, expected[name].values)
        with raise_if_dask_computes(max_computes=1):  # the fit reads the data in one pass
            refit = fit_incidence_slope(chunked, dem=dem.chunk({"y": 10}))
        np.testing.assert_allclose(refit.coefficients["hh"], model.coefficients["hh"], rtol=1e-9)


def test_normalization_errors(noisy) -> None:
    cube = noisy.cube
    with pytest.raises(ValueError, match="neither a 'incidence_angle' variable nor a 'view_incidence_angle'"):
        normalize_incidence(cube.drop_vars(["incidence_angle", "view_incidence_angle"]), model_or_slope=-0.1)
    radians = cube.assign(incidence_angle=cube.incidence_angle.assign_attrs(units="radian"))
    with pytest.raises(ValueError, match="'incidence_angle' has units='radian'"):
        normalize_incidence(radians, model_or_slope=-0.1)
    linear = cube.assign(hh=cube.hh.assign_attrs(units="1"))
    with pytest.raises(ValueError, match="'hh' has units='1'; backscatter must be in dB"):
        normalize_incidence(linear, model_or_slope=-0.1)
    with pytest.raises(ValueError, match="needs model_or_slope"):
        normalize_incidence(cube)
    with pytest.raises(ValueError, match="model_or_slope is not on the cube's grid"):
        normalize_incidence(cube, model_or_slope=noisy.dem.isel(x=slice(1, None)) * 0 - 0.1)
    with pytest.raises(ValueError, match="no entry for variable 'hv'"):
        normalize_incidence(cube, model_or_slope={"hh": -0.1})
    with pytest.raises(TypeError, match="model_or_slope must be"):
        normalize_incidence(cube, model_or_slope="cos2")
    with pytest.raises(ValueError, match="method must be"):
        normalize_incidence(cube, method="cos2")
    model = fit_incidence_slope(cube, dem=noisy.dem, variables=("hh",))
    with pytest.raises(ValueError, match="'elevation' needs dem"):
        normalize_incidence(cube, model_or_slope=model, variables=("hh",))
    assert isinstance(model, IncidenceSlopeModel)


# --------------------------------------------------------------------------- bundled catalog
def test_bundled_catalog_slope_matches_truth() -> None:
    cube = cc.build_cube(cc.search("catalogs/greenland-s1/catalog.json"), assets=["hh", "hv", "incidence_angle"])
    truth = synthetic.truth_dataset()
    model = fit_incidence_slope(cube, dem=truth.elevation, predictors=("elevation",))
    pairs = pair_orbits(cube)
    assert len(pairs) == cube.sizes["time"] // 2 and (pairs["hours_apart"] < 11).all()
    for pol in ("hh", "hv"):
        error = model.slope_map(cube, variable=pol, dem=truth.elevation) - truth[f"slope_{pol}"]
        assert float(np.abs(error).max()) < 0.02 and float(np.sqrt((error**2).mean())) < 0.01
    normalized = normalize_incidence(cube, model_or_slope=model, dem=truth.elevation).compute()
    for pol in ("hh", "hv"):
        assert abs(medians(normalized, pairs, pol)[0]) < 0.02 < 0.3 < medians(cube.compute(), pairs, pol)[0]


def test_day_of_year() -> None:
    assert day_of_year(np.datetime64("2021-01-01T12:00")).tolist() == [1.5]
