"""Writing small static STAC catalogs: deterministic COGs and pystac items on a :class:`~cryocube.grid.Grid`.

Used by ``scripts/make_catalogs.py`` for the bundled synthetic catalogs; generic
enough for tests and benchmarks that need their own catalogs.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
import rasterio.shutil
from rasterio.io import MemoryFile
from rasterio.warp import transform as _transform_points

from cryocube.grid import Grid

__all__ = [
    "EXTENSIONS",
    "footprint",
    "make_item",
    "projection_properties",
    "raster_band",
    "write_cog",
]

#: Schema URIs of the STAC extensions the writer uses.
EXTENSIONS: dict[str, str] = {
    "sar": "https://stac-extensions.github.io/sar/v1.1.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.1.0/schema.json",
    "view": "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
}

COG_MEDIA_TYPE = pystac.MediaType.COG  # "image/tiff; application=geotiff; profile=cloud-optimized"


def write_cog(
    path: str | os.PathLike[str],
    array: np.ndarray,
    grid: Grid,
    *,
    nodata: float | int | None = None,
    dtype: str | np.dtype[Any] | None = None,
    blocksize: int = 256,
    compress: str = "DEFLATE",
    level: int = 6,
) -> Path:
    """Write a 2-D array (or 3-D ``(band, y, x)``) as a Cloud-Optimized GeoTIFF on ``grid``.

    The file is built in memory as a GeoTIFF and copied with GDAL's COG driver
    (internal tiles ``blocksize``, ``compress`` with the predictor suited to the
    dtype: 3 for floats, 2 for integers; no overviews for images no larger than
    one tile). The result depends only on the inputs (no timestamps).

    Parameters
    ----------
    path
        Output file; parent directories are created.
    array
        Pixel values, rows north to south, shape ``grid.shape`` or ``(bands, *grid.shape)``.
    grid
        CRS, transform and shape of the raster.
    nodata
        Nodata value written into the file (``float("nan")`` allowed for floats).
    dtype
        Output data type; defaults to ``array.dtype``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(array)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.shape[1:] != grid.shape:
        raise ValueError(f"array shape {data.shape[1:]} does not match grid shape {grid.shape}")
    out_dtype = np.dtype(dtype) if dtype is not None else data.dtype
    data = data.astype(out_dtype, copy=False)
    predictor = 3 if np.issubdtype(out_dtype, np.floating) else 2
    profile = {
        "driver": "GTiff",
        "width": grid.shape[1],
        "height": grid.shape[0],
        "count": data.shape[0],
        "dtype": out_dtype.name,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        with mem.open() as src:
            rasterio.shutil.copy(
                src,
                str(path),
                driver="COG",
                BLOCKSIZE=blocksize,
                COMPRESS=compress,
                LEVEL=level,
                PREDICTOR=predictor,
                OVERVIEWS="AUTO",
                BIGTIFF="NO",
                NUM_THREADS=1,
            )
    return path


def raster_band(
    data_type: str,
    *,
    nodata: float | int | str | None = None,
    unit: str | None = None,
    scale: float | None = None,
    offset: float | None = None,
    spatial_resolution: float | None = None,
) -> dict[str, Any]:
    """One ``raster:bands`` entry (raster extension v1.1). NaN nodata is written as the string ``"nan"``."""
    band: dict[str, Any] = {"data_type": data_type}
    if nodata is not None:
        band["nodata"] = "nan" if isinstance(nodata, float) and math.isnan(nodata) else nodata
    if unit is not None:
        band["unit"] = unit
    if scale is not None:
        band["scale"] = scale
    if offset is not None:
        band["offset"] = offset
    if spatial_resolution is not None:
        band["spatial_resolution"] = spatial_resolution
    return band


def projection_properties(grid: Grid) -> dict[str, Any]:
    """``proj:code``, ``proj:shape``, ``proj:transform`` (6 affine terms) and ``proj:bbox`` of a grid (projection v2)."""
    epsg = grid.epsg
    code = f"EPSG:{epsg}" if epsg is not None else None
    t = grid.transform
    return {
        "proj:code": code,
        "proj:shape": list(grid.shape),
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "proj:bbox": list(grid.bounds),
    }


def footprint(grid: Grid, *, densify: int = 4, ndigits: int = 7) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON polygon and bbox (WGS84 lon/lat, rounded to ``ndigits``) of a grid's outline.

    Each edge is densified with ``densify`` points so that the outline follows the
    projected edges; rounding keeps the JSON identical across PROJ builds.
    """
    left, bottom, right, top = grid.bounds
    frac = np.linspace(0.0, 1.0, densify + 1)[:-1]
    xs = np.concatenate([left + (right - left) * frac, np.full(densify, right), right - (right - left) * frac, np.full(densify, left)])
    ys = np.concatenate([np.full(densify, bottom), bottom + (top - bottom) * frac, np.full(densify, top), top - (top - bottom) * frac])
    lon, lat = _transform_points(grid.crs, "EPSG:4326", xs.tolist(), ys.tolist())
    ring = [[round(a, ndigits), round(b, ndigits)] for a, b in zip(lon, lat)]
    ring.append(ring[0])
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    return {"type": "Polygon", "coordinates": [ring]}, [min(lons), min(lats), max(lons), max(lats)]


def make_item(
    item_id: str,
    datetime: _dt.datetime,
    grid: Grid,
    *,
    properties: Mapping[str, Any],
    assets: Mapping[str, pystac.Asset],
    extensions: list[str],
    collection: pystac.Collection | None = None,
) -> pystac.Item:
    """A pystac Item on ``grid``: footprint, projection properties, ``properties`` and ``assets``.

    ``extensions`` are keys of :data:`EXTENSIONS` (``"proj"`` is always added).
    ``datetime`` must be timezone-aware.
    """
    if datetime.tzinfo is None:
        raise ValueError("item datetime must be timezone-aware")
    geometry, bbox = footprint(grid)
    props = dict(properties)
    props.update(projection_properties(grid))
    names = list(dict.fromkeys([*extensions, "proj"]))
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=bbox,
        datetime=datetime,
        properties=props,
        stac_extensions=[EXTENSIONS[n] for n in names],
        collection=collection,
    )
    for key, asset in assets.items():
        item.add_asset(key, asset)
    return item
