"""Shared fixtures: tiny static STAC catalogs written into tmp_path."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.crs import CRS as RioCRS
from rasterio.warp import transform_bounds

from cryocube.grid import Grid

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

#: A small 3413 grid over the bundled glacier area, 30 m pixels, 64 x 96.
SMALL_GRID = Grid("EPSG:3413", 30.0, (-190020.0, -2280000.0, -190020.0 + 30 * 96, -2280000.0 + 30 * 64))


def write_tif(path: Path, array: np.ndarray, grid: Grid, *, nodata: float | int | None = None) -> Path:
    """Write a single-band COG of ``array`` on ``grid``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="COG", width=grid.shape[1], height=grid.shape[0], count=1, dtype=array.dtype.name,
                   crs=grid.crs, transform=grid.transform, nodata=nodata, blocksize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
    return path


def smooth_field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A smooth test field (dB-like values) defined in EPSG:3413 metres."""
    return (-10.0 + 3.0 * np.sin(x / 700.0) * np.cos(y / 900.0)).astype("float32")


def make_scene(root: Path, item_id: str, day: int, grid: Grid, bands: dict[str, np.ndarray], *,
               properties: dict | None = None, raster_bands: dict[str, dict] | None = None,
               roles: dict[str, list[str]] | None = None) -> pystac.Item:
    """One item with one COG per band, written under ``root/item_id``."""
    left, bottom, right, top = grid.bounds
    w, s, e, n = transform_bounds(RioCRS.from_user_input(grid.crs), RioCRS.from_epsg(4326), left, bottom, right, top)
    props = {"proj:code": grid.crs, "proj:shape": list(grid.shape), "proj:transform": list(grid.transform)[:6],
             "platform": "sentinel-1a", "sat:orbit_state": "ascending", "sat:relative_orbit": 90,
             "view:incidence_angle": 35.0, **(properties or {})}
    item = pystac.Item(item_id, {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
                       [w, s, e, n], dt.datetime(2019, 6, 1, 12, tzinfo=dt.timezone.utc) + dt.timedelta(days=day), props)
    for key, array in bands.items():
        extra = {"raster:bands": [raster_bands[key]]} if raster_bands and key in raster_bands else {}
        nodata = extra["raster:bands"][0].get("nodata") if extra else None
        write_tif(root / item_id / f"{key}.tif", array, grid, nodata=nodata)
        item.add_asset(key, pystac.Asset(f"./{key}.tif", media_type=pystac.MediaType.COG,
                                         roles=(roles or {}).get(key, ["data"]), extra_fields=extra))
    return item


def save_catalog(root: Path, items: list[pystac.Item], collection_id: str = "test-s1") -> Path:
    """Save items as a self-contained static catalog; returns the catalog.json path."""
    catalog = pystac.Catalog("test", "test catalog")
    collection = pystac.Collection(collection_id, "test", pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]),
                                                                        pystac.TemporalExtent([[None, None]])))
    catalog.add_child(collection)
    for item in items:
        collection.add_item(item)
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


@pytest.fixture
def s1_catalog(tmp_path: Path) -> Callable[..., list[pystac.Item]]:
    """Three dual-pol scenes on SMALL_GRID with a smooth field plus noise; returns the saved items."""

    def make(n: int = 3) -> list[pystac.Item]:
        rng = np.random.default_rng(1)
        x, y = np.meshgrid(SMALL_GRID.x_coords(), SMALL_GRID.y_coords())
        items = []
        for i in range(n):
            hh = smooth_field(x, y) + rng.normal(0, 0.5, x.shape).astype("float32")
            items.append(make_scene(tmp_path / "cat" / "test-s1", f"S1_{i:02d}", 6 * i, SMALL_GRID,
                                    {"hh": hh, "hv": hh - 8.0, "inc": np.broadcast_to(np.linspace(33, 38, x.shape[1], dtype="float32"), x.shape).copy()},
                                    properties={"sat:orbit_state": ["ascending", "descending"][i % 2], "view:incidence_angle": 35.0 + i},
                                    roles={"inc": ["incidence-angle"]}))
        save_catalog(tmp_path / "cat", items)
        return list(pystac.Catalog.from_file(str(tmp_path / "cat" / "catalog.json")).get_items(recursive=True))

    return make


@pytest.fixture(autouse=True)
def _cli_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI runs on dask's threads in tests (its default local cluster costs ~1 s per command; test_cli checks it)."""
    monkeypatch.setenv("CRYOCUBE_SCHEDULER", "threads")
