"""Find STAC items: ``search()`` over local static catalogs and STAC APIs.

``search(catalog, bbox=..., datetime=..., collections=..., ids=..., query=...)``
returns a :class:`pystac.ItemCollection` whichever kind of catalog it is given:

* a **STAC API** (an ``http(s)://`` URL whose landing page conforms to *item
  search*): the search goes through pystac-client's own code
  (``Client.search(...).item_collection()``), which follows the ``next`` links of
  every page; ``query`` is sent with the STAC query extension;
* a **static catalog** (a ``catalog.json``/``collection.json`` file, a folder
  holding one, or the URL of one): pystac-client opens and browses it, but cannot
  search it, so the items are walked and filtered offline by :func:`filter_items`,
  which implements the item-search semantics below. The loopback test server
  (``tests/stac_api_server.py``) filters with the same function, so both paths
  agree by construction.

Filter semantics (those of STAC API item search):

``bbox``
    ``(west, south, east, north)`` in degrees of longitude/latitude (a sequence
    of 4 numbers or the string ``"w,s,e,n"``), not crossing the antimeridian
    (``west <= east``). An item matches when its geometry intersects the box
    (edges included); items without geometry are tested by their ``bbox``.
``datetime``
    an RFC 3339 instant (``"2021-06-01T12:00:00Z"``; no offset means UTC), a
    calendar period (``"2021"``, ``"2021-06"``, ``"2021-06-01"``: the whole
    period), a closed interval ``"a/b"``, an open interval ``"../b"`` or
    ``"a/.."``, a :class:`datetime.datetime` (naive means UTC) or
    :class:`datetime.date` (the whole day), or a ``(start, end)`` tuple of any
    of these, ``None`` for an open end. Interval ends are inclusive. An item
    matches when its time overlaps the interval; its time is
    ``start_datetime``..``end_datetime`` when it has both, else ``datetime``.
``collections`` / ``ids``
    a single id, a comma-separated string of ids or a sequence of ids.
``query``
    STAC query extension: ``{"eo:cloud_cover": {"lt": 20}, "sat:orbit_state":
    {"eq": "ascending"}}`` with operators ``eq neq lt lte gt gte in``; a bare
    value means ``eq``. An item lacking the property does not match; values of
    different kinds (a number against a string) do not match.
``limit``
    the page size asked from a STAC API (all pages are read: it never truncates
    the result, as in pystac-client); ignored for static catalogs.

Results are sorted by time (``datetime``, else ``start_datetime``) then id, so a
search is deterministic whatever the catalog's own order.

Returned items are copies whose asset hrefs are **absolute**: items from a
static catalog keep their absolute self href (the path of the item JSON) and
each relative asset href is resolved against it (as
``Item.make_asset_hrefs_absolute()`` does), giving plain absolute file paths (or
URLs for a remote static catalog), which is what the cube loader (stackstac,
rasterio) needs. Items from an API are treated the same way when they carry a
self link; otherwise their hrefs are left as the API gave them, and
:func:`validate_items` reports any that stayed relative. Hrefs already absolute
(a URL, or an absolute local path even when the item came from an http API) are
never changed; but local paths in the items of a remote (``http(s)://``) catalog
are refused unless ``allow_local_assets=True`` (:class:`LocalAssetError`).

Every bad input raises a :class:`CatalogError` (a ``ValueError``) naming the
culprit; an empty result returns an empty ``ItemCollection`` with a
``UserWarning`` listing the filters.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac
import pystac_client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from pystac_client.warnings import DoesNotConformTo, FallbackToPystac, NoConformsTo

__all__ = [
    "CatalogAPIError",
    "CatalogConnectionError",
    "CatalogError",
    "CatalogFormatError",
    "CatalogNotFoundError",
    "ItemAssetError",
    "QUERY_OPERATORS",
    "SearchFilters",
    "SearchParameterError",
    "UnknownCollectionError",
    "filter_items",
    "item_time_span",
    "search",
    "validate_items",
]

#: Operators of the STAC query extension that are supported.
QUERY_OPERATORS: tuple[str, ...] = ("eq", "neq", "lt", "lte", "gt", "gte", "in")

#: (connect, read) timeouts in seconds for STAC API requests.
API_TIMEOUT_S: tuple[float, float] = (10.0, 120.0)
#: Retries per request for connection problems and 502/503/504 answers.
API_MAX_RETRIES = 2

_UTC = _dt.timezone.utc


# Errors ------------------------------------------------------------------------------


class CatalogError(ValueError):
    """Base class of every error raised by :mod:`cryocube.catalog`."""


class CatalogNotFoundError(CatalogError, FileNotFoundError):
    """A catalog path (or a file it links to) does not exist."""


class CatalogFormatError(CatalogError):
    """A file or answer is not valid JSON, or not a STAC catalog."""


class UnknownCollectionError(CatalogError):
    """A requested collection id is not in the catalog."""


class SearchParameterError(CatalogError):
    """A malformed search parameter; ``parameter`` and ``value`` name it."""

    def __init__(self, parameter: str, value: Any, reason: str):
        self.parameter = parameter
        self.value = value
        super().__init__(f"invalid {parameter}={value!r}: {reason}")


class CatalogAPIError(CatalogError):
    """A STAC API answered with an error or cannot do the search asked."""


class CatalogConnectionError(CatalogAPIError, ConnectionError):
    """A STAC API could not be reached."""


class LocalAssetError(CatalogError):
    """A remote catalog points at files on this machine, which is refused unless allowed."""


class ItemAssetError(CatalogError):
    """Items unfit for loading (see :func:`validate_items`); ``problems`` lists them."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s) with the STAC items:\n  " + "\n  ".join(shown) + more)


