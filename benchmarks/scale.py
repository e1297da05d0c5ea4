"""Larger than memory: melt detection and SBAS inversion over Zarr stores several times the workers' memory.

A real ``dask.distributed`` cluster (``LocalCluster``: a scheduler and
``--workers`` worker processes with one thread and ``--worker-memory`` each) runs

* **melt**: ``open_cube(chunks="temporal")`` -> ``normalize_incidence`` ->
  ``detect_melt`` (Nagler) -> melt-day count per pixel, written to Zarr, over
  S1 cubes of ``--melt-gb`` sizes (hh, hv, incidence_angle; 2048 x 2048 px, the
  number of scenes grows with the size; the cube generator of
  ``benchmarks/melt.py``);
* **sbas**: ``invert_sbas`` (coherence-weighted L2) + ``fit_deformation`` from an
  interferogram stack on Zarr (60 dates, 230 pairs; the image grows with the
  size) to a Zarr time series.

For each size: the data size, wall time, throughput, the peak process memory of
every worker (sampled from the scheduler's heartbeats every 0.2 s) and the time
per GB relative to the smallest size (linear scaling = 1.00; target within 20%).
A small melt run (8 scenes x 512 x 512) warms the workers up first (imports,
compiled kernels): without it the first, smallest size looked 1.6-3x slower per GB.

Usage::

    python benchmarks/scale.py [--melt-gb 2 4 8] [--sbas-gb 1 2 4] [--workers 2] [--worker-memory 1GiB]

Inputs are generated once into ``--work`` (default ``bench-out/scale``) and reused.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from melt import make_cube  # noqa: E402  (the melt benchmark's cube generator)

MELT_SIZE_PX = 2048
SBAS_DATES = 60
SBAS_PAIRS_PER_DATE = 4  # each date paired with its next 4 (fewer at the end): 230 pairs for 60 dates
WAVELENGTH_M = 0.0555
#: Spatial chunk (px) of the stored stack and of the inversion tasks (aligned: each chunk is decompressed once).
SBAS_CHUNK_PX = 128


class PeakMemory:
    """Peak process memory (bytes) of every worker, from the scheduler's view, sampled in a thread."""

    def __init__(self, client, interval_s: float = 0.2) -> None:
        self.client, self.interval_s = client, interval_s
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for address, worker in self.client.scheduler_info()["workers"].items():
                memory = int(worker.get("metrics", {}).get("memory", 0))
                self.peaks[address] = max(self.peaks.get(address, 0), memory)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def sbas_network(n_dates: int) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """12-day dates and small-baseline pairs: every date with its next ``SBAS_PAIRS_PER_DATE`` dates."""
    dates = pd.date_range("2018-01-06", periods=n_dates, freq="12D")
    i1, i2 = zip(*[(i, j) for i in range(n_dates) for j in range(i + 1, min(n_dates, i + 1 + SBAS_PAIRS_PER_DATE))])
    return dates, np.array(i1), np.array(i2)


def make_stack(store: Path, side: int) -> None:
    """An interferogram stack on Zarr: linear subsidence + noise, coherence 0.3-0.9, chunks (pair, 128, 128)."""
    import cryocube as cc

    dates, i1, i2 = sbas_network(SBAS_DATES)
    years = ((dates - dates[0]).days / 365.25).to_numpy()
    dt = (years[i2] - years[i1]).astype(np.float32)
    chunks = (i1.size, SBAS_CHUNK_PX, SBAS_CHUNK_PX)

    def phase(block_info=None) -> np.ndarray:
        loc = block_info[None]["array-location"]
        ny, nx = (b - a for a, b in loc[1:])
        rng = np.random.default_rng([loc[1][0], loc[2][0]])
        rate = (-0.05 * rng.random((ny, nx))).astype(np.float32)  # m/yr
        noise = rng.normal(0, 0.5, (dt.size, ny, nx)).astype(np.float32)
        return (-4 * np.pi / WAVELENGTH_M * dt[:, None, None] * rate + noise).astype(np.float32)

    def coherence(block_info=None) -> np.ndarray:
        loc = block_info[None]["array-location"]
        shape = [b - a for a, b in loc]
        return np.random.default_rng([loc[1][0], loc[2][0], 1]).uniform(0.3, 0.9, shape).astype(np.float32)

    shape = (i1.size, side, side)
    norm = da.core.normalize_chunks(chunks, shape)
    ifgs = xr.Dataset(
        {"unwrapped_phase": (("pair", "y", "x"), da.map_blocks(phase, chunks=norm, dtype=np.float32), {"units": "rad"}),
         "coherence": (("pair", "y", "x"), da.map_blocks(coherence, chunks=norm, dtype=np.float32), {"units": "1"})},
        coords={"date1": ("pair", dates[i1].values), "date2": ("pair", dates[i2].values),
                "dt_days": ("pair", (dates[i2] - dates[i1]).days.to_numpy().astype(np.float64)),
                "y": -30.0 * np.arange(side), "x": 30.0 * np.arange(side)},
        attrs={"wavelength_m": WAVELENGTH_M, "n_looks": 8},
    )
    cc.write_product(ifgs, store, mode="w", progress=True)


