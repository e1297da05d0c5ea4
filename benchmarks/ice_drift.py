"""Sea-ice drift benchmark: cryocube.track_ice_drift end to end against a per-template OpenCV loop, in the same run.

Two pairs: the real Sentinel-1B EW HH pair (1135 x 701 px, 100 m, 23 h; read from
``../shared/data/s1_ew_seaice_drift_pair/``) and a synthetic rigid-floe pair of
``--size`` px (default 5000 x 5000, :func:`cryocube.ice_scenes.floe_pair`). For each it prints

* the feature step alone (ORB keypoints + descriptors of both images, brute-force
  matching, Voronoi filter, interpolation to the grid: :func:`cryocube.ice_drift.first_guess`),
  single-threaded;
* cryocube end to end (first guess + blockwise rotated-template matching with
  sub-pixel peaks, errors, thresholds, consistency filter), dask's threaded
  scheduler (2 threads on this machine);
* the baseline over the same grid, rotations (-3, 0, 3 deg), template (35 px),
  search radius (6 px) and first guess: a plain single-threaded Python loop
  that, per point and rotation, rotates the template with ``cv2.warpAffine``, runs
  ``cv2.matchTemplate(TM_CCOEFF_NORMED)`` and ``cv2.minMaxLoc`` (integer peak, no
  sub-pixel, no quality layers, no filters) — what a per-template tool does;
* the ratio of the two pattern-matching times (baseline / cryocube without its
  feature step) and of the end-to-end times (baseline + feature step / cryocube);
* for the synthetic pair, the accuracy against the exact truth (drift RMSE in m,
  rotation RMSE in deg over accepted ice points), and the matching-vector filters
  on its ORB vectors with 5 % injected wrong matches (share of the injected
  removed, share of the correct — within 3 px of the truth — lost).

Timings on the shared 2-core machine are noisy (other jobs run): compare ratios, not seconds.

Usage::

    python benchmarks/ice_drift.py [--size 5000] [--grid-step-m 2000] [--skip-real]
"""

from __future__ import annotations

import argparse
import math
import time

import cv2
import dask
import numpy as np

from cryocube.ice_drift import first_guess, track_ice_drift
from cryocube.ice_features import DEFAULT_PERCENTILES, match_features
from cryocube.ice_scenes import floe_pair, inject_wrong_matches, read_s1_ew_pair, truth_at
from cryocube.vector_filters import filter_vectors

TEMPLATE, SEARCH, ROTATIONS = 35, 6, (-3.0, 0.0, 3.0)
#: ORB keypoints per image: 20,000, or one per 600 px on larger scenes (FLANN matching above 10,000).
PIXELS_PER_FEATURE = 600


def grid(shape: tuple[int, int], step: int) -> tuple[np.ndarray, np.ndarray]:
    return (step // 2 + step * np.arange(math.ceil((shape[0] - step // 2) / step)),
            step // 2 + step * np.arange(math.ceil((shape[1] - step // 2) / step)))


def baseline_loop(ref: np.ndarray, sec: np.ndarray, rows: np.ndarray, cols: np.ndarray, guess: np.ndarray) -> tuple[int, float]:
    """Per-point, per-rotation OpenCV template matching (integer peak); returns (points matched, best-NCC sum)."""
    h = TEMPLATE // 2
    pad = h + int(math.ceil(h * (math.sqrt(2) - 1))) + 2  # room to rotate the template without reaching blank corners
    height, width = ref.shape
    matched, total = 0, 0.0
    for i, r in enumerate(rows.tolist()):
        for j, c in enumerate(cols.tolist()):
            gr, gc = int(round(float(guess[0, i, j]))), int(round(float(guess[1, i, j])))
            top, left = r + gr - h - SEARCH, c + gc - h - SEARCH
            if r - pad < 0 or c - pad < 0 or r + pad >= height or c + pad >= width or top < 0 or left < 0 \
                    or top + TEMPLATE + 2 * SEARCH > height or left + TEMPLATE + 2 * SEARCH > width:
                continue
            patch = ref[r - pad : r + pad + 1, c - pad : c + pad + 1]
            window = sec[top : top + TEMPLATE + 2 * SEARCH, left : left + TEMPLATE + 2 * SEARCH]
            best = -2.0
            for theta in ROTATIONS:
                m = cv2.getRotationMatrix2D((pad, pad), theta, 1.0)
                rotated = cv2.warpAffine(patch, m, patch.shape[::-1], flags=cv2.INTER_CUBIC)
                template = np.ascontiguousarray(rotated[pad - h : pad + h + 1, pad - h : pad + h + 1])
                _, peak, _, _ = cv2.minMaxLoc(cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED))
                best = max(best, peak)
            matched += 1
            total += best
    return matched, total