# Parameter normalisation -------------------------------------------------------------

_PERIOD_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?$"
)
_DATETIME_HELP = (
    "expected an RFC 3339 instant ('2021-06-01T12:00:00Z'), a period ('2021', '2021-06', "
    "'2021-06-01'), an interval 'start/end', '../end' or 'start/..', a datetime or date "
    "object, or a (start, end) tuple"
)


def _utc(value: _dt.datetime) -> _dt.datetime:
    """Aware UTC datetime; naive values are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=_UTC)
    return value.astimezone(_UTC)


def _day_span(day: _dt.date) -> tuple[_dt.datetime, _dt.datetime]:
    start = _dt.datetime(day.year, day.month, day.day, tzinfo=_UTC)
    return start, start + _dt.timedelta(days=1, microseconds=-1)


def _parse_time_string(text: str) -> tuple[_dt.datetime, _dt.datetime]:
    """The span covered by one RFC 3339 instant or calendar period; raises ValueError."""
    text = text.strip()
    m = _PERIOD_RE.match(text)
    if m:
        year, month, day = int(m[1]), m[2], m[3]
        if day is not None:
            return _day_span(_dt.date(year, int(month), int(day)))
        if month is not None:
            start = _dt.datetime(year, int(month), 1, tzinfo=_UTC)
            nxt = _dt.datetime(year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=_UTC)
        else:
            start = _dt.datetime(year, 1, 1, tzinfo=_UTC)
            nxt = _dt.datetime(year + 1, 1, 1, tzinfo=_UTC)
        return start, nxt - _dt.timedelta(microseconds=1)
    m = _RFC3339_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not an RFC 3339 date-time")
    fraction = (m[7] or "")[:6].ljust(6, "0")
    tz = m[8]
    if tz is None or tz in "Zz":
        tzinfo = _UTC
    else:
        sign = 1 if tz[0] == "+" else -1
        tzinfo = _dt.timezone(sign * _dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    value = _dt.datetime(*(int(m[i]) for i in range(1, 7)), int(fraction), tzinfo=tzinfo)  # type: ignore[misc]
    value = _utc(value)
    return value, value


def _time_bound(component: Any) -> tuple[_dt.datetime, _dt.datetime] | None:
    """Span of one interval end; None for an open end."""
    if component is None:
        return None
    if isinstance(component, str):
        if component.strip() in ("", ".."):
            return None
        return _parse_time_string(component)
    if isinstance(component, _dt.datetime):
        value = _utc(component)
        return value, value
    if isinstance(component, _dt.date):
        return _day_span(component)
    raise ValueError(f"unsupported type {type(component).__name__}")


def _normalize_datetime(value: Any) -> tuple[_dt.datetime | None, _dt.datetime | None] | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            parts: list[Any] = value.split("/")
        elif isinstance(value, (_dt.datetime, _dt.date)):
            parts = [value]
        elif isinstance(value, Sequence):
            parts = list(value)
            if len(parts) != 2:
                raise ValueError(f"a tuple must be (start, end), got {len(parts)} element(s)")
        else:
            raise ValueError(f"unsupported type {type(value).__name__}")
        if len(parts) == 1:
            span = _time_bound(parts[0])
            if span is None:
                raise ValueError("an empty or open ('..') instant selects nothing")
            return span
        if len(parts) != 2:
            raise ValueError(f"an interval has 2 ends, got {len(parts)}")
        first, last = _time_bound(parts[0]), _time_bound(parts[1])
        if first is None and last is None:
            raise ValueError("both ends are open; pass datetime=None for no time filter")
        start = first[0] if first else None
        end = last[1] if last else None
        if start is not None and end is not None and start > end:
            raise ValueError(f"start {_format_time(start)} is after end {_format_time(end)}")
        return start, end
    except ValueError as err:  # also bad dates such as month 13
        raise SearchParameterError("datetime", value, f"{err}; {_DATETIME_HELP}") from None


def _normalize_bbox(value: Any) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    help_ = "expected 4 numbers (west, south, east, north) in degrees, as a sequence or 'w,s,e,n'"
    if isinstance(value, str):
        raw: list[Any] = [v.strip() for v in value.split(",")]
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        raw = list(value)
    else:
        raise SearchParameterError("bbox", value, help_)
    if len(raw) != 4:
        raise SearchParameterError("bbox", value, f"got {len(raw)} value(s); {help_}")
    numbers = []
    for v in raw:
        if isinstance(v, bool):
            raise SearchParameterError("bbox", value, f"{v!r} is not a number; {help_}")
        try:
            number = float(v)
        except (TypeError, ValueError):
            raise SearchParameterError("bbox", value, f"{v!r} is not a number; {help_}") from None
        if not math.isfinite(number):
            raise SearchParameterError("bbox", value, f"{v!r} is not finite")
        numbers.append(number)
    west, south, east, north = numbers
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise SearchParameterError("bbox", value, "longitudes must lie in [-180, 180]")
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise SearchParameterError("bbox", value, "latitudes must lie in [-90, 90]")
    if west > east:
        raise SearchParameterError(
            "bbox", value, "west > east: boxes crossing the antimeridian are not supported, split it into two searches"
        )
    if south > north:
        raise SearchParameterError("bbox", value, "south > north")
    return west, south, east, north


def _normalize_ids(parameter: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        out = tuple(v.strip() for v in value.split(",") if v.strip())
    elif isinstance(value, (pystac.Collection, pystac.Item)):
        out = (value.id,)
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        out = []
        for v in value:
            v = v.id if isinstance(v, (pystac.Collection, pystac.Item)) else v
            if not isinstance(v, str) or not v.strip():
                raise SearchParameterError(parameter, value, f"{v!r} is not a non-empty string id")
            out.append(v.strip())
        out = tuple(out)
    else:
        raise SearchParameterError(parameter, value, "expected an id, a comma-separated string of ids or a list of ids")
    if not out:
        raise SearchParameterError(parameter, value, f"no ids given; pass {parameter}=None for no {parameter} filter")
    return tuple(dict.fromkeys(out))  # drop duplicates, keep order


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, bool, int, float))


def _is_orderable(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _normalize_query(value: Any) -> dict[str, dict[str, Any]] | None:
    if value is None:
        return None
    query = value
    if isinstance(value, str):
        try:
            query = json.loads(value)
        except json.JSONDecodeError as err:
            raise SearchParameterError("query", value, f"not valid JSON: {err}") from None
    if not isinstance(query, Mapping):
        raise SearchParameterError(
            "query", value, "expected a mapping {property: {operator: value}}, e.g. {'eo:cloud_cover': {'lt': 20}}"
        )
    out: dict[str, dict[str, Any]] = {}
    for prop, ops in query.items():
        if not isinstance(prop, str) or not prop:
            raise SearchParameterError("query", value, f"property name {prop!r} is not a non-empty string")
        if not isinstance(ops, Mapping):
            ops = {"eq": ops}  # bare value means equality
        if not ops:
            raise SearchParameterError("query", value, f"no operator given for property {prop!r}")
        for op, operand in ops.items():
            where = f"operator {op!r} of property {prop!r}"
            if op not in QUERY_OPERATORS:
                raise SearchParameterError(
                    "query", value, f"unsupported {where}; supported operators: {', '.join(QUERY_OPERATORS)}"
                )
            if op == "in":
                if isinstance(operand, (str, Mapping)) or not isinstance(operand, Sequence) or not operand:
                    raise SearchParameterError("query", value, f"{where} needs a non-empty list, got {operand!r}")
                if not all(_is_scalar(v) for v in operand):
                    raise SearchParameterError("query", value, f"{where} needs a list of strings/numbers, got {operand!r}")
                operand = list(operand)
            elif op in ("eq", "neq"):
                if not _is_scalar(operand):
                    raise SearchParameterError("query", value, f"{where} needs a string, number or boolean, got {operand!r}")
            elif not _is_orderable(operand):
                raise SearchParameterError("query", value, f"{where} needs a number or string, got {operand!r}")
            out.setdefault(prop, {})[op] = operand
    return out


def _format_time(value: _dt.datetime) -> str:
    """RFC 3339 in UTC with a Z, microseconds only when there are some."""
    value = _utc(value).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds") + "Z"


# Matching ---------------------------------------------------------------------------


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return True
    return type(a) is type(b)


def _op_matches(op: str, actual: Any, operand: Any) -> bool:
    if op == "in":
        return any(_same_kind(actual, v) and actual == v for v in operand)
    if op == "eq":
        return _same_kind(actual, operand) and actual == operand
    if op == "neq":
        return not (_same_kind(actual, operand) and actual == operand)
    if not (_is_orderable(actual) and _same_kind(actual, operand)):
        return False
    if op == "lt":
        return actual < operand
    if op == "lte":
        return actual <= operand
    if op == "gt":
        return actual > operand
    return actual >= operand  # gte


def _parse_item_time(value: Any) -> _dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return _utc(value)
    try:
        return _utc(pystac.utils.str_to_datetime(str(value)))
    except (ValueError, OverflowError):
        return None


def item_time_span(item: pystac.Item) -> tuple[_dt.datetime, _dt.datetime] | None:
    """``(start, end)`` of an item in UTC: start/end_datetime when both exist, else datetime."""
    start = _parse_item_time(item.properties.get("start_datetime"))
    end = _parse_item_time(item.properties.get("end_datetime"))
    if start is not None and end is not None:
        return start, end
    instant = _parse_item_time(item.datetime)
    if instant is not None:
        return instant, instant
    if start is not None or end is not None:  # a lone start or end: treat as an instant
        return (start or end, start or end)  # type: ignore[return-value]
    return None


def _item_sort_key(item: pystac.Item) -> tuple[_dt.datetime, str]:
    span = item_time_span(item)
    return (span[0] if span else _dt.datetime.min.replace(tzinfo=_UTC), item.id)


def _boxes_intersect(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _item_bbox_parts(item: pystac.Item) -> list[tuple[float, float, float, float]] | None:
    bbox = item.bbox
    if bbox is None and item.geometry is not None:
        try:
            import shapely.geometry

            bbox = list(shapely.geometry.shape(item.geometry).bounds)
        except Exception:  # noqa: BLE001 - an unreadable geometry just does not match
            return None
    if bbox is None or len(bbox) not in (4, 6):
        return None
    if len(bbox) == 6:
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    w, s, e, n = (float(v) for v in bbox)
    if w > e:  # item crossing the antimeridian
        return [(w, s, 180.0, n), (-180.0, s, e, n)]
    return [(w, s, e, n)]


def _bbox_matches(item: pystac.Item, box: tuple[float, float, float, float]) -> bool:
    parts = _item_bbox_parts(item)
    if not parts or not any(_boxes_intersect(p, box) for p in parts):
        return False
    if item.geometry is None or len(parts) > 1:
        return True
    try:  # refine with the footprint itself, as STAC APIs do
        import shapely.geometry
    except ImportError:  # pragma: no cover - shapely comes with odc-geo
        return True
    try:
        return bool(shapely.geometry.shape(item.geometry).intersects(shapely.geometry.box(*box)))
    except Exception:  # noqa: BLE001 - invalid geometry: fall back on its bbox
        return True


@dataclass(frozen=True)
class SearchFilters:
    """Validated item-search filters; build with :meth:`create`, test with :meth:`matches`."""

    bbox: tuple[float, float, float, float] | None = None
    datetime: tuple[_dt.datetime | None, _dt.datetime | None] | None = None
    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    query: dict[str, dict[str, Any]] | None = None

    @classmethod
    def create(cls, *, bbox: Any = None, datetime: Any = None, collections: Any = None, ids: Any = None, query: Any = None) -> "SearchFilters":
        """Validate user values (see the module docstring); raises :class:`SearchParameterError`."""
        return cls(
            bbox=_normalize_bbox(bbox),
            datetime=_normalize_datetime(datetime),
            collections=_normalize_ids("collections", collections),
            ids=_normalize_ids("ids", ids),
            query=_normalize_query(query),
        )

    def matches(self, item: pystac.Item) -> bool:
        """Whether one item passes every filter."""
        if self.ids is not None and item.id not in self.ids:
            return False
        if self.collections is not None and item.collection_id not in self.collections:
            return False
        if self.datetime is not None:
            span = item_time_span(item)
            start, end = self.datetime
            if span is None or (start is not None and span[1] < start) or (end is not None and span[0] > end):
                return False
        if self.query is not None:
            for prop, ops in self.query.items():
                if prop not in item.properties:
                    return False
                actual = item.properties[prop]
                if not all(_op_matches(op, actual, operand) for op, operand in ops.items()):
                    return False
        if self.bbox is not None and not _bbox_matches(item, self.bbox):
            return False
        return True

    def datetime_string(self) -> str | None:
        """The datetime filter as an RFC 3339 instant or interval string (STAC API form)."""
        if self.datetime is None:
            return None
        start, end = self.datetime
        if start is not None and start == end:
            return _format_time(start)
        return f"{_format_time(start) if start else '..'}/{_format_time(end) if end else '..'}"

    def api_parameters(self) -> dict[str, Any]:
        """Keyword arguments for ``pystac_client.Client.search``."""
        params: dict[str, Any] = {
            "bbox": list(self.bbox) if self.bbox else None,
            "datetime": self.datetime_string(),
            "collections": list(self.collections) if self.collections else None,
            "ids": list(self.ids) if self.ids else None,
            "query": self.query,
        }
        return {k: v for k, v in params.items() if v is not None}

    def describe(self) -> str:
        """The filters in use, for messages."""
        parts = {**self.api_parameters()}
        return ", ".join(f"{k}={v!r}" for k, v in parts.items()) or "no filters"


def filter_items(
    items: Iterable[pystac.Item],
    *,
    bbox: Any = None,
    datetime: Any = None,
    collections: Any = None,
    ids: Any = None,
    query: Any = None,
) -> list[pystac.Item]:
    """Items passing STAC API item-search filters, sorted by time then id.

    Pure: the items are neither copied nor modified. Parameters as in :func:`search`;
    the GET string forms (``"w,s,e,n"``, ``"a,b"``, a JSON ``query``) are accepted
    too, so a STAC API server can pass its request parameters straight through.
    """
    filters = SearchFilters.create(bbox=bbox, datetime=datetime, collections=collections, ids=ids, query=query)
    return _apply(filters, items)


def _apply(filters: SearchFilters, items: Iterable[pystac.Item]) -> list[pystac.Item]:
    return sorted((item for item in items if filters.matches(item)), key=_item_sort_key)


# Opening catalogs ---------------------------------------------------------------------


def _is_url(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text))


class _CatalogIO(StacApiIO):
    """StacApiIO whose failures name the file or URL that caused them."""

    def read_json(self, source: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        href = source.href if isinstance(source, pystac.Link) else str(source)
        try:
            text = self.read_text(source, *args, **kwargs)
        except FileNotFoundError:
            raise CatalogNotFoundError(f"STAC file not found: {href} (linked from the catalog) does not exist") from None
        except IsADirectoryError:
            raise CatalogNotFoundError(f"STAC file not found: {href} is a folder, not a JSON file") from None
        try:
            data = self.json_loads(text)
        except json.JSONDecodeError as err:
            raise CatalogFormatError(f"{href} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno} (char {err.pos})") from None
        if not isinstance(data, dict):
            raise CatalogFormatError(f"{href} is not a STAC object: its JSON is a {type(data).__name__}, not an object")
        return data


def _resolve_catalog_path(catalog: str | Path) -> Path:
    path = Path(catalog).expanduser()
    if path.is_dir():
        for name in ("catalog.json", "collection.json"):
            if (path / name).is_file():
                return (path / name).resolve()
        raise CatalogNotFoundError(f"STAC catalog not found: folder {path} has no catalog.json (nor collection.json)")
    if not path.exists():
        raise CatalogNotFoundError(f"STAC catalog not found: {path} does not exist")
    return path.resolve()


def _check_root(data: dict[str, Any], where: str) -> str:
    kind = data.get("type")
    if kind in ("Catalog", "Collection") and "stac_version" in data and "id" in data:
        return kind
    hint = ""
    if kind == "Feature":
        hint = " (it is a STAC Item; pass the catalog that holds it)"
    elif kind == "FeatureCollection":
        hint = " (it is an item collection; read it with pystac.ItemCollection.from_file)"
    raise CatalogFormatError(
        f"{where} is not a STAC catalog: expected a JSON object with type 'Catalog' or 'Collection', "
        f"'id' and 'stac_version', found type={kind!r}{hint}"
    )


def _open(catalog: str | Path) -> tuple[pystac.Catalog, str]:
    """Open a catalog with pystac-client; returns (root, name for messages)."""
    io = _CatalogIO(timeout=API_TIMEOUT_S, max_retries=_retry())
    if isinstance(catalog, str) and _is_url(catalog):
        if not catalog.lower().startswith(("http://", "https://")):
            raise CatalogError(f"unsupported catalog URL {catalog!r}: only http(s):// STAC APIs/catalogs and local paths")
        name = catalog
        try:
            data = io.read_json(catalog)
        except APIError as err:
            raise _api_error(err, catalog, "open") from None
    else:
        if not isinstance(catalog, (str, Path)):
            raise CatalogError(f"catalog must be a path or an http(s) URL, got {type(catalog).__name__} {catalog!r}")
        path = _resolve_catalog_path(catalog)
        name = str(path)
        data = io.read_json(str(path))
    kind = _check_root(data, name)
    target = name
    with _quiet_pystac_client():
        try:
            if kind == "Collection":
                root: pystac.Catalog = pystac_client.CollectionClient.from_dict(data, href=target)
                root._stac_io = io  # noqa: SLF001 - follow links with the same error-naming IO
            else:
                root = pystac_client.Client.open(target, stac_io=io, timeout=API_TIMEOUT_S)
        except APIError as err:
            raise _api_error(err, name, "open") from None
        except (pystac.STACError, pystac_client.errors.ClientTypeError) as err:
            raise CatalogFormatError(f"{name} is not a readable STAC catalog: {err}") from None
    return root, name


def _retry() -> Any:
    from urllib3 import Retry

    return Retry(total=API_MAX_RETRIES, backoff_factor=0.5, status_forcelist=(502, 503, 504), allowed_methods=None, raise_on_status=False)


def _api_error(err: APIError, url: str, action: str) -> CatalogAPIError:
    status = getattr(err, "status_code", None)
    detail = str(err).strip()
    if len(detail) > 500:
        detail = detail[:500] + "..."
    if status is None:
        return CatalogConnectionError(f"cannot reach STAC API {url} ({action}): {detail}")
    return CatalogAPIError(f"STAC API {url} answered HTTP {status} ({action}): {detail}")


class _quiet_pystac_client(warnings.catch_warnings):
    """Silence pystac-client's notes that a static catalog is not an API (expected here)."""

    def __enter__(self) -> Any:
        result = super().__enter__()
        for category in (NoConformsTo, FallbackToPystac, DoesNotConformTo):
            warnings.simplefilter("ignore", category)
        return result


