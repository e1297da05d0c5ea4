"""cryocube.catalog: search over static catalogs and a loopback STAC API, offline."""

from __future__ import annotations

import datetime as dt
import json
import socket
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pystac
import pystac_client
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stac_api_server import StacApiServer, serve

from cryocube.catalog import (
    CatalogAPIError,
    CatalogConnectionError,
    CatalogError,
    CatalogFormatError,
    CatalogNotFoundError,
    ItemAssetError,
    SearchFilters,
    SearchParameterError,
    UnknownCollectionError,
    filter_items,
    search,
    validate_items,
)

REPO = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def box(w: float, s: float, e: float, n: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


# id -> (collection, datetime or (start, end), bbox, geometry or None for the box, properties, assets)
S1 = {"platform": "sentinel-1a", "sar:instrument_mode": "IW"}
SCENES: dict[str, tuple] = {
    "s1-a": ("s1-test", "2021-01-05T10:00:00Z", (-50, 68, -46, 70), None, {**S1, "sat:orbit_state": "ascending", "sat:relative_orbit": 25}, ("hh", "hv")),
    "s1-b": ("s1-test", "2021-01-17T10:00:00Z", (-50, 68, -46, 70), None, {**S1, "sat:orbit_state": "descending", "sat:relative_orbit": 90}, ("hh", "hv")),
    "s1-c": ("s1-test", "2021-03-01T00:00:00Z", (-46, 68, -42, 70), None, {**S1, "sat:orbit_state": "ascending", "sat:relative_orbit": 25}, ("hh", "hv")),
    "s1-d": ("s1-test", "2021-06-15T12:30:00.5Z", (-30, 60, -26, 62), None, {**S1, "sat:orbit_state": "descending", "sat:relative_orbit": 112}, ("hh",)),
    "s1-e": ("s1-test", "2021-12-31T23:59:59Z", (-50, 60, -48, 62), None, {**S1, "sat:orbit_state": "ascending", "sat:relative_orbit": 25}, ("hh", "hv")),
    # a triangle whose bbox reaches (-40..-37, 78..79) but whose footprint does not
    "s1-tri": ("s1-test", "2021-07-01T08:00:00Z", (-40, 75, -30, 79),
               {"type": "Polygon", "coordinates": [[[-40, 75], [-30, 75], [-30, 79], [-40, 75]]]},
               {**S1, "sat:orbit_state": "descending", "sat:relative_orbit": 90}, ("hh", "hv")),
    "s2-a": ("s2-test", "2021-01-05T10:00:00Z", (-50, 68, -46, 70), None, {"platform": "sentinel-2a", "eo:cloud_cover": 5}, ("B04",)),
    "s2-b": ("s2-test", "2021-04-10T14:00:00Z", (-44, 64, -40, 66), None, {"platform": "sentinel-2b", "eo:cloud_cover": 20}, ("B04",)),
    "s2-c": ("s2-test", "2021-08-20T14:00:00Z", (-44, 64, -40, 66), None, {"platform": "sentinel-2a", "eo:cloud_cover": 55.5}, ("B04",)),
    "s2-range": ("s2-test", ("2021-05-01T00:00:00Z", "2021-05-31T23:59:59Z"), (-30, 60, -26, 62), None,
                 {"platform": "sentinel-2b", "eo:cloud_cover": 10}, ("B04",)),
    "s2-nocloud": ("s2-test", "2021-09-01T14:00:00Z", (-50, 68, -46, 70), None, {"platform": "sentinel-2a"}, ("B04",)),
}


def scene_start(item_id: str) -> dt.datetime:
    when = SCENES[item_id][1]
    return t(when if isinstance(when, str) else when[0])


def expected_order(ids) -> list[str]:
    """Sorted as search() promises: by time, then id."""
    return sorted(ids, key=lambda i: (scene_start(i), i))


ALL = expected_order(SCENES)


def build_catalog(root: Path) -> Path:
    """Root catalog -> two collections -> items with relative asset hrefs to tiny files."""
    catalog = pystac.Catalog("test-root", "catalog for cryocube.catalog tests")
    collections = {}
    for cid in ("s1-test", "s2-test"):
        collections[cid] = pystac.Collection(
            cid, f"{cid} test collection",
            pystac.Extent(pystac.SpatialExtent([[-60, 55, -20, 80]]), pystac.TemporalExtent([[t("2021-01-01T00:00:00Z"), None]])),
        )
        catalog.add_child(collections[cid])
    for item_id, (cid, when, bbox, geometry, props, assets) in SCENES.items():
        props = dict(props)
        if isinstance(when, str):
            when_dt = t(when)
        else:
            when_dt = None
            props["start_datetime"], props["end_datetime"] = when
        item = pystac.Item(item_id, geometry or box(*bbox), list(bbox), when_dt, props)
        for name in assets:
            item.add_asset(name, pystac.Asset(f"./{item_id}_{name}.tif", media_type=pystac.MediaType.COG, roles=["data"]))
        collections[cid].add_item(item)
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    for item in catalog.get_items(recursive=True):
        for asset in item.assets.values():
            Path(asset.get_absolute_href()).write_bytes(b"not really a COG")
    return root / "catalog.json"


@pytest.fixture(scope="module")
def cat(tmp_path_factory) -> Path:
    return build_catalog(tmp_path_factory.mktemp("stac") / "cat")


@pytest.fixture(scope="module")
def api(cat):
    with serve(cat, default_limit=4) as server:
        yield server


@pytest.fixture(scope="module")
def loaded_items(cat) -> list[pystac.Item]:
    return list(pystac.Catalog.from_file(str(cat)).get_items(recursive=True))


def ids_of(items) -> list[str]:
    return [item.id for item in items]


def quiet_search(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return search(*args, **kwargs)


# --- basic behaviour ---------------------------------------------------------------


def test_static_search_returns_every_item_sorted(cat):
    result = search(cat)
    assert isinstance(result, pystac.ItemCollection)
    assert ids_of(result) == ALL
    # same-time items are ordered by id
    assert ids_of(result)[:2] == ["s1-a", "s2-a"]


@pytest.mark.parametrize("how", ["file", "folder", "str", "relative"])
def test_catalog_given_as_file_folder_or_string(cat, how, monkeypatch):
    arg = {"file": cat, "folder": cat.parent, "str": str(cat), "relative": "cat"}[how]
    if how == "relative":
        monkeypatch.chdir(cat.parent.parent)
    assert ids_of(search(arg)) == ALL


def test_static_items_have_absolute_self_and_asset_hrefs(cat, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the working directory
    result = search(cat)
    for item in result:
        self_href = item.get_self_href()
        assert self_href is not None and Path(self_href).is_absolute() and Path(self_href).exists()
        for name, asset in item.assets.items():
            assert Path(asset.href).is_absolute(), asset.href
            assert asset.href == str(Path(self_href).parent / f"{item.id}_{name}.tif")
            assert Path(asset.href).read_bytes() == b"not really a COG"
    validate_items(result)  # no relative hrefs, every item dated


def test_search_returns_copies(cat):
    first = search(cat, ids="s1-a")
    first[0].properties["sat:orbit_state"] = "changed"
    assert search(cat, ids="s1-a")[0].properties["sat:orbit_state"] == "ascending"


def test_collection_json_as_root(cat):
    coll = cat.parent / "s1-test" / "collection.json"
    assert ids_of(search(coll)) == [i for i in ALL if i.startswith("s1-")]
    assert ids_of(search(coll, collections="s1-test", bbox=[-50, 60, -47, 62])) == ["s1-e"]


# --- each filter ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bbox, expected",
    [
        ([-50, 68, -46, 70], {"s1-a", "s1-b", "s1-c", "s2-a", "s2-nocloud"}),  # s1-c touches at lon -46
        ((-45.9, 68, -45, 69), {"s1-c"}),
        ("-31,59,-29,61", {"s1-d", "s2-range"}),
        ([-40, 78, -37, 79], set()),  # inside the triangle's bbox, outside its footprint
        ([-32, 76, -31, 77], {"s1-tri"}),
        ([0, 0, 10, 10], set()),
        ([-180, -90, 180, 90], set(SCENES)),
    ],
)
def test_bbox(cat, bbox, expected):
    assert ids_of(quiet_search(cat, bbox=bbox)) == expected_order(expected)


@pytest.mark.parametrize(
    "when, expected",
    [
        ("2021-01-05T10:00:00Z", {"s1-a", "s2-a"}),  # instant: exact time
        ("2021-01-05T11:00:00+01:00", {"s1-a", "s2-a"}),  # same instant, other offset
        ("2021-01-05T10:00:00", {"s1-a", "s2-a"}),  # naive = UTC
        ("2021-01-05T10:00:01Z", set()),
        ("2021-06-15T12:30:00.500Z", {"s1-d"}),  # fractional seconds
        ("2021-01-01T00:00:00Z/2021-03-01T00:00:00Z", {"s1-a", "s1-b", "s2-a", "s1-c"}),  # closed: end inclusive
        ("../2021-01-17T10:00:00Z", {"s1-a", "s2-a", "s1-b"}),
        ("2021-08-20T14:00:00Z/..", {"s2-c", "s2-nocloud", "s1-e"}),
        ("2021-05-15T00:00:00Z", {"s2-range"}),  # instant inside an item's range
        ("2021-05-31T23:59:59Z/2021-06-01T00:00:00Z", {"s2-range"}),  # overlap at the range end
        ("2021-05", {"s2-range"}),  # a month
        ("2021-12-31", {"s1-e"}),  # a whole day, to its last second
        ("2021", set(SCENES)),
        ("2021-03-01/2021-04-10", {"s1-c", "s2-b"}),  # date ends cover whole days
        (dt.datetime(2021, 1, 17, 10, tzinfo=UTC), {"s1-b"}),
        (dt.datetime(2021, 1, 17, 10), {"s1-b"}),
        (dt.date(2021, 4, 10), {"s2-b"}),
        ((dt.datetime(2021, 9, 1, tzinfo=UTC), None), {"s2-nocloud", "s1-e"}),
        ((None, "2021-01-05T10:00:00Z"), {"s1-a", "s2-a"}),
        (("2021-06-01", dt.date(2021, 7, 1)), {"s1-d", "s1-tri"}),
    ],
)
def test_datetime(cat, when, expected):
    assert ids_of(quiet_search(cat, datetime=when)) == expected_order(expected)


@pytest.mark.parametrize(
    "collections, expected",
    [
        ("s2-test", [i for i in ALL if i.startswith("s2-")]),
        (["s1-test"], [i for i in ALL if i.startswith("s1-")]),
        (["s1-test", "s2-test"], ALL),
        ("s1-test,s2-test", ALL),
    ],
)
def test_collections(cat, collections, expected):
    assert ids_of(search(cat, collections=collections)) == expected


def test_ids(cat):
    assert ids_of(search(cat, ids=["s2-c", "s1-a"])) == ["s1-a", "s2-c"]
    assert ids_of(search(cat, ids="s1-e")) == ["s1-e"]
    assert ids_of(search(cat, ids="s1-e,s2-b")) == ["s2-b", "s1-e"]
    assert ids_of(quiet_search(cat, ids=["s1-a"], collections="s2-test")) == []


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"eo:cloud_cover": {"lt": 20}}, {"s2-a", "s2-range"}),
        ({"eo:cloud_cover": {"lte": 20}}, {"s2-a", "s2-range", "s2-b"}),
        ({"eo:cloud_cover": {"gt": 20}}, {"s2-c"}),
        ({"eo:cloud_cover": {"gte": 20}}, {"s2-b", "s2-c"}),
        ({"eo:cloud_cover": {"gte": 10, "lt": 55.5}}, {"s2-b", "s2-range"}),
        ({"eo:cloud_cover": {"eq": 55.5}}, {"s2-c"}),
        ({"eo:cloud_cover": {"neq": 5}}, {"s2-b", "s2-c", "s2-range"}),  # missing property never matches
        ({"eo:cloud_cover": {"in": [5, 20]}}, {"s2-a", "s2-b"}),
        ({"sat:orbit_state": {"eq": "ascending"}}, {"s1-a", "s1-c", "s1-e"}),
        ({"sat:orbit_state": "descending"}, {"s1-b", "s1-d", "s1-tri"}),  # bare value = eq
        ({"sat:orbit_state": {"neq": "ascending"}}, {"s1-b", "s1-d", "s1-tri"}),
        ({"sat:relative_orbit": {"in": [90, 112]}}, {"s1-b", "s1-d", "s1-tri"}),
        ({"sat:orbit_state": {"eq": "ascending"}, "sat:relative_orbit": {"eq": 25}}, {"s1-a", "s1-c", "s1-e"}),
        ({"platform": {"in": ["sentinel-2b"]}, "eo:cloud_cover": {"lt": 15}}, {"s2-range"}),
        ({"sat:relative_orbit": {"lt": "90"}}, set()),  # a string bound never matches numbers
        ('{"eo:cloud_cover": {"lt": 20}}', {"s2-a", "s2-range"}),  # JSON text, as from a command line
    ],
)
def test_query(cat, query, expected):
    assert ids_of(quiet_search(cat, query=query)) == expected_order(expected)


