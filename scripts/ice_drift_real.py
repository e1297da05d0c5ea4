"""Sea-ice drift on the real Sentinel-1B EW HH pair (north of Svalbard, 2020-03-01/02): the issue's must-show.

Computes the full drift field (forward, reference -> secondary) and the backward
field (secondary -> reference) on the same grid, and prints

* coverage: the share of grid points with an accepted vector, and the flags;
* the distribution of ``ncc`` (percentiles, and a histogram of accepted points);
* the drift near the scene centre (km over the interval) and the mean speed;
* the forward-vs-backward residual ``|d_f(p) + d_b(p + d_f(p))|`` in metres
  (median, 90th percentile, RMS) over the points where both are accepted;
* wall times;

and writes the quiver PNG (and the drift as NetCDF) into ``--out``.
Data are read from ``../shared/data/s1_ew_seaice_drift_pair/`` (never copied).

Usage::

    python scripts/ice_drift_real.py [--out bench-out/ice_drift] [--grid-step-m 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cryocube.ice_drift import drift_consistency, track_ice_drift
from cryocube.ice_scenes import read_s1_ew_pair
from cryocube.plot.ice_drift import drift_quiver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-out/ice_drift", help="output folder (PNG, NetCDF)")
    parser.add_argument("--grid-step-m", type=float, default=1000.0, help="grid spacing (m)")
    parser.add_argument("--data-dir", default=None, help="folder of the pair (default ../shared/data/s1_ew_seaice_drift_pair)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reference, secondary = read_s1_ew_pair(args.data_dir)
    kwargs = dict(grid_step_m=args.grid_step_m)
    t0 = time.perf_counter()
    forward = track_ice_drift(reference, secondary, **kwargs).compute()
    t1 = time.perf_counter()
    backward = track_ice_drift(secondary, reference, **kwargs).compute()
    t2 = time.perf_counter()
    residual = drift_consistency(forward, backward).compute()
    ok = forward.flag.values == 0
    n = ok.size
    print(f"pair: {reference.attrs['source']} -> {secondary.attrs['source']}, dt = {forward.attrs['dt_s'] / 3600:.2f} h")
    print(f"grid: {forward.sizes['y']} x {forward.sizes['x']} points every {args.grid_step_m:g} m; "
          f"forward {t1 - t0:.1f} s, backward {t2 - t1:.1f} s (wall, incl. features)")
    print(f"coverage: {ok.sum()} / {n} accepted = {100 * ok.mean():.1f} %")
    codes, counts = np.unique(forward.flag.values, return_counts=True)
    meanings = forward.flag.attrs["flag_meanings"].split()
    print("flags: " + ", ".join(f"{meanings[forward.flag.attrs['flag_values'].index(int(c))]}={k}" for c, k in zip(codes, counts)))
    ncc = forward.ncc.values
    print("ncc percentiles (all matched points) 5/25/50/75/95: " + " ".join(f"{v:.3f}" for v in np.nanpercentile(ncc, [5, 25, 50, 75, 95])))
    hist, edges = np.histogram(ncc[ok], bins=np.linspace(0, 1, 11))
    print("ncc histogram (accepted): " + " ".join(f"[{a:.1f},{b:.1f}):{h}" for a, b, h in zip(edges[:-1], edges[1:], hist)))
    cy, cx = forward.sizes["y"] // 2, forward.sizes["x"] // 2
    centre = forward.isel(y=slice(cy - 3, cy + 4), x=slice(cx - 3, cx + 4))
    print(f"drift near the centre (median of 7x7 points): dx = {float(centre.displacement_x.median()) / 1000:.2f} km, "
          f"dy = {float(centre.displacement_y.median()) / 1000:.2f} km")
    speed = np.hypot(forward.u.values, forward.v.values)
    print(f"speed (accepted): median {np.nanmedian(speed):.4f} m/s, max {np.nanmax(speed):.4f} m/s")
    print("rotation (accepted): 5/50/95 % = " + " ".join(f"{v:.2f}" for v in np.nanpercentile(forward.rotation_deg.values, [5, 50, 95])) + " deg")
    r = residual.residual.values
    both = np.isfinite(r)
    print(f"forward-backward residual over {both.sum()} points: median {np.median(r[both]):.1f} m, "
          f"90th percentile {np.percentile(r[both], 90):.1f} m, RMS {np.sqrt(np.mean(r[both] ** 2)):.1f} m")
    png = drift_quiver(forward, reference, out / "s1_ew_drift_quiver.png", every=4,
                       title="S1B EW HH drift, 2020-03-01 08:32 to 2020-03-02 07:35 UTC")
    forward.drop_vars("spatial_ref", errors="ignore").to_netcdf(out / "s1_ew_drift.nc")
    print(f"wrote {png} and {out / 's1_ew_drift.nc'}")


if __name__ == "__main__":
    main()