def _collection_ids(root: pystac.Catalog, is_api: bool) -> list[str] | None:
    """Ids of the collections in the catalog (None if the API cannot list them)."""
    if isinstance(root, pystac_client.CollectionClient):
        return [root.id]
    if is_api:
        assert isinstance(root, pystac_client.Client)
        if not root._supports_collections():  # noqa: SLF001
            return None
        return [c.id for c in root.get_collections()]
    return [c.id for c in root.get_all_collections()]


def _check_collections(filters: SearchFilters, available: list[str] | None, name: str) -> None:
    if filters.collections is None or available is None:
        return
    unknown = [c for c in filters.collections if c not in available]
    if unknown:
        listed = ", ".join(repr(c) for c in sorted(available)) or "none"
        raise UnknownCollectionError(
            f"unknown collection{'s' if len(unknown) > 1 else ''} {', '.join(repr(c) for c in unknown)} "
            f"in STAC catalog {name}; available collections: {listed}"
        )


def _static_items(root: pystac.Catalog, filters: SearchFilters) -> Iterator[pystac.Item]:
    if filters.collections is not None and not isinstance(root, pystac.Collection):
        wanted = set(filters.collections)
        for collection in root.get_all_collections():
            if collection.id in wanted:
                yield from collection.get_items(recursive=True)
    else:
        yield from root.get_items(recursive=True)


