"""Reading what a cube needs from STAC items: assets, CRS, footprint, scaling.

Works on plain item dicts (copies made by :func:`prepare_items`), so that the
loaders receive normalised items and the caller's objects are never modified.
Every check raises :class:`CubeInputError` naming the item and asset at fault.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlparse

import numpy as np
import pystac

from cryocube import conventions as cv

#: Media types cryocube can read as rasters.
RASTER_MEDIA_TYPES = ("image/tiff", "image/x.geotiff", "image/vnd.stac.geotiff", "image/jp2")
#: File endings taken as rasters when an asset has no media type.
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")


class CubeInputError(ValueError):
    """Items or parameters that a cube cannot be built from."""


@dataclass(frozen=True)
class Footprint:
    """An asset's native grid extent: ``bounds`` (left, bottom, right, top) and pixel size."""

    bounds: tuple[float, float, float, float]
    resolution: float


def prepare_items(items: pystac.ItemCollection | Iterable[pystac.Item | dict[str, Any]]) -> list[dict[str, Any]]:
    """Item dicts sorted by (datetime, id), with absolute asset hrefs and ``proj:epsg`` filled in.

    Relative hrefs are resolved against the item's ``self`` link (or its pystac
    ``self_href``); an item with a relative href and no location is an error.
    """
    plain: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, pystac.Item):
            self_href = item.get_self_href()
            d = item.to_dict(include_self_link=True, transform_hrefs=False)
        elif isinstance(item, dict):
            d = copy.deepcopy(item)
            self_href = next((link["href"] for link in d.get("links", []) if link.get("rel") == "self"), None)
        else:
            raise CubeInputError(f"expected STAC items (pystac.Item or dict), got {type(item).__name__}")
        for key, asset in d.get("assets", {}).items():
            asset["href"] = _absolute_href(asset["href"], self_href, d["id"], key)
        plain.append(d)
    if not plain:
        raise CubeInputError("no items to build a cube from (the search returned nothing?)")
    ids = [d["id"] for d in plain]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise CubeInputError(f"duplicate item ids: {duplicated}")
    plain.sort(key=lambda d: (d["properties"].get("datetime") or d["properties"].get("start_datetime") or "", d["id"]))
    for d in plain:
        for key in d.get("assets", {}):
            if "proj:epsg" not in d["assets"][key] and _epsg_or_none(d, key) is not None:
                d["assets"][key]["proj:epsg"] = _epsg_or_none(d, key)
    return plain


def _absolute_href(href: str, self_href: str | None, item_id: str, key: str) -> str:
    if urlparse(href).scheme in ("http", "https", "s3", "gs", "az", "file") or os.path.isabs(href):
        return href
    if self_href is None:
        raise CubeInputError(
            f"asset {key!r} of item {item_id!r} has a relative href {href!r} but the item has no self link to resolve it against"
        )
    if urlparse(self_href).scheme in ("http", "https", "s3", "gs", "az"):
        return urljoin(self_href, href)
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(self_href)), href))


def _epsg_or_none(item: dict[str, Any], key: str) -> int | None:
    asset = item["assets"][key]
    props = item["properties"]
    epsg = asset.get("proj:epsg", props.get("proj:epsg"))
    if epsg is not None:
        return int(epsg)
    code = asset.get("proj:code", props.get("proj:code"))
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    return None


def asset_epsg(item: dict[str, Any], key: str) -> int:
    """EPSG code of an asset from ``proj:epsg`` or ``proj:code`` (asset first, then item)."""
    epsg = _epsg_or_none(item, key)
    if epsg is None:
        raise CubeInputError(
            f"asset {key!r} of item {item['id']!r} has no EPSG CRS (neither proj:epsg nor an 'EPSG:' proj:code); "
            "cryocube needs the projection extension on every item"
        )
    return epsg


