"""Open a stack of unwrapped interferograms as a lazy ``(pair, y, x)`` Dataset.

:func:`open_interferograms` reads

- GeoTIFF stacks as written by GAMMA/PyRate (one ``*_unw.tif`` unwrapped phase
  in radians and one coherence ``*_cc.tif`` per pair; the PyRate Mexico City
  test stack in ``../shared/data/pyrate_cropA_s1_insar_stack/geotiffs``): dates
  from the GeoTIFF tags ``FIRST_DATE``/``SECOND_DATE`` or else from the first
  ``YYYYMMDD-YYYYMMDD`` (or ``_``) in the file name; nodata (0 by default) becomes
  NaN; wavelength and incidence from the tags ``WAVELENGTH_METRES`` and
  ``INCIDENCE_DEGREES``; heading and looks from GAMMA ``*mli.par`` headers when
  ``headers`` is given;
- a Zarr store written by :func:`cryocube.store.write_product` from such a Dataset;
- STAC items (a :class:`pystac.ItemCollection`, e.g. from :func:`cryocube.catalog.search`,
  or any sequence of :class:`pystac.Item`), one per pair: dates from the item's
  ``start_datetime``/``end_datetime``, the phase from its asset ``unwrapped_phase``
  (or ``unw``), the coherence from ``coherence`` (or ``coh``, ``cc``, ``cor``), the
  wavelength from ``sar:center_frequency`` (GHz) when the files have no tag.
  :func:`interferogram_items` makes such items from a GeoTIFF stack.

Every file is opened lazily with ``rioxarray.open_rasterio(chunks=..., lock=False)``
(no global lock, DESIGN.md section 7); the result has chunks
``{pair: -1, y: N, x: N}`` as SBAS needs (:func:`cryocube.sbas.invert_sbas`).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pystac
import rasterio
import rioxarray
import xarray as xr

from cryocube import conventions as cv

#: Default spatial chunk edge (px): for invert_sbas on 204 pairs, 100 x 100 ran in 3.2 s / 561 MB peak,
#: 50 x 50 in 5.4 s / 321 MB, 150 x 150 in 3.0 s / 733 MB (benchmarks/sbas.py, 2 shared cores).
DEFAULT_CHUNK_PX = 100
#: MintPy's ratio of multilooked pixels to independent looks for Sentinel-1 IW (resolution / pixel size).
S1_LOOKS_PER_INDEPENDENT_LOOK = 1.94
_DATE_PAIR = re.compile(r"(\d{8})[-_](\d{8})")
_PHASE_HINTS = ("unw",)
_COHERENCE_HINTS = ("cc", "coh", "cor")
#: Asset keys of an interferogram STAC item, by kind (first found wins).
ITEM_ASSETS = {"phase": ("unwrapped_phase", "unw"), "coherence": ("coherence", "coh", "cc", "cor")}
_SPEED_OF_LIGHT = 299_792_458.0


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists() or path.suffix == ".zarr")


def _tiff_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if any(ch in text for ch in "*?["):
            files = [Path(p) for p in sorted(glob.glob(text))]
        elif Path(text).is_dir():
            root = Path(text)
            files = sorted(root.glob("*.tif")) or sorted((root / "geotiffs").glob("*.tif"))
        elif Path(text).is_file():
            files = [Path(text)]
        else:
            raise FileNotFoundError(f"paths_or_items: {text!r} does not exist")
    else:
        files = [Path(p) for p in source]
        for f in files:
            if not f.is_file():
                raise FileNotFoundError(f"paths_or_items: {os.fspath(f)!r} does not exist")
    if not files:
        raise ValueError(f"paths_or_items: no GeoTIFF found in {source!r}")
    return files


def _kind(path: Path) -> str | None:
    stem = path.stem.lower()
    tokens = re.split(r"[_\-.]", stem)
    if any(t in _PHASE_HINTS for t in tokens):
        return "phase"
    if any(t in _COHERENCE_HINTS for t in tokens):
        return "coherence"
    return None


def _pair_dates(path: Path, tags: Mapping[str, str]) -> tuple[pd.Timestamp, pd.Timestamp]:
    if "FIRST_DATE" in tags and "SECOND_DATE" in tags:
        d1, d2 = pd.Timestamp(tags["FIRST_DATE"]), pd.Timestamp(tags["SECOND_DATE"])
    else:
        match = _DATE_PAIR.search(path.name)
        if match is None:
            raise ValueError(f"{os.fspath(path)!r}: no FIRST_DATE/SECOND_DATE tags and no YYYYMMDD-YYYYMMDD in the name")
        d1, d2 = pd.Timestamp(match.group(1)), pd.Timestamp(match.group(2))
    if d2 <= d1:
        raise ValueError(f"{os.fspath(path)!r}: second date {d2.date()} is not after the first {d1.date()}")
    return d1, d2


def _is_items(source: Any) -> bool:
    if isinstance(source, pystac.ItemCollection):
        return True
    return (isinstance(source, Sequence) and not isinstance(source, (str, bytes)) and len(source) > 0
            and all(isinstance(i, pystac.Item) for i in source))


def _local_href(href: str) -> str:
    """A ``file://`` href as a path; other hrefs (paths, URLs GDAL can read) unchanged."""
    return href[len("file://"):] if href.startswith("file://") else href