def _is_absolute_href(href: str) -> bool:
    return _is_url(href) or Path(href).is_absolute()


def _absolute_copy(item: pystac.Item) -> pystac.Item:
    """A copy whose relative asset hrefs are resolved against the item's self href.

    Hrefs that are already URLs or absolute paths are kept as they are: pystac's own
    ``make_asset_hrefs_absolute`` would turn a local path ``/data/x.tif`` served by an
    API at ``http://host/`` into ``http://host/data/x.tif``.
    """
    copy = item.clone()
    if copy.get_self_href() is not None:
        for asset in copy.assets.values():
            if not _is_absolute_href(asset.href):
                asset.href = asset.get_absolute_href() or asset.href
    return copy


def _search_method(root: pystac_client.Client) -> str:
    methods = {(link.extra_fields.get("method") or "GET").upper() for link in root.get_links("search")}
    return "POST" if not methods or "POST" in methods else "GET"


# Public API ---------------------------------------------------------------------------


def search(
    catalog: str | Path,
    *,
    bbox: Any = None,
    datetime: Any = None,
    collections: Any = None,
    ids: Any = None,
    query: Any = None,
    limit: int | None = None,
    allow_local_assets: bool = False,
) -> pystac.ItemCollection:
    """Search a static STAC catalog or a STAC API; see the module docstring for semantics.

    Parameters
    ----------
    catalog
        A ``catalog.json`` (or ``collection.json``) path, a folder holding one, or an
        ``http(s)://`` URL of a STAC API or of a static catalog.
    bbox, datetime, collections, ids, query
        Item-search filters (module docstring).
    limit
        Page size for STAC API requests (1..10000); every page is read. Ignored for
        static catalogs.
    allow_local_assets
        Accept items of a remote (``http(s)://``) catalog whose asset hrefs are files
        on this machine (absolute paths or ``file://``). Refused by default
        (:class:`LocalAssetError`): a remote catalog must not make cryocube read
        local files. Local catalogs may always point at local files.

    Returns
    -------
    pystac.ItemCollection
        Copies of the matching items, sorted by time then id, with absolute asset hrefs.
        Empty (with a ``UserWarning``) when nothing matched.
    """
    filters = SearchFilters.create(bbox=bbox, datetime=datetime, collections=collections, ids=ids, query=query)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000):
        raise SearchParameterError("limit", limit, "expected an integer page size between 1 and 10000")
    root, name = _open(catalog)
    is_api = isinstance(root, pystac_client.Client) and root.conforms_to("ITEM_SEARCH")
    try:
        with _quiet_pystac_client():
            _check_collections(filters, _collection_ids(root, is_api), name)
            if is_api:
                found = _api_search(root, name, filters, limit)
            else:
                found = _apply(filters, _static_items(root, filters))
    except APIError as err:
        raise _api_error(err, name, "search") from None
    except pystac.STACError as err:
        cause = err.__cause__  # pystac wraps errors of linked files; ours name the file
        if isinstance(cause, CatalogError):
            raise cause from None
        raise CatalogFormatError(f"invalid STAC object in catalog {name}: {err}") from None
    items = [_absolute_copy(item) for item in found]
    if _is_url(name) and not allow_local_assets:
        _refuse_local_assets(items, name)
    if not items:
        warnings.warn(f"nothing matched in STAC catalog {name} with {filters.describe()}", UserWarning, stacklevel=2)
    return pystac.ItemCollection(items, clone_items=False)


