"""Chunking policy for the algorithms (``DESIGN.md`` section 3).

* Temporal kernels (melt detection, per-pixel time series) need the whole ``time``
  axis in one chunk and spatial chunks small enough that a task's inputs and
  outputs fit comfortably in a worker's memory: :func:`temporal_chunks`.
* Neighbourhood kernels (offset tracking, filters) keep the spatial chunks and
  add halos with ``map_overlap`` (see :mod:`cryocube.offsets`).
* A user's chunks are kept where they already suit the algorithm; where the core
  dimension is split, :func:`core_chunked` applies the policy above; where one
  task would still hold more than :data:`MAX_TASK_BYTES` of one input, a
  :class:`ChunkSizeWarning` names the algorithm and the chunks to use instead
  (:func:`warn_if_oversized`).
* Temporal kernels that also need a small spatial neighbourhood (the melt
  multilook) get their neighbours' border strips (:func:`halo_strips`,
  :class:`HaloBlock`) instead of concatenated padded blocks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from cryocube import conventions as cv

#: Default bytes of one input variable per temporal-kernel task (64 MiB).
TEMPORAL_CHUNK_BYTES = 64 * 2**20
#: One task holding more than this of one input variable (1 GiB) triggers a :class:`ChunkSizeWarning`.
MAX_TASK_BYTES = 2**30


class ChunkSizeWarning(UserWarning):
    """The chunks given to an algorithm would make each task hold too much memory."""


def _block_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    return int(np.prod(shape, dtype=np.int64)) * itemsize


def warn_if_oversized(array: da.Array | xr.DataArray, algorithm: str, *, suggestion: str, halo_px: int = 0,
                      limit_bytes: int | None = None, stacklevel: int = 3) -> None:
    """Warn (:class:`ChunkSizeWarning`) when the largest block of ``array`` exceeds ``limit_bytes``.

    Parameters
    ----------
    array
        A dask array or dask-backed DataArray as the algorithm will map it (numpy-backed: no check).
    algorithm
        Name shown in the warning (e.g. ``"invert_velocity"``).
    suggestion
        What to do instead (e.g. the chunks to pass to ``.chunk()``).
    halo_px
        Halo (px) added on both sides of the last two axes by the algorithm.
    limit_bytes
        Threshold (bytes) on one block of this one input; default :data:`MAX_TASK_BYTES`.
    stacklevel
        Passed to :func:`warnings.warn` (3: the caller of the algorithm).
    """
    data = array.data if isinstance(array, xr.DataArray) else array
    if not isinstance(data, da.Array):
        return
    largest = [max(c) for c in data.chunks]
    for axis in range(max(0, data.ndim - 2), data.ndim):
        largest[axis] += 2 * halo_px
    nbytes = _block_bytes(tuple(largest), data.dtype.itemsize)
    limit_bytes = MAX_TASK_BYTES if limit_bytes is None else limit_bytes
    if nbytes > limit_bytes:
        warnings.warn(f"{algorithm}: one task would hold {nbytes / 2**20:,.0f} MiB of one input (block {tuple(largest)}, "
                      f"{data.dtype}), more than {limit_bytes / 2**20:,.0f} MiB: workers may run out of memory. {suggestion}",
                      ChunkSizeWarning, stacklevel=stacklevel)


def core_chunked(var: xr.DataArray, dim: str, algorithm: str) -> xr.DataArray:
    """``var`` chunked for a kernel that needs all of ``dim`` in one chunk.

    Numpy-backed input is returned as it is. Dask input already whole along
    ``dim`` keeps the user's chunks (with a :class:`ChunkSizeWarning` when a block
    is too big); input split along ``dim`` is rechunked to :func:`temporal_chunks`
    (whole ``dim``, spatial tiles of ~64 MiB), so merging the pieces cannot
    explode a task.
    """
    if var.chunks is None:
        return var
    if len(var.chunksizes[dim]) > 1:
        return var.chunk(temporal_chunks(var, dim=dim))
    warn_if_oversized(var, algorithm, stacklevel=4,
                      suggestion=f"Chunk it spatially first, e.g. .chunk({dict(temporal_chunks(var, dim=dim))}).")
    return var


def _largest_fitting_divisor(chunk: int, limit: int) -> int:
    """The largest divisor of ``chunk`` that is at most ``limit`` (at least 1)."""
    best = 1
    for d in range(1, math.isqrt(chunk) + 1):
        if chunk % d == 0:
            for c in (d, chunk // d):
                if best < c <= limit:
                    best = c
    return best


def temporal_chunks(da: xr.DataArray, *, target_bytes: int = TEMPORAL_CHUNK_BYTES, split_bytes: int | None = None,
                    dim: str = cv.TIME) -> Mapping[Hashable, int]:
    """Chunks for a temporal kernel: all of ``dim`` in one chunk, square-ish spatial tiles.

    The spatial tile edge is the largest size whose full-time block of ``da``
    stays within ``target_bytes``, aligned to the existing chunks (dask chunks, or
    the stored Zarr chunks in ``da.encoding["chunks"]`` for a lazily opened store):
    a multiple of a smaller chunk, so that tiles never straddle a source chunk
    boundary. A larger chunk is kept whole unless its full-time block exceeds
    ``split_bytes``, and only then split into the largest fitting divisor: every
    piece of a split Zarr chunk decompresses the whole chunk, so 256 x 256 tiles of
    a store chunked ``(4, 512, 512)`` decoded every chunk 4 times (melt benchmark,
    100 x 2048 x 2048: 14.6 s instead of 4.0 s of reading).

    Parameters
    ----------
    da
        A ``(time, y, x)`` variable (numpy- or dask-backed).
    target_bytes
        Bytes of one task's block of ``da`` that tiles grow towards (bytes).
    split_bytes
        A source chunk whose full-time block holds more than this is split (bytes);
        default ``4 * target_bytes``.
    dim
        The temporal core dimension.

    Returns
    -------
    dict
        ``{dim: -1, "y": edge, "x": edge}``, ready for ``.chunk()``.
    """
    n_time = da.sizes[dim]
    per_pixel = max(1, n_time * da.dtype.itemsize)
    budget = max(1, target_bytes // per_pixel)  # pixels per tile
    edge = max(1, math.isqrt(budget))
    stored = dict(zip(da.dims, da.encoding.get("chunks") or da.shape))
    current = {d: max(da.chunksizes[d]) if da.chunks is not None else int(stored[d]) for d in (cv.Y, cv.X) if d in da.dims}
    split_bytes = 4 * target_bytes if split_bytes is None else split_bytes
    kept = [] if per_pixel * math.prod(current.values()) > split_bytes else [s for s in current.values() if s > edge]
    limit = budget // math.prod(kept) if kept else edge  # for the other axis, beside whole large chunks
    chunks: dict[Hashable, int] = {dim: -1}
    for d, size in current.items():
        if size > edge:
            chunks[d] = size if kept else _largest_fitting_divisor(size, edge)
        else:
            chunks[d] = min(da.sizes[d], size * max(1, limit // size))
    return chunks


def aligned_chunks(chunks: tuple[int, ...], step: int, minimum: int) -> tuple[int, ...]:
    """Chunk sizes with interior edges on multiples of ``step`` and every chunk at least ``minimum`` px.

    The halo of a block must come from its neighbours only (dask's overlap
    would otherwise rechunk behind our back), hence the minimum.
    """
    total = sum(chunks)
    edges = sorted({int(round(e / step)) * step for e in np.cumsum(chunks)[:-1]})
    bounds = [0]
    for edge in edges:
        if edge - bounds[-1] >= minimum and total - edge >= minimum:
            bounds.append(edge)
    bounds.append(total)
    return tuple(b - a for a, b in zip(bounds[:-1], bounds[1:]))


def per_scene(func: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Run an elementwise numpy ``func`` one leading-axis slice (scene) at a time.

    ``func(a, b, ..., **kwargs)`` computed on whole ``(time, y, x)`` blocks makes one
    block-sized temporary per operation, and each pass streams the block through
    main memory; on one scene at a time the temporaries stay in the CPU cache. For
    ``sigma - s * (theta - theta_ref)`` on ``(100, 256, 256)`` float32 blocks this
    measured 17.6 ms per block whole and ~4 ms scene by scene. Inputs broadcast
    against each other (``apply_ufunc`` hands missing dimensions as size-1 axes);
    the output is float32.
    """
    def run(*arrays: Any, **kwargs: Any) -> np.ndarray:
        shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
        if len(shape) < 2:
            return np.asarray(func(*arrays, **kwargs), dtype=np.float32)
        out = np.empty(shape, dtype=np.float32)
        views = [np.broadcast_to(a, shape) for a in arrays]
        for i in range(shape[0]):
            out[i] = func(*(v[i] for v in views), **kwargs)
        return out
    return run


