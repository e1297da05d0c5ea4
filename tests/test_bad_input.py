"""Inventory of bad inputs (issue 8): each gives a clear error naming the culprit, or a documented NaN result.

Never a hang, never a wrong number. Further cases live next to their algorithm's
tests: an item whose CRS the others lack and items in another CRS
(``test_cube.py``), images of mismatched shape or grid (``test_offsets.py``),
corrupt catalogs and bad search parameters (``test_catalog.py``), interrupted and
concurrent Zarr writes (``test_store.py``); this file holds the cross-cutting list.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import cryocube as cc


def _asset_path(item, key: str) -> Path:
    return Path(item.assets[key].get_absolute_href())


def test_truncated_cog_names_the_file(s1_catalog):
    items = s1_catalog(2)
    path = _asset_path(items[1], "hh")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(Exception, match=rf"Error reading .* from '{re.escape(str(path))}'"):
        cc.build_cube(items).hh.compute()


def test_corrupt_cog_names_the_file(s1_catalog):
    items = s1_catalog(2)
    path = _asset_path(items[0], "hv")
    path.write_bytes(b"this is not a GeoTIFF" * 10)
    with pytest.raises(Exception, match=rf"Error opening '{re.escape(str(path))}'.*not recognized as being in a supported"):
        cc.build_cube(items).hv.compute()


def test_asset_url_that_does_not_resolve(s1_catalog):
    items = s1_catalog(2)
    items[1].assets["hh"].href = "https://no-such-host.invalid/S1_01_hh.tif"
    with pytest.raises(Exception, match=r"Error opening 'https://no-such-host\.invalid/S1_01_hh\.tif'.*Could not resolve host"):
        cc.build_cube(items).hh.compute()


@pytest.fixture(scope="module")
def melt_scene():
    from cryocube.melt_scenes import melt_cube

    return melt_cube((24, 24), seed=1)[0]


def _image(values: np.ndarray, crs: str = "EPSG:3413") -> xr.DataArray:
    ny, nx = values.shape
    return xr.DataArray(values.astype(np.float32), dims=("y", "x"),
                        coords={"y": -10.0 * np.arange(ny), "x": 10.0 * np.arange(nx)}).rio.write_crs(crs)


def test_nan_only_scene_gives_unknown_melt_not_dry(melt_scene):
    cube = melt_scene.copy(deep=True)
    cube["hh"][60] = np.nan
    cube["hv"][60] = np.nan
    melt = cc.detect_melt(cube).melt.compute()
    assert (melt[60] == -1).all()  # documented flag: -1 unknown, 0 dry, 1 melt
    assert set(np.unique(melt[59].values)) <= {0, 1}


def test_all_nodata_chips_are_flagged_nodata_not_matched():
    texture = np.random.default_rng(0).random((64, 64))
    offsets = cc.track_offsets(_image(texture), _image(np.full((64, 64), np.nan)), chip_px=16, search_px=4).compute()
    assert (offsets.flag == cc.OffsetFlag.NODATA).all()
    assert np.isnan(offsets.dx).all() and np.isnan(offsets.dy).all()


def test_a_single_date_where_two_are_needed(melt_scene):
    one = melt_scene.isel(time=[0])
    with pytest.raises(ValueError, match=r"no pair: no two scenes .* \(1 scene\(s\)"):
        cc.make_pairs(one, min_days=1, max_days=10)
    with pytest.raises(ValueError, match="no ascending/descending pair within max_hours=24"):
        cc.pair_orbits(one)
    with pytest.raises(ValueError, match="has 2 dates along 'time': select one"):
        cc.track_offsets(melt_scene.hh.isel(time=[0, 1]), melt_scene.hh.isel(time=[0]))


def test_wrong_units_and_out_of_range_parameters():
    image = _image(np.random.default_rng(0).random((64, 64)))
    offsets = cc.track_offsets(image, image, chip_px=16, search_px=4)
    with pytest.raises(ValueError, match="dt_days must be a finite positive number of days, got -5.0"):
        cc.offsets_to_velocity(offsets, dt_days=-5)
    geographic = _image(np.random.default_rng(0).random((64, 64)), crs="EPSG:4326")
    with pytest.raises(ValueError, match="EPSG:4326 in degrees: velocity in m/yr needs a projected CRS in metres"):
        cc.offsets_to_velocity(cc.track_offsets(geographic, geographic, chip_px=16, search_px=4), dt_days=12)
    with pytest.raises(ValueError, match="chip_px must be an integer >= 4"):
        cc.track_offsets(image, image, chip_px=-8)
    with pytest.raises(ValueError, match=r"chip_px \+ 2 \* search_px = 216 px is larger than the scene"):
        cc.track_offsets(image, image, chip_px=16, search_px=100)


def test_wrong_sign_threshold_and_linear_units(melt_scene):
    with pytest.raises(ValueError, match="threshold_db must be negative"):
        cc.detect_melt(melt_scene, threshold_db=3.0)
    linear = melt_scene.assign(hh=(10 ** (melt_scene.hh / 10)).assign_attrs(units="linear"))
    with pytest.raises(ValueError, match="units 'linear'"):
        cc.detect_melt(linear)
