"""SBAS on the real Mexico City Sentinel-1 stack (PyRate cropA, GAMMA): the must-show figures of issue 5.

Reads the 30 interferograms of ``../shared/data/pyrate_cropA_s1_insar_stack``
(13 dates, 2018-01-06 .. 2018-07-17), inverts them with
:func:`cryocube.sbas.invert_sbas` (coherence weights, reference = the mean over a
coherent area on the western hills, which are stable), fits a linear LoS velocity
(:func:`cryocube.deformation.fit_deformation`) and prints

- the velocity range (percentiles; negative = away from the satellite: subsidence),
- temporal coherence and triplet closure statistics,
- the largest difference between a one-chunk and an odd-chunked (7 x 11 px) run,

and writes ``OUT/mexico_velocity.png`` and ``OUT/mexico_timeseries.png``.

Usage::

    python scripts/mexico_sbas.py [--data ../shared/data/pyrate_cropA_s1_insar_stack] [--out bench-out/mexico_sbas]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cryocube.deformation import fit_deformation
from cryocube.interferograms import open_interferograms
from cryocube.plot.insar import sbas_timeseries_plot, sbas_velocity_map
from cryocube.sbas import closure_phase, invert_sbas

ROOT = Path(__file__).resolve().parents[1]
#: (x_min, y_min, x_max, y_max), degrees: a coherent patch on the western hills (Lomas, outside the lake-bed clays).
REFERENCE = (-99.186, 19.425, -99.165, 19.443)
#: (y, x) points for the time-series plot: hills, transition, lake bed.
POINTS = [(19.435, -99.175), (19.420, -99.120), (19.430, -99.060)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "pyrate_cropA_s1_insar_stack")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "mexico_sbas")
    args = parser.parse_args()
    start = time.perf_counter()
    ifgs = open_interferograms(args.data / "geotiffs", headers=args.data / "headers", chunks=32)
    dates = np.unique(np.concatenate([ifgs["date1"].values, ifgs["date2"].values]))
    print(f"stack: {ifgs.sizes['pair']} pairs, {dates.size} dates {str(dates[0])[:10]} .. {str(dates[-1])[:10]}, "
          f"{ifgs.sizes['y']} x {ifgs.sizes['x']} px, wavelength {ifgs.attrs['wavelength_m']:.4f} m, "
          f"incidence {ifgs.attrs['incidence_deg']:.1f} deg, n_looks {ifgs.attrs['n_looks']}")
    ts = invert_sbas(ifgs, reference=REFERENCE).compute()
    fit = fit_deformation(ts, model=("linear",)).compute()
    v = fit["velocity"].values
    finite = v[np.isfinite(v)]
    p = np.percentile(finite, [1, 5, 50, 95, 99])
    print(f"LoS velocity (m/yr, + towards satellite): min {finite.min():.3f}, p1 {p[0]:.3f}, p5 {p[1]:.3f}, "
          f"median {p[2]:.3f}, p95 {p[3]:.3f}, p99 {p[4]:.3f}, max {finite.max():.3f} ({finite.size} pixels)")
    print(f"  vertical equivalent of p1 (LoS / cos(incidence)): {p[0] / np.cos(np.radians(ifgs.attrs['incidence_deg'])):.3f} m/yr")
    print(f"  velocity error: median {np.nanmedian(fit['velocity_error']):.4f} m/yr")
    tcoh = ts["temporal_coherence"].values
    print(f"temporal coherence: median {np.nanmedian(tcoh):.3f}, p5 {np.nanpercentile(tcoh, 5):.3f}, "
          f"share >= 0.7: {np.nanmean(tcoh >= 0.7):.3f}; pixels with a network gap: {int((ts['n_gaps'] > 0).sum())}, "
          f"without data: {int((ts['n_observations'] == 0).sum())}")
    cl = closure_phase(ifgs, reference=REFERENCE).compute()
    amb = cl["ambiguity"].values
    finite_cl = np.abs(cl["closure_phase"].values[np.isfinite(cl["closure_phase"].values)])
    print(f"closure: {cl.sizes['triplet']} triplets, median |closure| {np.median(finite_cl):.3f} rad, "
          f"p95 {np.percentile(finite_cl, 95):.3f} rad; triplet-pixels with a 2 pi error: {np.mean(amb != 0):.4%}; "
          f"pixels with any: {np.mean(cl['n_nonzero_closure'].values > 0):.2%}")
    one = invert_sbas(open_interferograms(args.data / "geotiffs", headers=args.data / "headers", chunks=-1),
                      reference=REFERENCE)["displacement"].compute()
    odd = invert_sbas(open_interferograms(args.data / "geotiffs", headers=args.data / "headers", chunks={"y": 7, "x": 11}),
                      reference=REFERENCE)["displacement"].compute()
    print(f"chunking: max |one chunk - 7x11 chunks| = {float(np.nanmax(np.abs(one - odd))):.2e} m; "
          f"NaN patterns equal: {bool((np.isnan(one) == np.isnan(odd)).all())}")
    args.out.mkdir(parents=True, exist_ok=True)
    vmap = sbas_velocity_map(fit, args.out / "mexico_velocity.png", points=POINTS,
                             title="Mexico City, Sentinel-1 2018-01..07: LoS velocity (mm/yr)")
    plot = sbas_timeseries_plot(ts, POINTS, args.out / "mexico_timeseries.png", labels=["hills", "transition", "lake bed"],
                                fit=fit)
    print(f"wrote {vmap} and {plot} ({time.perf_counter() - start:.1f} s in all)")


if __name__ == "__main__":
    main()