def _item_entries(items: Sequence[pystac.Item]) -> tuple[list[tuple[str, str, tuple[pd.Timestamp, pd.Timestamp]]], dict[str, Any]]:
    """``(href, kind, (date1, date2))`` of every phase/coherence asset of the items, and item-level attrs."""
    entries, attrs = [], {}
    for item in items:
        start, end = item.properties.get("start_datetime"), item.properties.get("end_datetime")
        if start is None or end is None:
            raise ValueError(f"item {item.id!r}: an interferogram item needs start_datetime and end_datetime "
                             "(the pair's first and second date)")
        dates = (pd.Timestamp(start).tz_localize(None), pd.Timestamp(end).tz_localize(None))
        if dates[1] <= dates[0]:
            raise ValueError(f"item {item.id!r}: end_datetime {end} is not after start_datetime {start}")
        for kind, keys in ITEM_ASSETS.items():
            key = next((k for k in keys if k in item.assets), None)
            if key is None and kind == "phase":
                raise ValueError(f"item {item.id!r} has no unwrapped-phase asset (one of {list(keys)}); "
                                 f"it has {sorted(item.assets)}")
            if key is not None:
                href = _local_href(item.assets[key].get_absolute_href() or item.assets[key].href)
                if "://" not in href and not Path(href).is_file():
                    raise FileNotFoundError(f"item {item.id!r}: asset {key!r} file {href!r} does not exist")
                entries.append((href, kind, dates))
        frequency = item.properties.get("sar:center_frequency")
        if frequency is not None:
            attrs["wavelength_m"] = _SPEED_OF_LIGHT / (float(frequency) * 1e9)
    return entries, attrs


def interferogram_items(paths: str | os.PathLike | Sequence[str | os.PathLike], *,
                        center_frequency_ghz: float | None = None) -> pystac.ItemCollection:
    """STAC items (one per pair) for a GeoTIFF interferogram stack, as :func:`open_interferograms` reads them.

    Parameters
    ----------
    paths
        What :func:`open_interferograms` accepts for GeoTIFFs (a folder, a glob, a list).
    center_frequency_ghz
        Radar centre frequency (GHz), stored as ``sar:center_frequency``.

    Returns
    -------
    pystac.ItemCollection
        Items ``<date1>_<date2>`` with ``start_datetime``/``end_datetime``, assets
        ``unwrapped_phase`` and (where found) ``coherence`` with absolute hrefs,
        footprint in the files' CRS bounds reprojected to longitude/latitude.
        Save them with ``pystac.Catalog.add_items`` + ``normalize_and_save``.
    """
    from rasterio.warp import transform_bounds

    pairs: dict[tuple[pd.Timestamp, pd.Timestamp], dict[str, Path]] = {}
    bounds = None
    for f in _tiff_files(paths):
        kind = _kind(f)
        if kind is None:
            continue
        with rasterio.open(f) as src:
            dates = _pair_dates(f, src.tags())
            if bounds is None:
                bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds) if src.crs else tuple(src.bounds)
        pairs.setdefault(dates, {})[kind] = f.resolve()
    items = []
    for (d1, d2), files in sorted(pairs.items()):
        if "phase" not in files:
            continue
        w, s, e, n = bounds
        geometry = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
        properties: dict[str, Any] = {"start_datetime": d1.isoformat() + "Z", "end_datetime": d2.isoformat() + "Z"}
        if center_frequency_ghz is not None:
            properties["sar:center_frequency"] = float(center_frequency_ghz)
        item = pystac.Item(f"{d1:%Y%m%d}_{d2:%Y%m%d}", geometry, list(bounds), None, properties)
        item.add_asset("unwrapped_phase", pystac.Asset(os.fspath(files["phase"]), media_type=pystac.MediaType.GEOTIFF,
                                                       roles=["data"], extra_fields={"unit": "rad"}))
        if "coherence" in files:
            item.add_asset("coherence", pystac.Asset(os.fspath(files["coherence"]), media_type=pystac.MediaType.GEOTIFF,
                                                     roles=["data"]))
        items.append(item)
    if not items:
        raise ValueError(f"paths: no unwrapped-phase GeoTIFF (name with 'unw') in {paths!r}")
    return pystac.ItemCollection(items)


