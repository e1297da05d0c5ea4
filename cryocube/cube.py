"""build_cube(): STAC items -> a lazy ``(time, y, x)`` xarray Dataset.

The default loader is stackstac; odc-stac is offered as ``loader="odc"`` with the
same output.  Everything stackstac 0.5.1 needs handholding for is done here, in
one place, on copies of the items:

* it reads only ``proj:epsg``: items written by pystac >= 1.12 carry ``proj:code``
  instead, which is translated (:func:`cryocube.stac_items.asset_epsg`);
* it resolves relative asset hrefs against the working directory: hrefs are made
  absolute against the item's own location first;
* it raises on ``dtype="float32"`` with ``rescale=True``: cryocube reads raw values
  (``rescale=False``) and applies ``raster:bands`` scale/offset itself, lazily;
* its default ``xy_coords="topleft"`` puts coordinates on pixel corners, which
  shifts the rioxarray transform by half a pixel: ``"center"`` is used;
* it turns HTTP 404s into silent NaN scenes: cryocube raises instead;
* its reader reads a masked array, fills and copies it even when nothing needs
  masking: :class:`cryocube.readers.LeanRioReader` skips that when it is exact.

Both loaders are handed the same target :class:`~cryocube.grid.Grid`, computed
here from the items (or the caller's ``crs``/``resolution``/``bounds``), so their
outputs agree pixel for pixel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import dask.array as da
import numpy as np
import pandas as pd
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from pyproj import CRS, Transformer

import cryocube
from cryocube import conventions as cv
from cryocube.grid import Grid
from cryocube.readers import LeanRioReader
from cryocube.stac_items import (
    CubeInputError,
    asset_epsg,
    asset_scale_offset,
    check_assets,
    default_assets,
    native_footprint,
    prepare_items,
    variable_name,
)

Loader = Literal["stackstac", "odc"]

#: Spatial chunk edge (pixels) of the lazy cube. A multiple of the usual COG
#: tile sizes (256, 512) so that each dask chunk reads whole internal tiles.
DEFAULT_CHUNK_PX = 2048


def build_cube(
    items: pystac.ItemCollection | Iterable[pystac.Item | dict[str, Any]],
    *,
    assets: Sequence[str] | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    chunks: int | tuple[int, int] = DEFAULT_CHUNK_PX,
    resampling: str = "nearest",
    loader: Loader = "stackstac",
) -> xr.Dataset:
    """Stack STAC items into a lazy cube on one grid.

    Parameters
    ----------
    items
        STAC items (``pystac.ItemCollection``, a list of ``pystac.Item`` or item dicts),
        e.g. from :func:`cryocube.search`.
    assets
        Asset keys to load, each becoming one data variable (``hh``, ``hv``, ``B04``...).
        Assets with an incidence-angle role become the variable ``incidence_angle``.
        Default: every raster asset with role ``data`` or an incidence-angle role that
        all items share.
    crs
        Target CRS (``"EPSG:3413"``). Default: the items' CRS when they share one,
        else ``EPSG:3413``.
    resolution
        Target pixel size in target-CRS units (m). Default: the finest native pixel
        size when all items share the target CRS; required otherwise.
    bounds
        ``(left, bottom, right, top)`` in target-CRS units. Default: the union of the
        items' footprints. Snapped outwards to multiples of ``resolution``.
    chunks
        Spatial dask chunk size in pixels (an int or ``(y, x)``); one scene per chunk
        along ``time``.
    resampling
        Rasterio resampling name used when items must be reprojected or resampled.
    loader
        ``"stackstac"`` (default) or ``"odc"`` (odc-stac), with identical output.

    Returns
    -------
    xr.Dataset
        Dims ``(time, y, x)``; one float32 variable per asset (backscatter in dB,
        reflectance scaled by ``raster:bands``, nodata as NaN); per-scene coordinates
        on ``time`` (see :data:`cryocube.conventions.SCENE_COORDS`); CRS written with
        rioxarray; provenance in attrs. Nothing is read or computed.

    Raises
    ------
    CubeInputError
        No items, an unknown or non-raster asset, a missing asset file, an item
        without CRS information, or a grid that cannot be inferred; the message
        names the item, asset or parameter at fault.
    """
    plain = prepare_items(items)
    asset_keys = list(assets) if assets is not None else default_assets(plain)
    check_assets(plain, asset_keys)
    grid = target_grid(plain, asset_keys, crs=crs, resolution=resolution, bounds=bounds)
    chunk_yx = (chunks, chunks) if isinstance(chunks, int) else tuple(chunks)
    if loader == "stackstac":
        raw = _load_stackstac(plain, asset_keys, grid, chunk_yx, resampling)
    elif loader == "odc":
        raw = _load_odc(plain, asset_keys, grid, chunk_yx, resampling)
    else:
        raise ValueError(f"loader must be 'stackstac' or 'odc', got {loader!r}")
    return _assemble(plain, asset_keys, grid, raw, params={"resampling": resampling, "loader": loader})


def target_grid(
    items: list[dict[str, Any]],
    assets: Sequence[str],
    *,
    crs: str | None = None,
    resolution: float | None = None,
    bounds: tuple[float, float, float, float] | None = None,
) -> Grid:
    """The grid a cube of ``items`` is built on (see :func:`build_cube` for defaults)."""
    native = [(item, key, asset_epsg(item, key)) for item in items for key in assets]
    epsgs = sorted({epsg for _, _, epsg in native})
    if crs is None:
        crs = f"EPSG:{epsgs[0]}" if len(epsgs) == 1 else cv.DEFAULT_CRS
    target = CRS.from_user_input(crs)
    if target.to_epsg() is None:
        raise CubeInputError(f"crs={crs!r} has no EPSG code; cryocube's loaders need one")
    footprints = [(native_footprint(item, key), epsg) for item, key, epsg in native]
    if resolution is None:
        if epsgs != [target.to_epsg()]:
            raise CubeInputError(
                f"items are in {', '.join(f'EPSG:{e}' for e in epsgs)} but the target crs is {crs}: "
                "pass resolution= (target pixel size in CRS units)"
            )
        resolution = min(fp.resolution for fp, _ in footprints)
    if bounds is None:
        boxes = np.array([_reproject_bounds(fp.bounds, epsg, target) for fp, epsg in footprints])
        bounds = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
    return Grid.snapped(target.to_string(), float(resolution), tuple(float(b) for b in bounds))


def _reproject_bounds(bounds: tuple[float, float, float, float], epsg: int, target: CRS) -> tuple[float, ...]:
    if CRS.from_epsg(epsg) == target:
        return bounds
    transformer = Transformer.from_crs(CRS.from_epsg(epsg), target, always_xy=True)
    return transformer.transform_bounds(*bounds, densify_pts=21)


def _load_stackstac(
    items: list[dict[str, Any]], assets: list[str], grid: Grid, chunks: tuple[int, int], resampling: str
) -> xr.DataArray:
    import stackstac
    from rasterio.enums import Resampling

    stack = stackstac.stack(
        items,
        assets=assets,
        epsg=grid.epsg,
        resolution=grid.resolution,
        bounds=grid.bounds,
        snap_bounds=False,
        resampling=Resampling[resampling],
        chunksize=(1, 1, *chunks),
        dtype=np.dtype("float32"),
        fill_value=np.float32(np.nan),
        rescale=False,
        sortby_date=False,
        xy_coords="center",
        properties=False,
        band_coords=False,
        errors_as_nodata=(),
        reader=LeanRioReader,
    )
    return stack.transpose("band", "time", "y", "x")


def _load_odc(
    items: list[dict[str, Any]], assets: list[str], grid: Grid, chunks: tuple[int, int], resampling: str
) -> xr.DataArray:
    import odc.stac
    from odc.geo.geobox import GeoBox

    geobox = GeoBox(grid.shape, grid.transform, grid.crs)
    loaded = odc.stac.load(
        [pystac.Item.from_dict(_with_geometry(item, assets[0]), preserve_dict=False) for item in items],
        bands=assets,
        geobox=geobox,
        chunks={"time": 1, "y": chunks[0], "x": chunks[1]},
        dtype="float32",
        resampling=resampling,
        groupby="id",
        preserve_original_order=True,
        fail_on_error=True,
    )
    # odc-stac keeps nodata values as numbers in float output; mask them like stackstac.
    bands = []
    for key in assets:
        band = loaded[key]
        nodata = band.attrs.get("nodata")
        if nodata is not None and not np.isnan(nodata):
            band = band.where(band != nodata)
        bands.append(band.astype("float32").drop_vars([c for c in band.coords if c not in ("time", "y", "x")]))
    return xr.concat(bands, dim="band").assign_coords(band=assets)


def _with_geometry(item: dict[str, Any], asset: str) -> dict[str, Any]:
    """odc-stac needs a footprint: take the bbox, else the asset's native bounds, when an item has no geometry."""
    if item.get("geometry") is not None:
        return item
    if item.get("bbox") is not None:
        w, s, e, n = item["bbox"][:4]
    else:
        w, s, e, n = _reproject_bounds(native_footprint(item, asset).bounds, asset_epsg(item, asset), CRS.from_epsg(4326))
    return {**item, "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}}


def _assemble(
    items: list[dict[str, Any]], assets: list[str], grid: Grid, raw: xr.DataArray, params: dict[str, Any]
) -> xr.Dataset:
    n_time = len(items)
    if raw.shape[1:] != (n_time, *grid.shape):
        raise RuntimeError(f"loader returned shape {raw.shape[1:]}, expected {(n_time, *grid.shape)}")
    coords = {cv.TIME: pd.DatetimeIndex([_item_time(item) for item in items]).tz_localize(None).values.astype("datetime64[ns]"),
              cv.Y: grid.y_coords(), cv.X: grid.x_coords()}
    variables = {}
    for i, key in enumerate(assets):
        values = raw.data[i]
        scale, offset = asset_scale_offset(items, key)
        if np.any(scale != 1) or np.any(offset != 0):
            values = values * scale[:, None, None].astype("float32") + offset[:, None, None].astype("float32")
        name = variable_name(items[0], key)
        variables[name] = xr.Variable((cv.TIME, cv.Y, cv.X), values.astype("float32"), dict(cv.VARIABLE_ATTRS.get(name, {"long_name": key})))
    ds = xr.Dataset(variables, coords=coords)
    ds = ds.assign_coords(scene_coords(items))
    ds.attrs = {
        cv.ATTR_VERSION: cryocube.__version__,
        cv.ATTR_ITEMS: [item["id"] for item in items],
        cv.ATTR_PARAMS: json.dumps({"assets": assets, "crs": grid.crs, "resolution": grid.resolution, "bounds": list(grid.bounds), **params}),
    }
    ds = ds.rio.write_crs(grid.crs)
    return ds


def _item_time(item: dict[str, Any]) -> pd.Timestamp:
    props = item["properties"]
    value = props.get("datetime") or props.get("start_datetime")
    if value is None:
        raise CubeInputError(f"item {item['id']!r} has neither datetime nor start_datetime")
    return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else pd.Timestamp(value)


def scene_coords(items: list[dict[str, Any]]) -> dict[str, tuple[str, np.ndarray]]:
    """Per-scene coordinates along ``time`` read from the items' STAC fields.

    Only fields present on at least one item are returned; missing values are
    ``""`` for text, NaN for numbers (``relative_orbit`` is stored as int with -1
    for missing).
    """
    out: dict[str, tuple[str, np.ndarray]] = {}
    for name, field in cv.SCENE_COORDS.items():
        if field == "id":
            values = [item["id"] for item in items]
        elif field == "collection":
            values = [item.get("collection") for item in items]
        else:
            values = [item["properties"].get(field) for item in items]
        present = [v for v in values if v is not None]
        if not present:
            continue
        if all(isinstance(v, str) for v in present):
            out[name] = (cv.TIME, np.array(["" if v is None else v for v in values], dtype=str))
        elif name == "relative_orbit":
            out[name] = (cv.TIME, np.array([-1 if v is None else int(v) for v in values], dtype="int32"))
        else:
            out[name] = (cv.TIME, np.array([np.nan if v is None else float(v) for v in values], dtype="float64"))
    return out


def describe_cube(cube: xr.Dataset) -> str:
    """One line for people: scenes, date range, grid, CRS, variables and in-memory size (MB)."""
    res = abs(float(cube[cv.X][1] - cube[cv.X][0])) if cube.sizes[cv.X] > 1 else float("nan")
    dates = cube[cv.TIME].values
    return (
        f"{cube.sizes[cv.TIME]} scenes {str(dates[0])[:10]} .. {str(dates[-1])[:10]}, "
        f"grid {cube.sizes[cv.Y]}x{cube.sizes[cv.X]} px at {res:g} m in {cube.rio.crs}, "
        f"variables {', '.join(map(str, cube.data_vars))}, {cube.nbytes / 1e6:.1f} MB"
    )


def load_cube(ds: xr.Dataset, *, progress: bool = False) -> xr.Dataset:
    """Compute a lazy cube into memory, each chunk written straight into its final array.

    ``ds.load()`` computes every chunk and then concatenates them: a second full
    copy and twice the cube's size at peak. Here the output arrays are allocated
    once and ``dask.array.store`` fills them chunk by chunk (no two chunks overlap,
    so no lock), which is faster and needs the cube's size only (measured in
    ``benchmarks/cube_ingest.py``). Under a ``dask.distributed`` client the chunks
    are computed on workers and must travel back, so this is ``ds.compute()``.

    Parameters
    ----------
    ds
        A cube (any Dataset); variables not backed by dask are kept as they are.
    progress
        Show a progress bar.

    Returns
    -------
    xr.Dataset
        A new Dataset holding numpy arrays; ``ds`` is not modified.
    """
    from cryocube.compute import distributed_client, run

    if distributed_client() is not None:
        return ds.compute()
    out = ds.copy()
    lazy = [name for name, var in out.variables.items() if var.chunks is not None]
    targets = [np.empty(out.variables[name].shape, out.variables[name].dtype) for name in lazy]
    run(da.store([out.variables[name].data for name in lazy], targets, lock=False, compute=False), progress)
    for name, target in zip(lazy, targets):
        out.variables[name].data = target
    return out
