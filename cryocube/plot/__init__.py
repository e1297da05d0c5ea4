"""Quicklook PNGs (matplotlib, no display needed), one module per product family."""

from cryocube.plot.cubes import (
    quicklook,
    velocity_quicklook,
    aws_melt_plot,
    melt_maps,
    melt_timeseries,
    velocity_series_plot,
)

__all__ = [
    "quicklook",
    "velocity_quicklook",
    "aws_melt_plot",
    "melt_maps",
    "melt_timeseries",
    "velocity_series_plot",
]
