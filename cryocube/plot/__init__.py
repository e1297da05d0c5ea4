"""Quicklook PNGs (matplotlib, no display needed), one module per product family."""

from cryocube.plot.coherent import mai_error_plot, velocity_maps
from cryocube.plot.cubes import (
    aws_melt_plot,
    melt_maps,
    melt_timeseries,
    quicklook,
    velocity_quicklook,
    velocity_series_plot,
)
from cryocube.plot.ice_drift import drift_quiver
from cryocube.plot.insar import sbas_timeseries_plot, sbas_velocity_map
from cryocube.plot.redifferential import redifferential_plot

__all__ = [
    "aws_melt_plot",
    "drift_quiver",
    "mai_error_plot",
    "melt_maps",
    "melt_timeseries",
    "quicklook",
    "redifferential_plot",
    "sbas_timeseries_plot",
    "sbas_velocity_map",
    "velocity_maps",
    "velocity_quicklook",
    "velocity_series_plot",
]
