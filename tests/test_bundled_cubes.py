"""The bundled catalogs through the whole chain: search -> build_cube -> write_cube -> open_cube.

Values are checked against the simulator's truth in :mod:`cryocube.synthetic`,
not against cryocube's own output.
"""

from __future__ import annotations

import numpy as np
import pytest

import cryocube as cc
from cryocube import synthetic as syn
from cryocube.testing import raise_if_dask_computes
from tests.conftest import REPO

S1_CATALOG = REPO / "catalogs" / "greenland-s1" / "catalog.json"
S2_CATALOG = REPO / "catalogs" / "greenland-s2" / "catalog.json"


@pytest.fixture(scope="module")
def s1_cube():
    with raise_if_dask_computes():
        return cc.build_cube(cc.search(S1_CATALOG), assets=["hh", "hv", "incidence_angle"])


def test_s1_cube_grid_times_and_scene_coords(s1_cube):
    acquisitions = syn.s1_acquisitions()
    assert dict(s1_cube.sizes) == {"time": len(acquisitions), "y": 128, "x": 128}
    assert s1_cube.rio.crs.to_epsg() == 3413
    np.testing.assert_allclose(s1_cube.x.values, syn.S1_GRID.x_coords())
    np.testing.assert_allclose(s1_cube.y.values, syn.S1_GRID.y_coords())
    expected_times = np.array([a.datetime.replace(tzinfo=None) for a in acquisitions], dtype="datetime64[ns]")
    np.testing.assert_array_equal(s1_cube.time.values, expected_times)
    assert list(s1_cube.orbit_state.values) == [a.track.orbit_state for a in acquisitions]
    assert list(s1_cube.relative_orbit.values) == [a.track.relative_orbit for a in acquisitions]
    assert list(s1_cube.platform.values) == [a.platform for a in acquisitions]
    assert list(s1_cube.item_id.values) == [a.item_id for a in acquisitions]
    assert {"ascending", "descending"} == set(s1_cube.orbit_state.values)
    assert s1_cube.hh.attrs["units"] == "dB"


def test_s1_values_and_incidence_angle_equal_the_simulator(s1_cube):
    x, y = syn.grid_xy(syn.S1_GRID)
    for k in (0, 1, 40):  # descending, ascending, a melt-season scene
        acquisition = syn.s1_acquisitions()[k]
        scene = s1_cube.isel(time=k).compute()
        np.testing.assert_array_equal(scene.hh.values, syn.s1_sigma0_db(syn.S1_GRID, acquisition, "hh"))
        np.testing.assert_array_equal(scene.hv.values, syn.s1_sigma0_db(syn.S1_GRID, acquisition, "hv"))
        np.testing.assert_allclose(scene.incidence_angle.values, syn.incidence_angle(x, y, acquisition.track), atol=1e-4)
    # incidence angle varies across track (x), in opposite directions for the two tracks
    theta = s1_cube.incidence_angle.isel(time=[0, 1], y=0).values
    assert theta[0, 0] > theta[0, -1] and theta[1, 0] < theta[1, -1]


def test_s2_reflectance_scaled_and_nodata_masked():
    cube = cc.build_cube(cc.search(S2_CATALOG), assets=["B04", "B08"])
    scenes = syn.s2_scenes()
    assert dict(cube.sizes) == {"time": len(scenes), "y": 256, "x": 256}
    np.testing.assert_allclose(cube.cloud_cover.values, [syn.s2_cloud_cover(syn.S2_GRID, s) for s in scenes])
    edge = next(s for s in scenes if s.nodata_edge_x is not None)
    dn = syn.s2_digital_numbers(syn.S2_GRID, edge, "B08")
    got = cube.B08.isel(time=edge.index).values
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), dn == 0)
    np.testing.assert_allclose(got[dn > 0], dn[dn > 0] * 1e-4, rtol=1e-6)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_search_build_write_open_round_trip(s1_cube, tmp_path, zarr_format):
    store = tmp_path / "s1.zarr"
    subset = s1_cube.isel(time=slice(0, 6))
    cc.write_cube(subset, store, zarr_format=zarr_format)
    with raise_if_dask_computes():
        reopened = cc.open_cube(store)
    assert reopened.rio.crs.to_epsg() == 3413
    assert reopened.rio.transform() == subset.rio.transform()
    for name in ("hh", "hv", "incidence_angle"):
        np.testing.assert_array_equal(reopened[name].values, subset[name].values)
    for coord in ("orbit_state", "relative_orbit", "item_id", "view_incidence_angle"):
        np.testing.assert_array_equal(reopened[coord].values, subset[coord].values)


def test_accessor_forwards_to_store_and_plot(s1_cube, tmp_path):
    first, second = s1_cube.isel(time=slice(0, 2)), s1_cube.isel(time=slice(2, 4))
    first.cryo.write(tmp_path / "c.zarr")
    second.cryo.append(tmp_path / "c.zarr")
    reopened = cc.open_cube(tmp_path / "c.zarr")
    assert list(reopened.item_id.values) == list(s1_cube.item_id.values[:4])
    with pytest.raises(ValueError, match="S1B_IW_GRDH_1SDH_20190408T100512_D025_SYN"):
        second.cryo.append(tmp_path / "c.zarr")  # duplicates refused, naming the item
    png = reopened.cryo.quicklook(tmp_path / "q.png", variables=["hh"], n_scenes=2)
    assert png.stat().st_size > 10_000
