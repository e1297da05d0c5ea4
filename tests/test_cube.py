"""build_cube: data model, laziness, stackstac workarounds, odc-stac parity, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
from rasterio.warp import Resampling, reproject

from conftest import SMALL_GRID, make_scene, save_catalog, smooth_field
from cryocube.cube import build_cube
from cryocube.grid import Grid
from cryocube.stac_items import CubeInputError
from cryocube.testing import raise_if_dask_computes


def read_asset(item: pystac.Item, key: str) -> np.ndarray:
    with rasterio.open(item.assets[key].get_absolute_href()) as src:
        return src.read(1)


def test_dims_coords_crs_and_values(s1_catalog):
    items = s1_catalog(3)
    cube = build_cube(items)
    assert set(cube.data_vars) == {"hh", "hv", "incidence_angle"}
    for name in cube.data_vars:
        assert cube[name].dims == ("time", "y", "x")
        assert cube[name].dtype == np.float32
    assert cube.hh.attrs["units"] == "dB" and cube.incidence_angle.attrs["units"] == "degree"
    assert list(cube.item_id.values) == ["S1_00", "S1_01", "S1_02"]
    assert list(cube.orbit_state.values) == ["ascending", "descending", "ascending"]
    assert list(cube.relative_orbit.values) == [90, 90, 90]
    np.testing.assert_array_equal(cube.view_incidence_angle.values, [35.0, 36.0, 37.0])
    assert cube.rio.crs.to_epsg() == 3413
    # xy_coords="center": the rio transform is the COG's own, not shifted by half a pixel.
    assert cube.rio.transform() == SMALL_GRID.transform
    np.testing.assert_array_equal(cube.x.values, SMALL_GRID.x_coords())
    np.testing.assert_array_equal(cube.y.values, SMALL_GRID.y_coords())
    np.testing.assert_array_equal(cube.hh.isel(time=1).values, read_asset(items[1], "hh"))
    assert cube.attrs["cryocube_item_ids"] == ["S1_00", "S1_01", "S1_02"]


def test_building_is_lazy(s1_catalog):
    items = s1_catalog(3)
    with raise_if_dask_computes():
        cube = build_cube(items)
        for name in cube.data_vars:
            assert cube[name].chunks is not None
        _ = cube.hh - cube.hv  # arithmetic stays lazy too


def test_raise_if_dask_computes_can_fail(s1_catalog):
    cube = build_cube(s1_catalog(1))
    with pytest.raises(RuntimeError, match="dask computed"):
        with raise_if_dask_computes():
            cube.hh.values


def test_proj_code_without_proj_epsg(s1_catalog):
    """pystac >= 1.12 writes proj:code only; stackstac alone cannot place such items."""
    items = s1_catalog(1)
    assert "proj:epsg" not in items[0].properties and items[0].properties["proj:code"] == "EPSG:3413"
    import stackstac

    with pytest.raises(ValueError, match="CRS"):
        stackstac.stack([i.to_dict() for i in items], assets=["hh"])
    assert build_cube(items).rio.crs.to_epsg() == 3413


def test_relative_hrefs_resolve_against_item_not_cwd(s1_catalog, tmp_path, monkeypatch):
    items = s1_catalog(1)
    assert items[0].to_dict(transform_hrefs=False)["assets"]["hh"]["href"] == "./hh.tif"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    np.testing.assert_array_equal(build_cube(items).hh.isel(time=0).values, read_asset(items[0], "hh"))


def test_uint16_scale_offset_nodata_to_float32(tmp_path):
    raw = np.arange(SMALL_GRID.shape[0] * SMALL_GRID.shape[1], dtype="uint16").reshape(SMALL_GRID.shape) % 5000
    raw[:3] = 0
    band = {"scale": 1e-4, "offset": -0.1, "nodata": 0, "data_type": "uint16"}
    item = make_scene(tmp_path / "c" / "test-s1", "S2_A", 0, SMALL_GRID, {"B04": raw}, raster_bands={"B04": band})
    save_catalog(tmp_path / "c", [item])
    cube = build_cube([item])
    values = cube.B04.isel(time=0).values
    assert values.dtype == np.float32
    assert np.isnan(values[:3]).all()
    expected = (raw[3:] * 1e-4 - 0.1).astype("float32")
    np.testing.assert_allclose(values[3:], np.where(raw[3:] == 0, np.nan, expected), rtol=1e-6, atol=1e-7, equal_nan=True)
    assert np.isfinite(values[3:]).sum() == (raw[3:] != 0).sum()


def test_odc_loader_gives_identical_output(s1_catalog):
    items = s1_catalog(3)
    a = build_cube(items).compute()
    b = build_cube(items, loader="odc").compute()
    a.attrs.pop("cryocube_parameters")
    b.attrs.pop("cryocube_parameters")
    xr.testing.assert_identical(a, b)


def test_items_in_other_crs_are_reprojected(tmp_path):
    """One item in UTM 22N, one in EPSG:3413: both land on the same 3413 grid with the same field."""
    x, y = np.meshgrid(SMALL_GRID.x_coords(), SMALL_GRID.y_coords())
    field = smooth_field(x, y)
    native = make_scene(tmp_path / "c" / "test-s1", "A", 0, SMALL_GRID, {"hh": field})
    utm = Grid.snapped("EPSG:32622", 30.0, rasterio.warp.transform_bounds("EPSG:3413", "EPSG:32622", *SMALL_GRID.bounds))
    warped = np.full(utm.shape, np.nan, dtype="float32")
    reproject(field, warped, src_transform=SMALL_GRID.transform, src_crs=SMALL_GRID.crs, dst_transform=utm.transform,
              dst_crs=utm.crs, resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan)
    other = make_scene(tmp_path / "c" / "test-s1", "B", 6, utm, {"hh": warped})
    save_catalog(tmp_path / "c", [native, other])
    with pytest.raises(CubeInputError, match="pass resolution="):
        build_cube([native, other], crs="EPSG:3413")
    cube = build_cube([native, other], crs="EPSG:3413", resolution=30.0, bounds=SMALL_GRID.bounds, resampling="bilinear")
    assert cube.rio.transform() == SMALL_GRID.transform
    a, b = cube.hh.values
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_array_equal(a, field)
    assert np.nanmax(np.abs(b[inner] - a[inner])) < 0.1  # dB, two bilinear resamplings of a smooth field
    assert np.isfinite(b[inner]).all()


@pytest.mark.parametrize(
    "assets, problem",
    [(["hh", "B99"], "item 'S1_00' has no asset 'B99'"), ([], "assets= is empty")],
)
def test_bad_asset_names(s1_catalog, assets, problem):
    with pytest.raises(CubeInputError, match=problem):
        build_cube(s1_catalog(1), assets=assets)


def test_non_raster_asset(s1_catalog):
    items = s1_catalog(1)
    items[0].add_asset("annotation", pystac.Asset("./annotation.xml", media_type="application/xml", roles=["metadata"]))
    with pytest.raises(CubeInputError, match="asset 'annotation' of item 'S1_00' is not a raster"):
        build_cube(items, assets=["hh", "annotation"])
    assert "annotation" not in build_cube(items).data_vars  # default picks data assets only


def test_missing_asset_file(s1_catalog):
    items = s1_catalog(2)
    missing = Path(items[1].assets["hv"].get_absolute_href())
    missing.unlink()
    with pytest.raises(CubeInputError, match=rf"asset 'hv' of item 'S1_01': file not found: {missing}"):
        build_cube(items)


def test_item_without_crs(s1_catalog):
    items = s1_catalog(1)
    del items[0].properties["proj:code"]
    with pytest.raises(CubeInputError, match="asset 'hh' of item 'S1_00' has no EPSG CRS"):
        build_cube(items)


def test_no_items():
    with pytest.raises(CubeInputError, match="no items"):
        build_cube([])


def test_unknown_loader(s1_catalog):
    with pytest.raises(ValueError, match="loader must be"):
        build_cube(s1_catalog(1), loader="gdal")
