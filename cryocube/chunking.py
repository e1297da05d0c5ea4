"""Chunking policy for the algorithms (``DESIGN.md`` section 3).

* Temporal kernels (melt detection, per-pixel time series) need the whole ``time``
  axis in one chunk and spatial chunks small enough that a task's inputs and
  outputs fit comfortably in a worker's memory: :func:`temporal_chunks`.
* Neighbourhood kernels (offset tracking, filters) keep the spatial chunks and
  add halos with ``map_overlap`` (see :mod:`cryocube.offsets`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import xarray as xr

from cryocube import conventions as cv

#: Default bytes of one input variable per temporal-kernel task (64 MiB).
TEMPORAL_CHUNK_BYTES = 64 * 2**20


def _largest_fitting_divisor(chunk: int, limit: int) -> int:
    """The largest divisor of ``chunk`` that is at most ``limit`` (at least 1)."""
    best = 1
    for d in range(1, math.isqrt(chunk) + 1):
        if chunk % d == 0:
            for c in (d, chunk // d):
                if best < c <= limit:
                    best = c
    return best


def temporal_chunks(da: xr.DataArray, *, target_bytes: int = TEMPORAL_CHUNK_BYTES, dim: str = cv.TIME) -> Mapping[Hashable, int]:
    """Chunks for a temporal kernel: all of ``dim`` in one chunk, square-ish spatial tiles.

    The spatial tile edge is the largest size whose full-time block of ``da``
    stays within ``target_bytes``; when ``da`` is already chunked in ``y``/``x`` the
    edge is a divisor of the existing chunk, so every source chunk is split into
    whole tiles and read once.

    Parameters
    ----------
    da
        A ``(time, y, x)`` variable (numpy- or dask-backed).
    target_bytes
        Upper bound on the bytes of one task's block of ``da`` (bytes).
    dim
        The temporal core dimension.

    Returns
    -------
    dict
        ``{dim: -1, "y": edge, "x": edge}``, ready for ``.chunk()``.
    """
    n_time = da.sizes[dim]
    per_pixel = max(1, n_time * da.dtype.itemsize)
    edge = max(1, math.isqrt(max(1, target_bytes // per_pixel)))
    chunks: dict[Hashable, int] = {dim: -1}
    for d in (cv.Y, cv.X):
        if d not in da.dims:
            continue
        current = max(da.chunksizes[d]) if da.chunks is not None else da.sizes[d]
        chunks[d] = _largest_fitting_divisor(current, edge) if current > edge else current
    return chunks
