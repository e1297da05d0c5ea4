"""Interferogram filtering and phase unwrapping: the shared interferometric layer.

* :func:`goldstein` / :func:`goldstein_kernel`: the Goldstein & Werner (1998)
  adaptive power-spectrum filter, on overlapping FFT windows laid out on the
  *global* pixel grid, so the result does not depend on the chunking.
* :func:`unwrap` / :func:`unwrap_kernel`: 2-D phase unwrapping with SNAPHU
  (Chen & Zebker 2001, 2002) through the maintained ``snaphu`` wheel
  (``snaphu.unwrap``).

Phase is in radians. Unwrapping is global by nature (the integration path
crosses the whole scene), so :func:`unwrap` is the one step of the InSAR chain
that is *not* blockwise: it runs lazily as a single dask task on the whole 2-D
array (SNAPHU's own tiling, ``ntiles``, bounds its memory on big scenes).
Everything here is independent of what the interferogram measures; the
re-differential D-InSAR of :mod:`cryocube.redifferential` and the DInSAR/MAI
velocity both build on it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

import cryocube
from cryocube import conventions as cv
from cryocube.chunking import warn_if_oversized
from cryocube.chunking import aligned_chunks

#: Unwrappers accepted by :func:`unwrap_kernel` / :func:`unwrap`.
UNWRAP_METHODS = ("snaphu",)
#: SNAPHU statistical-cost modes offered (``"smooth"`` for generic smooth deformation, ``"defo"`` for deformation with discontinuities).
UNWRAP_COSTS = ("smooth", "defo")


# --------------------------------------------------------------------------- Goldstein filter


def _check_goldstein(alpha: float, fft_px: int) -> int:
    """The window step (px) for ``fft_px``, after checking both parameters."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if int(fft_px) != fft_px or fft_px < 8 or fft_px % 4:
        raise ValueError(f"fft_px must be an integer multiple of 4 and >= 8 (px), got {fft_px!r}")
    return int(fft_px) // 4


def _window_taper(fft_px: int) -> np.ndarray:
    """Separable 2-D sin² taper of one window: smooth, zero-free, sums to a constant over windows stepped by ``fft_px // 4``."""
    t = np.sin(np.pi * (np.arange(fft_px) + 0.5) / fft_px) ** 2
    return np.outer(t, t)


def _smooth_spectrum(power: np.ndarray) -> np.ndarray:
    """3x3 circular boxcar of the spectrum magnitude over the last two axes (Goldstein & Werner's smoothing operator S)."""
    out = np.zeros_like(power)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out += np.roll(power, (dy, dx), axis=(-2, -1))
    return out / 9.0


def _first_window(origin: int, fft_px: int, step: int) -> int:
    """Global index of the first window start (a multiple of ``step``) whose window reaches pixel ``origin``."""
    return math.ceil((origin - fft_px + 1) / step) * step


def _goldstein_padded(padded: np.ndarray, y0: int, x0: int, halo: int, *, alpha: float, fft_px: int) -> np.ndarray:
    """Filter the centre of ``padded`` (global pixel ``(y0, x0)`` at local ``(halo, halo)``), ``halo >= fft_px - 1``.

    Windows start at every multiple of ``step = fft_px // 4`` of the global grid;
    each centre pixel gets the taper-weighted mean of the filtered windows that
    cover it, which only depends on global positions: the same for any tiling.
    """
    step = fft_px // 4
    ratio = fft_px // step
    ny, nx = padded.shape[0] - 2 * halo, padded.shape[1] - 2 * halo
    if ny <= 0 or nx <= 0:
        return np.zeros((max(ny, 0), max(nx, 0)), dtype=np.complex64)
    gy, gx = _first_window(y0, fft_px, step), _first_window(x0, fft_px, step)
    ly, lx = gy - (y0 - halo), gx - (x0 - halo)  # local start of the first window
    ky = (y0 + ny - 1 - gy) // step + 1  # number of window starts along y
    kx = (x0 + nx - 1 - gx) // step + 1
    span_y, span_x = (ky - 1) * step + fft_px, (kx - 1) * step + fft_px
    region = padded[ly:ly + span_y, lx:lx + span_x]
    windows = np.lib.stride_tricks.sliding_window_view(region, (fft_px, fft_px))[::step, ::step]
    spectrum = np.fft.fft2(windows)
    magnitude = _smooth_spectrum(np.abs(spectrum))
    peak = magnitude.max(axis=(-2, -1), keepdims=True)
    weight = np.divide(magnitude, peak, out=np.zeros_like(magnitude), where=peak > 0) ** alpha
    taper = _window_taper(fft_px)
    filtered = np.fft.ifft2(spectrum * weight) * taper
    # overlap-add: window (i, j) sub-block (m, n) of size step lands on output block (i + m, j + n)
    blocks = filtered.reshape(ky, kx, ratio, step, ratio, step)
    acc = np.zeros((ky + ratio - 1, step, kx + ratio - 1, step), dtype=np.complex128)
    norm = np.zeros((ky + ratio - 1, step, kx + ratio - 1, step))
    taper_blocks = taper.reshape(ratio, step, ratio, step)
    for m in range(ratio):
        for n in range(ratio):
            acc[m:m + ky, :, n:n + kx, :] += blocks[:, :, m, :, n, :].transpose(0, 2, 1, 3)
            norm[m:m + ky, :, n:n + kx, :] += taper_blocks[m, :, n, :][None, :, None, :]
    out = (acc / norm).reshape(span_y, span_x)
    cy, cx = y0 - gy, x0 - gx  # centre offset inside the windows' span
    return out[cy:cy + ny, cx:cx + nx].astype(np.complex64)