#: Neighbour strips of a halo block, in the order they are passed to a block task.
HALO_PARTS = ("tile", "north", "south", "west", "east", "north_west", "north_east", "south_west", "south_east")


@dataclass(frozen=True)
class HaloBlock:
    """A ``(T, ny, nx)`` tile and the ``halo``-px strips of its eight neighbours (NaN beyond the array).

    Strips are passed instead of a concatenated padded block: a task then holds
    small copies of its neighbours' borders rather than their whole tiles, and the
    padded scene is assembled one time step at a time, in cache (:meth:`scene`).
    """

    tile: np.ndarray
    north: np.ndarray
    south: np.ndarray
    west: np.ndarray
    east: np.ndarray
    north_west: np.ndarray
    north_east: np.ndarray
    south_west: np.ndarray
    south_east: np.ndarray
    halo: int

    @classmethod
    def isolated(cls, tile: np.ndarray, halo: int) -> "HaloBlock":
        """A block with no neighbours: every strip is NaN (a whole in-memory array)."""
        t, ny, nx = tile.shape

        def nan(rows: int, cols: int) -> np.ndarray:
            return np.full((t, rows, cols), np.nan, dtype=tile.dtype)

        return cls(tile, nan(halo, nx), nan(halo, nx), nan(ny, halo), nan(ny, halo),
                   nan(halo, halo), nan(halo, halo), nan(halo, halo), nan(halo, halo), halo)

    def scene(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        """Time step ``i`` padded by the halo, ``(ny + 2 halo, nx + 2 halo)`` (into ``out`` when given)."""
        h = self.halo
        ny, nx = self.tile.shape[1:]
        if h == 0:
            return self.tile[i]
        if out is None:
            out = np.empty((ny + 2 * h, nx + 2 * h), dtype=self.tile.dtype)
        out[:h, :h], out[:h, h:-h], out[:h, -h:] = self.north_west[i], self.north[i], self.north_east[i]
        out[h:-h, :h], out[h:-h, h:-h], out[h:-h, -h:] = self.west[i], self.tile[i], self.east[i]
        out[-h:, :h], out[-h:, h:-h], out[-h:, -h:] = self.south_west[i], self.south[i], self.south_east[i]
        return out


def _edge_strips(a: da.Array, axis: int, halo: int, side: str) -> da.Array:
    """Per block along ``axis``: the ``halo`` rows (axis 1) or columns (axis 2) of the previous ("before") or next
    ("after") blocks that touch it, copied; NaN beyond the array. One block of ``halo`` per block of ``a``."""
    starts = np.cumsum((0,) + a.chunks[axis])
    size = int(starts[-1])

    def nan(width: int) -> da.Array:
        shape, chunks = list(a.shape), list(a.chunks)
        shape[axis], chunks[axis] = width, (width,)
        return da.full(shape, np.nan, dtype=a.dtype, chunks=tuple(chunks))

    strips = []
    for b in range(len(a.chunks[axis])):
        lo, hi = (starts[b] - halo, starts[b]) if side == "before" else (starts[b + 1], starts[b + 1] + halo)
        inside_lo, inside_hi = max(int(lo), 0), min(int(hi), size)
        pieces = [nan(inside_lo - lo)] if inside_lo > lo else []
        if inside_hi > inside_lo:
            index = [slice(None)] * a.ndim
            index[axis] = slice(inside_lo, inside_hi)
            pieces.append(a[tuple(index)])
        if hi > inside_hi:
            pieces.append(nan(hi - inside_hi))
        strip = da.concatenate(pieces, axis=axis) if len(pieces) > 1 else pieces[0]
        if len(strip.chunks[axis]) > 1:  # neighbours thinner than the halo: the strip spans blocks
            strip = strip.rechunk({axis: halo})
        strips.append(strip.map_blocks(np.ascontiguousarray, dtype=a.dtype))
    return da.concatenate(strips, axis=axis)


def halo_strips(a: da.Array, halo: int) -> list[da.Array]:
    """The nine arrays of :data:`HALO_PARTS` for ``a`` ``(T, y, x)``: its tiles and their neighbours' border strips.

    Every array has ``a``'s number of blocks; block ``(0, i, j)`` of each is the
    matching part of :class:`HaloBlock` for tile ``(i, j)``. Strips are copies, so a
    tile's memory is released once its own task and its strips are done.
    """
    north, south = _edge_strips(a, 1, halo, "before"), _edge_strips(a, 1, halo, "after")
    west, east = _edge_strips(a, 2, halo, "before"), _edge_strips(a, 2, halo, "after")
    corners = [_edge_strips(edge, 2, halo, side) for edge in (north, south) for side in ("before", "after")]
    return [a, north, south, west, east, corners[0], corners[1], corners[2], corners[3]]
