"""track_offsets(): dense offset tracking between two images of a cube, blockwise with dask.

The scene is cut into blocks whose edges are multiples of ``step_px``; each block
is matched with a halo of ``chip_px // 2 + search + max |prior|`` pixels (padded
with NaN at the scene edges), so every point sees exactly the pixels it would see
in one big block: results do not depend on the chunking. Points lie on a fixed
global grid, every ``step_px`` pixels from ``step_px // 2``, and cover the whole
scene up to its edges (chips that stick out of the scene are partly nodata and
kept when enough of them is valid). Then, on the point grid: thresholds
(``ncc``, ``snr``, maximum displacement) and a local-consistency filter (a
``map_overlap`` with a 2-point halo). See :mod:`cryocube.offset_kernel` for the
matching and :mod:`cryocube.offset_filters` for the filters.
"""

from __future__ import annotations

import json
import math
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import cryocube
from cryocube import conventions as cv
from cryocube.chunking import aligned_chunks, warn_if_oversized
from cryocube.offset_filters import (CONSISTENCY_RADIUS, RECENTRE_RADIUS, consistency_flags, recentre_displacements, smooth,
                                     threshold_flags)
from cryocube.offset_kernel import CENTROID_OUTPUTS, N_OUTPUTS, OUTPUTS, OffsetFlag, match_block
from cryocube.prefilters import PREFILTERS, halo_px

#: Default block edge (px) of the input when it is not chunked yet; rounded to a multiple of ``step_px``.
DEFAULT_BLOCK_PX = 1024

_COL = {name: i for i, name in enumerate(OUTPUTS)}


def as_image(image: xr.DataArray, name: str) -> xr.DataArray:
    """A 2-D ``(y, x)`` DataArray from an image or a one-date slice of a cube."""
    if not isinstance(image, xr.DataArray):
        raise TypeError(f"{name} must be an xarray.DataArray with dims (y, x), got {type(image).__name__}")
    if cv.TIME in image.dims:
        if image.sizes[cv.TIME] != 1:
            raise ValueError(f"{name} has {image.sizes[cv.TIME]} dates along 'time': select one, e.g. cube.hh.isel(time=0)")
        image = image.squeeze(cv.TIME)
    if set(image.dims) != {cv.Y, cv.X}:
        raise ValueError(f"{name} must have dims (y, x), got {image.dims}")
    return image.transpose(cv.Y, cv.X)


def check_grids(reference: xr.DataArray, secondary: xr.DataArray) -> tuple[float, float]:
    """Check both images share one regular grid; return the pixel spacing (y, x) in coordinate units."""
    if reference.shape != secondary.shape:
        raise ValueError(f"reference {reference.shape} and secondary {secondary.shape} differ in shape: put both on one grid first")
    spacing = []
    for dim in (cv.Y, cv.X):
        a, b = reference[dim].values, secondary[dim].values
        if not np.allclose(a, b):
            raise ValueError(f"reference and secondary have different {dim!r} coordinates: put both on one grid first")
        if a.size < 2:
            raise ValueError(f"the images need at least 2 pixels along {dim!r}")
        step = np.diff(a)
        if not np.allclose(step, step[0], rtol=1e-6):
            raise ValueError(f"the {dim!r} coordinate is not regularly spaced")
        spacing.append(float(step[0]))
    return spacing[0], spacing[1]


def _check_parameters(chip_px: int, step_px: int, min_valid_fraction: float) -> None:
    for name, value, low in (("chip_px", chip_px, 4), ("step_px", step_px, 1)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low} px, got {value!r}")
    if not 0 < min_valid_fraction <= 1:
        raise ValueError(f"min_valid_fraction must be in (0, 1], got {min_valid_fraction!r}")


def _check_search(search_max: int, chip_px: int, shape: tuple[int, int]) -> None:
    if search_max < 1:
        raise ValueError(f"search_px must be >= 1 px, got {search_max!r}")
    if chip_px + 2 * search_max > min(shape):
        raise ValueError(f"chip_px + 2 * search_px = {chip_px + 2 * search_max} px is larger than the scene {shape}")


