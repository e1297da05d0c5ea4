"""Chunking policy: temporal tiles aligned to the stored chunks, seam tiles, scene-blocked ufuncs."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cryocube.chunking import HaloBlock, per_scene, seam_map, temporal_chunks


def _sum_pair(first: HaloBlock, second: HaloBlock) -> np.ndarray:
    """Window sums of two inputs of different lengths (NaN as 0): first + last scene of the second."""
    h = first.halo
    scenes = [np.nan_to_num(first.scene(t)) + np.nan_to_num(second.scene(second.tile.shape[0] - 1))
              for t in range(first.tile.shape[0])]
    ny, nx = first.tile.shape[1:]
    return np.stack([sum(p[dy:dy + ny, dx:dx + nx] for dy in range(2 * h + 1) for dx in range(2 * h + 1)) for p in scenes])


@pytest.mark.parametrize(("halo", "chunks"), [(1, (4, 5)), (1, ((3, 6, 7), (5, 3, 7))), (2, ((5, 6, 5), 5)), (1, (16, 16))])
def test_seam_tiles_never_wait_for_a_neighbour(halo, chunks):
    """Each tile's task depends on its own tile only; seams come between tiles; the result is the whole-array one."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 16, 15)).astype(np.float32)
    b = rng.normal(size=(2, 16, 15)).astype(np.float32)
    da_a, da_b = da.from_array(a, chunks=(3, *chunks)), da.from_array(b, chunks=(2, *chunks))
    out = seam_map(_sum_pair, [da_a, da_b], halo, n_out=3, dtype=np.float32)
    np.testing.assert_allclose(out.compute(), _sum_pair(HaloBlock.isolated(a, halo), HaloBlock.isolated(b, halo)),
                               rtol=1e-6, atol=1e-5)
    assert all(c == 2 * halo for c in out.chunks[1][1::2]) and all(c == 2 * halo for c in out.chunks[2][1::2])
    graph = out.__dask_graph__()
    dependencies = graph.get_all_dependencies()

    def sources(key):
        found, stack = set(), [key]
        while stack:
            for dep in dependencies.get(stack.pop(), ()):
                if dep[0] in (da_a.name, da_b.name):
                    found.add(dep[2:])
                else:
                    stack.append(dep)
        return found

    inner = [k for k in dependencies if isinstance(k, tuple) and k[0] == out.name and k[2] % 2 == 0 and k[3] % 2 == 0]
    assert len(inner) == (len(out.chunks[1]) + 1) // 2 * ((len(out.chunks[2]) + 1) // 2)
    for key in inner:
        assert sources(key) == {(key[2] // 2, key[3] // 2)}, f"tile task {key} reads {sources(key)}"


def test_window_refuses_a_cut_halo():
    with pytest.raises(ValueError, match="cuts its halo"):
        HaloBlock.window(np.zeros((1, 6, 6), np.float32), 2, (1, 6), (0, 6))


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
