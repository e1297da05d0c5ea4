"""DInSAR chain benchmark: interferogram + Goldstein + SNAPHU on an N x N SLC pair (default 4000 x 4000).

The pair is simulated once (:func:`cryocube.slc_scenes.slc_pair`, ERS-like, outlet
glacier, not timed) and written as complex64 Zarr (1000 x 1000 chunks). A child
process (so that its peak RSS is its own) then opens the store lazily and times

1. ``interferogram`` (10 x 2 looks, DEM phase removed) from the Zarr store, then
   ``goldstein`` (alpha 0.5, FFT 32) of the result, with dask's threaded scheduler (2 threads);
2. ``unwrap`` (SNAPHU, MCF init, smooth cost) of the in-memory result: SNAPHU's own time;
3. ``dinsar_velocity`` of the unwrapped phase;

and, as the in-run baseline, :func:`cryocube.coherent.interferogram_kernel` on the
whole scene in memory (one numpy call, no dask): ``ratio = baseline / cryocube``
for the interferogram step alone. Printed: seconds per step, total, peak RSS.
Timings on a shared 2-core machine are noisy.

Usage::

    python benchmarks/coherent.py [--size 4000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from _memory import peak_rss_mb  # noqa: E402  (benchmarks/ is the script folder)

LOOKS = (10, 2)
CHUNK = 1000


def prepare(size: int, store: Path) -> None:
    from cryocube.slc_scenes import slc_pair

    scene = slc_pair((size, size), seed=1)
    encoding = {name: {"chunks": (CHUNK, CHUNK)} for name in ("slc1", "slc2", "topo_phase")}
    pair = scene[["slc1", "slc2", "topo_phase"]].assign(topo_phase=scene["topo_phase"].astype("float32"))
    pair.to_zarr(store, mode="w", encoding=encoding)


def child(store: Path) -> None:
    import dask
    import numpy as np
    import xarray as xr

    from cryocube.coherent import dinsar_velocity, interferogram, interferogram_kernel
    from cryocube.unwrap import goldstein, unwrap

    ds = xr.open_zarr(store)
    timings: dict[str, float] = {}
    peaks: dict[str, float] = {"start": peak_rss_mb()}
    with dask.config.set(scheduler="threads", num_workers=2):
        t0 = time.perf_counter()
        ifg_c = interferogram(ds["slc1"], ds["slc2"], looks=LOOKS, dem_phase=ds["topo_phase"]).compute()
        timings["interferogram (from Zarr)"] = time.perf_counter() - t0
        peaks["interferogram (from Zarr)"] = peak_rss_mb()

        t0 = time.perf_counter()
        filtered_c = goldstein(ifg_c["interferogram"].chunk(512), alpha=0.5, fft_px=32).compute()
        timings["goldstein"] = time.perf_counter() - t0
        peaks["goldstein"] = peak_rss_mb()

        t0 = time.perf_counter()
        unw = unwrap(filtered_c, ifg_c["coherence"], method="snaphu", min_coherence=0.3,
                     nlooks=float(ifg_c["coherence"].attrs["nlooks"])).compute()
        timings["snaphu (unwrap)"] = time.perf_counter() - t0
        peaks["snaphu (unwrap)"] = peak_rss_mb()

        t0 = time.perf_counter()
        dinsar_velocity(unw, dt_days=1.0, wavelength_m=0.0566, coherence=ifg_c["coherence"]).compute()
        timings["dinsar_velocity"] = time.perf_counter() - t0
    timings["total"] = sum(timings.values())
    peak_mb = peak_rss_mb()

    s1, s2, phase = (np.asarray(ds[v].values) for v in ("slc1", "slc2", "topo_phase"))
    t0 = time.perf_counter()
    interferogram_kernel(s1, s2, LOOKS, phase)
    timings["baseline interferogram_kernel (numpy, whole scene)"] = time.perf_counter() - t0
    print(json.dumps({"timings": timings, "peak_mb": peak_mb, "peaks": peaks, "shape": list(ds["slc1"].shape),
                      "unwrapped_fraction": float(np.isfinite(unw["unwrapped_phase"].values).mean())}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--keep", type=Path, default=None, help="directory for the Zarr pair (default: a temp dir)")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = (args.keep or Path(tmp)) / f"slc_pair_{args.size}.zarr"
        t0 = time.perf_counter()
        prepare(args.size, store)
        print(f"simulated and wrote a {args.size} x {args.size} complex64 SLC pair in {time.perf_counter() - t0:.1f} s "
              "(not timed below)")
        run = subprocess.run([sys.executable, __file__, "--child", str(store)], capture_output=True, text=True,
                             check=True)
        result = json.loads(run.stdout.strip().splitlines()[-1])
    t = result["timings"]
    print(f"looks {LOOKS}, chunks {CHUNK} px, 2 dask threads; multilooked grid "
          f"{args.size // LOOKS[0]} x {args.size // LOOKS[1]}; unwrapped fraction {result['unwrapped_fraction']:.3f}")
    for name, seconds in t.items():
        print(f"  {name:>52}: {seconds:7.2f} s")
    print(f"  SNAPHU share of the chain: {t['snaphu (unwrap)'] / t['total']:.0%}")
    print(f"  ratio baseline / cryocube interferogram: "
          f"{t['baseline interferogram_kernel (numpy, whole scene)'] / t['interferogram (from Zarr)']:.2f} "
          "(the baseline reads nothing: its SLCs are already in memory)")
    print(f"  peak RSS of the timed process during the chain: {result['peak_mb']:.0f} MB "
          f"(one SLC alone is {8 * args.size**2 / 2**20:.0f} MB); peak RSS after each step: "
          + ", ".join(f"{k} {v:.0f} MB" for k, v in result["peaks"].items()))


if __name__ == "__main__":
    main()
