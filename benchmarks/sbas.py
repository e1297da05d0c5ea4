"""SBAS benchmark: cryocube.invert_sbas (Zarr to Zarr) against MintPy's default weighted inversion, same stack, same run.

Stack: :func:`cryocube.insar_scenes.permafrost_stack` with ``--dates`` dates 12 days
apart and ``--pairs`` small-baseline pairs (default 60 dates, 204 pairs: every
1-3-step pair and 30 4-step pairs) on ``--size`` x ``--size`` pixels (default
500), with atmosphere, coherence-dependent decorrelation noise and a nodata lake.
Written once to ``WORK/ifgs.zarr`` (chunks ``{pair: -1, y: 50, x: 50}``, by
:func:`cryocube.store.write_product`) and, for MintPy, to ``WORK/phase.npy`` /
``coherence.npy`` / ``meta.json``.

Contenders, each in its own process (peak RSS: ``VmHWM`` of ``/proc/self/status``;
``ru_maxrss`` would include the parent's memory, inherited through ``vfork`` +
``exec``):

* **cryocube**: :func:`cryocube.interferograms.open_interferograms` (the Zarr) ->
  :func:`cryocube.sbas.invert_sbas` (``weight="coherence"``, ``method="l2"``, chunks ``--chunk``) ->
  :func:`cryocube.store.write_product` (``WORK/ts.zarr``: displacement,
  temporal_coherence, residual_rms, n_observations, n_gaps), dask's threaded
  scheduler on all cores, BLAS limited to one thread.
* **MintPy**: ``benchmarks/_mintpy_invert.py`` in the benchmark-only virtualenv
  ``.venv-mintpy`` (``mintpy.ifgram_inversion.run_ifgram_inversion_patch`` with
  the ``smallbaselineApp`` defaults: ``var`` weights, minimum-norm velocity,
  pixel-by-pixel ``scipy.linalg.lstsq``). MintPy is *not* a cryocube
  dependency. Create the environment once::

      python3 -m venv .venv-mintpy && .venv-mintpy/bin/pip install mintpy

Printed: wall time and peak RSS of each, the ratio MintPy / cryocube (target
>= 25) and the largest differences of the time series (mm) and of the temporal
coherence over the pixels MintPy inverts (it skips pixels with a date without
any valid pair; cryocube gives those the minimum-norm solution and ``n_gaps``).

Usage::

    python benchmarks/sbas.py [--size 500] [--dates 60] [--pairs 204] [--chunk 100] [--repeat 3] [--work bench-out/sbas] [--no-mintpy]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _memory import peak_rss_mb  # noqa: E402  (benchmarks/ is the script folder)

ROOT = Path(__file__).resolve().parents[1]
MINTPY_PYTHON = ROOT / ".venv-mintpy" / "bin" / "python"
#: Spatial chunks of the stored stack (px).
STORE_CHUNK = 50
#: cryocube's dask chunks (px): 100 x 100 measured 3.2 s / 561 MB, 50 x 50 5.4 s / 321 MB, 150 x 150 3.0 s / 733 MB.
CHUNK = 100


def prepare(work: Path, size: int, dates: int, pairs: int) -> dict:
    """Simulate the stack and write it for both contenders (skipped when already there)."""
    meta_path = work / "meta.json"
    wanted = {"size": size, "dates": dates, "pairs": pairs}
    if meta_path.exists() and json.loads(meta_path.read_text()).get("config") == wanted and (work / "ifgs.zarr").exists():
        return json.loads(meta_path.read_text())
    from cryocube.insar_scenes import permafrost_stack
    from cryocube.store import write_product

    work.mkdir(parents=True, exist_ok=True)
    ifgs, _ = permafrost_stack(shape=(size, size), n_dates=dates, n_pairs=pairs, seed=7)
    write_product(ifgs.chunk({"pair": -1, "y": STORE_CHUNK, "x": STORE_CHUNK}), work / "ifgs.zarr", mode="w")
    np.save(work / "phase.npy", ifgs["unwrapped_phase"].values)
    np.save(work / "coherence.npy", ifgs["coherence"].values)
    fmt = "%Y%m%d"
    date12 = [f"{a:{fmt}}_{b:{fmt}}" for a, b in zip(ifgs["date1"].to_index(), ifgs["date2"].to_index())]
    meta = {"config": wanted, "date12": date12, "wavelength_m": ifgs.attrs["wavelength_m"], "n_looks": ifgs.attrs["n_looks"]}
    meta_path.write_text(json.dumps(meta))
    return meta


def run_cryocube(work: Path, chunk: int = CHUNK) -> None:
    """Child process: Zarr -> invert_sbas -> Zarr; prints JSON with seconds and peak RSS (imports not timed)."""
    import dask

    from cryocube.interferograms import open_interferograms
    from cryocube.sbas import invert_sbas
    from cryocube.store import write_product

    start = time.perf_counter()
    ifgs = open_interferograms(work / "ifgs.zarr", chunks=chunk)
    ts = invert_sbas(ifgs, weight="coherence", method="l2")
    with dask.config.set(scheduler="threads"):
        write_product(ts, work / "ts.zarr", mode="w")
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb()}))


def child(args: list[str], python: str = sys.executable) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([python, *args], capture_output=True, text=True, env=env, cwd=ROOT)


def compare(work: Path) -> dict:
    import xarray as xr

    ours = xr.open_zarr(work / "ts.zarr")
    theirs = np.load(work / "mintpy_result.npz")
    inverted = theirs["num_inv_obs"] > 0
    d_ours = ours["displacement"].values
    d_theirs = theirs["timeseries"]
    diff_mm = np.abs(d_ours - d_theirs)[:, inverted] * 1000
    tcoh = np.abs(ours["temporal_coherence"].values - theirs["temporal_coherence"])[inverted]
    return {"pixels_compared": int(inverted.sum()), "pixels": int(inverted.size),
            "max_ts_diff_mm": float(np.nanmax(diff_mm)), "p99_ts_diff_mm": float(np.nanpercentile(diff_mm, 99)),
            "max_tcoh_diff": float(np.nanmax(tcoh)),
            "mintpy_skipped_cryocube_gaps": int(((~inverted) & (ours["n_observations"].values > 0)).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--dates", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=204)
    parser.add_argument("--work", type=Path, default=ROOT / "bench-out" / "sbas")
    parser.add_argument("--chunk", type=int, default=CHUNK, help=f"cryocube's spatial chunk edge (px; stored chunks: {STORE_CHUNK})")
    parser.add_argument("--repeat", type=int, default=3, help="cryocube runs (the best is compared; the machine is shared)")
    parser.add_argument("--no-mintpy", action="store_true", help="time cryocube only")
    parser.add_argument("--run-cryocube", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_cryocube:
        run_cryocube(args.run_cryocube, args.chunk)
        return
    work = args.work.resolve()
    t0 = time.perf_counter()
    prepare(work, args.size, args.dates, args.pairs)
    print(f"stack: {args.pairs} pairs x {args.size} x {args.size} px, {args.dates} dates "
          f"({os.cpu_count()} cores; setup {time.perf_counter() - t0:.1f} s)")
    runs = []
    for _ in range(args.repeat):
        result = child([str(Path(__file__).resolve()), "--run-cryocube", str(work), "--chunk", str(args.chunk)])
        if result.returncode != 0:
            sys.exit(f"cryocube run failed:\n{result.stderr}")
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    ours = min(runs, key=lambda r: r["seconds"])
    times = ", ".join(f"{r['seconds']:.2f}" for r in runs)
    print(f"cryocube invert_sbas (Zarr -> Zarr, all outputs, chunks {args.chunk} px): best of {len(runs)} "
          f"{ours['seconds']:.2f} s (all: {times}), "
          f"peak RSS {max(r['peak_mb'] for r in runs):.0f} MB (target < 1024 MB)")
    if args.no_mintpy:
        return
    if not MINTPY_PYTHON.exists():
        sys.exit("MintPy environment missing: python3 -m venv .venv-mintpy && .venv-mintpy/bin/pip install mintpy")
    theirs = child([str(ROOT / "benchmarks" / "_mintpy_invert.py"), str(work)], python=str(MINTPY_PYTHON))
    if theirs.returncode != 0:
        sys.exit(f"MintPy run failed:\n{theirs.stderr[-3000:]}")
    seconds = float([line for line in theirs.stdout.splitlines() if line.startswith("MINTPY_SECONDS")][-1].split()[1])
    print(f"MintPy ifgram_inversion (weightFunc=var, pixel-by-pixel WLS): {seconds:.2f} s")
    print(f"ratio MintPy / cryocube: {seconds / ours['seconds']:.1f}x (target >= 25x)")
    print("agreement:", json.dumps(compare(work)))


if __name__ == "__main__":
    main()
