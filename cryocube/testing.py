"""Helpers shared by the test suite and by users testing their own pipelines."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dask


class DaskComputeError(RuntimeError):
    """Raised when dask computes although it was not allowed to."""


class _CountingScheduler:
    """A dask scheduler that counts calls and refuses more than ``max_computes``."""

    def __init__(self, max_computes: int) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise DaskComputeError(f"dask computed {self.total_computes} time(s); at most {self.max_computes} allowed")
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[_CountingScheduler]:
    """Fail if dask computes more than ``max_computes`` times inside the block.

    Same idea as flox's and xarray's test helper: swap in a scheduler that raises.

    Examples
    --------
    >>> with raise_if_dask_computes():
    ...     cube = build_cube(items)   # must stay lazy
    """
    scheduler = _CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler
