"""Running dask graphs: on the active ``dask.distributed`` client if there is one, with optional progress."""

from __future__ import annotations

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
