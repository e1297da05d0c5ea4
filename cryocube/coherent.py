r"""Coherent SAR ice velocity: interferogram formation, DEM phase removal and DInSAR line-of-sight velocity.

The chain of the Greenland Ice Sheet CCI intercomparison (task 1, Remote Sensing
2018): two coregistered SLCs -> :func:`interferogram` (multilooked, topography
removed with :func:`topographic_phase`) -> ``cryocube.unwrap.goldstein`` ->
``cryocube.unwrap.unwrap`` (SNAPHU) -> :func:`dinsar_velocity` (LoS velocity
calibrated on ground control points, with a per-pixel sigma). :func:`dinsar_chain`
runs the four steps. Multi-aperture interferometry (azimuth velocity) lives in
:mod:`cryocube.mai` and reuses :func:`look_sums`, :func:`phase_sigma` and
:func:`calibrate`.

Conventions
-----------
* SLC grids are ``(y, x)`` = (azimuth, range): row index increasing with azimuth
  time (along the flight direction), column index increasing away from the radar.
* SLC phase is ``-4 pi R / lambda`` (plus the scatterers' phase); the interferogram
  is ``I = s1 * conj(s2)`` (reference times conjugate secondary, the ISCE / GAMMA /
  SNAP convention), so its phase is ``phi = 4 pi (R2 - R1) / lambda``.
* The LoS velocity is positive **towards the radar** (``R2 < R1``), hence ::

      v_los = - lambda / (4 pi) * phi / dt          (m/yr with dt in years)

* Topographic phase of ``I`` (flat Earth already removed, the usual DEM-elimination
  step; Hanssen 2001, eq. 2.4.21 with this sign convention) ::

      phi_topo = 4 pi B_perp h / (lambda R sin(theta))

  one cycle per height of ambiguity ``h_a = lambda R sin(theta) / (2 B_perp)``.
* Phase noise: the Cramer-Rao bound of the multilooked phase with ``N``
  independent looks and coherence ``gamma`` (Rodriguez & Martin 1992, eq. 66) ::

      sigma_phi^2 = (1 - gamma^2) / (2 N gamma^2)

  ``N`` is the number of *independent* looks: for an SLC oversampled by
  ``1 / b`` (``b`` = processed bandwidth over sampling rate) a ``L_az x L_rg``
  window holds ``N = L_az b_az L_rg b_rg`` of them (:func:`effective_looks`).
  The bound holds for large ``N``; at low coherence and few looks the real
  spread is larger, and the multilooked coherence estimate is biased high.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

import cryocube
from cryocube import conventions as cv
from cryocube.conventions import phase_to_displacement
from cryocube.chunking import warn_if_oversized
from cryocube.gps import DAYS_PER_YEAR, pixel_index

#: SLC attrs read by :func:`effective_looks` (processed bandwidth over sampling rate, both axes).
BANDWIDTH_ATTRS: Final = ("azimuth_bandwidth", "range_bandwidth")


# =========================================================================== kernels
def topographic_phase(dem: Any, *, baseline_perp_m: float, wavelength_m: float, slant_range_m: float,
                      incidence_deg: float) -> Any:
    r"""Interferometric phase of topography, ``4 pi B_perp h / (lambda R sin(theta))`` (radians).

    Elementwise on numpy arrays, scalars or DataArrays (lazy for dask). One full
    cycle per height of ambiguity ``h_a = lambda R sin(theta) / (2 B_perp)``.

    Parameters
    ----------
    dem
        Height above the reference surface (m), on the SLC grid.
    baseline_perp_m
        Perpendicular baseline (m), signed.
    wavelength_m
        Radar wavelength (m).
    slant_range_m
        Slant range to the scene (m).
    incidence_deg
        Incidence angle (degrees, in (0, 90)).
    """
    for name, value in (("wavelength_m", wavelength_m), ("slant_range_m", slant_range_m)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if not 0 < incidence_deg < 90:
        raise ValueError(f"incidence_deg must lie in (0, 90) degrees, got {incidence_deg!r}")
    if not math.isfinite(baseline_perp_m):
        raise ValueError(f"baseline_perp_m must be finite, got {baseline_perp_m!r}")
    scale = 4.0 * math.pi * baseline_perp_m / (wavelength_m * slant_range_m * math.sin(math.radians(incidence_deg)))
    return dem * scale


def look_sums(slc1: np.ndarray, slc2: np.ndarray, looks: tuple[int, int],
              phase: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Multilook sums ``sum s1 conj(s2) exp(-i phase)``, ``sum |s1|^2``, ``sum |s2|^2`` over ``looks`` windows.

    Non-overlapping ``(L_az, L_rg)`` windows over the last two axes; rows/columns
    beyond the last whole window are dropped. Pure numpy, float64 / complex128.

    Parameters
    ----------
    slc1, slc2
        Complex ``(..., ny, nx)`` arrays.
    looks
        ``(L_az, L_rg)``: window rows (azimuth) and columns (range).
    phase
        Optional phase (rad) removed from the product before summing (e.g. the DEM phase).

    Returns
    -------
    num, p1, p2
        ``(..., ny // L_az, nx // L_rg)``: complex128 cross sum and float64 powers.
    """
    la, lr = looks
    ny, nx = slc1.shape[-2] // la * la, slc1.shape[-1] // lr * lr
    s1 = slc1[..., :ny, :nx].astype(np.complex128)
    s2 = slc2[..., :ny, :nx].astype(np.complex128)
    product = s1 * np.conj(s2)
    if phase is not None:
        product *= np.exp(-1j * phase[..., :ny, :nx])

    def block_sum(a: np.ndarray) -> np.ndarray:
        return a.reshape(*a.shape[:-2], ny // la, la, nx // lr, lr).sum(axis=(-3, -1))

    return block_sum(product), block_sum(s1.real**2 + s1.imag**2), block_sum(s2.real**2 + s2.imag**2)


def coherence_from_sums(num: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    r"""Sample coherence ``|sum s1 s2*| / sqrt(sum |s1|^2 sum |s2|^2)`` (NaN where a power is zero).

    Ufuncs only: works lazily on (dask-backed) DataArrays as well as on numpy arrays.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(num) / np.sqrt(p1 * p2)


def interferogram_kernel(slc1: np.ndarray, slc2: np.ndarray, looks: tuple[int, int],
                         dem_phase: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Multilooked interferogram and coherence of two coregistered SLCs.

    ::

        I     = (1/N) sum s1 conj(s2) exp(-i phi_dem)
        gamma = |sum s1 conj(s2) exp(-i phi_dem)| / sqrt(sum |s1|^2 sum |s2|^2)

    over non-overlapping ``looks = (L_az, L_rg)`` windows (:func:`look_sums`).

    Returns
    -------
    interferogram, coherence
        complex64 and float32, ``(..., ny // L_az, nx // L_rg)``.
    """
    num, p1, p2 = look_sums(slc1, slc2, looks, dem_phase)
    return ((num / (looks[0] * looks[1])).astype(np.complex64),
            coherence_from_sums(num, p1, p2).astype(np.float32))


def phase_sigma(coherence: np.ndarray, nlooks: float) -> np.ndarray:
    r"""Cramer-Rao phase standard deviation ``sqrt((1 - gamma^2) / (2 N gamma^2))`` (rad).

    Rodriguez & Martin (1992), eq. 66; ``inf`` where ``gamma = 0``, NaN where NaN.
    """
    gamma = np.clip(np.asarray(coherence, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        return np.sqrt((1.0 - gamma**2) / (2.0 * nlooks * gamma**2))


def calibration_kernel(values: np.ndarray, labels: np.ndarray, gcp_values: np.ndarray, gcp_labels: np.ndarray,
                       gcp_known: np.ndarray) -> np.ndarray:
    r"""Subtract, per connected component, the median GCP offset ``median(value - known)``.

    ``values - c[label]`` with ``c[k] = median{gcp_values_j - gcp_known_j : gcp_labels_j = k}``
    over the finite GCPs of component ``k``. Pixels of label 0 (not unwrapped) or
    of a component without a GCP become NaN (their 2 pi ambiguity is unknown).

    Parameters
    ----------
    values, labels
        Field and integer component labels, same shape (any).
    gcp_values, gcp_labels, gcp_known
        1-D per GCP: the field and the label sampled there, and the known value.
    """
    offsets = gcp_values.astype(np.float64) - gcp_known.astype(np.float64)
    gcp_labels = np.asarray(gcp_labels).astype(np.int64)
    good = np.isfinite(offsets) & (gcp_labels > 0)
    table = np.full(max(int(gcp_labels.max(initial=0)), 0) + 1, np.nan)
    for label in np.unique(gcp_labels[good]):
        table[label] = np.median(offsets[good & (gcp_labels == label)])
    lab = np.asarray(labels).astype(np.int64)
    inside = (lab >= 0) & (lab < table.size)
    correction = np.where(inside, table[np.clip(lab, 0, table.size - 1)], np.nan)
    return (values - correction).astype(values.dtype)


# =========================================================================== xarray helpers
def _check_slc(slc: Any, name: str) -> xr.DataArray:
    if not isinstance(slc, xr.DataArray):
        raise TypeError(f"{name} must be an xarray.DataArray on (y, x), got {type(slc).__name__}")
    if set(slc.dims) != {cv.Y, cv.X}:
        raise ValueError(f"{name} has dims {slc.dims}; it must be (y, x) (azimuth, range)")
    if not np.issubdtype(slc.dtype, np.complexfloating):
        raise TypeError(f"{name} must be complex (an SLC), got dtype {slc.dtype}")
    return slc.transpose(cv.Y, cv.X)


def check_pair(slc1: Any, slc2: Any, looks: Sequence[int]) -> tuple[xr.DataArray, xr.DataArray, tuple[int, int]]:
    """Validated ``(slc1, slc2, looks)``: complex ``(y, x)`` DataArrays of one shape, positive integer looks."""
    slc1, slc2 = _check_slc(slc1, "slc1"), _check_slc(slc2, "slc2")
    if slc1.shape != slc2.shape:
        raise ValueError(f"slc1 and slc2 must have the same shape, got {slc1.shape} and {slc2.shape}")
    looks = tuple(looks)
    if len(looks) != 2 or any(int(v) != v or v < 1 for v in looks):
        raise ValueError(f"looks must be two positive integers (azimuth, range), got {looks!r}")
    looks = (int(looks[0]), int(looks[1]))
    if slc1.shape[0] < looks[0] or slc1.shape[1] < looks[1]:
        raise ValueError(f"looks={looks} larger than the SLC ({slc1.shape})")
    return slc1, slc2, looks


def effective_looks(slc: xr.DataArray, looks: tuple[int, int], *, azimuth_fraction: float = 1.0) -> float:
    """Independent looks in a ``looks`` window: ``L_az b_az L_rg b_rg`` (``b`` from the SLC attrs, default 1).

    ``azimuth_fraction`` scales ``b_az`` (the share of the azimuth band kept, e.g.
    by a MAI sub-aperture).
    """
    b_az, b_rg = (float(slc.attrs.get(key, 1.0)) for key in BANDWIDTH_ATTRS)
    return max(looks[0] * b_az * azimuth_fraction, 1.0) * max(looks[1] * b_rg, 1.0)


def look_chunks(chunks: tuple[int, ...], look: int, total: int, minimum: int = 0) -> tuple[int, ...]:
    """Chunks of ``total`` (a multiple of ``look``) near ``chunks``, each a multiple of ``look`` and >= ``minimum``.

    (A halo may not be wider than a block, or dask would rechunk behind our back.)
    """
    size = max(look, int(round(max(chunks) / look)) * look, -(-minimum // look) * look)
    n_full, rest = divmod(total, size)
    out = [size] * n_full + ([rest] if rest else [])
    if len(out) > 1 and out[-1] < minimum:
        out[-2:] = [out[-2] + out[-1]]
    return tuple(out)


def looked_blocks(kernel: Callable[..., np.ndarray], arrays: Sequence[xr.DataArray | None], window: tuple[int, int],
                  n_out: int, dtype: Any, *, depth_y: int = 0, **kwargs: Any) -> tuple[Any, dict[str, np.ndarray]]:
    r"""Run ``kernel`` on look-aligned ``(y, x)`` blocks; returns ``(stack, coords)``.

    The arrays are trimmed to whole ``window = (L_az, L_rg)`` look windows,
    rechunked so that every chunk is a multiple of the window (a window never straddles two blocks), padded by
    ``depth_y`` rows of zeros at the scene's top and bottom and, between blocks,
    by their neighbours' rows (``dask.array.overlap``). ``kernel(*blocks, **kwargs)``
    gets the padded blocks (None stays None) and returns ``(n_out, rows / L_az,
    cols / L_rg)`` for the unpadded part. Numpy input runs the kernel once on the
    whole (zero-padded) scene: the same answer as any chunking.

    Returns
    -------
    stack
        ``(n_out, ny // L_az, nx // L_rg)`` numpy or dask array.
    coords
        ``{"y": ..., "x": ...}``: mean coordinate of each window.
    """
    la, lr = window
    first = arrays[0]
    ny, nx = first.shape[0] // la * la, first.shape[1] // lr * lr
    trimmed = [None if a is None else a.isel({cv.Y: slice(0, ny), cv.X: slice(0, nx)}).data for a in arrays]
    coords = {dim: np.asarray(first[dim].values[:n], dtype=np.float64).reshape(-1, look).mean(axis=1)
              for dim, n, look in ((cv.Y, ny, la), (cv.X, nx, lr))}
    if not any(isinstance(a, da.Array) for a in trimmed):
        padded = [None if a is None else np.pad(np.asarray(a), ((depth_y, depth_y), (0, 0))) for a in trimmed]
        return kernel(*padded, **kwargs), coords
    ref = next(a for a in trimmed if isinstance(a, da.Array))
    chunks = (look_chunks(ref.chunks[0], la, ny, depth_y), look_chunks(ref.chunks[1], lr, nx))
    warn_if_oversized(ref.rechunk(chunks), getattr(kernel, "__name__", "coherent"), stacklevel=4,
                      suggestion="Chunk the SLCs spatially, e.g. .chunk({'y': 2000, 'x': 2000}).")
    blocks = []
    for a in trimmed:
        if a is None:
            continue
        a = da.asarray(a).rechunk(chunks)
        if depth_y:
            a = da.overlap.overlap(a, depth={0: depth_y, 1: 0}, boundary={0: 0, 1: "none"})
        blocks.append(a)
    present = [a is not None for a in arrays]

    def run(*blocks_in: np.ndarray) -> np.ndarray:
        it = iter(blocks_in)
        return kernel(*(next(it) if p else None for p in present), **kwargs)

    out_chunks = ((n_out,), tuple(c // la for c in chunks[0]), tuple(c // lr for c in chunks[1]))
    stack = da.map_blocks(run, *blocks, chunks=out_chunks, new_axis=0, dtype=dtype,
                          name=f"cryocube-{getattr(kernel, '__name__', 'looks')}")
    return stack, coords


def product_attrs(source: xr.DataArray, params: dict[str, Any]) -> dict[str, Any]:
    return {cv.ATTR_VERSION: cryocube.__version__, cv.ATTR_ITEMS: source.attrs.get(cv.ATTR_ITEMS, []),
            cv.ATTR_PARAMS: json.dumps(params)}


def _interferogram_block(s1: np.ndarray, s2: np.ndarray, phase: np.ndarray | None, *,
                         looks: tuple[int, int]) -> np.ndarray:
    ifg, coh = interferogram_kernel(s1, s2, looks, phase)
    return np.stack([ifg, coh.astype(np.complex64)])


# =========================================================================== public functions
def interferogram(slc1: xr.DataArray, slc2: xr.DataArray, *, looks: Sequence[int] = (10, 2),
                  dem_phase: xr.DataArray | None = None) -> xr.Dataset:
    r"""Multilooked interferogram ``s1 conj(s2) exp(-i phi_dem)`` and coherence (:func:`interferogram_kernel`).

    Lazy and blockwise: dask chunks are realigned to multiples of ``looks`` so that
    no look window straddles two blocks (the answer does not depend on the chunks).

    Parameters
    ----------
    slc1, slc2
        Coregistered complex SLCs on ``(y, x)`` = (azimuth, range), same shape.
    looks
        ``(L_az, L_rg)`` window (pixels); e.g. ``(10, 2)`` for ERS (2 x 10 looks, ~40 m).
    dem_phase
        Topographic phase (rad) on the SLC grid (:func:`topographic_phase`), removed
        before multilooking; None: none removed.

    Returns
    -------
    xr.Dataset
        ``interferogram`` (complex64, mean of the product) and ``coherence``
        (float32, attr ``nlooks``: independent looks, :func:`effective_looks`), on
        the window-centre coordinates. SLC attrs (geometry) are kept on the dataset.

    Raises
    ------
    TypeError, ValueError
        Non-complex or non-DataArray SLCs, other dims or shapes, bad looks, a
        ``dem_phase`` on another shape or not real.
    """
    slc1, slc2, looks = check_pair(slc1, slc2, looks)
    if dem_phase is not None:
        if not isinstance(dem_phase, xr.DataArray) or set(dem_phase.dims) != {cv.Y, cv.X}:
            raise ValueError("dem_phase must be a (y, x) DataArray on the SLC grid")
        dem_phase = dem_phase.transpose(cv.Y, cv.X)
        if dem_phase.shape != slc1.shape or np.issubdtype(dem_phase.dtype, np.complexfloating):
            raise ValueError(f"dem_phase must be real with the SLC shape {slc1.shape}, got {dem_phase.dtype} "
                             f"{dem_phase.shape}")
    stack, coords = looked_blocks(_interferogram_block, [slc1, slc2, dem_phase], looks, 2, np.complex64,
                                  looks=looks)
    nlooks = effective_looks(slc1, looks)
    geometry = {k: v for k, v in slc1.attrs.items() if k not in (cv.ATTR_PARAMS, cv.ATTR_VERSION)}
    out = xr.Dataset(
        {"interferogram": ((cv.Y, cv.X), stack[0], {"units": "1", "long_name": "multilooked interferogram s1 conj(s2)"}),
         "coherence": ((cv.Y, cv.X), stack[1].real.astype(np.float32),
                       {"units": "1", "long_name": "interferometric coherence", "nlooks": nlooks})},
        coords=coords, attrs=geometry)
    return out.assign_attrs(product_attrs(slc1, {"looks": list(looks), "dem_phase_removed": dem_phase is not None,
                                          "nlooks": nlooks}))


def _gcp_table(gcps: Any, column: str) -> pd.DataFrame:
    if not isinstance(gcps, pd.DataFrame):
        raise TypeError(f"gcps must be a pandas.DataFrame with columns x, y, {column}, got {type(gcps).__name__}")
    lacking = [c for c in ("x", "y", column) if c not in gcps.columns]
    if lacking:
        raise ValueError(f"gcps lacks columns {lacking} (has {list(gcps.columns)}): it needs x, y and {column} "
                         "(the known value, 0 on stable rock)")
    if len(gcps) == 0:
        raise ValueError("gcps is empty: give at least one ground control point")
    return gcps


def calibrate(field: xr.DataArray, gcps: pd.DataFrame, *, column: str,
              labels: xr.DataArray | None = None) -> tuple[xr.DataArray, xr.DataArray]:
    r"""Absolute calibration of ``field`` on ground control points, lazily (:func:`calibration_kernel`).

    Parameters
    ----------
    field
        ``(y, x)`` field with a per-component unknown offset (e.g. uncalibrated LoS velocity).
    gcps
        Columns ``x``, ``y`` (the field's coordinates) and ``column`` (known value,
        0 on stable rock); a ``station``/``name`` column names points in errors.
    column
        The column holding the known values.
    labels
        Connected components (int, 0 = not unwrapped) on the field's grid; None: one component.

    Returns
    -------
    calibrated, gcp_offset
        The calibrated field, and per GCP (dim ``gcp``) the offset ``field - known`` before calibration.
    """
    gcps = _gcp_table(gcps, column)
    names = [str(v) for v in gcps[next((c for c in ("station", "name") if c in gcps.columns), "x")]]
    iy = pixel_index(np.asarray(field[cv.Y].values, np.float64), np.asarray(gcps["y"], np.float64), "y", names)
    ix = pixel_index(np.asarray(field[cv.X].values, np.float64), np.asarray(gcps["x"], np.float64), "x", names)
    where = {cv.Y: xr.DataArray(iy, dims="gcp"), cv.X: xr.DataArray(ix, dims="gcp")}
    if labels is None:
        labels = xr.ones_like(field, dtype=np.int32)
    elif labels.shape != field.shape or set(labels.dims) != {cv.Y, cv.X}:
        raise ValueError(f"connected_component {labels.sizes} must be on the grid of the phase {field.sizes}")
    labels = labels.transpose(cv.Y, cv.X)
    known = xr.DataArray(np.asarray(gcps[column], np.float64), dims="gcp")
    at_gcp = field.isel(where).drop_vars([cv.Y, cv.X])
    lab_gcp = labels.isel(where).drop_vars([cv.Y, cv.X])
    if at_gcp.chunks is not None:
        at_gcp, lab_gcp = at_gcp.chunk({"gcp": -1}), lab_gcp.chunk({"gcp": -1})
    calibrated = xr.apply_ufunc(calibration_kernel, field, labels, at_gcp, lab_gcp, known,
                                input_core_dims=[[], [], ["gcp"], ["gcp"], ["gcp"]], dask="parallelized",
                                output_dtypes=[field.dtype])
    gcp_offset = (at_gcp - known).assign_coords(gcp_x=("gcp", np.asarray(gcps["x"], np.float64)),
                                               gcp_y=("gcp", np.asarray(gcps["y"], np.float64)))
    return calibrated.assign_attrs(field.attrs), gcp_offset


def median_offset(gcp_offset: xr.DataArray, long_name: str) -> xr.DataArray:
    """The 0-d NaN-median over ``gcp`` of :func:`calibrate`'s ``gcp_offset`` (lazy; m/yr)."""
    median = xr.apply_ufunc(np.nanmedian, gcp_offset, input_core_dims=[["gcp"]], kwargs={"axis": -1},
                            dask="parallelized", output_dtypes=[np.float64])
    return median.assign_attrs(units="m/yr", long_name=long_name)


def dinsar_velocity(unwrapped: xr.DataArray | xr.Dataset, *, dt_days: float, wavelength_m: float,
                    coherence: xr.DataArray, nlooks: float | None = None, gcps: pd.DataFrame | None = None,
                    connected_component: xr.DataArray | None = None) -> xr.Dataset:
    r"""Line-of-sight velocity (m/yr, positive towards the radar) and its sigma from an unwrapped interferogram.

    ::

        v_los       = - lambda / (4 pi) * phi / dt * 365.25            (m/yr, dt in days)
        v_los_error =   lambda / (4 pi) * sigma_phi / dt * 365.25,
        sigma_phi   = sqrt((1 - gamma^2) / (2 N gamma^2))              (Cramer-Rao, :func:`phase_sigma`)

    With ``gcps`` the unknown constant (and ``2 pi k`` per connected component) is
    removed: per component, ``median(v_los - v_known)`` over its GCPs is subtracted
    (:func:`calibrate`); components without GCPs and label 0 become NaN. ``sigma``
    is the per-pixel noise only (not the calibration error, nor the effect of a
    Goldstein filter, which lowers the real noise).

    Parameters
    ----------
    unwrapped
        Unwrapped phase (rad) on ``(y, x)``, or the Dataset of ``cryocube.unwrap.unwrap``
        (``unwrapped_phase`` and ``connected_component``).
    dt_days
        Time between the acquisitions (days, > 0).
    wavelength_m
        Radar wavelength (m, > 0).
    coherence
        Coherence on the same grid (e.g. ``interferogram(...)["coherence"]``).
    nlooks
        Independent looks behind the coherence; default its ``nlooks`` attr.
    gcps
        Ground control points: columns ``x``, ``y`` and ``v_los`` (known, m/yr; 0 on rock).
    connected_component
        Labels of the unwrapping (default: the Dataset's ``connected_component`` if any).

    Returns
    -------
    xr.Dataset
        ``v_los``, ``v_los_error`` (m/yr); with ``gcps`` also ``gcp_offset`` (dim
        ``gcp``: uncalibrated velocity minus known, m/yr) and, without component
        labels, the 0-d ``calibration_offset`` (m/yr) that was subtracted. Lazy.

    Raises
    ------
    ValueError, TypeError
        Bad ``dt_days``/``wavelength_m``, grids that differ, missing ``nlooks``,
        ``gcps`` lacking columns or outside the grid.
    """
    if isinstance(unwrapped, xr.Dataset):
        if "unwrapped_phase" not in unwrapped:
            raise ValueError(f"unwrapped has no 'unwrapped_phase' variable (has {list(unwrapped.data_vars)})")
        if connected_component is None and "connected_component" in unwrapped:
            connected_component = unwrapped["connected_component"]
        phase = unwrapped["unwrapped_phase"]
    elif isinstance(unwrapped, xr.DataArray):
        phase = unwrapped
    else:
        raise TypeError(f"unwrapped must be a DataArray or the Dataset of unwrap(), got {type(unwrapped).__name__}")
    if set(phase.dims) != {cv.Y, cv.X} or np.issubdtype(phase.dtype, np.complexfloating):
        raise ValueError(f"unwrapped phase must be real on (y, x), got {phase.dtype} on {phase.dims}")
    phase = phase.transpose(cv.Y, cv.X)
    if not isinstance(coherence, xr.DataArray) or coherence.shape != phase.shape:
        raise ValueError("coherence must be a DataArray on the grid of the unwrapped phase")
    for name, value in (("dt_days", dt_days), ("wavelength_m", wavelength_m)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if nlooks is None:
        if "nlooks" not in coherence.attrs:
            raise ValueError("nlooks not given and coherence has no 'nlooks' attr: pass nlooks=")
        nlooks = float(coherence.attrs["nlooks"])
    if not nlooks > 0:
        raise ValueError(f"nlooks must be > 0, got {nlooks!r}")
    scale = -phase_to_displacement(wavelength_m) / dt_days * DAYS_PER_YEAR
    v_los = (-scale * phase).astype(np.float32)
    sigma = xr.apply_ufunc(phase_sigma, coherence.transpose(cv.Y, cv.X), kwargs={"nlooks": float(nlooks)},
                           dask="parallelized", output_dtypes=[np.float64])
    out = xr.Dataset(coords=phase.coords)
    params: dict[str, Any] = {"dt_days": float(dt_days), "wavelength_m": float(wavelength_m), "nlooks": float(nlooks),
                              "sign": "positive towards the radar; interferogram s1 conj(s2)"}
    if gcps is not None:
        v_los, out["gcp_offset"] = calibrate(v_los, gcps, column="v_los", labels=connected_component)
        out["gcp_offset"].attrs.update(units="m/yr", long_name="uncalibrated LoS velocity minus known, at each GCP")
        if connected_component is None:
            out["calibration_offset"] = median_offset(out["gcp_offset"], "median GCP offset subtracted from v_los")
        params["gcps"] = _gcp_table(gcps, "v_los")[["x", "y", "v_los"]].to_dict(orient="list")
    out["v_los"] = v_los.assign_attrs(units="m/yr", long_name="line-of-sight velocity, positive towards the radar")
    out["v_los_error"] = (scale * sigma).astype(np.float32).assign_attrs(
        units="m/yr", long_name="1-sigma error of v_los (Cramer-Rao, from coherence)")
    return out.assign_attrs(product_attrs(phase, params))


def dinsar_chain(slc1: xr.DataArray, slc2: xr.DataArray, *, dt_days: float, wavelength_m: float,
                 looks: Sequence[int] = (10, 2), dem_phase: xr.DataArray | None = None, alpha: float = 0.5,
                 fft_px: int = 32, min_coherence: float = 0.3, gcps: pd.DataFrame | None = None) -> xr.Dataset:
    r"""Interferogram -> Goldstein -> SNAPHU unwrapping -> calibrated LoS velocity, all lazy.

    :func:`interferogram`, ``cryocube.unwrap.goldstein(alpha, fft_px)``,
    ``cryocube.unwrap.unwrap(method="snaphu", min_coherence, nlooks)`` and
    :func:`dinsar_velocity` (sigma from the unfiltered coherence). Returns the
    velocity dataset plus ``interferogram``, ``filtered_interferogram``,
    ``coherence``, ``unwrapped_phase`` and ``connected_component``.
    """
    from cryocube.unwrap import goldstein, unwrap

    ifg = interferogram(slc1, slc2, looks=looks, dem_phase=dem_phase)
    filtered = goldstein(ifg["interferogram"], alpha=alpha, fft_px=fft_px)
    unw = unwrap(filtered, ifg["coherence"], method="snaphu", min_coherence=min_coherence,
                 nlooks=float(ifg["coherence"].attrs["nlooks"]))
    vel = dinsar_velocity(unw, dt_days=dt_days, wavelength_m=wavelength_m, coherence=ifg["coherence"], gcps=gcps)
    return vel.assign(interferogram=ifg["interferogram"], filtered_interferogram=filtered,
                      coherence=ifg["coherence"], unwrapped_phase=unw["unwrapped_phase"],
                      connected_component=unw["connected_component"])