def n_features(shape: tuple[int, int]) -> int:
    return max(20000, shape[0] * shape[1] // PIXELS_PER_FEATURE)


def filter_check(reference, secondary, truth) -> None:
    """Voronoi and polynomial filters on the pair's ORB vectors (correct: within 3 px of the truth) plus 5 % random ones."""
    vectors = match_features(reference, secondary, n_features=n_features(reference.shape))
    tx, ty, _ = truth_at(truth, vectors.x1.to_numpy(), vectors.y1.to_numpy())
    pixel = abs(float(reference.x[1] - reference.x[0]))
    correct = np.hypot(vectors.x2 - vectors.x1 - tx, vectors.y2 - vectors.y1 - ty).to_numpy() < 3 * pixel
    print(f"ORB vectors: {len(vectors)}, {100 * correct.mean():.1f} % within 3 px of the truth")
    injected = inject_wrong_matches(vectors[correct].reset_index(drop=True), 0.05, max_displacement_m=0.5 * truth.attrs["dt_s"], seed=1)
    wrong = injected["injected"].to_numpy()
    for method in ("voronoi", "polynomial"):
        t0 = time.perf_counter()
        rejected = ~filter_vectors(injected, method=method)["accepted"].to_numpy()
        print(f"{method} filter ({time.perf_counter() - t0:.2f} s): removed {100 * rejected[wrong].mean():.1f} % of the "
              f"{wrong.sum()} injected wrong matches, lost {100 * rejected[~wrong].mean():.2f} % of the {(~wrong).sum()} correct")


def run(name: str, reference, secondary, grid_step_m: float, truth=None) -> None:
    ref, sec = (np.ascontiguousarray(a.values, dtype=np.float32) for a in (reference, secondary))
    pixel = abs(float(reference.x[1] - reference.x[0]))
    step = max(1, int(round(grid_step_m / pixel)))
    rows, cols = grid(ref.shape, step)
    dt = float((secondary.time.values - reference.time.values) / np.timedelta64(1, "s"))
    print(f"\n== {name}: {ref.shape[0]} x {ref.shape[1]} px, grid {rows.size} x {cols.size} = {rows.size * cols.size} points "
          f"every {step} px, {len(ROTATIONS)} rotations")
    t0, c0 = time.perf_counter(), time.process_time()
    guess = first_guess(ref, sec, rows, cols, x0=float(reference.x[0]), y0=float(reference.y[0]), dx=pixel, dy=-pixel,
                        max_px=0.5 * dt / pixel, filter_kwargs={"method": "voronoi"},
                        feature_kwargs=dict(n_features=n_features(ref.shape), ratio=0.7, db_range=None,
                                            percentiles=DEFAULT_PERCENTILES, matcher="auto"))
    t_features, c_features = time.perf_counter() - t0, time.process_time() - c0
    print(f"feature step (ORB {n_features(ref.shape)} keypoints/image, matching, Voronoi filter, interpolation): "
          f"{t_features:.2f} s wall, {c_features:.2f} s CPU")
    t0, c0 = time.perf_counter(), time.process_time()
    with dask.config.set(scheduler="threads"):
        drift = track_ice_drift(reference, secondary, grid_step_m=grid_step_m, template_px=TEMPLATE, search_px=SEARCH,
                                rotations_deg=ROTATIONS, n_features=n_features(ref.shape)).compute()
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    ok = drift.flag.values == 0
    print(f"cryocube end to end: {t_ours:.2f} s wall, {c_ours:.2f} s CPU ({rows.size * cols.size / t_ours:,.0f} points/s wall), "
          f"{100 * ok.mean():.1f} % accepted, median ncc {np.nanmedian(drift.ncc.values[ok]):.3f}")
    t0, c0 = time.perf_counter(), time.process_time()
    matched, _ = baseline_loop(ref, sec, rows, cols, guess)
    t_base, c_base = time.perf_counter() - t0, time.process_time() - c0
    print(f"baseline per-template loop: {t_base:.2f} s wall, {c_base:.2f} s CPU for {matched} points "
          f"({matched / t_base:,.0f} points/s wall)")
    for label, base, ours, features in (("wall", t_base, t_ours, t_features), ("CPU", c_base, c_ours, c_features)):
        print(f"ratio ({label}) pattern matching (baseline / cryocube minus its feature step): {base / max(ours - features, 1e-9):.2f}x; "
              f"end to end ((baseline + feature step) / cryocube): {(base + features) / ours:.2f}x")
    if truth is not None:
        yy, xx = np.meshgrid(drift.y.values, drift.x.values, indexing="ij")
        tx, ty, trot = truth_at(truth, xx.ravel(), yy.ravel())
        good = ok.ravel() & np.isfinite(tx)
        ex = drift.displacement_x.values.ravel()[good] - tx[good]
        ey = drift.displacement_y.values.ravel()[good] - ty[good]
        er = drift.rotation_deg.values.ravel()[good] - trot[good]
        print(f"accuracy vs truth over {good.sum()} accepted ice points: drift RMSE {np.sqrt(np.mean(ex**2 + ey**2)):.1f} m "
              f"({np.sqrt(np.mean(ex**2 + ey**2)) / pixel:.2f} px), rotation RMSE {np.sqrt(np.mean(er**2)):.2f} deg, "
              f"rotation bias {er.mean():+.2f} deg")
        filter_check(reference, secondary, truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000, help="edge of the synthetic pair (px)")
    parser.add_argument("--grid-step-m", type=float, default=2000.0, help="grid spacing of the synthetic run (m)")
    parser.add_argument("--skip-real", action="store_true", help="skip the real Sentinel-1 pair")
    args = parser.parse_args()
    if not args.skip_real:
        reference, secondary = read_s1_ew_pair()
        run("real S1B EW HH pair", reference, secondary, 1000.0)
    t0 = time.perf_counter()
    n_floes = max(8, (args.size // 400) ** 2)
    reference, secondary, truth = floe_pair((args.size, args.size), n_floes=n_floes, seed=0)
    print(f"\n(synthetic pair of {n_floes} floes built in {time.perf_counter() - t0:.1f} s)")
    run(f"synthetic rigid floes {args.size}", reference, secondary, args.grid_step_m, truth)


if __name__ == "__main__":
    main()