def native_footprint(item: dict[str, Any], key: str) -> Footprint:
    """Native bounds and pixel size of an asset from ``proj:transform`` and ``proj:shape``."""
    asset = item["assets"][key]
    props = item["properties"]
    transform = asset.get("proj:transform", props.get("proj:transform"))
    shape = asset.get("proj:shape", props.get("proj:shape"))
    if transform is None or shape is None:
        raise CubeInputError(f"asset {key!r} of item {item['id']!r} lacks proj:transform/proj:shape; pass bounds= and resolution=")
    a, b, c, d, e, f = transform[:6]
    if b != 0 or d != 0:
        raise CubeInputError(f"asset {key!r} of item {item['id']!r} has a rotated proj:transform {transform}")
    rows, cols = shape
    xs = (c, c + a * cols)
    ys = (f, f + e * rows)
    return Footprint((min(xs), min(ys), max(xs), max(ys)), float(min(abs(a), abs(e))))


def is_raster(asset: dict[str, Any]) -> bool:
    """Whether an asset dict points at a raster cryocube can read."""
    media = (asset.get("type") or "").split(";")[0].strip().lower()
    if media:
        return media in RASTER_MEDIA_TYPES
    return urlparse(asset["href"]).path.lower().endswith(RASTER_SUFFIXES)


def is_incidence_angle(asset: dict[str, Any]) -> bool:
    """Whether an asset holds a per-pixel incidence angle."""
    return any(role in cv.INCIDENCE_ASSET_ROLES for role in asset.get("roles", []))


def variable_name(item: dict[str, Any], key: str) -> str:
    """Name of the cube variable an asset becomes."""
    return cv.INCIDENCE_ANGLE if is_incidence_angle(item["assets"][key]) else key


def default_assets(items: list[dict[str, Any]]) -> list[str]:
    """Raster assets with role ``data`` or an incidence-angle role present on every item."""
    common = set(items[0].get("assets", {}))
    for item in items[1:]:
        common &= set(item.get("assets", {}))
    first = items[0]["assets"]
    keys = [
        key
        for key in first
        if key in common
        and is_raster(first[key])
        and ("data" in first[key].get("roles", ["data"]) or is_incidence_angle(first[key]))
    ]
    if not keys:
        raise CubeInputError(f"the items share no raster data asset; assets of {items[0]['id']!r}: {sorted(first)}")
    return keys


def check_assets(items: list[dict[str, Any]], assets: Sequence[str]) -> None:
    """Raise naming the culprit if an item lacks an asset, an asset is not a raster, or a local file is missing."""
    if not assets:
        raise CubeInputError("assets= is empty")
    for item in items:
        available = item.get("assets", {})
        for key in assets:
            if key not in available:
                raise CubeInputError(f"item {item['id']!r} has no asset {key!r}; its assets are {sorted(available)}")
            asset = available[key]
            if not is_raster(asset):
                raise CubeInputError(
                    f"asset {key!r} of item {item['id']!r} is not a raster (type {asset.get('type')!r}, href {asset['href']!r})"
                )
            path = _local_path(asset["href"])
            if path is not None and not os.path.exists(path):
                raise CubeInputError(f"asset {key!r} of item {item['id']!r}: file not found: {path}")
    names = [variable_name(items[0], key) for key in assets]
    if len(set(names)) != len(names):
        raise CubeInputError(f"assets {list(assets)} map to duplicate variable names {names}")


def _local_path(href: str) -> str | None:
    parsed = urlparse(href)
    if parsed.scheme == "file":
        return parsed.path
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return href
    return None


def asset_scale_offset(items: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-item ``raster:bands`` scale and offset of an asset (1 and 0 where absent)."""
    scales, offsets = [], []
    for item in items:
        bands = item["assets"][key].get("raster:bands") or [{}]
        if len(bands) != 1:
            raise CubeInputError(f"asset {key!r} of item {item['id']!r} has {len(bands)} raster:bands; only single-band assets are supported")
        scales.append(float(bands[0].get("scale", 1.0)))
        offsets.append(float(bands[0].get("offset", 0.0)))
    return np.array(scales), np.array(offsets)
