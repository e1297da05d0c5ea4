"""Property tests (hypothesis): random shapes, NaN patterns and chunkings give the one-chunk result.

Covers the blockwise machinery added for the temporal algorithms: seam tiles,
melt detection (multilook halo + per-orbit reference), melt seasons and the
velocity-series inversion.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from cryocube.chunking import HaloBlock, seam_map
from cryocube.melt import detect_melt, melt_season
from cryocube.velocity_series import invert_velocity

fast = settings(max_examples=25, deadline=None)


@st.composite
def chunking(draw, size: int) -> tuple[int, ...]:
    """A random partition of ``size`` into chunks (1 px chunks included)."""
    cuts = sorted(draw(st.sets(st.integers(1, size - 1), max_size=min(4, size - 1)))) if size > 1 else []
    edges = [0, *cuts, size]
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:]))


@st.composite
def cube_case(draw):
    ny, nx = draw(st.integers(3, 12)), draw(st.integers(3, 12))
    seed = draw(st.integers(0, 2**16))
    nan_fraction = draw(st.sampled_from([0.0, 0.05, 0.3]))
    return ny, nx, seed, nan_fraction, draw(chunking(ny)), draw(chunking(nx))


def neighbourhood_fingerprint(block: HaloBlock) -> np.ndarray:
    """Per pixel, the sum of its window's values weighted by their offset (NaN counted as -1000): a wrong,
    shifted or missing neighbour changes it (float64, exact for these small integers)."""
    h, (n, ny, nx) = block.halo, block.tile.shape
    out = np.zeros((n, ny, nx))
    for t in range(n):
        padded = np.nan_to_num(block.scene(t).astype(np.float64), nan=-1000.0)
        for dy in range(2 * h + 1):
            for dx in range(2 * h + 1):
                out[t] += padded[dy:dy + ny, dx:dx + nx] * (1 + dy * (2 * h + 1) + dx)
    return out


@fast
@given(case=cube_case(), halo=st.integers(1, 3))
def test_seam_tiles_equal_the_whole_array(case, halo):
    """Tiles and seams together give the kernel's result on the whole NaN-padded array, for any tiling."""
    ny, nx, seed, nan_fraction, ychunks, xchunks = case
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 100, size=(4, ny, nx)).astype(np.float32)
    a[rng.random(a.shape) < nan_fraction] = np.nan
    d = da.from_array(a, chunks=((4,), ychunks, xchunks))
    got = seam_map(neighbourhood_fingerprint, [d], halo, n_out=4, dtype=np.float64).compute(scheduler="sync")
    np.testing.assert_array_equal(got, neighbourhood_fingerprint(HaloBlock.isolated(a, halo)))


def _random_cube(ny: int, nx: int, seed: int, nan_fraction: float) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2019-01-05", periods=24, freq="7D")
    orbit = np.where(np.arange(24) % 2 == 0, 25, 90)
    wet = ((times.month >= 6) & (times.month <= 8))[:, None, None]
    data = {}
    for pol, base in (("hh", -8.0), ("hv", -16.0)):
        values = (base - 5.0 * wet + rng.normal(0, 2.0, (24, ny, nx))).astype(np.float32)
        values[rng.random(values.shape) < nan_fraction] = np.nan
        data[pol] = (("time", "y", "x"), values, {"units": "dB"})
    data["incidence_angle"] = (("time", "y", "x"), rng.uniform(30, 45, (24, ny, nx)).astype(np.float32), {"units": "degree"})
    return xr.Dataset(data, coords={"time": times, "y": -40.0 * np.arange(ny), "x": 40.0 * np.arange(nx),
                                    "relative_orbit": ("time", orbit)})


@fast
@given(case=cube_case(), window=st.sampled_from([1, 3, 5]), method=st.sampled_from(["threshold", "nagler"]))
def test_melt_is_chunk_independent(case, window, method):
    ny, nx, seed, nan_fraction, ychunks, xchunks = case
    cube = _random_cube(ny, nx, seed, nan_fraction)
    expected = detect_melt(cube, method=method, window_px=window)
    chunked = cube.assign({k: v.chunk({"time": 5, "y": ychunks, "x": xchunks}) for k, v in cube.data_vars.items()})
    result = detect_melt(chunked, method=method, window_px=window)
    xr.testing.assert_identical(result.compute(), expected)
    xr.testing.assert_identical(melt_season(result).compute(), melt_season(expected).compute())


@fast
@given(case=cube_case(), n_pairs=st.integers(3, 12))
def test_velocity_inversion_is_chunk_independent(case, n_pairs):
    ny, nx, seed, nan_fraction, ychunks, xchunks = case
    rng = np.random.default_rng(seed)
    days = np.sort(rng.choice(np.arange(0, 120, 6), size=8, replace=False))
    pick = [tuple(sorted(rng.choice(8, size=2, replace=False))) for _ in range(n_pairs)]
    date1 = np.datetime64("2019-05-01") + days[[a for a, _ in pick]].astype("timedelta64[D]")
    date2 = np.datetime64("2019-05-01") + days[[b for _, b in pick]].astype("timedelta64[D]")
    values = {}
    for name in ("vx", "vy"):
        v = rng.normal(1000, 50, (n_pairs, ny, nx)).astype(np.float32)
        v[rng.random(v.shape) < nan_fraction] = np.nan
        values[name] = (("pair", "y", "x"), v)
    pairs = xr.Dataset(values, coords={"date1": ("pair", date1), "date2": ("pair", date2),
                                       "y": -40.0 * np.arange(ny), "x": 40.0 * np.arange(nx)})
    expected = invert_velocity(pairs).compute()
    chunked = pairs.assign({k: v.chunk({"y": ychunks, "x": xchunks}) for k, v in pairs.data_vars.items()})
    xr.testing.assert_identical(invert_velocity(chunked).compute(), expected)
