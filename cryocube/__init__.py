"""cryocube: analysis-ready Sentinel-1/-2 data cubes and cryosphere algorithms.

Importing the package registers the ``.cryo`` accessor on :class:`xarray.Dataset`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cryocube")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from cryocube import accessor as _accessor  # noqa: F401  (registers ds.cryo)
from cryocube.compute import configure_io_threads

configure_io_threads()
from cryocube.aws import AWSFormatError, MeltValidation, aws_melt_days, read_aws_logger, validate_melt
from cryocube.catalog import CatalogError, search
from cryocube.coherent import dinsar_chain, dinsar_velocity, interferogram, topographic_phase
from cryocube.cube import build_cube, describe_cube, load_cube
from cryocube.deformation import fit_deformation
from cryocube.detector_offsets import correct_detector_offsets
from cryocube.gps import detect_surge, project_gps, validation_stats
from cryocube.grid import Grid
from cryocube.ice_drift import drift_consistency, track_ice_drift
from cryocube.ice_features import match_features
from cryocube.incidence import IncidenceSlopeModel, fit_incidence_slope, normalize_incidence, pair_orbits
from cryocube.interferograms import interferogram_items, open_interferograms
from cryocube.mai import mai
from cryocube.melt import detect_melt, dry_reference, melt_season
from cryocube.offset_kernel import OffsetFlag
from cryocube.offsets import select_pair, smooth_offsets, track_offsets
from cryocube.pair_tracking import track_pairs
from cryocube.redifferential import burst_overlap_ramp, redifferential_unwrap, simulate_phase
from cryocube.sbas import closure_phase, invert_sbas, rereference
from cryocube.stac_items import CubeInputError
from cryocube.store import NotACubeStoreError, append_cube, open_cube, write_cube, write_product
from cryocube.unwrap import goldstein, unwrap
from cryocube.vector_filters import filter_vectors
from cryocube.velocity import calibrate_stable, offsets_to_velocity
from cryocube.velocity_series import PairNetwork, invert_velocity, make_pairs

__all__ = [
    "__version__",
    "AWSFormatError",
    "CatalogError",
    "CubeInputError",
    "Grid",
    "IncidenceSlopeModel",
    "MeltValidation",
    "NotACubeStoreError",
    "OffsetFlag",
    "PairNetwork",
    "append_cube",
    "aws_melt_days",
    "build_cube",
    "burst_overlap_ramp",
    "calibrate_stable",
    "closure_phase",
    "correct_detector_offsets",
    "describe_cube",
    "detect_melt",
    "detect_surge",
    "dinsar_chain",
    "dinsar_velocity",
    "drift_consistency",
    "dry_reference",
    "filter_vectors",
    "fit_deformation",
    "fit_incidence_slope",
    "goldstein",
    "interferogram",
    "interferogram_items",
    "invert_sbas",
    "invert_velocity",
    "load_cube",
    "mai",
    "make_pairs",
    "match_features",
    "melt_season",
    "normalize_incidence",
    "offsets_to_velocity",
    "open_cube",
    "open_interferograms",
    "pair_orbits",
    "project_gps",
    "read_aws_logger",
    "redifferential_unwrap",
    "rereference",
    "search",
    "select_pair",
    "simulate_phase",
    "smooth_offsets",
    "topographic_phase",
    "track_ice_drift",
    "track_offsets",
    "track_pairs",
    "unwrap",
    "validate_melt",
    "validation_stats",
    "write_cube",
    "write_product",
]
