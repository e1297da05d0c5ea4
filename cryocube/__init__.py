"""cryocube: analysis-ready Sentinel-1/-2 data cubes and cryosphere algorithms."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cryocube")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from cryocube.grid import Grid

__all__ = ["Grid", "__version__"]