def test_filters_combine(cat):
    got = search(cat, bbox=[-50, 67, -45, 71], datetime="2021-01-01/2021-02-01", collections="s1-test",
                 query={"sat:orbit_state": {"eq": "descending"}})
    assert ids_of(got) == ["s1-b"]


def test_order_does_not_depend_on_input_order(loaded_items):
    assert ids_of(filter_items(list(reversed(loaded_items)))) == ALL
    assert ids_of(filter_items(sorted(loaded_items, key=lambda i: i.id, reverse=True), datetime="2021-01-05")) == ["s1-a", "s2-a"]


def test_filter_items_is_pure(loaded_items):
    before = [item.to_dict() for item in loaded_items]
    order = ids_of(loaded_items)
    got = filter_items(loaded_items, query={"eo:cloud_cover": {"lt": 20}})
    assert ids_of(got) == ["s2-a", "s2-range"]
    assert got[0] is next(i for i in loaded_items if i.id == "s2-a")  # not copied
    assert [item.to_dict() for item in loaded_items] == before and ids_of(loaded_items) == order


# --- independent checks (hypothesis) ---------------------------------------------------

RECT_SCENES = [i for i in SCENES if SCENES[i][3] is None]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    w=st.floats(-60, -20), e=st.floats(-60, -20), s=st.floats(55, 80), n=st.floats(55, 80),
)
def test_bbox_agrees_with_rectangle_overlap(loaded_items, w, e, s, n):
    w, e = sorted((w, e))
    s, n = sorted((s, n))
    rects = [i for i in loaded_items if i.id in RECT_SCENES]
    expected = {
        i for i in RECT_SCENES
        if SCENES[i][2][0] <= e and w <= SCENES[i][2][2] and SCENES[i][2][1] <= n and s <= SCENES[i][2][3]
    }
    assert set(ids_of(filter_items(rects, bbox=(w, s, e, n)))) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    a=st.datetimes(dt.datetime(2020, 12, 1), dt.datetime(2022, 1, 31)),
    b=st.datetimes(dt.datetime(2020, 12, 1), dt.datetime(2022, 1, 31)),
)
def test_datetime_interval_agrees_with_overlap(loaded_items, a, b):
    a, b = sorted((a.replace(tzinfo=UTC), b.replace(tzinfo=UTC)))

    def span(i):
        when = SCENES[i][1]
        return (t(when), t(when)) if isinstance(when, str) else (t(when[0]), t(when[1]))

    expected = {i for i in SCENES if span(i)[0] <= b and span(i)[1] >= a}
    assert set(ids_of(filter_items(loaded_items, datetime=(a, b)))) == expected
    text = SearchFilters.create(datetime=(a, b)).datetime_string()
    assert set(ids_of(filter_items(loaded_items, datetime=text))) == expected  # round trip through the API form