def read_gamma_par(path: str | os.PathLike) -> dict[str, str]:
    """``key: value`` lines of a GAMMA parameter file (``*.par``), values as text (units kept)."""
    out: dict[str, str] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def _header_attrs(headers: str | os.PathLike | Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Heading and looks from the first GAMMA ``*mli.par`` (or ``*slc.par``) header."""
    if isinstance(headers, (str, os.PathLike)):
        root = Path(headers)
        files = sorted(root.glob("*mli.par")) or sorted(root.glob("*slc.par")) if root.is_dir() else [root]
    else:
        files = [Path(h) for h in headers]
    if not files:
        raise ValueError(f"headers: no GAMMA *mli.par / *slc.par file in {headers!r}")
    par = read_gamma_par(files[0])
    attrs: dict[str, Any] = {}
    if "heading" in par:
        attrs["heading_deg"] = float(par["heading"].split()[0])
    if "radar_frequency" in par:
        attrs["radar_frequency_hz"] = float(par["radar_frequency"].split()[0])
    if "range_looks" in par and "azimuth_looks" in par:
        rl, al = int(par["range_looks"].split()[0]), int(par["azimuth_looks"].split()[0])
        attrs.update(range_looks=rl, azimuth_looks=al,
                     n_looks=max(1, int(np.rint(rl * al / S1_LOOKS_PER_INDEPENDENT_LOOK))))
    if "sensor" in par:
        attrs["platform"] = par["sensor"]
    return attrs


def _chunks(chunks: Mapping[str, int] | int | None, shape: tuple[int, int]) -> dict[str, int]:
    if chunks is None:
        chunks = DEFAULT_CHUNK_PX
    if isinstance(chunks, int):
        chunks = {cv.Y: chunks, cv.X: chunks}
    unknown = set(chunks) - {cv.PAIR, cv.Y, cv.X}
    if unknown:
        raise ValueError(f"chunks: unknown dimension(s) {sorted(unknown)}; use {cv.PAIR!r}, {cv.Y!r}, {cv.X!r}")
    out = {cv.Y: int(chunks.get(cv.Y, DEFAULT_CHUNK_PX)), cv.X: int(chunks.get(cv.X, DEFAULT_CHUNK_PX))}
    out = {d: (n if n > 0 else size) for (d, n), size in zip(out.items(), shape)}
    return out


def _open_zarr(path: Path, chunks: dict[str, int] | int | None) -> xr.Dataset:
    ds = xr.open_zarr(path, decode_coords="all", chunks=None)
    for name in ("unwrapped_phase",):
        if name not in ds.data_vars:
            raise ValueError(f"{os.fspath(path)!r}: Zarr store has no {name!r} variable; it has {sorted(map(str, ds.data_vars))}")
    spec = {cv.PAIR: -1, **_chunks(chunks, (ds.sizes[cv.Y], ds.sizes[cv.X]))}
    for name, var in ds.data_vars.items():
        ds[name] = var.chunk({d: c for d, c in spec.items() if d in var.dims})
    return ds


def _open_tiff(path: Path, chunks: dict[str, int], nodata: float) -> xr.DataArray:
    da = rioxarray.open_rasterio(path, chunks={"band": 1, **chunks}, lock=False)
    da = da.isel(band=0, drop=True)
    fill = da.rio.nodata if da.rio.nodata is not None else nodata
    return da.where(da != fill).astype(np.float32)


def open_interferograms(paths_or_items: str | os.PathLike | Sequence[str | os.PathLike], *,
                        chunks: Mapping[str, int] | int | None = None, headers: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                        wavelength_m: float | None = None, nodata: float = 0.0) -> xr.Dataset:
    """A stack of unwrapped interferograms and their coherence as a lazy Dataset.

    Parameters
    ----------
    paths_or_items
        A directory of GeoTIFFs (or one holding ``geotiffs/``), a glob pattern, a
        list of GeoTIFF paths (phase ``*unw*`` and coherence ``*cc*``/``*coh*``
        files; a phase file's coherence is the coherence file of the same date
        pair), STAC items, one per pair (module notes), or a Zarr store written
        by :func:`cryocube.store.write_product`.
    chunks
        Spatial chunk edge (px) or ``{"y": N, "x": N}`` (default 100, -1: whole); ``pair`` is always one chunk.
    headers
        Optional GAMMA header directory or files (``*mli.par``): heading
        (``heading_deg``), looks (``range_looks``, ``azimuth_looks``, ``n_looks`` =
        range x azimuth looks / 1.94 as MintPy does for Sentinel-1), radar frequency.
    wavelength_m
        Radar wavelength (m) when the files carry no ``WAVELENGTH_METRES`` tag.
    nodata
        Value meaning "no data" in files without a nodata tag (GAMMA/PyRate: 0).

    Returns
    -------
    xr.Dataset
        ``unwrapped_phase`` (rad) and ``coherence`` (1) ``(pair, y, x)`` float32, NaN
        where nodata; coordinates ``date1``, ``date2``, ``dt_days`` on ``pair``
        (sorted by ``date1``, ``date2``), ``y``, ``x``, ``spatial_ref``; attrs
        ``wavelength_m``, ``incidence_deg`` and header values. Lazy (dask).

    Raises
    ------
    FileNotFoundError
        A path (or an item's asset file) that does not exist.
    ValueError
        An item without dates or phase asset, no phase file, files on different grids, a phase file without coherence
        when others have one, dates missing or reversed.
    """
    if isinstance(paths_or_items, (str, os.PathLike)) and _is_zarr(Path(paths_or_items)):
        return _open_zarr(Path(paths_or_items), chunks)
    item_attrs: dict[str, Any] = {}
    if _is_items(paths_or_items):
        entries, item_attrs = _item_entries(list(paths_or_items))
    else:
        entries = [(f, _kind(f), None) for f in _tiff_files(paths_or_items)]
    phase_files, coherence_files = [], {}
    meta: dict[str | Path, dict[str, Any]] = {}
    for f, kind, dates in entries:
        if kind is None:
            continue
        with rasterio.open(f) as src:
            tags = src.tags()
            meta[f] = {"shape": src.shape, "transform": src.transform, "crs": src.crs, "tags": tags,
                       "dates": dates or _pair_dates(f, tags)}
        if kind == "phase":
            phase_files.append(f)
        else:
            coherence_files[meta[f]["dates"]] = f
    if not phase_files:
        raise ValueError(f"paths_or_items: no unwrapped-phase GeoTIFF (name with 'unw') among {len(entries)} file(s)")
    first = meta[phase_files[0]]
    for f in list(phase_files) + list(coherence_files.values()):
        m = meta[f]
        if m["shape"] != first["shape"] or not m["transform"].almost_equals(first["transform"]) or m["crs"] != first["crs"]:
            raise ValueError(f"{os.fspath(f)!r} is on another grid ({m['shape']}, {m['transform']}) than "
                             f"{os.fspath(phase_files[0])!r} ({first['shape']}, {first['transform']})")
    phase_files.sort(key=lambda f: meta[f]["dates"])
    dates = [meta[f]["dates"] for f in phase_files]
    if len(set(dates)) != len(dates):
        raise ValueError("paths_or_items: two unwrapped-phase files have the same date pair")
    missing = [os.fspath(f) for f in phase_files if meta[f]["dates"] not in coherence_files]
    if coherence_files and missing:
        raise ValueError(f"no coherence file for {missing[:5]} (matched by date pair)")
    spatial = _chunks(chunks, first["shape"])
    phase = xr.concat([_open_tiff(f, spatial, nodata) for f in phase_files], dim=cv.PAIR)
    data = {"unwrapped_phase": phase.chunk({cv.PAIR: -1}).assign_attrs(units="rad", long_name="unwrapped interferometric phase")}
    if coherence_files:
        coh = xr.concat([_open_tiff(coherence_files[d], spatial, nodata) for d in dates], dim=cv.PAIR)
        data["coherence"] = coh.chunk({cv.PAIR: -1}).assign_attrs(units="1", long_name="interferometric coherence")
    d1 = np.array([d[0] for d in dates], dtype="datetime64[ns]")
    d2 = np.array([d[1] for d in dates], dtype="datetime64[ns]")
    ds = xr.Dataset(data).assign_coords(date1=(cv.PAIR, d1), date2=(cv.PAIR, d2),
                                       dt_days=(cv.PAIR, (d2 - d1) / np.timedelta64(1, "D")))
    tags = first["tags"]
    attrs: dict[str, Any] = {"source_files": [os.fspath(f) for f in phase_files]}
    wl = wavelength_m if wavelength_m is not None else tags.get("WAVELENGTH_METRES", item_attrs.get("wavelength_m"))
    if headers is not None:
        attrs.update(_header_attrs(headers))
    if wl is None and "radar_frequency_hz" in attrs:
        wl = 299_792_458.0 / attrs["radar_frequency_hz"]
    if wl is not None:
        attrs["wavelength_m"] = float(wl)
    if "INCIDENCE_DEGREES" in tags:
        attrs["incidence_deg"] = float(tags["INCIDENCE_DEGREES"])
    if "INSAR_PROCESSOR" in tags:
        attrs["processor"] = tags["INSAR_PROCESSOR"]
    ds.attrs = attrs
    return ds
