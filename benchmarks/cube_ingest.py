"""Ingest benchmark: local COGs -> lazy cube -> memory -> Zarr, as ratios against baselines run in the same process.

Ratios printed (higher is better, 1.0 = as fast as the baseline):

(a) load: computing the lazy ``build_cube(items)`` into memory, with
    ``cryocube.load_cube`` and with xarray's ``.load()``, for both loaders (stackstac,
    odc-stac), versus reading the same COGs with rasterio into a new numpy array on
    2 threads (one file per task). Both sides allocate their output in every run:
    loading must hand back new arrays, and on this kind of VM first-touch page
    faults on 670 MB cost ~0.2 s, so a baseline reusing one buffer would not be
    measuring the same job.
(b) write: ``write_cube(in-memory cube, store)`` versus writing the same numpy
    arrays with zarr directly, same codec and chunks.

Usage::

    python benchmarks/cube_ingest.py [--scenes 20] [--size 2048] [--work bench-out/ingest] [--repeat 2]

The COGs are generated once into ``--work`` (about 0.7 GB for the defaults) and reused.
Each timing is the best of ``--repeat`` runs, taken after one warm-up read of all files,
so that the page cache is equally warm for every contender.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import numpy as np
import pystac
import rasterio

from cryocube.cube import build_cube, load_cube
from cryocube.grid import Grid

BANDS = ("hh", "hv")
TILE = 512


def make_cogs(work: Path, n_scenes: int, size: int) -> list[pystac.Item]:
    """Write ``n_scenes`` x 2 float32 dB COGs (DEFLATE, predictor 3, 512 px tiles) and their items."""
    grid = Grid("EPSG:3413", 40.0, (-200000.0, -2300000.0, -200000.0 + 40 * size, -2300000.0 + 40 * size))
    items = []
    rng = np.random.default_rng(0)
    for i in range(n_scenes):
        item_id = f"bench_{i:03d}"
        item = pystac.Item(item_id, None, None, dt.datetime(2019, 4, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=6 * i),
                           {"proj:code": grid.crs, "proj:shape": list(grid.shape), "proj:transform": list(grid.transform)[:6]})
        for band in BANDS:
            path = work / f"{item_id}_{band}.tif"
            if not path.exists():
                speckle = rng.gamma(4.4, 1 / 4.4, grid.shape).astype("float32")
                db = (10 * np.log10(speckle) - (8.0 if band == "hh" else 16.0)).astype("float32")
                with rasterio.open(path, "w", driver="COG", width=size, height=size, count=1, dtype="float32",
                                   crs=grid.crs, transform=grid.transform, compress="DEFLATE", predictor=3,
                                   blocksize=TILE, nodata=float("nan")) as dst:
                    dst.write(db, 1)
            item.add_asset(band, pystac.Asset(str(path.resolve()), media_type=pystac.MediaType.COG, roles=["data"]))
        items.append(item)
    return items


def read_rasterio(paths: list[str], shape: tuple[int, int]) -> np.ndarray:
    """Baseline: a new ``(n_files, *shape)`` float32 array filled by one rasterio read per file, 2 threads."""
    out = np.empty((len(paths), *shape), dtype="float32")

    def read(k: int) -> None:
        with rasterio.open(paths[k]) as src:
            src.read(1, out=out[k])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(read, range(len(paths))))
    return out


def best_of(repeat: int, func) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--work", type=Path, default=Path("bench-out/ingest"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=2048, help="cube spatial chunk (px)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    items = make_cogs(args.work, args.scenes, args.size)
    paths = [item.assets[band].href for band in BANDS for item in items]
    nbytes = len(paths) * args.size * args.size * 4
    print(f"{len(items)} scenes x {len(BANDS)} bands of {args.size}x{args.size} float32 COGs ({nbytes / 1e6:.0f} MB decoded)")

    dask.config.set(scheduler="threads", num_workers=2)
    shape = (args.size, args.size)
    expected = read_rasterio(paths, shape)  # warm-up: page cache
    t_raw = best_of(args.repeat, lambda: read_rasterio(paths, shape))
    print(f"baseline rasterio 2 threads          : {t_raw:6.2f} s  {nbytes / t_raw / 1e6:7.0f} MB/s")
    loaded = {}
    for loader in ("stackstac", "odc"):
        for how, load in (("cryocube.load_cube", load_cube), ("xarray .load()", lambda ds: ds.load())):
            def run(loader: str = loader, load=load) -> None:
                loaded[loader] = load(build_cube(items, assets=list(BANDS), chunks=args.chunks, loader=loader))

            t = best_of(args.repeat, run)
            np.testing.assert_array_equal(loaded[loader].hh.values, expected[: len(items)])
            label = f"{loader:9s} {how}"
            print(f"{label:37s}: {t:6.2f} s  {nbytes / t / 1e6:7.0f} MB/s  ratio (a) = {t_raw / t:.2f}  (target >= 0.7)")
    write_ratio(loaded["stackstac"], args)


def write_ratio(cube, args: argparse.Namespace) -> None:
    """Ratio (b): write_cube versus zarr directly with the same codec and chunks."""
    import zarr

    from cryocube import store as cstore

    target = args.work / "cube.zarr"
    raw_target = args.work / "raw.zarr"
    nbytes = sum(cube[band].nbytes for band in BANDS)
    chunks = {dim: min(size, cube.sizes[dim]) if dim != "time" else size for dim, size in cstore.DEFAULT_CHUNKS.items()}
    (codec,) = cstore.compressor_codecs(cstore.DEFAULT_CODEC, zarr_format=3)

    def write_raw() -> None:
        shutil.rmtree(raw_target, ignore_errors=True)
        group = zarr.open_group(raw_target, mode="w")
        for band in BANDS:
            values = cube[band].values
            array = group.create_array(band, shape=values.shape, dtype=values.dtype, chunks=[chunks[d] for d in cube[band].dims],
                                       compressors=[codec], fill_value=np.nan)
            array[:] = values

    def write_ours() -> None:
        cstore.write_cube(cube, target, mode="w")

    write_raw()
    t_raw = best_of(args.repeat, write_raw)
    t_ours = best_of(args.repeat, write_ours)
    size_raw = sum(f.stat().st_size for f in raw_target.rglob("*") if f.is_file())
    print(f"codec {codec}, chunks {chunks}; stored {size_raw / 1e6:.0f} MB of {nbytes / 1e6:.0f} MB (ratio {nbytes / size_raw:.2f})")
    print(f"baseline zarr direct                 : {t_raw:6.2f} s  {nbytes / t_raw / 1e6:7.0f} MB/s")
    print(f"write_cube                           : {t_ours:6.2f} s  {nbytes / t_ours / 1e6:7.0f} MB/s  ratio (b) = {t_raw / t_ours:.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
