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
  multilook) run over seam tiles (:func:`seam_map`, :class:`HaloBlock`): each
  tile is computed alone but for its inner ring, and the rings of touching tiles
  (the seams) from thin bands the tiles leave, so no tile waits in memory for its
  neighbours and none is read twice.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from functools import partial
from operator import getitem
from typing import Any

import dask.array as da
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
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


@dataclass(frozen=True)
class HaloBlock:
    """A ``(T, ny, nx)`` region and the ``halo``-px strips around it (NaN beyond the array).

    Kernels assemble the padded region one time step at a time, in cache
    (:meth:`scene`), from views of the array that holds it (:meth:`window`), so no
    padded copy of a whole block is ever made.
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
    def window(cls, a: np.ndarray, halo: int, rows: tuple[int, int], cols: tuple[int, int]) -> "HaloBlock":
        """The region ``a[:, rows[0]:rows[1], cols[0]:cols[1]]`` with its halo taken from ``a`` (views, no copy).

        A side whose halo would fall outside ``a`` must start at ``a``'s edge
        (``rows[0] == 0``...): its strips are NaN (the array's edge).
        """
        h = halo
        (r0, r1), (c0, c1) = rows, cols
        ny, nx = a.shape[1:]
        for start, end, size in ((r0, r1, ny), (c0, c1, nx)):
            if not (start == 0 or start >= h) or not (end == size or end <= size - h):
                raise ValueError(f"window {rows}, {cols} of a {a.shape} block cuts its halo of {h} px")

        def part(rs: tuple[int, int], cs: tuple[int, int]) -> np.ndarray:
            if rs[0] < 0 or cs[0] < 0 or rs[1] > ny or cs[1] > nx:
                return np.full((a.shape[0], rs[1] - rs[0], cs[1] - cs[0]), np.nan, dtype=a.dtype)
            return a[:, rs[0]:rs[1], cs[0]:cs[1]]

        above, inner_r, below = (r0 - h, r0), (r0, r1), (r1, r1 + h)
        left, inner_c, right = (c0 - h, c0), (c0, c1), (c1, c1 + h)
        return cls(part(inner_r, inner_c), part(above, inner_c), part(below, inner_c), part(inner_r, left),
                   part(inner_r, right), part(above, left), part(above, right), part(below, left), part(below, right), h)

    @classmethod
    def isolated(cls, tile: np.ndarray, halo: int) -> "HaloBlock":
        """A whole array with no neighbours: every strip is NaN."""
        return cls.window(tile, halo, (0, tile.shape[1]), (0, tile.shape[2]))

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


# --------------------------------------------------------------------------- #
# Seam tiling: a halo kernel over tiles that never wait for their neighbours
# --------------------------------------------------------------------------- #
def _inner_bounds(size: int, index: int, count: int, halo: int) -> tuple[int, int]:
    """The part of tile ``index`` (of ``count``, ``size`` px) computed from the tile alone: all but its inner ring."""
    return (halo if index > 0 else 0, size - halo if index < count - 1 else size)


#: Border bands a tile leaves for its seams, in the order :func:`_tile_bands` returns them.
BAND_SIDES = ("top", "bottom", "left", "right")


def _tile_bands(tile: np.ndarray, width: int) -> tuple[np.ndarray, ...]:
    """Copies of the ``width``-px border bands of a ``(F, ny, nx)`` tile, in :data:`BAND_SIDES` order."""
    return tuple(np.ascontiguousarray(tile[index])
                 for index in (np.s_[:, :width], np.s_[:, -width:], np.s_[:, :, :width], np.s_[:, :, -width:]))


def _inner_task(*arrays: np.ndarray, kernel: Callable[..., np.ndarray], position: tuple[int, int], n_inputs: int,
                halo: int, tiles: tuple[int, int], **kwargs: Any) -> np.ndarray:
    """``kernel`` on the part of a tile that needs no neighbour (the tile's own bands come after its inputs, passed
    only so that they are cut before this task runs and the tile can be released after it)."""
    ny, nx = arrays[0].shape[1:]
    rows = _inner_bounds(ny, position[0], tiles[0], halo)
    cols = _inner_bounds(nx, position[1], tiles[1], halo)
    return kernel(*(HaloBlock.window(a, halo, rows, cols) for a in arrays[:n_inputs]), **kwargs)


def _seam_task(*arrays: np.ndarray, kernel: Callable[..., np.ndarray], position: tuple[int, int], n_inputs: int,
               halo: int, tiles: tuple[int, int], kind: str, **kwargs: Any) -> np.ndarray:
    """``kernel`` on a seam, from the tiles' bands: ``kind`` "row" (bottom bands of tile ``(i, j)`` then top bands of
    ``(i + 1, j)``), "column" (right bands of ``(i, j)`` then left bands of ``(i, j + 1)``) or "crossing" (bottom
    bands of ``(i, j)``, ``(i, j + 1)`` then top bands of ``(i + 1, j)``, ``(i + 1, j + 1)``: their corners)."""
    i, j = position
    w = 2 * halo
    blocks = []
    for k in range(n_inputs):
        parts = arrays[k::n_inputs]
        if kind == "row":
            a = np.concatenate(parts, axis=1)
            blocks.append(HaloBlock.window(a, halo, (halo, 3 * halo), _inner_bounds(a.shape[2], j, tiles[1], halo)))
        elif kind == "column":
            a = np.concatenate(parts, axis=2)
            blocks.append(HaloBlock.window(a, halo, _inner_bounds(a.shape[1], i, tiles[0], halo), (halo, 3 * halo)))
        else:
            nw, ne, sw, se = parts
            a = np.concatenate([np.concatenate([nw[..., -w:], ne[..., :w]], axis=2),
                                np.concatenate([sw[..., -w:], se[..., :w]], axis=2)], axis=1)
            blocks.append(HaloBlock.window(a, halo, (halo, 3 * halo), (halo, 3 * halo)))
    return kernel(*blocks, **kwargs)


def seam_map(kernel: Callable[..., np.ndarray], inputs: list[da.Array], halo: int, *, n_out: int, dtype: Any,
             **kwargs: Any) -> da.Array:
    """Run a halo kernel over tiles of ``(F, y, x)`` dask arrays, reading every tile once and never holding it for a neighbour.

    ``kernel(*blocks, **kwargs)`` takes one :class:`HaloBlock` per input (a region and
    its ``halo``-px surroundings, NaN beyond the arrays) and returns the
    ``(n_out, ny, nx)`` result of that region; it must compute each pixel from its
    own neighbourhood only, so that the result does not depend on how the region is cut.

    Each tile is computed alone but for its inner ring of ``halo`` px (the rest
    needs no neighbour); the rings of two touching tiles form a ``2 halo``-px
    **seam**, computed afterwards from the ``2 halo``-px bands each tile leaves
    (copies, cut before the tile's own task runs). A tile's memory is therefore
    released as soon as its own task is done, whichever order the tasks run in,
    and no tile is read twice; overlapping padded blocks (``dask.array.overlap``)
    or strips cut from the neighbours keep tiles alive until their neighbours are
    read, and strips from a second read double the reading.

    Parameters
    ----------
    kernel
        Kernel on :class:`HaloBlock` inputs.
    inputs
        Dask arrays ``(F_k, y, x)`` with the same ``(y, x)`` shape and chunks, put in
        one chunk along their first axis; tiles thinner than ``2 halo + 1`` px are
        merged with a neighbour first.
    halo
        Neighbourhood (px) on each side.
    n_out, dtype
        Length of the output's first axis and its dtype.
    kwargs
        Passed to ``kernel``.

    Returns
    -------
    dask.array.Array
        ``(n_out, y, x)``. Its spatial chunks alternate the tiles less their seams
        and the ``2 halo``-px seams (with no halo, the tiles themselves).
    """
    yx = [aligned_chunks(c, 1, 2 * halo + 1) for c in inputs[0].chunks[1:]] if halo else list(inputs[0].chunks[1:])
    inputs = [a.rechunk({0: -1, 1: yx[0], 2: yx[1]}) for a in inputs]
    tiles, n = (len(yx[0]), len(yx[1])), len(inputs)
    token = tokenize(kernel, [a.name for a in inputs], halo, n_out, kwargs)
    name, bands = f"seam-map-{token}", f"seam-bands-{token}"
    common = {"kernel": kernel, "n_inputs": n, "halo": halo, "tiles": tiles, **kwargs}
    step = 2 if halo else 1  # output block of tile (i, j): (step i, step j); seams in between
    layer: dict[Any, Any] = {}

    def band(k: int, i: int, j: int, side: str) -> tuple:
        return (getitem, (bands, k, i, j), BAND_SIDES.index(side))

    for i, j in np.ndindex(*tiles):
        own = [(bands, k, i, j) for k in range(n)] if halo else []
        for k, a in enumerate(inputs if halo else []):
            layer[own[k]] = (_tile_bands, (a.name, 0, i, j), 2 * halo)
        layer[(name, 0, step * i, step * j)] = (partial(_inner_task, position=(i, j), **common),
                                                 *((a.name, 0, i, j) for a in inputs), *own)
        seams = {"row": (i + 1 < tiles[0], (1, 0), [((i, j), "bottom"), ((i + 1, j), "top")]),
                 "column": (j + 1 < tiles[1], (0, 1), [((i, j), "right"), ((i, j + 1), "left")]),
                 "crossing": (i + 1 < tiles[0] and j + 1 < tiles[1], (1, 1),
                              [((i, j), "bottom"), ((i, j + 1), "bottom"), ((i + 1, j), "top"), ((i + 1, j + 1), "top")])}
        for kind, (present, (di, dj), sources) in seams.items():
            if halo and present:
                args = [band(k, *tile, side) for tile, side in sources for k in range(n)]
                layer[(name, 0, 2 * i + di, 2 * j + dj)] = (partial(_seam_task, position=(i, j), kind=kind, **common), *args)
    inner = [tuple(b - a for a, b in (_inner_bounds(s, k, len(c), halo) for k, s in enumerate(c))) for c in yx]
    chunks = [tuple(v for size in sizes for v in (size, 2 * halo))[:-1] if halo else sizes for sizes in inner]
    graph = HighLevelGraph.from_collections(name, layer, dependencies=inputs)
    return da.Array(graph, name, ((n_out,), *chunks), meta=np.empty((0, 0, 0), dtype=dtype))
