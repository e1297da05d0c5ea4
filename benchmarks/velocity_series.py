"""Velocity time-series benchmark: invert_velocity on a Zarr of pair velocities, as a ratio against numpy.

The pair store (``--pairs`` x ``--size`` x ``--size``: vx, vy, vx_error, vy_error,
float32, chunks ``(pairs, 128, 128)``) is generated blockwise with dask and written
with ``xr.Dataset.to_zarr`` once into ``--work`` and reused. Network: consecutive
dates 6-12 days apart, each paired with its next 5 dates (200 pairs <-> 43 dates,
42 intervals). Truth: a smooth seasonal velocity field; noise with per-pair,
per-pixel errors (vy_error = 1.2 vx_error); ``--gross`` of the pair values are
gross errors (+-300..3000 m/yr) and ``--missing`` are NaN.

Contenders, each in its own process (peak RSS: ``VmHWM``, see ``_memory.py``), both
on all cores with BLAS/OpenMP limited to one thread per worker:

* **baseline**: dense batched weighted least squares in numpy, per Zarr chunk and
  2048-pixel batch: ``Aw = sqrt(w) A`` (``(n, P, K)``), ``N = Awᵀ Aw`` (batched
  matmul), ``np.linalg.inv(N)``, ``x = N⁻¹ Awᵀ sqrt(w) y`` and ``sqrt(diag N⁻¹)``
  for vx and vy (the same outputs as ours); missing pairs get weight 0, nothing
  else: no outlier removal, no rank check (a rank-deficient pixel would break
  it; a 1e-9 ridge keeps the rare pixel that misses every pair of an interval
  from stopping the run). ``np.linalg.lstsq`` itself is not batched (one Python call per pixel would
  be a straw man); this is its batched equivalent. Chunks on a thread pool.
* **cryocube**: ``xr.open_zarr`` -> :func:`cryocube.velocity_series.invert_velocity`
  (robust, connected components) with dask's threaded scheduler.

Both reduce their outputs to a spatial mean per interval (so the result does not
dominate memory). Printed: seconds, pixels/s, peak RSS, ratio = baseline time /
cryocube time (target >= 0.5) and the 2 GB memory target.

Usage::

    python benchmarks/velocity_series.py [--pairs 200] [--size 1000] [--work bench-out/velocity_series]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from _memory import peak_rss_mb  # noqa: E402  (benchmarks/ is the script folder)

NEIGHBOURS = 5
CHUNK = 128
BATCH = 2048


def network(n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair start/end days: dates 6-12 days apart, each paired with its next NEIGHBOURS dates; the first n_pairs."""
    n_dates = int(np.ceil((n_pairs + NEIGHBOURS * (NEIGHBOURS + 1) / 2) / NEIGHBOURS))
    days = np.cumsum(np.where(np.arange(n_dates) % 3 == 0, 12.0, 6.0))
    i, j = np.triu_indices(n_dates, 1)
    keep = (j - i) <= NEIGHBOURS
    i, j = i[keep], j[keep]
    order = np.lexsort((j, i))[:n_pairs]
    return days[i[order]], days[j[order]]


def make_store(store: Path, n_pairs: int, size: int, gross: float, missing: float) -> None:
    from cryocube.velocity_series import pair_design

    d1, d2 = network(n_pairs)
    _, design, _, _ = pair_design(d1, d2)
    mid = 0.5 * (np.unique(np.concatenate([d1, d2]))[:-1] + np.unique(np.concatenate([d1, d2]))[1:])
    season = 1.0 + 0.3 * np.sin(2 * np.pi * mid / 365.25)  # (K,)
    chunks = ((n_pairs,), *(tuple(min(CHUNK, size - s) for s in range(0, size, CHUNK)),) * 2)

    def block(which: int, block_info=None) -> np.ndarray:
        loc = block_info[None]["array-location"]
        (y0, y1), (x0, x1) = loc[1], loc[2]
        rng = np.random.default_rng([y0, x0, 17])
        yy, xx = np.meshgrid(np.arange(y0, y1), np.arange(x0, x1), indexing="ij")
        base = 200.0 + 800.0 * np.exp(-((xx - size / 2) ** 2) / (0.1 * size**2))  # (ny, nx) m/yr
        truth = season[:, None, None] * base[None]  # (K, ny, nx)
        sigma = rng.uniform(5.0, 30.0, (n_pairs, *base.shape)) * (design.sum(1) > 0)[:, None, None]
        sigmas = (sigma, 1.2 * sigma)
        out = []
        for c, factor in enumerate((1.0, -0.4)):
            v = np.einsum("pk,kyx->pyx", design, factor * truth) + rng.standard_normal(sigma.shape) * sigmas[c]
            bad = rng.random(v.shape) < gross
            v[bad] += rng.choice([-1.0, 1.0], bad.sum()) * rng.uniform(300, 3000, bad.sum())
            out.append(v)
        hole = rng.random(sigma.shape) < missing
        for v in out:
            v[hole] = np.nan
        return np.stack([*out, *sigmas])[which].astype(np.float32)

    data = {name: (("pair", "y", "x"), da.map_blocks(block, i, chunks=chunks, dtype=np.float32),
                   {"units": "m/yr"})
            for i, name in enumerate(("vx", "vy", "vx_error", "vy_error"))}
    epoch = np.datetime64("2024-01-01", "ns")
    to_dt = lambda d: epoch + (d * 86400e9).astype("timedelta64[ns]")  # noqa: E731
    ds = xr.Dataset(data, coords={"date1": ("pair", to_dt(d1)), "date2": ("pair", to_dt(d2)),
                                  "y": -np.arange(size) * 120.0, "x": np.arange(size) * 120.0})
    ds.to_zarr(store, mode="w")