def _goldstein_strips(padded: np.ndarray, halo: int, *, alpha: float, fft_px: int, strip_px: int = 256) -> np.ndarray:
    """:func:`_goldstein_padded` on a whole halo-padded image, in row strips of ``strip_px`` (bounded memory, same result)."""
    ny = padded.shape[0] - 2 * halo
    return np.concatenate([_goldstein_padded(padded[y0:min(y0 + strip_px, ny) + 2 * halo], y0, 0, halo, alpha=alpha, fft_px=fft_px)
                           for y0 in range(0, ny, strip_px)])


def goldstein_kernel(ifg: np.ndarray, *, alpha: float, fft_px: int = 32) -> np.ndarray:
    """Goldstein & Werner (1998) adaptive filter of a complex interferogram.

    Each ``fft_px x fft_px`` window ``z`` is filtered in the frequency domain as

    .. math:: z' = \\mathcal{F}^{-1}\\{ Z \\cdot (S|Z| / \\max S|Z|)^{\\alpha} \\}

    where ``Z`` is the window's 2-D FFT and ``S`` a 3x3 circular boxcar over the
    spectrum magnitude (Goldstein & Werner 1998, Geophys. Res. Lett. 25(21)
    4035-4038). ``alpha = 0`` leaves the data unchanged; ``alpha = 1`` is the
    strongest filtering. Choices made here: the magnitude is normalised by its
    per-window maximum (so ``alpha`` does not rescale amplitudes between
    windows); windows start every ``fft_px // 4`` pixels on the global grid
    (75 % overlap) and are blended with a separable sin² taper, normalised by
    the sum of the taper weights at each pixel, so there are no seams; outside
    the image and at NaN pixels the signal is zero. NaN input pixels stay NaN.

    Parameters
    ----------
    ifg
        Complex interferogram, ``(..., y, x)`` (a real array is read as the wrapped phase, rad).
    alpha
        Filter exponent in ``[0, 1]``.
    fft_px
        Window edge (px), a multiple of 4, at least 8.

    Returns
    -------
    numpy.ndarray
        Filtered complex interferogram (complex64), same shape; its angle is the filtered phase (rad).
    """
    _check_goldstein(alpha, fft_px)
    z = np.asarray(ifg)
    if not np.iscomplexobj(z):
        z = np.exp(1j * z)
    if z.ndim < 2:
        raise ValueError(f"ifg must have at least 2 dimensions (y, x), got shape {z.shape}")
    nan = np.isnan(z)
    halo = fft_px - 1
    lead = z.shape[:-2]
    flat = np.where(nan, 0, z).reshape((-1,) + z.shape[-2:])
    out = np.stack([_goldstein_strips(np.pad(img, halo), halo, alpha=float(alpha), fft_px=int(fft_px)) for img in flat])
    out = out.reshape(lead + z.shape[-2:])
    out[nan] = np.nan
    return out


def _goldstein_block(block: np.ndarray, *, alpha: float, fft_px: int, halo: int, grid_chunks: tuple[tuple[int, ...], tuple[int, ...]],
                     block_info: dict | None = None) -> np.ndarray:
    """``map_overlap`` body: filter one halo-padded block, using its global position from ``block_info``."""
    iy, ix = block_info[0]["chunk-location"][-2:]
    y0, x0 = sum(grid_chunks[0][:iy]), sum(grid_chunks[1][:ix])
    nan = np.isnan(block)
    out = _goldstein_padded(np.where(nan, 0, block), y0, x0, halo, alpha=alpha, fft_px=fft_px)
    out[nan[halo:block.shape[0] - halo, halo:block.shape[1] - halo]] = np.nan
    return np.pad(out, halo)  # map_overlap trims the halo back off