# --- the loopback STAC API --------------------------------------------------------------

COMBOS = [
    {},
    {"bbox": [-50, 68, -46, 70]},
    {"bbox": [-40, 78, -37, 79]},
    {"datetime": "2021-01-05T10:00:00Z"},
    {"datetime": "2021-05"},
    {"datetime": "../2021-03-01T00:00:00Z", "collections": "s1-test"},
    {"datetime": (dt.date(2021, 4, 1), None), "query": {"eo:cloud_cover": {"lte": 20}}},
    {"collections": ["s2-test"], "ids": ["s2-a", "s2-c", "s1-a"]},
    {"query": {"sat:orbit_state": {"eq": "ascending"}, "sat:relative_orbit": {"in": [25]}}},
    {"query": {"eo:cloud_cover": {"neq": 5}}, "bbox": "-45,63,-25,67"},
    {"bbox": [-50, 60, -20, 80], "datetime": "2021-06-15T12:30:00.5Z/2021-12-31", "collections": "s1-test,s2-test",
     "query": {"platform": {"in": ["sentinel-1a", "sentinel-2a"]}}},
    {"ids": "nothing-here"},
]


@pytest.mark.parametrize("params", COMBOS, ids=[str(i) for i in range(len(COMBOS))])
def test_static_and_api_agree(cat, api, params):
    static = quiet_search(cat, **params)
    remote = quiet_search(api.url, allow_local_assets=True, **params)
    assert ids_of(static) == ids_of(remote)
    # and both agree with the pure filter over the items as loaded by pystac
    assert ids_of(static) == ids_of(filter_items(pystac.Catalog.from_file(str(cat)).get_items(recursive=True), **params))
    for s_item, r_item in zip(static, remote):
        assert {k: a.href for k, a in s_item.assets.items()} == {k: a.href for k, a in r_item.assets.items()}
        assert s_item.properties == r_item.properties


