"""Chunking policy: temporal tiles aligned to the stored chunks, halo strips equal to padding, scene-blocked ufuncs."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cryocube.chunking import HaloBlock, halo_strips, per_scene, temporal_chunks


@pytest.mark.parametrize(("halo", "chunks"), [(1, (3, 3, 4)), (2, (3, (1, 4, 2), (1, 1, 7))), (3, (3, 7, 9))])
def test_halo_blocks_rebuild_the_padded_array(halo, chunks):
    """Every tile plus its neighbours' strips equals the NaN-padded array, also for neighbours thinner than the halo."""
    a = np.arange(3 * 7 * 9, dtype=np.float32).reshape(3, 7, 9)
    d = da.from_array(a, chunks=chunks)
    parts = halo_strips(d, halo)
    assert all(p.numblocks == d.numblocks for p in parts)
    padded = np.pad(a, ((0, 0), (halo, halo), (halo, halo)), constant_values=np.nan)
    y0 = np.cumsum((0,) + d.chunks[1])
    x0 = np.cumsum((0,) + d.chunks[2])
    for i in range(d.numblocks[1]):
        for j in range(d.numblocks[2]):
            block = HaloBlock(*(p.blocks[0, i, j].compute() for p in parts), halo=halo)
            for t in range(3):
                expected = padded[t, y0[i]:y0[i + 1] + 2 * halo, x0[j]:x0[j + 1] + 2 * halo]
                np.testing.assert_array_equal(block.scene(t), expected)


def test_isolated_block_is_nan_padded():
    tile = np.ones((2, 3, 4), np.float32)
    scene = HaloBlock.isolated(tile, 1).scene(1)
    assert scene.shape == (5, 6) and np.isnan(scene[0]).all() and np.isnan(scene[:, -1]).all()
    np.testing.assert_array_equal(scene[1:-1, 1:-1], 1.0)


def test_temporal_chunks_align_with_stored_chunks():
    var = xr.DataArray(np.zeros((100, 2048, 2048), np.float32), dims=("time", "y", "x"))
    var.encoding["chunks"] = (4, 512, 512)
    # 100 x 512 x 512 x 4 B = 105 MB > 64 MiB, but splitting would decode every stored chunk twice or more
    assert temporal_chunks(var) == {"time": -1, "y": 512, "x": 512}
    var.encoding["chunks"] = (4, 1024, 1024)  # 419 MB > 4 x 64 MiB: split into 26 MB tiles
    assert temporal_chunks(var) == {"time": -1, "y": 256, "x": 256}
    var.encoding["chunks"] = (4, 16, 2048)  # a whole-width chunk is kept; rows grow to ~64 MiB beside it
    assert temporal_chunks(var) == {"time": -1, "y": 80, "x": 2048}
    small = var.isel(time=slice(0, 4))
    small.encoding["chunks"] = (4, 512, 512)
    assert temporal_chunks(small) == {"time": -1, "y": 2048, "x": 2048}  # whole multiples of the stored tile
    dask_backed = var.chunk({"time": 10, "y": 300, "x": 700})
    assert temporal_chunks(dask_backed, target_bytes=4 * 2**20) == {"time": -1, "y": 100, "x": 100}


def test_per_scene_matches_the_whole_block_ufunc():
    rng = np.random.default_rng(1)
    sigma, theta = rng.normal(size=(5, 6, 7)), rng.uniform(30, 40, size=(5, 1, 1))
    slope = rng.normal(size=(6, 7))
    func = per_scene(lambda s, t, k, ref: s - k * (t - ref))
    np.testing.assert_allclose(func(sigma, theta, slope, ref=35.0), sigma - slope * (theta - 35.0), rtol=1e-6)


# --------------------------------------------------------------------------- #
# Default policy and the oversized-chunk warning
# --------------------------------------------------------------------------- #
def _pair_velocities(chunks: dict) -> xr.Dataset:
    rng = np.random.default_rng(0)
    dates = pd.date_range("2020-01-01", periods=5, freq="12D")
    shape = (4, 40, 30)
    ds = xr.Dataset({name: (("pair", "y", "x"), rng.normal(100, 5, shape).astype(np.float32)) for name in ("vx", "vy")},
                    coords={"date1": ("pair", dates[:-1]), "date2": ("pair", dates[1:])})
    return ds.chunk(chunks)


def test_core_chunked_applies_the_policy_where_the_core_dim_is_split():
    from cryocube.velocity_series import invert_velocity

    split = invert_velocity(_pair_velocities({"pair": 1, "y": 40, "x": 30}))
    assert split.vx.chunksizes["time"] == (4,)
    whole = invert_velocity(_pair_velocities({"pair": -1, "y": 16, "x": 10}))
    assert whole.vx.chunksizes["y"] == (16, 16, 8)  # the user's chunks are kept where they suit
    xr.testing.assert_allclose(split.compute(), whole.compute())


def test_oversized_chunks_warn_with_the_algorithm_and_a_suggestion(monkeypatch):
    from cryocube import chunking
    from cryocube.offsets import track_offsets
    from cryocube.velocity_series import invert_velocity

    monkeypatch.setattr(chunking, "MAX_TASK_BYTES", 10_000)
    with pytest.warns(chunking.ChunkSizeWarning, match=r"invert_velocity: one task would hold .* \.chunk\("):
        invert_velocity(_pair_velocities({"pair": -1, "y": 40, "x": 30}))
    image = xr.DataArray(np.random.default_rng(1).random((96, 96), dtype=np.float32), dims=("y", "x"),
                         coords={"y": np.arange(96.0), "x": np.arange(96.0)}).chunk(96)
    with pytest.warns(chunking.ChunkSizeWarning, match=r"track_offsets: .*'y': 1024"):
        track_offsets(image, image, chip_px=16, search_px=4)
    monkeypatch.setattr(chunking, "MAX_TASK_BYTES", 2**30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", chunking.ChunkSizeWarning)
        track_offsets(image, image, chip_px=16, search_px=4)
        invert_velocity(_pair_velocities({"pair": -1, "y": 40, "x": 30}))