def goldstein(ifg: xr.DataArray, *, alpha: float = 0.5, fft_px: int = 32) -> xr.DataArray:
    """Goldstein adaptive filter of a ``(y, x)`` complex interferogram, lazily and blockwise.

    A ``map_overlap`` with a halo of ``fft_px - 1`` px: every window that covers
    a block's pixels lies inside the padded block, and windows sit on the global
    grid, so one chunk and many chunks give the same result (see
    :func:`goldstein_kernel` for the maths and choices).

    Parameters
    ----------
    ifg
        Complex interferogram with dims ``(y, x)`` (numpy- or dask-backed); a real one is read as wrapped phase (rad).
    alpha
        Filter exponent in ``[0, 1]``.
    fft_px
        FFT window edge (px), a multiple of 4, at least 8.

    Returns
    -------
    xarray.DataArray
        Filtered complex interferogram (complex64, dask-backed), same coords; parameters in attrs.
    """
    _check_goldstein(alpha, fft_px)
    _check_image(ifg, "ifg")
    data = ifg.data if isinstance(ifg.data, da.Array) else da.from_array(ifg.data, chunks=(512, 512))
    if not np.iscomplexobj(data):
        data = da.exp(1j * data.astype(np.float32))
    halo = int(fft_px) - 1
    # every block at least ``halo`` px, so its halo comes from its neighbours only (dask would rechunk otherwise)
    data = data.astype(np.complex64).rechunk(tuple(aligned_chunks(c, 1, halo) for c in data.chunks))
    warn_if_oversized(data, "goldstein", halo_px=halo, suggestion="Chunk the interferogram spatially, e.g. .chunk({'y': 1024, 'x': 1024}).")
    filtered = da.map_overlap(_goldstein_block, data, depth=halo, boundary=0, trim=True, dtype=np.complex64,
                              alpha=float(alpha), fft_px=int(fft_px), halo=halo, grid_chunks=data.chunks)
    attrs = {k: v for k, v in ifg.attrs.items() if k not in ("units",)}
    attrs.update(long_name="Goldstein-filtered interferogram", units="1",
                 **{cv.ATTR_VERSION: cryocube.__version__,
                    cv.ATTR_PARAMS: json.dumps({"filter": "goldstein", "alpha": float(alpha), "fft_px": int(fft_px), "step_px": int(fft_px) // 4})})
    return xr.DataArray(filtered, dims=ifg.dims, coords=ifg.coords, attrs=attrs, name=ifg.name)


# --------------------------------------------------------------------------- unwrapping


def _check_image(array: xr.DataArray, name: str) -> None:
    if not isinstance(array, xr.DataArray):
        raise TypeError(f"{name} must be an xarray.DataArray, got {type(array).__name__}")
    if tuple(array.dims) != (cv.Y, cv.X):
        raise ValueError(f"{name} must have dims ({cv.Y!r}, {cv.X!r}), got {tuple(array.dims)}")


def _check_unwrap(method: str, min_coherence: float, nlooks: float, cost: str) -> None:
    if method not in UNWRAP_METHODS:
        raise ValueError(f"method must be one of {UNWRAP_METHODS}, got {method!r}")
    if cost not in UNWRAP_COSTS:
        raise ValueError(f"cost must be one of {UNWRAP_COSTS}, got {cost!r}")
    if not 0.0 <= float(min_coherence) < 1.0:
        raise ValueError(f"min_coherence must be in [0, 1), got {min_coherence!r}")
    if not float(nlooks) >= 1.0:
        raise ValueError(f"nlooks must be >= 1 (equivalent number of looks), got {nlooks!r}")


def unwrap_kernel(ifg: np.ndarray, coherence: np.ndarray, *, min_coherence: float, method: str = "snaphu", nlooks: float = 1.0,
                  cost: str = "smooth", ntiles: tuple[int, int] = (1, 1), tile_overlap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unwrap a 2-D interferogram with SNAPHU.

    SNAPHU (Chen & Zebker 2001, JOSA A 18(2) 338-351; 2002, IEEE TGRS 40(8)
    1709-1719) finds the maximum a-posteriori unwrapped phase by a nonlinear
    minimum-cost network flow, with statistical costs from the coherence and the
    equivalent number of looks (``init="mcf"`` initialisation). The result is
    congruent with the input: ``unwrapped - angle(ifg)`` is a multiple of 2π at
    every unmasked pixel. Each connected component is unwrapped consistently
    within itself; between components the 2π offset is arbitrary.

    Parameters
    ----------
    ifg
        ``(y, x)`` complex interferogram, or a real wrapped phase (rad). NaN: masked.
    coherence
        ``(y, x)`` coherence in ``[0, 1]``; NaN: masked.
    min_coherence
        Pixels with lower coherence are masked (not unwrapped).
    method
        ``"snaphu"`` (the only unwrapper offered; see :data:`UNWRAP_METHODS`).
    nlooks
        Equivalent number of independent looks of the coherence estimate.
    cost
        SNAPHU cost mode: ``"smooth"`` or ``"defo"``.
    ntiles, tile_overlap
        SNAPHU's own tiling (rows, cols) and tile overlap (px), for big scenes.

    Returns
    -------
    unwrapped : numpy.ndarray
        Unwrapped phase (rad, float32), NaN where masked and where SNAPHU left the
        pixel out of every connected component (label 0: its cycle count is unknown).
    components : numpy.ndarray
        Connected-component labels (uint32), 0 where masked or unassigned.
    """
    _check_unwrap(method, min_coherence, nlooks, cost)
    import snaphu  # a compiled dependency; imported where used

    z = np.asarray(ifg)
    corr = np.asarray(coherence, dtype=np.float32)
    if z.ndim != 2 or corr.shape != z.shape:
        raise ValueError(f"ifg and coherence must be 2-D arrays of the same shape, got {z.shape} and {corr.shape}")
    if not np.iscomplexobj(z):
        z = np.exp(1j * z)
    z = z.astype(np.complex64)
    mask = np.isfinite(z) & np.isfinite(corr) & (corr >= float(min_coherence)) & (z != 0)
    unwrapped = np.full(z.shape, np.nan, dtype=np.float32)
    labels = np.zeros(z.shape, dtype=np.uint32)
    if mask.sum() < 2:
        return unwrapped, labels
    unw, cc = snaphu.unwrap(np.where(mask, z, 0).astype(np.complex64), np.clip(np.where(mask, corr, 0), 0, 1), float(nlooks),
                            cost=cost, init="mcf", mask=mask.astype(np.uint8), ntiles=tuple(ntiles), tile_overlap=int(tile_overlap))
    kept = mask & (cc > 0)  # label 0: SNAPHU could not tie the pixel to any component, its cycle count is unknown
    unwrapped[kept] = unw[kept]
    labels[kept] = cc[kept]
    return unwrapped, labels


def _unwrap_stacked(ifg: np.ndarray, coherence: np.ndarray, **kwargs: Any) -> np.ndarray:
    """``map_blocks`` body: both outputs of :func:`unwrap_kernel` stacked on a new leading axis (float64 holds uint32 labels exactly)."""
    unwrapped, labels = unwrap_kernel(ifg, coherence, **kwargs)
    return np.stack([unwrapped.astype(np.float64), labels.astype(np.float64)])


def unwrap(ifg: xr.DataArray, coherence: xr.DataArray, *, method: str = "snaphu", min_coherence: float = 0.3, nlooks: float = 1.0,
           cost: str = "smooth", ntiles: tuple[int, int] = (1, 1), tile_overlap: int = 0) -> xr.Dataset:
    """Unwrap a ``(y, x)`` interferogram lazily, as one task on the whole scene.

    The one non-blockwise step of the InSAR chain: the inputs are merged into a
    single chunk and :func:`unwrap_kernel` runs once on them when computed
    (use ``ntiles`` for SNAPHU's own tiling of big scenes). Nothing is computed here.

    Parameters
    ----------
    ifg
        Complex interferogram ``(y, x)`` (or real wrapped phase, rad), numpy- or dask-backed.
    coherence
        Coherence ``(y, x)`` on the same grid.
    method, min_coherence, nlooks, cost, ntiles, tile_overlap
        See :func:`unwrap_kernel`.

    Returns
    -------
    xarray.Dataset
        ``unwrapped_phase`` (rad, NaN where masked) and ``connected_component``
        (uint32, 0 = masked/unassigned); parameters in attrs.
    """
    _check_unwrap(method, min_coherence, nlooks, cost)
    _check_image(ifg, "ifg")
    _check_image(coherence, "coherence")
    if ifg.shape != coherence.shape:
        raise ValueError(f"ifg and coherence must have the same shape, got {ifg.shape} and {coherence.shape}")
    z = (ifg.data if isinstance(ifg.data, da.Array) else da.from_array(ifg.data)).rechunk(-1)
    c = (coherence.data if isinstance(coherence.data, da.Array) else da.from_array(coherence.data)).rechunk(-1)
    warn_if_oversized(z, "unwrap", suggestion="Pass ntiles=(n, m) for SNAPHU's own tiling.")
    stacked = da.map_blocks(_unwrap_stacked, z, c, new_axis=0, chunks=((2,),) + z.chunks, dtype=np.float64,
                            min_coherence=float(min_coherence), method=method, nlooks=float(nlooks), cost=cost,
                            ntiles=tuple(int(n) for n in ntiles), tile_overlap=int(tile_overlap))
    coords = {k: v for k, v in ifg.coords.items()}
    params = dict(method=method, min_coherence=float(min_coherence), nlooks=float(nlooks), cost=cost, init="mcf",
                  ntiles=[int(n) for n in ntiles], tile_overlap=int(tile_overlap))
    return xr.Dataset(
        {"unwrapped_phase": ((cv.Y, cv.X), stacked[0].astype(np.float32), {"units": "rad", "long_name": "unwrapped interferometric phase"}),
         "connected_component": ((cv.Y, cv.X), stacked[1].astype(np.uint32),
                                 {"units": "1", "long_name": "connected component label (0: masked or unassigned)"})},
        coords=coords, attrs={cv.ATTR_VERSION: cryocube.__version__, cv.ATTR_PARAMS: json.dumps(params)})


def align_components_kernel(unwrapped: np.ndarray, components: np.ndarray, stable: np.ndarray) -> np.ndarray:
    """Shift each connected component by the multiple of 2π that brings its stable pixels closest to zero phase.

    Between connected components SNAPHU's 2π offset is arbitrary. Where a
    component contains reference (stable, zero-motion) pixels, it is shifted by
    ``-2π · round(median(φ_stable) / 2π)``; the shift is an integer number of
    cycles, so the result stays congruent with the wrapped phase (a residual
    constant, e.g. atmosphere, is left in place). Components without stable
    pixels are left as they are. One loop over components, none over pixels.

    Parameters
    ----------
    unwrapped
        ``(y, x)`` unwrapped phase (rad), NaN where masked.
    components
        ``(y, x)`` connected-component labels (0: masked or unassigned).
    stable
        ``(y, x)`` boolean: pixels known not to move.

    Returns
    -------
    numpy.ndarray
        The re-referenced unwrapped phase (rad, float32).
    """
    out = np.array(unwrapped, dtype=np.float32, copy=True)
    labels = np.asarray(components)
    reference = np.asarray(stable, dtype=bool) & np.isfinite(out) & (labels > 0)
    for label in np.unique(labels[reference]):
        members = labels == label
        cycles = np.round(np.median(out[members & reference]) / (2 * np.pi))
        out[members] -= np.float32(2 * np.pi * cycles)
    return out


def align_components(unwrapped: xr.Dataset, stable: xr.DataArray) -> xr.Dataset:
    """Re-reference the output of :func:`unwrap` to stable ground, component by component (lazy, one task).

    See :func:`align_components_kernel`. The choice is recorded in the ``reference`` attr of ``unwrapped_phase``.
    """
    _check_image(stable, "stable")
    if "unwrapped_phase" not in unwrapped or "connected_component" not in unwrapped:
        raise ValueError("unwrapped must hold 'unwrapped_phase' and 'connected_component' (the output of unwrap)")
    phase, labels = (unwrapped[name].data if isinstance(unwrapped[name].data, da.Array) else da.from_array(unwrapped[name].data)
                     for name in ("unwrapped_phase", "connected_component"))
    ref = stable.data if isinstance(stable.data, da.Array) else da.from_array(np.asarray(stable.data))
    aligned = da.map_blocks(align_components_kernel, phase.rechunk(-1), labels.rechunk(-1), ref.astype(bool).rechunk(-1), dtype=np.float32)
    out = unwrapped.copy()
    out["unwrapped_phase"] = unwrapped["unwrapped_phase"].copy(data=aligned)
    out["unwrapped_phase"].attrs["reference"] = "each connected component shifted by whole cycles to zero median phase over stable pixels"
    return out
