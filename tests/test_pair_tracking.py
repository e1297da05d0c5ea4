"""track_pairs: one lazy track_offsets per pair, stacked on ``pair``; per-pair velocities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import cryocube as cc
from cryocube.pair_tracking import track_pairs
from cryocube.testing import raise_if_dask_computes
from tests.conftest import REPO

S2_CATALOG = REPO / "catalogs" / "greenland-s2" / "catalog.json"
KW = {"search_px": 8, "prefilter": "wallis"}


@pytest.fixture(scope="module")
def cube():
    return cc.build_cube(cc.search(S2_CATALOG), assets=["B08"])


def test_stack_equals_the_pairs_tracked_one_by_one(cube):
    pairs = [(0, 1), (0, 2), (1, 2)]
    with raise_if_dask_computes():
        stacked = track_pairs(cube, pairs, **KW)
    assert stacked.dx.dims == ("pair", "y", "x") and stacked.sizes["pair"] == 3
    np.testing.assert_allclose(stacked.dt_days.values, [10.0, 15.0, 5.0])
    assert list(stacked.sensor2.values) == [str(cube.platform.values[k]) for k in (1, 2, 2)]
    computed = stacked.compute()
    for k, (a, b) in enumerate(pairs):
        single = cc.track_offsets(*cc.select_pair(cube, a, b), **KW).compute()
        xr.testing.assert_equal(computed.isel(pair=k).dx.drop_vars(["date1", "date2", "dt_days", "sensor1", "sensor2",
                                                                     "item_id1", "item_id2"]), single.dx)


def test_velocity_per_pair_uses_each_pairs_interval(cube):
    stacked = track_pairs(cube, pd.DataFrame({"reference": [0, 0], "secondary": [1, 2]}), **KW)
    velocity = cc.offsets_to_velocity(stacked).compute()
    for k, b in enumerate((1, 2)):
        single = cc.offsets_to_velocity(cc.track_offsets(*cc.select_pair(cube, 0, b), **KW)).compute()
        np.testing.assert_allclose(velocity.vx.isel(pair=k).values, single.vx.values, rtol=1e-6, equal_nan=True)
    assert "dt_days" not in velocity.attrs


def test_item_ids_and_errors(cube):
    ids = [str(i) for i in cube.item_id.values]
    assert track_pairs(cube, [(ids[0], ids[3])], **KW).dt_days.item() > 0
    with pytest.raises(ValueError, match="must follow"):
        track_pairs(cube, [(2, 1)])
    with pytest.raises(ValueError, match="empty"):
        track_pairs(cube, [])
    with pytest.raises(ValueError, match="columns"):
        track_pairs(cube, pd.DataFrame({"a": [0], "b": [1]}))
    with pytest.raises(ValueError, match="out of range"):
        track_pairs(cube, [(0, 99)])
