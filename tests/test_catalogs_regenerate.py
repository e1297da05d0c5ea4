"""The committed catalogs/ are exactly what scripts/make_catalogs.py writes, and have the promised content."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "catalogs"
SCRIPT = ROOT / "scripts" / "make_catalogs.py"
MAX_BYTES = 20 * 1024 * 1024


def _load_script():
    spec = importlib.util.spec_from_file_location("make_catalogs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_catalogs = _load_script()
CATALOGS = (make_catalogs.S1_CATALOG, make_catalogs.S2_CATALOG)


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for name in CATALOGS for p in sorted((root / name).rglob("*")) if p.is_file()}


def _raster_summary(path: Path) -> tuple[dict, np.ndarray]:
    with rasterio.open(path) as src:
        meta = {
            "driver": src.driver,
            "dtype": src.dtypes,
            "crs": src.crs.to_epsg(),
            "transform": tuple(src.transform),
            "shape": (src.count, src.height, src.width),
            "nodata": "nan" if src.nodata is not None and math.isnan(src.nodata) else src.nodata,
            "blocks": src.block_shapes,
            "compression": src.compression.value if src.compression else None,
            "layout": src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT"),
        }
        return meta, src.read()


def differences(expected_root: Path, actual_root: Path) -> list[str]:
    """Every difference between two catalog trees: file sets, parsed JSON, raster metadata and pixels."""
    expected, actual = _files(expected_root), _files(actual_root)
    problems = [f"missing {p}" for p in sorted(expected.keys() - actual.keys())]
    problems += [f"unexpected {p}" for p in sorted(actual.keys() - expected.keys())]
    for rel in sorted(expected.keys() & actual.keys()):
        e, a = expected[rel], actual[rel]
        if rel.endswith(".json"):
            if json.loads(e.read_text()) != json.loads(a.read_text()):
                problems.append(f"JSON differs: {rel}")
        elif rel.endswith(".tif"):
            (me, de), (ma, da) = _raster_summary(e), _raster_summary(a)
            if me != ma:
                problems.append(f"raster metadata differs: {rel}: {me} != {ma}")
            elif not np.array_equal(de, da, equal_nan=np.issubdtype(de.dtype, np.floating)):
                problems.append(f"raster pixels differ: {rel}")
        elif e.read_bytes() != a.read_bytes():
            problems.append(f"file differs: {rel}")
    return problems


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("catalogs")
    paths = make_catalogs.build_catalogs(out)
    assert set(paths) == set(CATALOGS)
    return out


def test_committed_catalogs_equal_regenerated(regenerated: Path) -> None:
    assert _files(COMMITTED), "no committed catalogs"
    assert differences(COMMITTED, regenerated) == []


def test_the_comparison_detects_changes(regenerated: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    for name in CATALOGS:
        shutil.copytree(regenerated / name, copy / name)
    assert differences(regenerated, copy) == []
    item_json = next((copy / make_catalogs.S1_CATALOG).rglob("S1*_SYN.json"))
    d = json.loads(item_json.read_text())
    d["properties"]["sat:relative_orbit"] += 1
    item_json.write_text(json.dumps(d))
    tif = item_json.parent / "hh.tif"
    with rasterio.open(tif, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        data = dst.read(1)
        data[5, 7] += 0.5
        dst.write(data, 1)
    extra = copy / make_catalogs.S2_CATALOG / "stray.txt"
    extra.write_text("x")
    found = differences(regenerated, copy)
    assert any("JSON differs" in p for p in found)
    assert any("pixels differ" in p for p in found)
    assert any("unexpected" in p for p in found)


def test_regeneration_is_byte_identical_for_json(regenerated: Path) -> None:
    # JSON must not depend on the output folder or the clock: compare raw text
    for rel, path in _files(COMMITTED).items():
        if rel.endswith(".json"):
            assert path.read_text() == (regenerated / rel).read_text(), rel


# --------------------------------------------------------------------------- committed content
def _items(name: str) -> list[pystac.Item]:
    cat = pystac.Catalog.from_file(str(COMMITTED / name / "catalog.json"))
    return sorted(cat.get_items(recursive=True), key=lambda i: (i.datetime, i.id))


def test_total_size_under_20_mb() -> None:
    total = sum(p.stat().st_size for p in COMMITTED.rglob("*") if p.is_file())
    assert 0 < total < MAX_BYTES


def test_layout_and_relative_hrefs() -> None:
    for name, cid in ((make_catalogs.S1_CATALOG, make_catalogs.S1_COLLECTION), (make_catalogs.S2_CATALOG, make_catalogs.S2_COLLECTION)):
        cat = pystac.Catalog.from_file(str(COMMITTED / name / "catalog.json"))
        (coll,) = list(cat.get_collections())
        assert coll.id == cid
        assert (COMMITTED / name / cid / "collection.json").is_file()
        assert Path(coll.assets["dem"].get_absolute_href()).is_file()
        assert coll.assets["dem"].roles == ["elevation"]
        for item in coll.get_items():
            assert Path(item.get_self_href()) == COMMITTED / name / cid / item.id / f"{item.id}.json"
            for asset in item.assets.values():
                assert not asset.href.startswith("/") and "://" not in asset.href
                assert Path(asset.get_absolute_href()).is_file()
        for path in (COMMITTED / name).rglob("*.json"):
            text = path.read_text()
            assert str(ROOT) not in text and "/tmp" not in text and '"self"' not in text


def test_s1_catalog_content() -> None:
    items = _items(make_catalogs.S1_CATALOG)
    assert len(items) >= 50
    tracks: dict[tuple[str, int], list[pystac.Item]] = defaultdict(list)
    for it in items:
        p = it.properties
        assert p["proj:code"] == "EPSG:3413" and "proj:epsg" not in p
        assert p["proj:shape"] == [128, 128] and len(p["proj:transform"]) == 6 and len(p["proj:bbox"]) == 4
        assert p["sar:polarizations"] == ["HH", "HV"] and p["sar:instrument_mode"] == "IW"
        assert p["sar:frequency_band"] == "C" and p["sar:product_type"] == "GRD"
        assert p["platform"] in ("sentinel-1a", "sentinel-1b") and p["constellation"] == "sentinel-1"
        assert 30 < p["view:incidence_angle"] < 45
        assert {"hh", "hv", "incidence_angle"} <= set(it.assets)
        assert it.assets["hh"].roles == ["data"] and it.assets["incidence_angle"].roles == ["incidence-angle"]
        assert it.assets["hh"].extra_fields["raster:bands"][0]["unit"] == "dB"
        hour = it.datetime.astimezone(dt.timezone.utc).hour
        assert (hour >= 17) if p["sat:orbit_state"] == "ascending" else (hour <= 12)
        tracks[(p["sat:orbit_state"], p["sat:relative_orbit"])].append(it)
    assert {s for s, _ in tracks} == {"ascending", "descending"}
    assert len({r for _, r in tracks}) >= 2
    for key, track_items in tracks.items():
        times = [i.datetime for i in track_items]
        assert all(b - a == dt.timedelta(days=6) for a, b in zip(times, times[1:])), key
        assert times[0].date() <= dt.date(2019, 4, 15) and times[-1].date() >= dt.date(2019, 10, 1), key
        hrefs = {i.assets["incidence_angle"].get_absolute_href() for i in track_items}
        assert len(hrefs) == 1, "one incidence file per track"
    # every descending acquisition has an ascending partner within 24 h
    asc = [i.datetime for k, v in tracks.items() if k[0] == "ascending" for i in v]
    for k, v in tracks.items():
        if k[0] == "descending":
            for i in v:
                assert min(abs(a - i.datetime) for a in asc) < dt.timedelta(hours=24)


def test_s1_rasters_match_properties() -> None:
    items = _items(make_catalogs.S1_CATALOG)
    it = items[len(items) // 2]
    for key in ("hh", "hv", "incidence_angle"):
        with rasterio.open(it.assets[key].get_absolute_href()) as src:
            assert src.crs.to_epsg() == 3413
            assert list(src.transform)[:6] == it.properties["proj:transform"]
            assert [src.height, src.width] == it.properties["proj:shape"]
            assert src.dtypes == ("float32",) and math.isnan(src.nodata)
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            data = src.read(1)
            assert np.isfinite(data).all()
    with rasterio.open(it.assets["incidence_angle"].get_absolute_href()) as src:
        theta = src.read(1)
    assert abs(float(theta.mean()) - it.properties["view:incidence_angle"]) < 0.05


def test_s2_catalog_content() -> None:
    items = _items(make_catalogs.S2_CATALOG)
    assert 10 <= len(items) <= 20
    covers = []
    for it in items:
        p = it.properties
        assert p["proj:code"] == "EPSG:3413" and p["proj:shape"] == [256, 256]
        assert p["platform"] in ("sentinel-2a", "sentinel-2b")
        assert {"B04", "B08"} <= set(it.assets)
        covers.append(p["eo:cloud_cover"])
        band = it.assets["B04"].extra_fields["raster:bands"][0]
        assert band["scale"] == 1e-4 and band["nodata"] == 0 and band["data_type"] == "uint16"
        with rasterio.open(it.assets["B08"].get_absolute_href()) as src:
            assert src.dtypes == ("uint16",) and src.nodata == 0 and src.res == (20.0, 20.0)
    assert sum(c > 0 for c in covers) >= 2 and all(0 <= c <= 100 for c in covers)
    assert {i.properties["platform"] for i in items} == {"sentinel-2a", "sentinel-2b"}