def baseline(store: Path, workers: int) -> dict:
    import zarr

    group = zarr.open_group(str(store), mode="r")
    ds = xr.open_zarr(store)
    days1 = ((pd.DatetimeIndex(ds.date1.values) - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).to_numpy()
    days2 = ((pd.DatetimeIndex(ds.date2.values) - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).to_numpy()
    from cryocube.velocity_series import pair_design

    _, design, _, _ = pair_design(days1, days2)
    k = design.shape[1]
    arrays = [group[name] for name in ("vx", "vy", "vx_error", "vy_error")]
    n_pairs, ny, nx = arrays[0].shape

    def one_chunk(y0: int, x0: int) -> np.ndarray:
        window = (slice(None), slice(y0, y0 + CHUNK), slice(x0, x0 + CHUNK))
        vx, vy, ex, ey = (a[window].reshape(n_pairs, -1).T.astype(np.float64) for a in arrays)
        total = np.zeros((4, k))
        for s in range(0, vx.shape[0], BATCH):
            for c, (v, e) in enumerate(((vx, ex), (vy, ey))):
                v, e = v[s:s + BATCH], e[s:s + BATCH]
                ok = np.isfinite(v) & np.isfinite(e)
                sw = np.where(ok, 1.0 / np.where(ok, e, 1.0), 0.0)  # sqrt of the weights
                aw = sw[:, :, None] * design[None]
                normal = aw.transpose(0, 2, 1) @ aw
                normal[:, np.arange(k), np.arange(k)] += 1e-9  # negligible ridge: a pixel missing every pair of an interval
                inv = np.linalg.inv(normal)
                x = inv @ (aw.transpose(0, 2, 1) @ (sw * np.where(ok, v, 0.0))[:, :, None])
                total[c] += x[:, :, 0].sum(0)
                total[2 + c] += np.sqrt(np.diagonal(inv, axis1=1, axis2=2)).sum(0)
        return total

    tiles = [(y0, x0) for y0 in range(0, ny, CHUNK) for x0 in range(0, nx, CHUNK)]
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(lambda t: one_chunk(*t), tiles))
    return {"mean_vx": float(np.mean(total[0]) / (ny * nx))}


def ours(store: Path, workers: int) -> dict:
    import dask

    from cryocube.velocity_series import invert_velocity

    ds = xr.open_zarr(store)
    out = invert_velocity(ds)
    means = out[["vx", "vx_error"]].mean(("y", "x"))
    with dask.config.set(scheduler="threads", num_workers=workers):
        means, rejected = dask.compute(means, out.n_rejected.mean())
    return {"mean_vx": float(means.vx.mean()), "mean_rejected": float(rejected)}


def run_one(which: str, store: Path, workers: int) -> None:
    import zarr  # noqa: F401

    start = time.perf_counter()
    result = (ours if which == "ours" else baseline)(store, workers)
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    print(json.dumps({"which": which, "seconds": seconds, "peak_mb": peak_mb, **result}))


def measure(which: str, store: Path, workers: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--run", which, "--store", str(store), "--workers", str(workers)],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--gross", type=float, default=0.02, help="fraction of gross errors (default 0.02)")
    parser.add_argument("--missing", type=float, default=0.05, help="fraction of NaN pair values (default 0.05)")
    parser.add_argument("--work", type=Path, default=Path("bench-out/velocity_series"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--run", choices=("baseline", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_one(args.run, args.store, args.workers)
        return
    store = args.work / f"pairs_{args.pairs}x{args.size}_g{args.gross:g}_m{args.missing:g}.zarr"
    if not store.exists():
        args.work.mkdir(parents=True, exist_ok=True)
        print(f"writing {store} ({args.pairs} pairs x {args.size}^2 x 4 variables, float32)", flush=True)
        start = time.perf_counter()
        make_store(store, args.pairs, args.size, args.gross, args.missing)
        print(f"  written in {time.perf_counter() - start:.0f} s", flush=True)
    pixels = args.size**2
    print(f"load before: {open('/proc/loadavg').read().strip()}  ({os.cpu_count()} cores, {args.workers} workers)",
          flush=True)
    results = {}
    for which in ("baseline", "ours"):
        results[which] = r = measure(which, store, args.workers)
        print(f"  {which:8s} {r['seconds']:7.1f} s  {pixels / r['seconds']:9.0f} pixels/s  peak RSS {r['peak_mb']:6.0f} MB"
              f"  ({ {k: round(v, 3) for k, v in r.items() if k.startswith('mean')} })", flush=True)
    ratio = results["baseline"]["seconds"] / results["ours"]["seconds"]
    print(f"velocity series benchmark, {args.pairs} pairs x {args.size}x{args.size} pixels:")
    print(f"  ratio baseline/cryocube = {ratio:.2f} (target >= 0.5); cryocube peak RSS "
          f"{results['ours']['peak_mb']:.0f} MB (target < 2048 MB)")
    # a pair is gross when its vx or its vy is (drawn independently), and counts only where it is not missing
    gross_pairs = (1 - (1 - args.gross) ** 2) * (1 - args.missing) * args.pairs
    print(f"  pairs rejected per pixel {results['ours']['mean_rejected']:.2f} (gross pairs per pixel "
          f"{gross_pairs:.2f}; the rest are good pairs beyond 3 sigma or dragged along)")
    print(f"load after: {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()
