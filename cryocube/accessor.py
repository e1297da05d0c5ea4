"""The ``.cryo`` accessor on xarray Datasets: forwarding only, no logic.

Registered when :mod:`cryocube` is imported. Each method calls the module-level
function of the same name with the Dataset as first argument.
"""

from __future__ import annotations

from typing import Any

import xarray as xr


@xr.register_dataset_accessor("cryo")
class CryoAccessor:
    """``ds.cryo.<function>(...)`` forwards to ``cryocube.<function>(ds, ...)``."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def load(self, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.load_cube`."""
        from cryocube.cube import load_cube

        return load_cube(self._ds, **kwargs)

    def write(self, store: Any, **kwargs: Any) -> Any:
        """Forward to :func:`cryocube.write_cube`."""
        from cryocube.store import write_cube

        return write_cube(self._ds, store, **kwargs)

    def append(self, store: Any, **kwargs: Any) -> Any:
        """Forward to :func:`cryocube.append_cube`."""
        from cryocube.store import append_cube

        return append_cube(self._ds, store, **kwargs)

    def quicklook(self, path: Any, **kwargs: Any) -> Any:
        """Forward to :func:`cryocube.plot.quicklook`."""
        from cryocube.plot import quicklook

        return quicklook(self._ds, path, **kwargs)