def points_per_block(chunks: tuple[int, ...], step: int) -> tuple[int, ...]:
    """Points per block along one axis for blocks whose edges are multiples of ``step``."""
    out, start = [], 0
    for size in chunks:
        stop = start + size
        first = math.ceil((start - step // 2) / step)
        last = math.ceil((stop - step // 2) / step)
        out.append(last - first)
        start = stop
    return tuple(out)


#: What ``track_offsets(mode=...)`` correlates (see :func:`as_dask`).
MODES = ("intensity", "amplitude", "complex")


def _check_mode(mode: str, image: xr.DataArray, name: str, prefilter: str | None) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode != "intensity" and not np.issubdtype(image.dtype, np.complexfloating):
        raise ValueError(f"mode={mode!r} needs complex (SLC) images, {name} has dtype {image.dtype}; real images are matched with mode='intensity'")
    if mode == "complex" and prefilter is not None:
        raise ValueError("prefilter applies to real images: use prefilter=None with mode='complex'")


def as_dask(image: xr.DataArray, step: int, mode: str) -> da.Array:
    """The image as a dask array of what is correlated: complex64 for ``"complex"``, else float32.

    Complex input is turned into intensity ``|s|^2`` or amplitude ``|s|``; real
    input is matched as it is.
    """
    data = image.data
    if not isinstance(data, da.Array):
        block = max(step, DEFAULT_BLOCK_PX // step * step)
        data = da.from_array(np.asarray(data), chunks=(block, block))
    if mode == "complex":
        return data.astype(np.complex64)
    if np.issubdtype(data.dtype, np.complexfloating):
        data = abs(data) ** 2 if mode == "intensity" else abs(data)
    return data.astype(np.float32)


def _per_point(value: Any, name: str, points: xr.Dataset, spacing: float | None) -> np.ndarray | int:
    """Whole pixels per point from a scalar (returned as an int) or a DataArray interpolated to the points."""
    if value is None:
        return 0
    if isinstance(value, xr.DataArray):
        if isinstance(value.data, da.Array):
            raise ValueError(f"{name} is dask-backed: load it first (it is small); its maximum sets the dask halo")
        on_points = value.interp(y=points[cv.Y], x=points[cv.X], method="linear").transpose(cv.Y, cv.X)
        values = np.asarray(on_points.values, dtype=np.float64) / (spacing or 1.0)
        return np.rint(np.nan_to_num(values, nan=0.0)).astype(np.int32)
    scalar = float(value) / (spacing or 1.0)
    if not np.isfinite(scalar):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return int(round(scalar))


def _chunked(value: np.ndarray | int, shape: tuple[int, int], chunks: tuple) -> da.Array:
    if isinstance(value, np.ndarray):
        return da.from_array(value, chunks=chunks)
    return da.full(shape, value, chunks=chunks, dtype=np.int32)


def _prefiltered(image: da.Array, method: str, sigma: float) -> da.Array:
    """``image`` pre-filtered blockwise with the halo the filter needs (NaN beyond the scene)."""
    from cryocube.prefilters import prefilter

    # the caller's chunks are at least halo_px(sigma) wide (dask would rechunk otherwise)
    return da.map_overlap(prefilter, image, depth=halo_px(sigma), boundary=np.nan, dtype=np.float32, method=method, sigma=float(sigma))


def _match_blocks(ref: np.ndarray, sec: np.ndarray, prior_r: np.ndarray, prior_c: np.ndarray, search: np.ndarray, *,
                  depth: int, step: int, chip_px: int, max_search: int, min_valid_fraction: float,
                  starts: tuple[tuple[int, ...], tuple[int, ...]], block_info: dict | None = None) -> np.ndarray:
    """One block: chip centres of this block (global grid), matched with the halo ``depth``.

    ``starts`` holds the first pixel of every block along y and x (without halo).
    """
    i, j = block_info[0]["chunk-location"]
    r0, c0 = starts[0][i], starts[1][j]
    n_r, n_c = prior_r.shape
    first_r = math.ceil((r0 - step // 2) / step) * step + step // 2
    first_c = math.ceil((c0 - step // 2) / step) * step + step // 2
    rows = depth + (first_r - r0) + step * np.arange(n_r)
    cols = depth + (first_c - c0) + step * np.arange(n_c)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    out = match_block(ref, sec, rr.ravel(), cc.ravel(), prior_r.ravel(), prior_c.ravel(), search.ravel(),
                      chip_px=chip_px, max_search_px=max_search, min_valid_fraction=min_valid_fraction, grid_shape=(n_r, n_c))
    return out.reshape(n_r, n_c, N_OUTPUTS)


def consistency_block(stack: np.ndarray, *, tolerance_px: float, n_sigma: float) -> np.ndarray:
    flag = consistency_flags(stack[..., 0], stack[..., 1], np.nan_to_num(stack[..., 2], nan=OffsetFlag.NODATA).astype(np.uint8), tolerance_px=tolerance_px, n_sigma=n_sigma)
    return flag.astype(np.float32)[..., None]


def recentre_block(stack: np.ndarray, *, step_px: int) -> np.ndarray:
    """:func:`~cryocube.offset_filters.recentre_displacements` on a ``(..., 3 + 8)`` stack.

    The stack holds drow, dcol (px), flag and the 8 entries of the centroid tensor; returns it with drow, dcol moved.
    """
    flag = np.nan_to_num(stack[..., 2], nan=OffsetFlag.NODATA).astype(np.uint8)
    out = stack.copy()
    centroid = stack[..., 3:].reshape(*flag.shape, 2, 2, 2)
    out[..., 0], out[..., 1] = recentre_displacements(stack[..., 0], stack[..., 1], flag, centroid, step_px=step_px)
    return out


def time_attrs(image: xr.DataArray, role: str) -> dict[str, Any]:
    attrs = {}
    if cv.TIME in image.coords and image[cv.TIME].size == 1:
        attrs[f"{role}_time"] = str(np.datetime_as_string(image[cv.TIME].values, unit="s"))
    for coord, key in (("platform", "sensor"), ("item_id", "item_id")):
        if coord in image.coords and image[coord].size == 1:
            attrs[f"{role}_{key}"] = str(image[coord].values)
    return attrs


def track_offsets(
    reference: xr.DataArray,
    secondary: xr.DataArray,
    *,
    chip_px: int = 32,
    search_px: int | xr.DataArray = 12,
    step_px: int = 8,
    prior_dx: float | xr.DataArray | None = None,
    prior_dy: float | xr.DataArray | None = None,
    min_valid_fraction: float = 0.5,
    min_ncc: float = 0.2,
    min_snr: float = 1.1,
    max_displacement: float | None = None,
    max_error_px: float = 1.0,
    consistency_px: float | None = 1.0,
    consistency_sigma: float = 3.0,
    prefilter: str | None = None,
    prefilter_sigma_px: float = 4.0,
    mode: str = "intensity",
    recentre: bool = True,
) -> xr.Dataset:
    """Dense offset tracking by normalized cross-correlation, lazily and blockwise.

    Parameters
    ----------
    reference, secondary
        2-D DataArrays ``(y, x)`` on the same regular grid (numpy- or dask-backed),
        or one-date slices of a cube (``cube.hh.isel(time=[k])``). NaN = nodata.
    chip_px
        Edge of the square reference chip (px).
    search_px
        Search radius (px) around the prior; a scalar or a DataArray (px) on any
        grid covering the scene, interpolated to the points.
    step_px
        Spacing of the output points (px).
    prior_dx, prior_dy
        Expected displacement (coordinate units, e.g. m, along x and y): a scalar
        or a DataArray (e.g. from a reference velocity map times the time
        interval), interpolated to the points; rounded to whole pixels. DataArrays
        must be numpy-backed (their maximum sets the dask halo).
    min_valid_fraction
        Points whose reference chip or matched secondary chip has a smaller
        fraction of valid pixels are rejected (flag ``NODATA``).
    min_ncc, min_snr
        Rejection thresholds on the peak correlation and on the ratio of the peak to
        the second peak.
    max_displacement
        Largest accepted displacement (coordinate units); default: no limit beyond
        the search window.
    max_error_px
        Largest accepted 1-sigma error estimate (px): points whose correlation peak
        is too flat for their correlation (partly decorrelated chips) are rejected
        (flag ``IMPRECISE``).
    consistency_px, consistency_sigma
        Local-consistency filter: reject points farther from the median of their
        5 x 5 neighbours than ``max(consistency_px, consistency_sigma * 1.4826 *
        MAD)`` (px). ``consistency_px=None`` disables it.
    prefilter, prefilter_sigma_px
        ``"highpass"`` or ``"wallis"`` (see :mod:`cryocube.prefilters`) with a Gaussian
        of ``prefilter_sigma_px`` px, applied to both images (blockwise, NaN-aware)
        before matching; ``None`` (default) matches the images as they are.
    mode
        What is correlated. ``"intensity"`` (default): real images as they are
        (backscatter, reflectance), complex (SLC) images as ``|s|^2`` (ICC);
        ``"amplitude"``: ``|s|`` of complex images (ACC); ``"complex"``: the complex
        correlation of SLC patches (CCC, coherent offset tracking), which locks on
        the speckle phase and is more precise where coherence is high (see
        :mod:`cryocube.offset_kernel`). ``"amplitude"`` and ``"complex"`` need
        complex input. Oversample SLCs by 2 (as ampcor does) for the sub-pixel fit.
    recentre
        Give each accepted displacement at its chip centre: a match measures the
        displacement where the chip's texture is (e.g. beside saturated snow, or at
        the scene edge), which differs from the centre's where the flow has a
        gradient; it is moved there with the gradient fitted to its 5 x 5
        neighbours (:func:`cryocube.offset_filters.recentre_displacements`). ``False`` keeps the
        matched values.

    Returns
    -------
    xr.Dataset
        On the point grid ``(y, x)`` (chip centres, in the input's coordinate units):
        ``dx``, ``dy`` (displacement from reference to secondary in coordinate units
        along x and y; NaN where rejected), ``dx_error``, ``dy_error`` (1-sigma),
        ``ncc``, ``snr``, ``valid_fraction`` and ``flag`` (uint8, see
        :class:`~cryocube.offset_kernel.OffsetFlag`, documented in its attrs).
        Lazy: nothing is computed.
    """
    reference = as_image(reference, "reference")
    secondary = as_image(secondary, "secondary")
    dy_px, dx_px = check_grids(reference, secondary)
    search_scalar = None if isinstance(search_px, xr.DataArray) else int(search_px)
    step = int(step_px)
    _check_parameters(chip_px, step_px, min_valid_fraction)
    for name, image in (("reference", reference), ("secondary", secondary)):
        _check_mode(mode, image, name, prefilter)
    if prefilter is not None and (prefilter not in PREFILTERS or not prefilter_sigma_px > 0):
        raise ValueError(f"prefilter must be one of {PREFILTERS} or None with prefilter_sigma_px > 0, got {prefilter!r}, {prefilter_sigma_px!r}")
    n_points = tuple(math.ceil((n - step // 2) / step) for n in reference.shape)
    rows = step // 2 + step * np.arange(n_points[0])
    cols = step // 2 + step * np.arange(n_points[1])
    centre = (chip_px // 2) - (chip_px - 1) / 2  # chip centre is this far before the pixel index
    y0, x0 = float(reference[cv.Y][0]), float(reference[cv.X][0])
    points = xr.Dataset(coords={cv.Y: y0 + (rows - centre) * dy_px, cv.X: x0 + (cols - centre) * dx_px})
    prior_r = _per_point(prior_dy, "prior_dy", points, dy_px)
    prior_c = _per_point(prior_dx, "prior_dx", points, dx_px)
    search = search_scalar if search_scalar is not None else _per_point(search_px, "search_px", points, None)
    max_search = int(np.max(search))
    _check_search(max_search, chip_px, reference.shape)
    depth = chip_px // 2 + max_search + int(max(np.max(np.abs(prior_r)), np.max(np.abs(prior_c)))) + 1

    ref = as_dask(reference, step, mode)
    smallest = max(depth, step, halo_px(prefilter_sigma_px) if prefilter is not None else 0)
    ref = ref.rechunk(tuple(aligned_chunks(c, step, smallest) for c in ref.chunks))
    sec = as_dask(secondary, step, mode).rechunk(ref.chunks)
    warn_if_oversized(ref, "track_offsets", halo_px=depth,
                      suggestion=f"Chunk the images spatially, e.g. .chunk({{'y': {DEFAULT_BLOCK_PX}, 'x': {DEFAULT_BLOCK_PX}}}).")
    if prefilter is not None:
        ref, sec = (_prefiltered(a, prefilter, prefilter_sigma_px) for a in (ref, sec))
    point_chunks = tuple(points_per_block(c, step) for c in ref.chunks)
    prior_r, prior_c, search = (_chunked(v, n_points, point_chunks) for v in (prior_r, prior_c, search))

    ref_o = da.overlap.overlap(ref, depth={0: depth, 1: depth}, boundary={0: np.nan, 1: np.nan})
    sec_o = da.overlap.overlap(sec, depth={0: depth, 1: depth}, boundary={0: np.nan, 1: np.nan})
    raw = da.map_blocks(
        _match_blocks, ref_o, sec_o, prior_r, prior_c, search,
        depth=depth, step=step, chip_px=int(chip_px), starts=tuple(tuple(np.cumsum((0, *c[:-1])).tolist()) for c in ref.chunks), max_search=max_search, min_valid_fraction=float(min_valid_fraction),
        chunks=(*point_chunks, (N_OUTPUTS,)), new_axis=2, dtype=np.float32,
        token="cryocube-track-offsets",  # a prefix: the key is hashed from the inputs (name= would collide across calls)
    )
    drow, dcol = raw[..., _COL["drow"]], raw[..., _COL["dcol"]]
    ncc, snr = raw[..., _COL["ncc"]], raw[..., _COL["snr"]]
    size_px = da.hypot(drow, dcol)
    max_px = np.inf if max_displacement is None else float(max_displacement) / min(abs(dy_px), abs(dx_px))
    error_px = da.fmax(raw[..., _COL["drow_error"]], raw[..., _COL["dcol_error"]])
    flag = da.map_blocks(threshold_flags, raw[..., _COL["flag"]].astype(np.uint8), ncc, snr, size_px, error_px,
                         min_ncc=min_ncc, min_snr=min_snr, max_displacement_px=max_px, max_error_px=float(max_error_px),
                         dtype=np.uint8)
    if consistency_px is not None:
        stack = da.stack([drow, dcol, flag.astype(np.float32)], axis=-1).rechunk({2: 3})
        flag = da.map_overlap(consistency_block, stack, depth={0: CONSISTENCY_RADIUS, 1: CONSISTENCY_RADIUS, 2: 0},
                              boundary=np.nan, dtype=np.float32, tolerance_px=float(consistency_px),
                              n_sigma=float(consistency_sigma))[..., 0].astype(np.uint8)
    accepted = flag == OffsetFlag.OK
    if recentre:
        first = _COL[CENTROID_OUTPUTS[0]]
        stack = da.concatenate([drow[..., None], dcol[..., None], flag.astype(np.float32)[..., None],
                                raw[..., first:first + len(CENTROID_OUTPUTS)]], axis=-1).rechunk({2: -1})
        moved = da.map_overlap(recentre_block, stack, depth={0: RECENTRE_RADIUS, 1: RECENTRE_RADIUS, 2: 0},
                               boundary=np.nan, dtype=np.float32, step_px=step)
        drow, dcol = moved[..., 0], moved[..., 1]

    def variable(values: da.Array, units: str, long_name: str) -> xr.DataArray:
        return xr.DataArray(values, dims=(cv.Y, cv.X), attrs={"units": units, "long_name": long_name})

    units = str(reference[cv.X].attrs.get("units", "m"))
    ds = points.assign(
        dx=variable(da.where(accepted, dcol * dx_px, np.nan), units, "displacement along x, reference to secondary"),
        dy=variable(da.where(accepted, drow * dy_px, np.nan), units, "displacement along y, reference to secondary"),
        dx_error=variable(da.where(accepted, raw[..., _COL["dcol_error"]] * abs(dx_px), np.nan), units, "1-sigma error of dx"),
        dy_error=variable(da.where(accepted, raw[..., _COL["drow_error"]] * abs(dy_px), np.nan), units, "1-sigma error of dy"),
        ncc=variable(ncc, "1", "peak normalized cross-correlation"),
        snr=variable(snr, "1", "peak correlation over second peak"),
        valid_fraction=variable(raw[..., _COL["valid_fraction"]], "1", "fraction of valid pixels in the chips"),
        flag=variable(flag, "1", "0 accepted, else why rejected"),
    )
    ds["flag"].attrs["flag_values"] = [int(f) for f in OffsetFlag]
    ds["flag"].attrs["flag_meanings"] = " ".join(f.name.lower() for f in OffsetFlag)
    params = dict(chip_px=int(chip_px), search_px=search_scalar if search_scalar is not None else "per point", step_px=step,
                  min_valid_fraction=min_valid_fraction, min_ncc=min_ncc, min_snr=min_snr, max_displacement=max_displacement, max_error_px=max_error_px,
                  consistency_px=consistency_px, consistency_sigma=consistency_sigma,
                  mode=mode, recentre=recentre, prefilter=prefilter, prefilter_sigma_px=prefilter_sigma_px if prefilter else None,
                  prior_dx=None if prior_dx is None else ("map" if isinstance(prior_dx, xr.DataArray) else float(prior_dx)),
                  prior_dy=None if prior_dy is None else ("map" if isinstance(prior_dy, xr.DataArray) else float(prior_dy)))
    ds.attrs = {**time_attrs(reference, "reference"), **time_attrs(secondary, "secondary"),
                cv.ATTR_VERSION: cryocube.__version__, cv.ATTR_PARAMS: json.dumps(params)}
    if reference.rio.crs is not None:
        ds = ds.rio.write_crs(reference.rio.crs)
    return ds


def select_pair(cube: xr.Dataset, reference: int | str, secondary: int | str, *, variable: str | None = None) -> tuple[xr.DataArray, xr.DataArray]:
    """Two one-date slices of a cube variable, for :func:`track_offsets`.

    Parameters
    ----------
    cube
        A ``(time, y, x)`` cube.
    reference, secondary
        Scene positions along ``time`` (int) or item ids (str).
    variable
        Variable to track (default: the first ``(time, y, x)`` variable other than
        ``incidence_angle``).
    """
    if variable is None:
        candidates = [n for n, v in cube.data_vars.items() if v.dims == (cv.TIME, cv.Y, cv.X) and n != cv.INCIDENCE_ANGLE]
        if not candidates:
            raise ValueError("the cube has no (time, y, x) variable to track")
        variable = str(candidates[0])
    if variable not in cube.data_vars:
        raise ValueError(f"variable={variable!r} is not in the cube; it has {list(cube.data_vars)}")

    def one(which: int | str, name: str) -> xr.DataArray:
        if isinstance(which, str):
            ids = [str(i) for i in cube["item_id"].values] if "item_id" in cube.coords else []
            if which not in ids:
                raise ValueError(f"{name}={which!r} is not an item id of the cube")
            which = ids.index(which)
        if not -cube.sizes[cv.TIME] <= int(which) < cube.sizes[cv.TIME]:
            raise ValueError(f"{name}={which} is out of range: the cube has {cube.sizes[cv.TIME]} scenes")
        return cube[variable].isel({cv.TIME: [int(which)]})

    return one(reference, "reference"), one(secondary, "secondary")


def smooth_offsets(offsets: xr.Dataset, *, size: int = 3, method: str = "median") -> xr.Dataset:
    """Smooth ``dx`` and ``dy`` with a NaN-aware ``size x size`` median or mean over the accepted points.

    Rejected points stay NaN (smoothing never fills gaps); the errors are left as
    they are. Lazy: a ``map_overlap`` with a ``size // 2`` halo. The choice is
    recorded in the ``smoothing`` attr.
    """
    if int(size) != size or size < 3 or size % 2 == 0:
        raise ValueError(f"size must be an odd integer >= 3 (points), got {size!r}")
    out = offsets.copy()
    for name in ("dx", "dy"):
        data = offsets[name].data
        if not isinstance(data, da.Array):
            data = da.from_array(data)
        depth = size // 2
        data = data.rechunk(tuple(aligned_chunks(c, 1, depth) for c in data.chunks))
        out[name] = offsets[name].copy(data=da.map_overlap(smooth, data, depth=depth, boundary=np.nan, dtype=data.dtype, size=int(size), method=method))
    out.attrs["smoothing"] = f"{method} {size}x{size} points"
    return out
