"""A small STAC API on loopback, serving static catalogs, for offline tests.

``with StacApiServer("catalogs/greenland-s1", "catalogs/greenland-s2") as api:
search(api.url, ...)`` starts a :class:`http.server.ThreadingHTTPServer` on
127.0.0.1 (an ephemeral port) in a daemon thread and stops it on exit.

It implements STAC API core, item search (GET and POST, with ``next`` links for
paging), the query extension, collections and features:
``/``, ``/conformance``, ``/collections``, ``/collections/{id}``,
``/collections/{id}/items``, ``/collections/{id}/items/{item_id}``, ``/search``.
Filtering goes through :func:`cryocube.catalog.filter_items`, the same function
that searches static catalogs, so both paths agree. Asset hrefs are absolute file
paths of the static catalog's files, so a client can load pixels locally.
``requests`` records ``(method, path_and_query, json_body)`` of every request.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pystac

from cryocube.catalog import CatalogError, filter_items

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
GEOJSON = "application/geo+json"
JSON = "application/json"
SEARCH_PARAMS = ("bbox", "datetime", "collections", "ids", "query", "limit", "token")


class _BadRequest(Exception):
    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


class StacApiServer:
    """STAC API over static catalogs on 127.0.0.1; a context manager.

    Parameters
    ----------
    *catalogs
        Paths of static catalogs (catalog.json files or folders holding one).
    default_limit, max_limit
        Page size when the request gives none, and the largest page served
        (larger requested limits are clamped, as the STAC API spec allows).
    host
        A loopback address; anything else is refused.
    """

    def __init__(self, *catalogs: str | Path, default_limit: int = 10, max_limit: int = 1000, host: str = "127.0.0.1"):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"StacApiServer binds loopback addresses only, got {host!r}")
        self.host = host
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.requests: list[tuple[str, str, Any]] = []
        self._lock = threading.Lock()
        self.collections: dict[str, pystac.Collection] = {}
        self.items: list[pystac.Item] = []
        for catalog in catalogs:
            self._load(Path(catalog))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- loading --------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        if path.is_dir():
            path = path / "catalog.json"
        root = pystac.Catalog.from_file(str(path.resolve()))
        for collection in root.get_all_collections():
            if collection.id in self.collections:
                raise ValueError(f"collection {collection.id!r} served twice")
            self.collections[collection.id] = collection
        for item in root.get_items(recursive=True):
            copy = item.clone()
            copy.make_asset_hrefs_absolute()  # file paths of the catalog's own files
            self.items.append(copy)

    # -- lifecycle ------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Landing page URL, with a trailing slash."""
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self._server.server_address[1]}/"

    def start(self) -> "StacApiServer":
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="stac-api-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> "StacApiServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def search_requests(self) -> list[tuple[str, str, Any]]:
        """Recorded requests to ``/search``."""
        with self._lock:
            return [r for r in self.requests if urlsplit(r[1]).path.rstrip("/").endswith("/search")]

    # -- documents ------------------------------------------------------------------
    def landing_page(self, base: str) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "cryocube-test-api",
            "title": "cryocube loopback STAC API",
            "description": "Static catalogs served as a STAC API for tests",
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": base, "type": JSON},
                {"rel": "root", "href": base, "type": JSON},
                {"rel": "conformance", "href": f"{base}conformance", "type": JSON},
                {"rel": "data", "href": f"{base}collections", "type": JSON},
                {"rel": "search", "href": f"{base}search", "type": GEOJSON, "method": "GET"},
                {"rel": "search", "href": f"{base}search", "type": GEOJSON, "method": "POST"},
                *({"rel": "child", "href": f"{base}collections/{quote(cid)}", "type": JSON} for cid in self.collections),
            ],
        }

    def collection_doc(self, base: str, cid: str) -> dict[str, Any]:
        doc = self.collections[cid].to_dict(include_self_link=False, transform_hrefs=False)
        doc["links"] = [
            {"rel": "self", "href": f"{base}collections/{quote(cid)}", "type": JSON},
            {"rel": "root", "href": base, "type": JSON},
            {"rel": "parent", "href": base, "type": JSON},
            {"rel": "items", "href": f"{base}collections/{quote(cid)}/items", "type": GEOJSON},
        ]
        return doc

    def item_doc(self, base: str, item: pystac.Item) -> dict[str, Any]:
        doc = item.to_dict(include_self_link=False, transform_hrefs=False)
        links = [{"rel": "root", "href": base, "type": JSON}]
        cid = item.collection_id
        if cid is not None:
            links += [
                {"rel": "self", "href": f"{base}collections/{quote(cid)}/items/{quote(item.id)}", "type": GEOJSON},
                {"rel": "parent", "href": f"{base}collections/{quote(cid)}", "type": JSON},
                {"rel": "collection", "href": f"{base}collections/{quote(cid)}", "type": JSON},
            ]
        doc["links"] = links
        return doc

    def item_page(self, base: str, endpoint: str, params: dict[str, Any], method: str, fixed: dict[str, Any] | None = None) -> dict[str, Any]:
        """One page of matching items; ``params`` as received (GET strings or POST JSON)."""
        unknown = sorted(set(params) - set(SEARCH_PARAMS))
        if unknown:
            raise _BadRequest(400, f"unsupported search parameter(s): {', '.join(unknown)}")
        limit = _int_param(params, "limit", self.default_limit, minimum=1)
        limit = min(limit, self.max_limit)
        offset = _int_param(params, "token", 0, minimum=0)
        query = params.get("query")
        try:
            matched = filter_items(
                self.items,
                bbox=params.get("bbox"),
                datetime=params.get("datetime"),
                collections=(fixed or {}).get("collections", params.get("collections")),
                ids=params.get("ids"),
                query=query,
            )
        except CatalogError as err:
            raise _BadRequest(400, str(err)) from None
        page = matched[offset : offset + limit]
        links: list[dict[str, Any]] = [{"rel": "root", "href": base, "type": JSON}]
        if offset + limit < len(matched):
            nxt = {**params, "token": offset + limit}
            if method == "POST":
                links.append({"rel": "next", "href": endpoint, "type": GEOJSON, "method": "POST", "body": nxt, "merge": False})
            else:
                links.append({"rel": "next", "href": f"{endpoint}?{urlencode(nxt)}", "type": GEOJSON, "method": "GET"})
        return {
            "type": "FeatureCollection",
            "features": [self.item_doc(base, item) for item in page],
            "links": links,
            "numberMatched": len(matched),
            "numberReturned": len(page),
        }

    def record(self, method: str, path: str, body: Any) -> None:
        with self._lock:
            self.requests.append((method, path, body))


