"""Names, units and attributes shared by every cryocube module.

One place for the data model of ``DESIGN.md`` section 4, so that the loader, the
store and every algorithm spell dimensions, coordinates and units the same way.
"""

from __future__ import annotations

import math
from typing import Final

# Dimensions -----------------------------------------------------------------
TIME: Final = "time"
Y: Final = "y"
X: Final = "x"
PAIR: Final = "pair"

# Default target grid: NSIDC Sea Ice Polar Stereographic North.
DEFAULT_CRS: Final = "EPSG:3413"

# Per-scene coordinates on ``time`` and the STAC property each is read from.
# Keys are coordinate names in the cube, values are STAC item property names.
SCENE_COORDS: Final[dict[str, str]] = {
    "item_id": "id",  # provenance (the item's id, not a property)
    "collection": "collection",  # the item's collection id
    "platform": "platform",
    "constellation": "constellation",
    "orbit_state": "sat:orbit_state",
    "relative_orbit": "sat:relative_orbit",
    "view_incidence_angle": "view:incidence_angle",
    "cloud_cover": "eo:cloud_cover",
    "instrument_mode": "sar:instrument_mode",
}

# Assets holding a per-pixel incidence angle (degrees) become the 2-D variable
# INCIDENCE_ANGLE rather than a backscatter band.
INCIDENCE_ANGLE: Final = "incidence_angle"
#: Sentinel-2 detector number per pixel (a cube variable when the catalog has the footprint asset).
DETECTOR_FOOTPRINT: Final = "detector_footprint"
INCIDENCE_ASSET_ROLES: Final = ("incidence-angle", "local-incidence-angle")

# Variable attributes by asset / variable name. Backscatter is in dB.
VARIABLE_ATTRS: Final[dict[str, dict[str, str]]] = {
    "hh": {"units": "dB", "long_name": "HH backscatter coefficient sigma0"},
    "hv": {"units": "dB", "long_name": "HV backscatter coefficient sigma0"},
    "vv": {"units": "dB", "long_name": "VV backscatter coefficient sigma0"},
    "vh": {"units": "dB", "long_name": "VH backscatter coefficient sigma0"},
    "B02": {"units": "1", "long_name": "Sentinel-2 B02 (blue) surface reflectance"},
    "B03": {"units": "1", "long_name": "Sentinel-2 B03 (green) surface reflectance"},
    "B04": {"units": "1", "long_name": "Sentinel-2 B04 (red) surface reflectance"},
    "B08": {"units": "1", "long_name": "Sentinel-2 B08 (near infrared) surface reflectance"},
    INCIDENCE_ANGLE: {"units": "degree", "long_name": "radar incidence angle"},
    "vx": {"units": "m/yr", "long_name": "velocity along x"},
    "vy": {"units": "m/yr", "long_name": "velocity along y"},
    "v": {"units": "m/yr", "long_name": "speed"},
    "vx_error": {"units": "m/yr", "long_name": "1-sigma error of vx"},
    "vy_error": {"units": "m/yr", "long_name": "1-sigma error of vy"},
    "v_error": {"units": "m/yr", "long_name": "1-sigma error of v"},
}

# Attribute keys every cryocube output carries (DESIGN.md 4: provenance).
ATTR_VERSION: Final = "cryocube_version"
ATTR_ITEMS: Final = "cryocube_item_ids"
ATTR_PARAMS: Final = "cryocube_parameters"


def phase_to_displacement(wavelength_m: float) -> float:
    """Factor (m/rad) turning interferometric phase into LoS displacement: ``-lambda / (4 pi)``.

    The one sign convention of every InSAR step (SBAS, DInSAR, re-differential):
    ``phase = -4 pi / lambda * d_LoS`` with ``d_LoS`` positive towards the radar
    (the interferogram is ``s1 conj(s2)``), as in MintPy.
    """
    return -float(wavelength_m) / (4 * math.pi)
