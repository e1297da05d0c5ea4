"""Quicklooks of the coherent products: MAI error against theory, LoS / azimuth velocity maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from cryocube import conventions as cv
from cryocube.plot._common import _pyplot, _save


def mai_error_plot(coherence: Sequence[float], measured_m: Sequence[float], theory_coherence: Sequence[float],
                   theory_m: Sequence[float], path: str | Path, *, predicted_m: Sequence[float] | None = None,
                   title: str | None = None, formula: str | None = None) -> Path:
    """Save the MAI azimuth displacement error (m) against coherence, with the theoretical curve.

    Parameters
    ----------
    coherence, measured_m
        Tested coherences and the measured standard deviation of the error (m), log scale.
    theory_coherence, theory_m
        A dense curve of the theoretical sigma (m).
    path
        Output PNG.
    predicted_m
        Optional median per-pixel sigma reported by :func:`cryocube.mai.mai` (m).
    title, formula
        Figure title; the formula shown in the legend of the curve.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.semilogy(theory_coherence, theory_m, "-", color="k", label=formula or "theory")
    ax.semilogy(coherence, measured_m, "o", color="tab:red", label="measured std of the error")
    if predicted_m is not None:
        ax.semilogy(coherence, predicted_m, "x", color="tab:blue", label="median per-pixel sigma (mai)")
    ax.set_xlabel("coherence")
    ax.set_ylabel("azimuth displacement error (m)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _edges(da: xr.DataArray) -> list[float]:
    """imshow extent for ``origin="upper"`` whichever way ``y`` runs (maps: decreasing; radar grids: increasing)."""
    x, y = (np.asarray(da[d].values, dtype=np.float64) for d in (cv.X, cv.Y))
    dx, dy = (float(c[1] - c[0]) if c.size > 1 else 1.0 for c in (x, y))
    return [x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2]


def velocity_maps(products: Sequence[xr.DataArray], path: str | Path, *, truths: Sequence[xr.DataArray] | None = None,
                  title: str | None = None) -> Path:
    """Save velocity maps (m/yr) side by side: one column per product, a second row with ``product - truth``.

    Parameters
    ----------
    products
        ``(y, x)`` velocity DataArrays (e.g. ``v_los`` of :func:`cryocube.coherent.dinsar_velocity`,
        ``v_azimuth`` of :func:`cryocube.mai.mai`); computed here.
    truths
        Optional truth on each product's grid, same order.
    """
    plt = _pyplot()
    rows = 1 if truths is None else 2
    fig, axes = plt.subplots(rows, len(products), figsize=(4.2 * len(products), 3.6 * rows), squeeze=False,
                             constrained_layout=True)
    for col, product in enumerate(products):
        values = np.asarray(product.values, dtype=np.float64)
        panels = [(values, product.name or "velocity", "viridis")]
        if truths is not None:
            panels.append((values - np.asarray(truths[col].values, dtype=np.float64), f"{product.name} - truth",
                           "RdBu_r"))
        for row, (data, label, cmap) in enumerate(panels):
            finite = data[np.isfinite(data)]
            low, high = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
            if cmap == "RdBu_r":
                high = max(abs(low), abs(high))
                low = -high
            image = axes[row, col].imshow(data, extent=_edges(product), origin="upper", cmap=cmap, vmin=low,
                                          vmax=high, aspect="auto")
            axes[row, col].set_title(label, fontsize=9)
            fig.colorbar(image, ax=axes[row, col], label=product.attrs.get("units", ""), shrink=0.8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
