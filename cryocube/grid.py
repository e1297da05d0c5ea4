"""The target grid of a cube: a CRS, a pixel size and pixel-aligned bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import CRS


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid.

    Parameters
    ----------
    crs
        Any CRS string pyproj understands (``"EPSG:3413"``).
    resolution
        Pixel size in CRS units (metres for projected CRSs), square pixels.
    bounds
        ``(left, bottom, right, top)`` of the outer pixel edges, in CRS units.
        Must be a whole number of pixels wide and high.
    """

    crs: str
    resolution: float
    bounds: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        if not self.resolution > 0:
            raise ValueError(f"Grid resolution must be positive, got {self.resolution!r}")
        left, bottom, right, top = self.bounds
        if not (right > left and top > bottom):
            raise ValueError(f"Grid bounds must be (left, bottom, right, top) with right>left, top>bottom; got {self.bounds}")
        CRS.from_user_input(self.crs)  # raises a clear pyproj error on nonsense
        for extent, name in ((right - left, "width"), (top - bottom, "height")):
            n = extent / self.resolution
            if abs(n - round(n)) > 1e-6:
                raise ValueError(f"Grid {name} {extent} is not a whole number of {self.resolution} pixels")

    @classmethod
    def snapped(cls, crs: str, resolution: float, bounds: tuple[float, float, float, float]) -> "Grid":
        """The smallest grid aligned to multiples of ``resolution`` that covers ``bounds``."""
        left, bottom, right, top = bounds
        r = resolution
        return cls(crs, r, (math.floor(left / r) * r, math.floor(bottom / r) * r, math.ceil(right / r) * r, math.ceil(top / r) * r))

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)``."""
        left, bottom, right, top = self.bounds
        return round((top - bottom) / self.resolution), round((right - left) / self.resolution)

    @property
    def transform(self) -> Affine:
        """Affine transform from (column, row) of pixel corners to CRS coordinates."""
        left, _, _, top = self.bounds
        return Affine(self.resolution, 0.0, left, 0.0, -self.resolution, top)

    @property
    def epsg(self) -> int | None:
        """EPSG code of the CRS, or None when it has none."""
        return CRS.from_user_input(self.crs).to_epsg()

    def x_coords(self) -> np.ndarray:
        """Pixel-centre x coordinates (increasing), float64."""
        left = self.bounds[0]
        return left + self.resolution * (np.arange(self.shape[1]) + 0.5)

    def y_coords(self) -> np.ndarray:
        """Pixel-centre y coordinates (decreasing, north-up), float64."""
        top = self.bounds[3]
        return top - self.resolution * (np.arange(self.shape[0]) + 0.5)