def _refuse_local_assets(items: Sequence[pystac.Item], name: str) -> None:
    """Raise :class:`LocalAssetError` if items of the remote catalog ``name`` point at local files."""
    local = [(item.id, key, asset.href) for item in items for key, asset in item.assets.items()
             if asset.href.lower().startswith("file:") or (not _is_url(asset.href) and Path(asset.href).is_absolute())]
    if local:
        shown = "; ".join(f"item {i!r} asset {k!r} -> {h!r}" for i, k, h in local[:5])
        raise LocalAssetError(f"remote catalog {name} points at {len(local)} file(s) on this machine ({shown}"
                              f"{'; ...' if len(local) > 5 else ''}); refused so that a remote catalog cannot make "
                              "cryocube read local files: pass allow_local_assets=True if you trust it")


def _api_search(root: pystac_client.Client, name: str, filters: SearchFilters, limit: int | None) -> list[pystac.Item]:
    if filters.query is not None and not root.conforms_to("QUERY"):
        raise CatalogAPIError(
            f"STAC API {name} does not conform to the query extension; cannot filter by query={filters.query!r}"
        )
    found = root.search(method=_search_method(root), limit=limit, **filters.api_parameters()).item_collection()
    return sorted(found, key=_item_sort_key)


def validate_items(items: Iterable[pystac.Item], assets: Sequence[str] | str | None = None) -> None:
    """Check that items can be loaded into a cube; raise :class:`ItemAssetError` listing every problem.

    Checks: each item has a time (``datetime`` or ``start_/end_datetime``); has each
    requested asset (all of its assets when ``assets`` is None); and each checked asset
    href is absolute (a path or URL the loader can open without the item's location).
    """
    wanted = [assets] if isinstance(assets, str) else (list(assets) if assets is not None else None)
    problems: list[str] = []
    for item in items:
        if item_time_span(item) is None:
            problems.append(f"item {item.id!r} has no datetime (nor start_datetime/end_datetime)")
        names = wanted if wanted is not None else list(item.assets)
        for asset in names:
            if asset not in item.assets:
                have = ", ".join(sorted(item.assets)) or "none"
                problems.append(f"item {item.id!r} lacks asset {asset!r} (it has: {have})")
                continue
            href = item.assets[asset].href
            if not _is_absolute_href(href):
                problems.append(
                    f"item {item.id!r} asset {asset!r} has a relative href {href!r}; "
                    "make it absolute (Item.make_asset_hrefs_absolute())"
                )
    if problems:
        raise ItemAssetError(problems)
