"""The ``cryocube`` command: search, cube and demo.

Kept apart from the algorithms: each sub-command parses options and calls the
public functions of the package.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: The catalogs bundled with the source tree (``catalogs/`` beside the package).
BUNDLED_CATALOGS = Path(__file__).resolve().parent.parent / "catalogs"


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("catalog", help="static catalog (path to catalog.json or its folder) or STAC API URL")
    parser.add_argument("--bbox", nargs=4, type=float, metavar=("W", "S", "E", "N"), help="lon/lat bounding box in degrees")
    parser.add_argument("--datetime", help="RFC 3339 instant or interval, e.g. 2019-05-01/2019-08-31 or 2019-06-01/..")
    parser.add_argument("--collections", nargs="+", metavar="ID", help="collection ids to search")
    parser.add_argument("--ids", nargs="+", metavar="ID", help="item ids to return")
    parser.add_argument(
        "--query",
        type=json.loads,
        metavar="JSON",
        help='STAC query-extension filter, e.g. \'{"sat:orbit_state": {"eq": "ascending"}}\'',
    )
    parser.add_argument("--limit", type=int, help="maximum number of items")


def _search(args: argparse.Namespace):
    from cryocube.catalog import search

    return search(args.catalog, bbox=args.bbox, datetime=args.datetime, collections=args.collections, ids=args.ids, query=args.query, limit=args.limit)


def _cmd_search(args: argparse.Namespace) -> int:
    items = _search(args)
    for item in items:
        props = item.properties
        print(f"{item.id}  {props.get('datetime')}  {item.collection_id}  {props.get('sat:orbit_state', '')}  assets={','.join(item.assets)}")
    print(f"{len(items)} item(s)")
    if args.out:
        items.save_object(dest_href=str(args.out))
        print(f"wrote {args.out}")
    return 0


def _cmd_cube(args: argparse.Namespace) -> int:
    from cryocube.cube import build_cube, describe_cube
    from cryocube.store import write_cube

    items = _search(args)
    cube = build_cube(
        items,
        assets=args.assets,
        crs=args.crs,
        resolution=args.resolution,
        bounds=tuple(args.bounds) if args.bounds else None,
        chunks=args.chunks,
        resampling=args.resampling,
        loader=args.loader,
    )
    print(describe_cube(cube))
    start = time.perf_counter()
    write_cube(cube, args.out, mode=args.mode, zarr_format=args.zarr_format, progress=True)
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from cryocube.demo import run_demo

    run_demo(out=args.out, catalogs=args.catalogs)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cryocube`` command."""
    parser = argparse.ArgumentParser(
        prog="cryocube",
        description="Analysis-ready Sentinel-1/-2 data cubes from STAC catalogs, stored as Zarr.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("search", help="search a STAC catalog or API and list the items", description="Search a static STAC catalog or a STAC API.")
    _add_search_options(p)
    p.add_argument("--out", type=Path, help="also save the items as a GeoJSON ItemCollection")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("cube", help="search, build a lazy cube and write it to Zarr", description="Search, stack the items on one grid and write a Zarr cube.")
    _add_search_options(p)
    p.add_argument("--out", type=Path, required=True, help="output Zarr store (folder)")
    p.add_argument("--assets", nargs="+", metavar="KEY", help="asset keys to load (default: every shared raster data asset)")
    p.add_argument("--crs", help="target CRS, e.g. EPSG:3413 (default: the items' CRS)")
    p.add_argument("--resolution", type=float, help="target pixel size in CRS units, m (default: native)")
    p.add_argument("--bounds", nargs=4, type=float, metavar=("LEFT", "BOTTOM", "RIGHT", "TOP"), help="target bounds in CRS units (default: union of items)")
    p.add_argument("--chunks", type=int, default=2048, help="spatial chunk size in pixels, a multiple of the COG tile size (default: 2048)")
    p.add_argument("--resampling", default="nearest", help="resampling when reprojecting: nearest, bilinear, cubic... (default: nearest)")
    p.add_argument("--loader", choices=("stackstac", "odc"), default="stackstac", help="STAC loader (default: stackstac)")
    p.add_argument("--mode", choices=("w-", "w"), default="w-", help="w- refuses to overwrite an existing store (default), w overwrites")
    p.add_argument("--zarr-format", type=int, choices=(2, 3), default=3, help="Zarr format version (default: 3)")
    p.set_defaults(func=_cmd_cube)

    p = sub.add_parser(
        "demo",
        help="run the whole chain on the bundled catalogs",
        description="Search the bundled catalogs, build the Sentinel-1 and Sentinel-2 cubes, write them to Zarr, print a summary and save a quicklook PNG.",
    )
    p.add_argument("--out", type=Path, default=Path("cryocube-demo"), help="output folder (default: ./cryocube-demo); its demo stores are overwritten")
    p.add_argument("--catalogs", type=Path, default=BUNDLED_CATALOGS, help=f"folder holding greenland-s1/ and greenland-s2/ (default: {BUNDLED_CATALOGS})")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cryocube`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as error:
        print(f"cryocube {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
