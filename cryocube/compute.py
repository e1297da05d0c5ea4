"""Running dask graphs: on the active ``dask.distributed`` client if there is one, with optional progress."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
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


#: The Zarr codec pipeline that :func:`zarr_reads` opens arrays with: zarrs (Rust), off the GIL.
READ_PIPELINE = "zarrs.ZarrsCodecPipeline"
_ZARR_DEFAULT_PIPELINE = "zarr.core.codec_pipeline.BatchedCodecPipeline"


@contextlib.contextmanager
def zarr_reads() -> Iterator[None]:
    """Open Zarr arrays inside this block with the zarrs codec pipeline (the arrays keep it, dask workers included).

    zarr-python fetches and decodes every chunk through Python coroutines on one
    event-loop thread; zarrs (https://github.com/zarrs/zarrs-python) does it in Rust
    threads, off the GIL, so reads no longer stall the kernels running beside them.
    Reading the 5 GB of ``benchmarks/melt.py`` (3 variables, 100 x 2048 x 2048,
    lz4) through ``open_cube(..., chunks="temporal")`` took 1.9 s instead of 4.4-5.0 s
    on 2 cores, and melt detection over it 6.4-7.2 s instead of 11.4-15.6 s on
    (4, 256, 256) chunks. Arrays or stores zarrs does not support (string and date
    arrays, stores other than local, object-store and HTTP ones) fall back to
    zarr-python's pipeline, array by array. A pipeline the user chose in
    ``zarr.config`` is kept.
    """
    import zarr

    if zarr.config.get("codec_pipeline.path") != _ZARR_DEFAULT_PIPELINE:
        yield
        return
    with zarr.config.set({"codec_pipeline.path": READ_PIPELINE}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Array is unsupported by ZarrsCodecPipeline")
        yield
