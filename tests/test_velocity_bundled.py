"""Velocity from the bundled catalogs' glacier against the simulator's exact truth; CLI, accessor, products."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import cryocube as cc
from cryocube import synthetic as syn
from cryocube.cli import main
from cryocube.validation import difference_stats, velocity_errors
from tests.conftest import REPO


@pytest.fixture(scope="module")
def s2_cube():
    return cc.build_cube(cc.search(REPO / "catalogs" / "greenland-s2" / "catalog.json"), assets=["B08", "detector_footprint"])


def _errors(velocity, reference, secondary):
    x, y = np.meshgrid(velocity.x.values, velocity.y.values)
    vx, vy = syn.pair_velocity(x, y, reference.time.values[0], secondary.time.values[0])
    da = lambda a: xr.DataArray(a, dims=("y", "x"))  # noqa: E731
    return velocity_errors(velocity, da(vx), da(vy), {"glacier": da(syn.glacier_mask(x, y)), "stable": da(syn.stable_mask(x, y))})


@pytest.fixture(scope="module")
def first_pair(s2_cube):
    """The first S2 pair: images, raw velocity, and velocity with the detector jumps removed on stable ground."""
    reference, secondary = cc.select_pair(s2_cube, 0, 1, variable="B08")
    raw = cc.offsets_to_velocity(cc.track_offsets(reference, secondary, search_px=8)).compute()
    x, y = np.meshgrid(raw.x.values, raw.y.values)
    stable = xr.DataArray(syn.stable_mask(x, y), dims=("y", "x"), coords={"y": raw.y, "x": raw.x})
    corrected = cc.correct_detector_offsets(raw, s2_cube.detector_footprint.isel(time=0), stable_mask=stable,
                                            variables=["vx", "vy"]).compute()
    return reference, secondary, raw, corrected, stable


def test_s2_glacier_velocity_against_truth(first_pair):
    """Detector jumps (up to 4 m between two scenes, ~146 m/yr over 10 days) are removed on stable ground first."""
    reference, secondary, raw, velocity, _ = first_pair
    assert raw.attrs["dt_days"] == 10.0 and raw.attrs["reference_sensor"] == "sentinel-2a"
    scenes = syn.s2_scenes()
    jump = syn.s2_detector_jump(scenes[0], scenes[1]) / 10.0 * 365.25  # m/yr, rows: detector number
    estimated = velocity.n_stable.values >= 20
    # measured: within 22 m/yr (0.6 m) of the true jumps (chips straddle footprint edges)
    np.testing.assert_allclose(velocity.vx_detector_offset.values[estimated], jump[estimated, 0], atol=30)
    np.testing.assert_allclose(velocity.vy_detector_offset.values[estimated], jump[estimated, 1], atol=30)
    before, stats = _errors(raw, reference, secondary), _errors(velocity, reference, secondary)
    # measured: stable MAD vx/vy 34.5/48.1 m/yr before, 8.9/8.8 after; glacier RMSE 189 -> 176 m/yr with 76% returned
    assert before["stable"]["vy"]["mad"] > 20
    assert stats["glacier"]["coverage"] > 0.6 and stats["glacier"]["vector"]["rmse"] < 300
    assert abs(stats["glacier"]["vx"]["median"]) < 50 and abs(stats["glacier"]["vy"]["median"]) < 50
    for component in ("vx", "vy"):
        assert stats["stable"]["coverage"] > 0.8 and stats["stable"][component]["mad"] < 10 and abs(stats["stable"][component]["median"]) < 5
    # truth speeds reach 3500+ m/yr: an error of 300 m/yr RMSE is under 10% of it
    assert float(velocity.v.max()) > 3000


def test_calibration_on_stable_ground_reduces_the_bias(first_pair):
    reference, secondary, _, velocity, stable = first_pair
    biased = velocity.assign(vx=velocity.vx + 25.0)
    calibrated = biased.cryo.calibrate_stable(stable)
    assert abs(calibrated.attrs["stable_median_vx_before"] - 25.0) < 5
    assert abs(calibrated.attrs["stable_median_vx_after"]) < 1e-6
    assert abs(_errors(calibrated, reference, secondary)["stable"]["vx"]["median"]) < 5


def test_cli_offsets_writes_velocity_cog_and_quicklook(tmp_path, capsys):
    cube_store = tmp_path / "s2.zarr"
    assert main(["cube", str(REPO / "catalogs" / "greenland-s2" / "catalog.json"), "--assets", "B08", "--ids",
                 "S2A_MSIL2A_20190417T151911_R068_SYN", "S2A_MSIL2A_20190427T151911_R068_SYN", "--out", str(cube_store)]) == 0
    out = tmp_path / "v.zarr"
    args = ["offsets", str(cube_store), "--search", "8", "--out", str(out), "--cog", str(tmp_path / "v.tif"), "--quicklook", str(tmp_path / "v.png")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "32x32 points" in text and "2019-04-17" in text
    stored = xr.open_zarr(out, decode_coords="all")
    assert stored.rio.crs.to_epsg() == 3413 and stored.vx.attrs["units"] == "m/yr"
    import rioxarray

    cog = rioxarray.open_rasterio(tmp_path / "v.tif")
    assert cog.shape == (5, 32, 32)
    np.testing.assert_allclose(cog.values[0], stored.vx.values, equal_nan=True)
    assert (tmp_path / "v.png").stat().st_size > 10_000
    assert main(args) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("which, message", [(99, "out of range"), ("nope", "not an item id")])
def test_select_pair_errors(s2_cube, which, message):
    with pytest.raises(ValueError, match=message):
        cc.select_pair(s2_cube, 0, which)
    with pytest.raises(ValueError, match="variable='hh'"):
        cc.select_pair(s2_cube, 0, 1, variable="hh")


def test_accessor_track_offsets_equals_function(s2_cube):
    a = s2_cube.cryo.track_offsets(0, 1, search_px=8, step_px=16)
    b = cc.track_offsets(*cc.select_pair(s2_cube, 0, 1), search_px=8, step_px=16)
    xr.testing.assert_identical(a.compute(), b.compute())


def test_difference_stats_known_values():
    stats = difference_stats(np.array([1.0, 2.0, 3.0, 10.0, np.nan]))
    assert stats == {"n": 4, "median": 2.5, "mad": 1.0, "rmse": pytest.approx(np.sqrt(114 / 4))}
