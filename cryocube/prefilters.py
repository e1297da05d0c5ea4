"""Image pre-filters for offset tracking (pure numpy/scipy kernels, NaN-aware).

Optical images carry large-scale brightness gradients (illumination, shadows,
albedo) that are not displaced with the surface and bias or blur the
correlation; a pre-filter keeps the small-scale texture that moves:

* ``highpass``: ``I - G_sigma * I`` (Gaussian low-pass removed);
* ``wallis``: ``(I - G_sigma * I) / sqrt(G_sigma * (I - G_sigma * I)^2)``, the
  high-pass normalized by its local standard deviation (Wallis 1976), which also
  equalizes contrast between bright and dark areas.

NaN (nodata) is excluded by normalized convolution: every Gaussian average is
``G * (I M) / G * M`` over the valid mask ``M``, and NaN stays NaN.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Gaussian truncation (in sigmas) of the filters: their halo is ``ceil(TRUNCATE * sigma)`` px.
TRUNCATE = 3.0
PREFILTERS = ("highpass", "wallis")


def masked_gaussian(image: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    weights = ndimage.gaussian_filter(valid.astype(np.float64), sigma, mode="constant", truncate=TRUNCATE)
    total = ndimage.gaussian_filter(np.where(valid, image, 0.0), sigma, mode="constant", truncate=TRUNCATE)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / weights


def highpass(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` minus its NaN-aware Gaussian average of ``sigma`` px (float32; NaN stays NaN)."""
    valid = np.isfinite(image)
    image = image.astype(np.float64)
    return np.where(valid, image - masked_gaussian(image, valid, sigma), np.nan).astype(np.float32)


def wallis(image: np.ndarray, sigma: float) -> np.ndarray:
    """High-pass of ``sigma`` px divided by its local standard deviation over the same Gaussian window."""
    valid = np.isfinite(image)
    detail = highpass(image, sigma).astype(np.float64)
    local_var = masked_gaussian(detail**2, valid, sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = detail / np.sqrt(local_var)
    return np.where(valid & (local_var > 0), out, np.nan).astype(np.float32)


def prefilter(image: np.ndarray, method: str, sigma: float) -> np.ndarray:
    """Apply ``method`` (one of :data:`PREFILTERS`) with a Gaussian of ``sigma`` px."""
    if method == "highpass":
        return highpass(image, sigma)
    if method == "wallis":
        return wallis(image, sigma)
    raise ValueError(f"prefilter must be one of {PREFILTERS} or None, got {method!r}")


def halo_px(sigma: float) -> int:
    """Pixels of context a pre-filter of ``sigma`` px needs around a block (Wallis: two passes)."""
    return 2 * int(np.ceil(TRUNCATE * sigma))
