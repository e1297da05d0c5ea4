"""Coherent (CCC) vs intensity (ICC) vs amplitude (ACC) offset tracking as a function of coherence.

Speckle pairs with an exact sub-pixel shift and a controlled coherence
(:func:`cryocube.offset_scenes.complex_speckle_pair`, 2x oversampled) are tracked
with ``track_offsets(mode=...)``; the RMSE of the offsets is printed next to the
Cramér-Rao bounds of Bamler & Eineder (2005, IEEE GRSL 2(2):151-155) for the
same number of independent samples ``N = chip^2 / OSF^2`` (per axis, times
``OSF^1.5``):

    sigma_CCC = sqrt(3 / 2N) * sqrt(1 - g^2) / (pi g)
    sigma_ICC = sqrt(3 / 10N) * sqrt(2 + 5 g^2 - 7 g^4) / (pi g^2)

Usage: ``python scripts/ccc_vs_icc.py [--out ccc_vs_icc.png]``
"""

from __future__ import annotations

import argparse

import numpy as np
import xarray as xr

from cryocube import track_offsets
from cryocube.offset_scenes import complex_speckle_pair

SHIFT = (0.37, -1.71)
OSF = 2.0


def crb_px(coherence: np.ndarray, chip_px: int, mode: str) -> np.ndarray:
    """Per-axis Cramér-Rao bound (px) of Bamler & Eineder (2005) for ``mode`` "complex" or "intensity"."""
    n = chip_px**2 / OSF**2
    g = np.asarray(coherence, dtype=float)
    if mode == "complex":
        sigma = np.sqrt(3 / (2 * n)) * np.sqrt(1 - g**2) / (np.pi * g)
    else:
        sigma = np.sqrt(3 / (10 * n)) * np.sqrt(2 + 5 * g**2 - 7 * g**4) / (np.pi * g**2)
    return sigma * OSF**1.5


def run(coherences: list[float], chip_px: int, size: int) -> dict[str, np.ndarray]:
    rows = {mode: [] for mode in ("complex", "intensity", "amplitude")}
    coords = {"y": np.arange(size, dtype=float), "x": np.arange(size, dtype=float)}
    for k, g in enumerate(coherences):
        ref, sec = (xr.DataArray(a, dims=("y", "x"), coords=coords) for a in complex_speckle_pair((size, size), shift_px=SHIFT, coherence=g, seed=10 + k))
        for mode in rows:
            off = track_offsets(ref, sec, mode=mode, chip_px=chip_px, search_px=5, step_px=chip_px // 2, consistency_px=None, min_ncc=0.0, min_snr=1.0, max_error_px=np.inf).compute()
            err_r, err_c = off.dy.values - SHIFT[0], off.dx.values - SHIFT[1]
            ok = np.isfinite(err_r)
            rows[mode].append((np.sqrt(np.mean(err_r[ok] ** 2)), np.sqrt(np.mean(err_c[ok] ** 2)), ok.mean()))
    return {mode: np.array(v) for mode, v in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="ccc_vs_icc.png")
    parser.add_argument("--chip", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    coherences = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
    result = run(coherences, args.chip, args.size)
    print(f"chip {args.chip} px, OSF {OSF}, shift {SHIFT} px; RMSE per axis (px), mean of row and column; CRB per axis")
    print(f"{'coherence':>9} {'CCC':>7} {'ICC':>7} {'ACC':>7} {'CRB_CCC':>8} {'CRB_ICC':>8} {'ICC/CCC':>8} {'valid CCC/ICC':>14}")
    for k, g in enumerate(coherences):
        c, i, a = (result[m][k, :2].mean() for m in ("complex", "intensity", "amplitude"))
        print(f"{g:9.2f} {c:7.3f} {i:7.3f} {a:7.3f} {crb_px(g, args.chip, 'complex'):8.3f} {crb_px(g, args.chip, 'intensity'):8.3f} {i / c:8.2f} "
              f"{result['complex'][k, 2]:6.1%}/{result['intensity'][k, 2]:6.1%}")
    from cryocube.plot._common import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    grid = np.linspace(0.25, 0.995, 100)
    for mode, colour in (("complex", "C0"), ("intensity", "C1"), ("amplitude", "C2")):
        ax.semilogy(coherences, result[mode][:, :2].mean(axis=1), "o-", color=colour, label=f"{mode} (measured)")
    ax.semilogy(grid, crb_px(grid, args.chip, "complex"), "--", color="C0", label="CRB complex")
    ax.semilogy(grid, crb_px(grid, args.chip, "intensity"), "--", color="C1", label="CRB intensity")
    ax.set_xlabel("coherence")
    ax.set_ylabel("offset RMSE per axis (px)")
    ax.set_title(f"coherent vs incoherent offset tracking, chip {args.chip} px")
    ax.legend(fontsize=7)
    print("wrote", _save(fig, args.out))


if __name__ == "__main__":
    main()
