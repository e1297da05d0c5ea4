"""Accuracy of incidence normalization and melt detection on synthetic scenes with exact truth.

Prints the figures quoted in the issue notes (the tests assert the same targets):

1. ``fit_incidence_slope`` on :func:`cryocube.backscatter_scenes.backscatter_scenes`
   (slope -0.10..-0.25 dB/degree varying with latitude, elevation and day of year;
   gamma speckle of ENL 4.4 and 200): coefficients against the truth in standard
   errors, and the ascending-minus-descending difference after normalization by the
   model, by the cos^2 law and without normalization: (a) median over all pixels
   and pairs, (b) median |.| of each pixel's mean over the pairs.
2. ``detect_melt`` + ``melt_season`` on :func:`cryocube.melt_scenes.melt_cube`
   (one year, two tracks every 6 days, ENL 4.4): share of wet-snow pixels whose
   onset and end are within one revisit (6 days), winter false-melt rate, and the
   share of wet bare-ice scenes detected.

Usage: ``python scripts/melt_accuracy.py``
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cryocube import melt_scenes
from cryocube.backscatter_scenes import backscatter_scenes
from cryocube.incidence import PREDICTORS, fit_incidence_slope, normalize_incidence, pair_orbits
from cryocube.melt import MELT, detect_melt, melt_season

REVISIT_DAYS = 6.0


def asc_minus_desc(cube, pairs, variable: str) -> tuple[float, float]:
    """(a) median of asc - desc over pixels and pairs, (b) median |.| of the per-pixel mean over pairs (dB)."""
    values = cube[variable].values.astype(float)
    diff = values[pairs.ascending_index.to_numpy()] - values[pairs.descending_index.to_numpy()]
    return float(np.nanmedian(diff)), float(np.nanmedian(np.abs(np.nanmean(diff, axis=0))))


def incidence_report() -> None:
    for enl in (4.4, 200.0):
        scenes = backscatter_scenes(enl=enl)
        model = fit_incidence_slope(scenes.cube, dem=scenes.dem)
        pairs = pair_orbits(scenes.cube)
        print(f"incidence slope fit, ENL {enl:g}, {len(pairs)} asc/desc pairs")
        for pol in ("hh", "hv"):
            names = ["intercept", *PREDICTORS]
            z = [(b - scenes.coefficients[pol][n]) / se
                 for n, b, se in zip(names, model.coefficients[pol], model.standard_errors[pol])]
            print(f"  {pol}: (estimate - truth) / SE = " + ", ".join(f"{n} {v:+.2f}" for n, v in zip(names, z)))
        outputs = {"none": scenes.cube,
                   "cos^2": normalize_incidence(scenes.cube, method="cosn"),
                   "model": normalize_incidence(scenes.cube, model_or_slope=model, dem=scenes.dem)}
        for pol in ("hh", "hv"):
            cells = [f"{name} {a:+.3f} / {b:.3f}" for name, cube in outputs.items()
                     for a, b in [asc_minus_desc(cube.compute(), pairs, pol)]]
            print(f"  {pol} asc-desc (a) median / (b) median|pixel mean| dB: " + "; ".join(cells))


def melt_report() -> None:
    cube, truth = melt_scenes.melt_cube()
    doy = cube.time.dt.dayofyear.values
    winter = (doy < 120) | (doy > 290)
    zone = truth.zone.values
    print(f"melt detection, {cube.sizes['time']} scenes, {zone.size} pixels, ENL {cube.attrs['enl']}")
    for method in ("threshold", "nagler"):
        for window in (1, 3, 5):
            melt = detect_melt(cube, method=method, window_px=window)
            season = melt_season(melt).sel(year=2019).compute()
            flags = melt.melt.values
            inner = ndimage.binary_erosion(zone == 1, np.ones((window, window)), border_value=1)
            onset_error = season.melt_onset.values - truth.melt_onset_doy.values
            end_error = season.melt_end.values - truth.melt_end_doy.values
            within = (np.abs(onset_error) <= REVISIT_DAYS) & (np.abs(end_error) <= REVISIT_DAYS)
            wet = truth.wet.values
            bare = (zone == 2)
            print(f"  {method:9s} {window}x{window}: onset and end within {REVISIT_DAYS:g} d on "
                  f"{100 * within[inner].mean():5.1f}% of wet-snow pixels; winter false melt "
                  f"{100 * (flags[winter] == MELT).mean():.3f}%; wet bare-ice scenes detected "
                  f"{100 * ((flags == MELT) & wet)[:, bare].sum() / wet[:, bare].sum():.1f}%")


if __name__ == "__main__":
    incidence_report()
    melt_report()
