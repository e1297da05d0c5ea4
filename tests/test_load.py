"""LeanRioReader (cryocube's stackstac reader) and load_cube."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
from stackstac.rio_reader import AutoParallelRioReader

import cryocube.cube as cube_module
from cryocube import load_cube
from cryocube.cube import build_cube
from cryocube.grid import Grid
from tests.conftest import SMALL_GRID, make_scene, save_catalog, smooth_field


@pytest.fixture
def mixed_items(tmp_path):
    """Float32 with NaN nodata, float32 with -9999 nodata, uint16 with nodata 0 and scale, and a UTM item."""
    x, y = np.meshgrid(SMALL_GRID.x_coords(), SMALL_GRID.y_coords())
    field = smooth_field(x, y)
    field[:5, :7] = np.nan
    sentinel = np.where(np.isnan(field), -9999.0, field).astype("float32")
    dn = (np.nan_to_num(field, nan=0) * -1000).astype("uint16")
    root = tmp_path / "c" / "test-s1"
    items = [
        make_scene(root, "NAN", 0, SMALL_GRID, {"hh": field}),
        make_scene(root, "SENTINEL", 6, SMALL_GRID, {"hh": sentinel}, raster_bands={"hh": {"nodata": -9999.0}}),
        make_scene(root, "UINT16", 12, SMALL_GRID, {"hh": dn}, raster_bands={"hh": {"nodata": 0, "scale": -1e-3}}),
    ]
    utm = Grid.snapped("EPSG:32622", 30.0, rasterio.warp.transform_bounds("EPSG:3413", "EPSG:32622", *SMALL_GRID.bounds))
    ux, uy = np.meshgrid(utm.x_coords(), utm.y_coords())
    items.append(make_scene(root, "UTM", 18, utm, {"hh": (ux / 1e5 + uy / 1e6).astype("float32")}))
    save_catalog(tmp_path / "c", items)
    return items


def _count_parent_reads(monkeypatch) -> list[int]:
    calls = [0]
    parent = AutoParallelRioReader.read

    def counting(self, window, **kwargs):
        calls[0] += 1
        return parent(self, window, **kwargs)

    monkeypatch.setattr(AutoParallelRioReader, "read", counting)
    return calls


def test_lean_reader_equals_stackstac_reader(mixed_items, monkeypatch):
    kwargs = dict(crs="EPSG:3413", resolution=30.0, bounds=SMALL_GRID.bounds)
    lean = build_cube(mixed_items, **kwargs).compute()
    monkeypatch.setattr(cube_module, "LeanRioReader", AutoParallelRioReader)
    stock = build_cube(mixed_items, **kwargs).compute()
    xr.testing.assert_identical(lean, stock)
    assert np.isnan(lean.hh.values[:3, :5, :7]).all() and np.isfinite(lean.hh.values[:3, 5:, 7:]).all()


def test_lean_path_taken_only_where_exact(mixed_items, monkeypatch):
    calls = _count_parent_reads(monkeypatch)
    build_cube(mixed_items[:3]).compute()  # on-grid float32 and uint16: plain reads
    assert calls[0] == 0
    build_cube(mixed_items, crs="EPSG:3413", resolution=30.0, bounds=SMALL_GRID.bounds).compute()
    assert calls[0] == 1  # the UTM item is warped: stackstac's own reader


def test_load_cube_fills_arrays_without_touching_the_input(s1_catalog):
    lazy = build_cube(s1_catalog(3), chunks=(17, 23))
    loaded = load_cube(lazy)
    assert all(isinstance(v.data, np.ndarray) for v in loaded.data_vars.values())
    assert all(v.chunks is not None for v in lazy.data_vars.values())
    xr.testing.assert_identical(loaded, lazy.compute())
    xr.testing.assert_identical(lazy.cryo.load(), loaded)


def test_load_cube_under_distributed_client(s1_catalog):
    from distributed import Client

    lazy = build_cube(s1_catalog(2), chunks=32)
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        loaded = load_cube(lazy)
    assert all(isinstance(v.data, np.ndarray) for v in loaded.data_vars.values())
    xr.testing.assert_identical(loaded, lazy.compute(scheduler="sync"))