def run_melt(store: Path, out: Path) -> None:
    import cryocube as cc

    cube = cc.open_cube(store, chunks="temporal")
    melt = cc.detect_melt(cc.normalize_incidence(cube, model_or_slope=-0.12, reference_angle_deg=35.0), method="nagler")
    days = (melt.melt == 1).sum("time").astype(np.int16).to_dataset(name="melt_scenes")
    cc.write_product(days, out, mode="w")


def run_sbas(store: Path, out: Path) -> None:
    import cryocube as cc

    ifgs = cc.open_interferograms(store, chunks=SBAS_CHUNK_PX)
    ts = cc.invert_sbas(ifgs, weight="coherence", method="l2")
    fit = cc.fit_deformation(ts.displacement)
    cc.write_product(xr.merge([ts, fit], compat="override"), out, mode="w")


def measure(client, name: str, gb: float, run: Callable[[], None]) -> dict:
    with PeakMemory(client) as peak:
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
    per_worker = sorted(peak.peaks.values())
    print(f"  {name:5s} {gb:5.2f} GB  {seconds:7.1f} s  {gb / seconds * 1000:6.0f} MB/s  "
          f"peak worker memory {', '.join(f'{m / 2**20:.0f}' for m in per_worker)} MiB", flush=True)
    return {"gb": gb, "seconds": seconds, "peak_mib": max(per_worker, default=0) / 2**20}


def report(name: str, rows: list[dict], memory_limit_mib: float, n_workers: int) -> None:
    base = rows[0]["seconds"] / rows[0]["gb"]
    print(f"{name}: time per GB relative to {rows[0]['gb']:.2f} GB (1.00 = linear; target within 0.80-1.20)")
    for row in rows:
        print(f"  {row['gb']:5.2f} GB ({row['gb'] * 1024 / (memory_limit_mib * n_workers):4.1f}x the workers' memory): "
              f"{row['seconds'] / row['gb'] / base:5.2f}  peak {row['peak_mib']:.0f} MiB of {memory_limit_mib:.0f} MiB per worker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--melt-gb", type=float, nargs="*", default=[2.0, 4.0, 8.0])
    parser.add_argument("--sbas-gb", type=float, nargs="*", default=[1.0, 2.0, 4.0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="1GiB")
    parser.add_argument("--work", type=Path, default=Path("bench-out/scale"))
    args = parser.parse_args()

    from dask.utils import parse_bytes
    from distributed import Client, LocalCluster

    limit_mib = parse_bytes(args.worker_memory) / 2**20
    args.work.mkdir(parents=True, exist_ok=True)
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, memory_limit=args.worker_memory,
                      processes=True, dashboard_address=None, silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        print(f"cluster: {args.workers} workers x 1 thread x {args.worker_memory}", flush=True)
        rows = []
        if args.melt_gb:  # imports, compiled kernels and the first tasks on every worker: not measured
            warm = args.work / "melt_warm_up.zarr"
            if not warm.exists():
                with dask.config.set(scheduler="threads"):
                    make_cube(warm, 8, 512, None)
            run_melt(warm, args.work / "melt_out.zarr")
        for gb in args.melt_gb:
            scenes = max(8, int(round(gb * 1e9 / (3 * 4 * MELT_SIZE_PX**2))))
            store = args.work / f"melt_{scenes}x{MELT_SIZE_PX}.zarr"
            if not store.exists():
                print(f"writing {store}", flush=True)
                with dask.config.set(scheduler="threads"):  # input generation, not measured: off the memory-limited workers
                    make_cube(store, scenes, MELT_SIZE_PX, {"y": 256, "x": 256})
            real_gb = 3 * 4 * scenes * MELT_SIZE_PX**2 / 1e9
            rows.append(measure(client, "melt", real_gb, lambda: run_melt(store, args.work / "melt_out.zarr")))
        if rows:
            report("melt", rows, limit_mib, args.workers)
        rows = []
        n_pairs = sbas_network(SBAS_DATES)[1].size
        for gb in args.sbas_gb:
            side = int(round(np.sqrt(gb * 1e9 / (2 * 4 * n_pairs)) / 256)) * 256
            store = args.work / f"sbas_{n_pairs}x{side}.zarr"
            if not store.exists():
                print(f"writing {store}", flush=True)
                with dask.config.set(scheduler="threads"):
                    make_stack(store, side)
            real_gb = 2 * 4 * n_pairs * side**2 / 1e9
            rows.append(measure(client, "sbas", real_gb, lambda: run_sbas(store, args.work / "sbas_out.zarr")))
        if rows:
            report("sbas", rows, limit_mib, args.workers)


if __name__ == "__main__":
    main()
