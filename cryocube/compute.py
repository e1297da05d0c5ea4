"""Running dask graphs: on the active ``dask.distributed`` client if there is one, with optional progress."""

from __future__ import annotations

import os
from typing import Any

import dask


def distributed_client() -> Any | None:
    """The default ``dask.distributed`` client, or None when work runs on the local scheduler."""
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def run(delayed: Any, progress: bool = False) -> None:
    """Compute ``delayed`` (results discarded: used for graphs that write), showing progress if asked.

    Progress is ``distributed.progress`` under a client, else ``dask.diagnostics.ProgressBar``.
    """
    if not progress:
        dask.compute(delayed)
        return
    client = distributed_client()
    if client is not None:
        from distributed import progress as distributed_progress

        future = client.compute(delayed)
        distributed_progress(future)
        future.result()
        return
    from dask.diagnostics import ProgressBar

    with ProgressBar():
        dask.compute(delayed)


def configure_io_threads() -> None:
    """Let dask own the parallelism of Zarr reads and writes (called when cryocube is imported).

    dask already runs one task per core; Blosc's own threads and zarr-python's
    default thread pool (cores + 4 threads) on top of that oversubscribe the CPU.
    With Blosc on one thread and zarr's pool at one thread per core, normalization
    plus melt detection over a 100 x 2048 x 2048 cube from Zarr took 10.6 s instead
    of 13.9 s on 2 cores (``benchmarks/melt.py``). Set ``CRYOCUBE_KEEP_IO_THREADS=1``
    to leave both libraries at their defaults.
    """
    if os.environ.get("CRYOCUBE_KEEP_IO_THREADS"):
        return
    import numcodecs.blosc
    import zarr

    numcodecs.blosc.set_nthreads(1)
    zarr.config.set({"threading.max_workers": os.cpu_count() or 1})