def test_static_catalog_over_http(cat):
    """A static catalog at an http URL (no search conformance) is walked and filtered offline."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(cat.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        result = search(base + "catalog.json", query={"eo:cloud_cover": {"lt": 20}})
        assert ids_of(result) == ["s2-a", "s2-range"]
        assert result[0].assets["B04"].href == base + "s2-test/s2-a/s2-a_B04.tif"  # resolved against the item URL
        with pytest.raises(UnknownCollectionError, match="'s3-test'"):
            search(base + "catalog.json", collections="s3-test")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_api_items_have_local_absolute_asset_paths(api):
    result = search(api.url, allow_local_assets=True, collections="s1-test")
    assert ids_of(result) == [i for i in ALL if i.startswith("s1-")]
    for item in result:
        assert item.get_self_href() == f"{api.url}collections/s1-test/items/{item.id}"
        for asset in item.assets.values():
            assert Path(asset.href).is_absolute() and Path(asset.href).read_bytes() == b"not really a COG"
    validate_items(result, ["hh"])


def test_remote_catalog_cannot_make_us_read_local_files(api):
    from cryocube.catalog import LocalAssetError

    with pytest.raises(LocalAssetError, match=r"remote catalog http://127\.0\.0\.1:\d+/ points at \d+ file\(s\) on this machine "
                                              r"\(item 's1-.*' asset 'hh' -> '/.*'.*allow_local_assets=True"):
        search(api.url, collections="s1-test")


def test_api_sends_parameters_to_the_server(api):
    n_before = len(api.search_requests())
    search(api.url, allow_local_assets=True, bbox=[-50, 68, -46, 70], datetime="2021-01", collections="s1-test",
           query={"sat:orbit_state": {"eq": "ascending"}}, limit=7)
    method, path, body = api.search_requests()[n_before]
    assert method == "POST"
    assert body == {"limit": 7, "bbox": [-50.0, 68.0, -46.0, 70.0],
                    "datetime": "2021-01-01T00:00:00Z/2021-01-31T23:59:59.999999Z",
                    "collections": ["s1-test"], "query": {"sat:orbit_state": {"eq": "ascending"}}}


@pytest.mark.parametrize("limit", [1, 2, 3, 11, 50])
def test_api_paging(cat, api, limit):
    n_before = len(api.search_requests())
    result = search(api.url, allow_local_assets=True, limit=limit)
    assert ids_of(result) == ALL
    pages = api.search_requests()[n_before:]
    assert len(pages) == -(-len(ALL) // limit)  # one request per page, all pages read
    assert [body.get("token", 0) for _, _, body in pages] == [limit * k for k in range(len(pages))]


def test_api_paging_default_page_size(api):
    n_before = len(api.search_requests())
    assert ids_of(search(api.url, allow_local_assets=True, collections="s2-test")) == [i for i in ALL if i.startswith("s2-")]
    assert len(api.search_requests()) - n_before == 2  # 5 items, server pages of 4


def test_api_paging_with_get_through_pystac_client(api):
    client = pystac_client.Client.open(api.url)
    n_before = len(api.search_requests())
    got = client.search(method="GET", limit=3, datetime="2021-01-01T00:00:00Z/2021-06-30T23:59:59Z").item_collection()
    requests = api.search_requests()[n_before:]
    assert len(requests) == 3 and all(m == "GET" for m, _, _ in requests)  # 7 items, pages of 3
    expected = {"s1-a", "s2-a", "s1-b", "s1-c", "s2-b", "s2-range", "s1-d"}
    assert ids_of(got) == expected_order(expected)  # the server pages in search() order
    assert ids_of(search(api.url, allow_local_assets=True, datetime="2021-01-01/2021-06-30")) == expected_order(expected)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_server_endpoints(api):
    status, landing = _get(api.url)
    assert status == 200
    for uri in ("core", "item-search", "item-search#query", "collections"):
        assert f"https://api.stacspec.org/v1.0.0/{uri}" in landing["conformsTo"]
    rels = {(link["rel"], link.get("method")) for link in landing["links"]}
    assert {("self", None), ("root", None), ("data", None), ("search", "GET"), ("search", "POST")} <= rels
    assert _get(api.url + "conformance")[1]["conformsTo"] == landing["conformsTo"]
    status, collections = _get(api.url + "collections")
    assert status == 200 and sorted(c["id"] for c in collections["collections"]) == ["s1-test", "s2-test"]
    status, coll = _get(api.url + "collections/s2-test")
    assert status == 200 and coll["type"] == "Collection" and coll["id"] == "s2-test"
    status, page = _get(api.url + "collections/s2-test/items?limit=2&datetime=2021-01-01/2021-06-30")
    assert status == 200 and page["numberMatched"] == 3 and ids_of_dicts(page) == ["s2-a", "s2-b"]
    nxt = next(link for link in page["links"] if link["rel"] == "next")
    assert ids_of_dicts(_get(nxt["href"])[1]) == ["s2-range"]
    status, item = _get(api.url + "collections/s2-test/items/s2-b")
    assert status == 200 and item["id"] == "s2-b" and Path(item["assets"]["B04"]["href"]).is_absolute()
    assert _get(api.url + "collections/nope")[0] == 404
    assert _get(api.url + "collections/s2-test/items/s1-a")[0] == 404
    assert _get(api.url + "nowhere")[0] == 404


def ids_of_dicts(page: dict) -> list[str]:
    return [f["id"] for f in page["features"]]


def test_server_search_get_and_post(api):
    status, page = _get(api.url + "search?bbox=-50,68,-46,70&collections=s1-test&query=" +
                        urllib.request.quote(json.dumps({"sat:orbit_state": {"eq": "ascending"}})))
    assert status == 200 and ids_of_dicts(page) == ["s1-a", "s1-c"]
    status, page = _post(api.url + "search", {"ids": ["s2-c", "s1-b"], "limit": 1})
    assert status == 200 and ids_of_dicts(page) == ["s1-b"] and page["numberMatched"] == 2
    nxt = next(link for link in page["links"] if link["rel"] == "next")
    assert nxt["method"] == "POST"
    page2 = _post(nxt["href"], nxt["body"])[1]
    assert ids_of_dicts(page2) == ["s2-c"] and not any(link["rel"] == "next" for link in page2["links"])


@pytest.mark.parametrize(
    "params, culprit",
    [
        ("bbox=1,2,3", "bbox"),
        ("datetime=yesterday", "datetime"),
        ("query=" + urllib.request.quote('{"eo:cloud_cover": {"like": 3}}'), "like"),
        ("limit=0", "limit"),
        ("intersects=%7B%7D", "intersects"),
    ],
)
def test_server_rejects_bad_parameters(api, params, culprit):
    status, doc = _get(api.url + "search?" + params)
    assert status == 400 and culprit in doc["description"]


def test_server_binds_loopback_only_and_stops(cat):
    with pytest.raises(ValueError, match="loopback"):
        StacApiServer(cat, host="0.0.0.0")
    with serve(cat) as server:
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        assert _get(url)[0] == 200
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


# --- empty results and bad inputs ------------------------------------------------------


@pytest.mark.parametrize("remote", [False, True])
def test_empty_result_warns_with_filters(cat, api, remote):
    where = api.url if remote else cat
    with pytest.warns(UserWarning, match="nothing matched") as record:
        result = search(where, bbox=[0, 0, 1, 1], query={"eo:cloud_cover": {"lt": 1}})
    assert isinstance(result, pystac.ItemCollection) and len(result) == 0
    message = str(record[0].message)
    assert "bbox=[0.0, 0.0, 1.0, 1.0]" in message and "eo:cloud_cover" in message and str(where) in message


def test_missing_catalog_path(tmp_path):
    missing = tmp_path / "no" / "catalog.json"
    with pytest.raises(CatalogNotFoundError, match="does not exist") as info:
        search(missing)
    assert str(missing) in str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)


def test_folder_without_catalog(tmp_path):
    with pytest.raises(CatalogNotFoundError, match="no catalog.json") as info:
        search(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_corrupt_json(tmp_path):
    bad = tmp_path / "catalog.json"
    bad.write_text('{"type": "Catalog",\n "id": oops}')
    with pytest.raises(CatalogFormatError, match="not valid JSON") as info:
        search(bad)
    assert str(bad) in str(info.value) and "line 2 column 8" in str(info.value)


def test_corrupt_child_json_names_the_child(tmp_path):
    root = build_catalog(tmp_path / "cat")
    child = root.parent / "s2-test" / "collection.json"
    child.write_text(child.read_text()[:-20])
    with pytest.raises(CatalogFormatError, match="not valid JSON") as info:
        search(root)
    assert str(child) in str(info.value)


def test_missing_item_file_names_it(tmp_path):
    root = build_catalog(tmp_path / "cat")
    gone = root.parent / "s1-test" / "s1-b" / "s1-b.json"
    gone.unlink()
    with pytest.raises(CatalogNotFoundError) as info:
        search(root, collections="s1-test")
    assert str(gone) in str(info.value)


@pytest.mark.parametrize(
    "content, hint",
    [
        ({"hello": "world"}, "found type=None"),
        ([1, 2, 3], "not a STAC object"),
        ({"type": "Feature", "stac_version": "1.0.0", "id": "x"}, "STAC Item"),
        ({"type": "FeatureCollection", "features": []}, "item collection"),
    ],
)
def test_json_that_is_not_a_stac_catalog(tmp_path, content, hint):
    path = tmp_path / "thing.json"
    path.write_text(json.dumps(content))
    with pytest.raises(CatalogFormatError) as info:
        search(path)
    assert str(path) in str(info.value) and hint in str(info.value)


@pytest.mark.parametrize("remote", [False, True])
def test_unknown_collection(cat, api, remote):
    with pytest.raises(UnknownCollectionError) as info:
        search(api.url if remote else cat, collections=["s1-test", "sentinel-3"], allow_local_assets=True)
    message = str(info.value)
    assert "'sentinel-3'" in message and "available collections: 's1-test', 's2-test'" in message
    assert "'s1-test'," not in message.split("available")[0]  # the known one is not blamed


@pytest.mark.parametrize(
    "bbox, reason",
    [
        ([1, 2, 3], "got 3 value"),
        ([-40, 60, -50, 70], "antimeridian"),
        ([-50, 70, -40, 60], "south > north"),
        ([-50, 60, -40, 95], "latitudes"),
        ([-190, 60, -40, 70], "longitudes"),
        (["a", 60, -40, 70], "'a' is not a number"),
        ([float("nan"), 60, -40, 70], "not finite"),
        ("1,2,3,x", "'x' is not a number"),
        (42, "expected 4 numbers"),
        ({"w": 1}, "expected 4 numbers"),
    ],
)
def test_bad_bbox(cat, bbox, reason):
    with pytest.raises(SearchParameterError) as info:
        search(cat, bbox=bbox)
    assert info.value.parameter == "bbox"
    assert str(info.value).startswith(f"invalid bbox={bbox!r}") and reason in str(info.value)


@pytest.mark.parametrize(
    "when, reason",
    [
        ("yesterday", "not an RFC 3339"),
        ("2021-13-01", "month must be in 1..12"),
        ("2021-02-30T00:00:00Z", "day is out of range"),
        ("2021-01-01/2021-02-01/2021-03-01", "2 ends, got 3"),
        ("../..", "both ends are open"),
        ("..", "open"),
        ("2021-03-01/2021-02-01", "after end"),
        ((dt.date(2021, 1, 2), dt.date(2021, 1, 1)), "after end"),
        ((dt.date(2021, 1, 2),), "got 1 element"),
        (20210101, "unsupported type int"),
    ],
)
def test_bad_datetime(cat, when, reason):
    with pytest.raises(SearchParameterError) as info:
        search(cat, datetime=when)
    assert info.value.parameter == "datetime"
    assert str(info.value).startswith(f"invalid datetime={when!r}") and reason in str(info.value)


@pytest.mark.parametrize(
    "query, reason",
    [
        ({"eo:cloud_cover": {"like": 20}}, "unsupported operator 'like' of property 'eo:cloud_cover'; supported operators: eq, neq, lt"),
        ({"eo:cloud_cover": {"in": 20}}, "operator 'in' of property 'eo:cloud_cover' needs a non-empty list"),
        ({"eo:cloud_cover": {"in": []}}, "needs a non-empty list"),
        ({"eo:cloud_cover": {"lt": [1]}}, "needs a number or string"),
        ({"eo:cloud_cover": {"lt": True}}, "needs a number or string"),
        ({"eo:cloud_cover": {}}, "no operator"),
        ("{bad json", "not valid JSON"),
        (["eo:cloud_cover<20"], "expected a mapping"),
    ],
)
def test_bad_query(cat, query, reason):
    with pytest.raises(SearchParameterError) as info:
        search(cat, query=query)
    assert info.value.parameter == "query"
    assert str(info.value).startswith(f"invalid query={query!r}") and reason in str(info.value)


@pytest.mark.parametrize(
    "kwargs, culprit",
    [
        ({"collections": []}, "invalid collections=[]"),
        ({"ids": [1]}, "invalid ids=[1]: 1 is not"),
        ({"limit": 0}, "invalid limit=0"),
        ({"limit": 2.5}, "invalid limit=2.5"),
    ],
)
def test_other_bad_parameters(cat, kwargs, culprit):
    with pytest.raises(SearchParameterError, match=culprit.replace("[", r"\[").replace("]", r"\]")):
        search(cat, **kwargs)


def test_bad_parameters_fail_before_any_io(tmp_path):
    # the catalog does not exist, but the malformed parameter is reported first
    with pytest.raises(SearchParameterError, match="bbox"):
        search(tmp_path / "missing", bbox=[1, 2])


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_api():
    url = f"http://127.0.0.1:{closed_port()}/stac/v1"
    with pytest.raises(CatalogConnectionError) as info:
        search(url)
    assert f"cannot reach STAC API {url}" in str(info.value)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, CatalogError)


def test_api_error_answer_names_the_url(api):
    url = api.url + "collections/nope"  # a 404 landing page
    with pytest.raises(CatalogAPIError, match="answered HTTP 404") as info:
        search(url)
    assert url in str(info.value)


def test_unsupported_url_scheme():
    with pytest.raises(CatalogError, match="unsupported catalog URL 's3://bucket/catalog.json'"):
        search("s3://bucket/catalog.json")


# --- validate_items -----------------------------------------------------------------------


def test_validate_items_names_item_and_asset(cat):
    items = search(cat, collections="s1-test")
    validate_items(items, ["hh"])
    with pytest.raises(ItemAssetError) as info:
        validate_items(items, ["hh", "hv"])
    assert info.value.problems == ["item 's1-d' lacks asset 'hv' (it has: hh)"]
    assert "item 's1-d' lacks asset 'hv'" in str(info.value)


def test_validate_items_relative_href_and_missing_time(loaded_items):
    raw = next(i for i in loaded_items if i.id == "s2-b").clone()  # straight from pystac: relative href
    raw.datetime = None
    with pytest.raises(ItemAssetError) as info:
        validate_items([raw], "B04")
    text = str(info.value)
    assert "item 's2-b' has no datetime" in text and "item 's2-b' asset 'B04' has a relative href './s2-b_B04.tif'" in text


# --- the bundled catalogs -------------------------------------------------

BUNDLED = [REPO / "catalogs" / "greenland-s1" / "catalog.json", REPO / "catalogs" / "greenland-s2" / "catalog.json"]


def test_bundled_catalogs_static_and_api_agree():
    with serve(*BUNDLED) as server:
        for path in BUNDLED:
            static = search(path)
            assert len(static) > 0
            validate_items(static)
            collections = sorted({item.collection_id for item in static})
            remote = search(server.url, collections=collections, limit=5, allow_local_assets=True)
            assert ids_of(static) == ids_of(remote)
            assert all(Path(a.href).exists() for item in remote for a in item.assets.values())
            first = static[0]
            box_ = first.bbox
            sub_static = quiet_search(path, bbox=box_, datetime=first.datetime)
            sub_remote = quiet_search(server.url, bbox=box_, datetime=first.datetime, collections=collections,
                                      allow_local_assets=True)
            assert first.id in ids_of(sub_static) and ids_of(sub_static) == ids_of(sub_remote)