def _int_param(params: dict[str, Any], name: str, default: int, *, minimum: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _BadRequest(400, f"invalid {name}={value!r}: not an integer") from None
    if isinstance(value, bool) or number < minimum:
        raise _BadRequest(400, f"invalid {name}={value!r}: must be an integer >= {minimum}")
    return number


def _make_handler(api: StacApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 30  # seconds a connection may stay idle
        protocol_version = "HTTP/1.0"  # one request per connection: no idle threads linger

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
            pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            body: Any = None
            try:
                if method == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > 1_000_000:
                        raise _BadRequest(413, "request body too large")
                    raw = self.rfile.read(length) if length else b"{}"
                    try:
                        body = json.loads(raw or b"{}")
                    except json.JSONDecodeError as err:
                        raise _BadRequest(400, f"request body is not valid JSON: {err}") from None
                    if not isinstance(body, dict):
                        raise _BadRequest(400, "request body must be a JSON object")
                api.record(method, self.path, body)
                status, doc = self._route(method, body)
            except _BadRequest as err:
                status, doc = err.status, {"code": "BadRequest" if err.status == 400 else "NotFound", "description": err.description}
            except Exception as err:  # noqa: BLE001 - a test server answers 500 instead of dying
                status, doc = 500, {"code": "ServerError", "description": f"{type(err).__name__}: {err}"}
            payload = json.dumps(doc).encode()
            self.send_response(status)
            kind = GEOJSON if doc.get("type") in ("Feature", "FeatureCollection") else JSON
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _route(self, method: str, body: Any) -> tuple[int, dict[str, Any]]:
            base = f"http://{self.headers.get('Host') or api.url[7:-1]}/"
            split = urlsplit(self.path)
            parts = [p for p in split.path.split("/") if p]
            if method == "GET":
                params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            else:
                params = body
            if parts == [] and method == "GET":
                return 200, api.landing_page(base)
            if parts == ["conformance"] and method == "GET":
                return 200, {"conformsTo": CONFORMANCE}
            if parts == ["collections"] and method == "GET":
                docs = [api.collection_doc(base, cid) for cid in api.collections]
                return 200, {"collections": docs, "links": [{"rel": "self", "href": f"{base}collections", "type": JSON}, {"rel": "root", "href": base, "type": JSON}]}
            if parts == ["search"]:
                return 200, api.item_page(base, f"{base}search", params, method)
            if len(parts) >= 2 and parts[0] == "collections" and method == "GET":
                cid = parts[1]
                if cid not in api.collections:
                    raise _BadRequest(404, f"collection {cid!r} not found")
                if len(parts) == 2:
                    return 200, api.collection_doc(base, cid)
                if len(parts) == 3 and parts[2] == "items":
                    extra = sorted(set(params) - {"bbox", "datetime", "limit", "token"})
                    if extra:
                        raise _BadRequest(400, f"unsupported parameter(s) for /items: {', '.join(extra)}")
                    endpoint = f"{base}collections/{quote(cid)}/items"
                    return 200, api.item_page(base, endpoint, params, "GET", fixed={"collections": [cid]})
                if len(parts) == 4 and parts[2] == "items":
                    for item in api.items:
                        if item.collection_id == cid and item.id == parts[3]:
                            return 200, api.item_doc(base, item)
                    raise _BadRequest(404, f"item {parts[3]!r} not found in collection {cid!r}")
            if method == "POST":
                raise _BadRequest(405 if parts in ([], ["conformance"], ["collections"]) else 404, f"POST {split.path} not supported")
            raise _BadRequest(404, f"no such endpoint: {split.path}")

    return Handler


@contextmanager
def serve(*catalogs: str | Path, **kwargs: Any) -> Iterator[StacApiServer]:
    """``with serve(path) as api: ...``: a started :class:`StacApiServer`, stopped on exit."""
    server = StacApiServer(*catalogs, **kwargs)
    with server:
        yield server
