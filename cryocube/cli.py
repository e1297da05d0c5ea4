"""The ``cryocube`` command: search, cube, offsets, velocity, melt, ice-drift, insar and demo.

Kept apart from the algorithms: each sub-command parses options and calls the
public functions of the package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

#: How long ``--scheduler`` waits to connect before giving up.
SCHEDULER_TIMEOUT = "20s"
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
    parser.add_argument("--limit", type=int, help="page size of STAC API requests")
    parser.add_argument("--allow-local-assets", action="store_true",
                        help="accept items of a remote catalog that point at files on this machine (refused by default)")


def _add_tracking_options(parser: argparse.ArgumentParser) -> None:
    """Offset-tracking options shared by ``offsets`` and ``velocity``."""
    parser.add_argument("--chip", type=int, default=32, help="chip edge in pixels (default: 32)")
    parser.add_argument("--search", type=int, default=12, help="search radius in pixels around the prior (default: 12)")
    parser.add_argument("--step", type=int, default=8, help="output point spacing in pixels (default: 8)")
    parser.add_argument("--prefilter", choices=("highpass", "wallis"),
                        help="pre-filter both images; wallis is best on optical images such as Sentinel-2 (default: none)")


def _search(args: argparse.Namespace):
    from cryocube.catalog import search

    return search(args.catalog, bbox=args.bbox, datetime=args.datetime, collections=args.collections, ids=args.ids, query=args.query, limit=args.limit,
                  allow_local_assets=args.allow_local_assets)


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


def _cmd_offsets(args: argparse.Namespace) -> int:
    from cryocube.offsets import select_pair, track_offsets
    from cryocube.plot import velocity_quicklook
    from cryocube.store import open_cube, write_product
    from cryocube.velocity import offsets_to_velocity

    cube = open_cube(args.cube)
    reference, secondary = select_pair(cube, _scene(args.reference), _scene(args.secondary), variable=args.variable)
    offsets = track_offsets(reference, secondary, chip_px=args.chip, search_px=args.search, step_px=args.step,
                            prior_dx=args.prior_dx, prior_dy=args.prior_dy, min_ncc=args.min_ncc, min_snr=args.min_snr,
                            max_error_px=args.max_error, prefilter=args.prefilter, prefilter_sigma_px=args.prefilter_sigma)
    velocity = offsets_to_velocity(offsets).persist() if args.cog or args.quicklook else offsets_to_velocity(offsets)
    start = time.perf_counter()
    write_product(velocity, args.out, mode=args.mode, progress=True)
    accepted = float((velocity["flag"] == 0).mean())
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s: {velocity.sizes['y']}x{velocity.sizes['x']} points, "
          f"{100 * accepted:.0f}% accepted, {velocity.attrs.get('reference_time')} -> {velocity.attrs.get('secondary_time')}")
    if args.cog:
        velocity[["vx", "vy", "v", "vx_error", "vy_error"]].rio.to_raster(args.cog, driver="COG")
        print(f"wrote {args.cog} (bands vx, vy, v, vx_error, vy_error; m/yr)")
    if args.quicklook:
        print(f"quicklook: {velocity_quicklook(velocity, args.quicklook, background=reference)}")
    return 0


def _cmd_velocity(args: argparse.Namespace) -> int:
    from cryocube.pair_tracking import track_pairs
    from cryocube.store import open_cube, write_product
    from cryocube.velocity import offsets_to_velocity
    from cryocube.velocity_series import invert_velocity, make_pairs

    cube = open_cube(args.cube)
    network = make_pairs(cube, min_days=args.min_days, max_days=args.max_days)
    print(network.summary())
    pairs = offsets_to_velocity(track_pairs(cube, network, variable=args.variable, chip_px=args.chip,
                                            search_px=args.search, step_px=args.step, prefilter=args.prefilter))
    series = invert_velocity(pairs, method=args.method, outlier_mad=args.outlier_mad, smoothing=args.smoothing)
    start = time.perf_counter()
    write_product(series, args.out, mode=args.mode, progress=True)
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s: {series.sizes['time']} intervals from "
          f"{len(network.table)} pairs ({args.method})")
    return 0


def _drift_images(args: argparse.Namespace):
    """The two images of ``cryocube ice-drift``: scenes of a Zarr cube, or two GeoTIFFs (dB) with ``--times``."""
    import numpy as np
    import rioxarray

    from cryocube.offsets import select_pair
    from cryocube.store import open_cube

    if len(args.inputs) == 1:
        cube = open_cube(args.inputs[0])
        return select_pair(cube, _scene(args.reference), _scene(args.secondary), variable=args.variable)
    if len(args.inputs) != 2:
        raise ValueError(f"give one cube store or two GeoTIFFs, got {len(args.inputs)} inputs")
    if not args.times:
        raise ValueError("two GeoTIFFs need --times REFERENCE SECONDARY (ISO dates, e.g. 2020-03-01T08:32)")
    images = []
    for path, when in zip(args.inputs, args.times):
        if not Path(path).is_file():
            raise FileNotFoundError(f"GeoTIFF not found: {path}")
        image = rioxarray.open_rasterio(path, chunks={"x": 1024, "y": 1024}).squeeze("band", drop=True).astype("float32")
        images.append(image.assign_coords(time=np.datetime64(when, "ns")))
    return images[0], images[1]


def _cmd_ice_drift(args: argparse.Namespace) -> int:
    import rioxarray

    from cryocube.ice_drift import track_ice_drift
    from cryocube.plot.ice_drift import drift_quiver
    from cryocube.store import write_product

    reference, secondary = _drift_images(args)
    land = None
    if args.land_mask:
        land = rioxarray.open_rasterio(args.land_mask).squeeze("band", drop=True) != 0
    drift = track_ice_drift(reference, secondary, grid_step_m=args.grid_step, template_px=args.template,
                            rotations_deg=tuple(args.rotations), search_px=args.search, max_speed_m_s=args.max_speed,
                            land_mask=land, filter_method=args.filter)
    start = time.perf_counter()
    write_product(drift, args.out, mode=args.mode, progress=True)
    accepted = float((drift["flag"] == 0).mean())
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s: {drift.sizes['y']}x{drift.sizes['x']} points every "
          f"{args.grid_step:g} m, {100 * accepted:.0f}% accepted")
    if args.quiver:
        print(f"quiver: {drift_quiver(drift.compute(), reference, args.quiver, every=args.quiver_every)}")
    return 0


def _insar_reference(args: argparse.Namespace) -> tuple | list | None:
    """The SBAS reference of ``cryocube insar``: a pixel, an area or points (coordinate units)."""
    given = [r for r in (args.reference_point, args.reference_area) if r]
    if len(given) != 1:
        raise ValueError("give exactly one of --reference-point Y X or --reference-area XMIN YMIN XMAX YMAX: "
                         "each unwrapped interferogram has its own constant, so a stable reference is needed")
    return tuple(given[0])


def _cmd_insar(args: argparse.Namespace) -> int:
    import numpy as np
    import xarray as xr

    from cryocube.deformation import fit_deformation
    from cryocube.interferograms import open_interferograms
    from cryocube.plot.insar import sbas_velocity_map
    from cryocube.sbas import closure_phase, invert_sbas
    from cryocube.store import write_product

    reference = _insar_reference(args)
    source = args.source
    if source.endswith(".json") or (Path(source) / "catalog.json").exists() or (Path(source) / "collection.json").exists():
        from cryocube.catalog import search

        source = search(source, datetime=args.datetime)  # a STAC catalog of interferograms, one item per pair
        print(f"{len(source)} interferogram item(s) found in {args.source}")
    ifgs = open_interferograms(source, chunks=args.chunk, headers=args.headers)
    print(f"{ifgs.sizes['pair']} interferograms, {ifgs.sizes['y']}x{ifgs.sizes['x']} px, wavelength "
          f"{ifgs.attrs.get('wavelength_m', float('nan')):.4f} m")
    ts = invert_sbas(ifgs, weight=None if args.weight == "none" else args.weight, method=args.method,
                     reference=reference, min_coherence=args.min_coherence, precision=True)
    model = args.model
    if model is None:  # seasonal terms need a year of data, else they trade off with the velocity
        span_days = float((ts["time"].max() - ts["time"].min()) / np.timedelta64(1, "D"))
        model = ["linear", "annual"] if span_days >= 365 else ["linear"]
        print(f"deformation model: {' + '.join(model)} (the stack spans {span_days:.0f} days)")
    fit = fit_deformation(ts, model=tuple(model))
    closure = closure_phase(ifgs, reference=reference)
    # the network precision only serves the fit's errors: (h + 1) x the series' size, not stored
    product = xr.merge([ts.drop_vars("network_precision"), fit, closure[["n_nonzero_closure"]]], combine_attrs="override")
    start = time.perf_counter()
    write_product(product, args.out, mode=args.mode, progress=True)
    velocity = product["velocity"].values if "velocity" in product else None
    summary = ""
    if velocity is not None and np.isfinite(velocity).any():
        low, median, high = np.nanpercentile(velocity, [1, 50, 99])
        summary = f"; LoS velocity p1/median/p99 {low * 1000:.1f}/{median * 1000:.1f}/{high * 1000:.1f} mm/yr"
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s: {product.sizes['time']} dates{summary}")
    if args.map:
        print(f"velocity map: {sbas_velocity_map(xr.open_zarr(args.out, decode_coords='all'), args.map)}")
    return 0


def _cmd_melt(args: argparse.Namespace) -> int:
    from cryocube.incidence import fit_incidence_slope, normalize_incidence
    from cryocube.melt import detect_melt, melt_season
    from cryocube.plot import melt_maps
    from cryocube.store import open_cube, write_product

    cube = open_cube(args.cube, chunks="temporal")
    variables = [v for v in (args.co_pol, args.cross_pol) if v in cube.data_vars] if args.method == "nagler" else [args.variable]
    slope = None  # the linear normalization runs inside the melt tasks (one pass, no normalized copy)
    if args.normalize == "fit":
        slope = fit_incidence_slope(cube, predictors=tuple(args.predictors), variables=variables)
        print(slope.summary())
    elif args.normalize == "slope":
        slope = args.slope
    elif args.normalize == "cosn":
        cube = normalize_incidence(cube, method="cosn", reference_angle_deg=args.reference_angle, variables=variables)
    melt = detect_melt(cube, method=args.method, threshold_db=args.threshold, variable=args.variable, co_pol=args.co_pol,
                       cross_pol=args.cross_pol, reference=tuple(args.reference) if args.reference else None,
                       reference_months=args.reference_months, window_px=args.window, model_or_slope=slope,
                       reference_angle_deg=args.reference_angle)
    season = melt_season(melt, year_start=args.year_start, min_scenes=args.min_scenes)
    start = time.perf_counter()
    write_product(season.merge(melt[["melt"]], compat="override"), args.out, mode=args.mode, progress=True)
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s: melt flags for {melt.sizes['time']} scenes, "
          f"seasons {season['year'].values.tolist()} ({melt.attrs['melt_method']}, threshold {melt.attrs['threshold_db']:g} dB, "
          f"reference {melt.attrs['reference_period']})")
    if args.maps:
        print(f"maps: {melt_maps(season, args.maps)}")
    return 0


def _scene(value: str) -> int | str:
    """A scene given on the command line: a position along time, or an item id."""
    try:
        return int(value)
    except ValueError:
        return value


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
    parser.add_argument("--scheduler", default=os.environ.get("DASK_SCHEDULER_ADDRESS") or os.environ.get("CRYOCUBE_SCHEDULER", "local"),
                        metavar="ADDRESS|local|threads",
                        help="where the computation runs: a dask.distributed scheduler address (e.g. tcp://10.0.0.5:8786), "
                             "'local' (a local cluster in this process, one thread per core, dashboard link printed) or "
                             "'threads' (dask's threads, no cluster). Default: $DASK_SCHEDULER_ADDRESS, else "
                             "$CRYOCUBE_SCHEDULER, else local")
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

    p = sub.add_parser("offsets", help="glacier velocity by offset tracking between two scenes of a cube",
                       description="Track offsets between two scenes of a Zarr cube and write the velocity (m/yr) as Zarr.")
    p.add_argument("cube", help="input cube (Zarr store written by `cryocube cube`)")
    p.add_argument("--out", type=Path, required=True, help="output velocity store (Zarr folder)")
    p.add_argument("--variable", help="cube variable to track (default: the first one, e.g. hh or B04)")
    p.add_argument("--reference", default="0", help="reference scene: position along time or item id (default: 0)")
    p.add_argument("--secondary", default="1", help="secondary scene: position along time or item id (default: 1)")
    _add_tracking_options(p)
    p.add_argument("--prior-dx", type=float, help="expected displacement along x, in CRS units (m) (default: 0)")
    p.add_argument("--prior-dy", type=float, help="expected displacement along y, in CRS units (m) (default: 0)")
    p.add_argument("--min-ncc", type=float, default=0.2, help="reject peaks with a lower normalized correlation (default: 0.2)")
    p.add_argument("--min-snr", type=float, default=1.1, help="reject peaks less distinct than this ratio to the second peak (default: 1.1)")
    p.add_argument("--max-error", type=float, default=1.0, help="reject points whose 1-sigma error estimate exceeds this, px (default: 1)")
    p.add_argument("--prefilter-sigma", type=float, default=4.0, help="Gaussian sigma of the pre-filter, px (default: 4)")
    p.add_argument("--mode", choices=("w-", "w"), default="w-", help="w- refuses to overwrite an existing store (default), w overwrites")
    p.add_argument("--cog", type=Path, help="also write vx, vy, v and errors as a Cloud-Optimized GeoTIFF")
    p.add_argument("--quicklook", type=Path, help="also save a PNG of the speed with arrows over the reference scene")
    p.set_defaults(func=_cmd_offsets)

    p = sub.add_parser("velocity", help="velocity time series from every pair of a cube (offset tracking + inversion)",
                       description="Make the pair network of a cube, track offsets for every pair and invert the "
                                   "interval velocities per pixel (NaN where no pair determines an interval); write Zarr.")
    p.add_argument("cube", help="input cube (Zarr store written by `cryocube cube`)")
    p.add_argument("--out", type=Path, required=True, help="output store (Zarr folder): vx, vy, v and errors on (time, y, x)")
    p.add_argument("--variable", help="cube variable to track (default: the first one, e.g. hh or B04)")
    p.add_argument("--min-days", type=float, default=1.0, help="shortest pair, days (default: 1)")
    p.add_argument("--max-days", type=float, default=48.0, help="longest pair, days (default: 48)")
    _add_tracking_options(p)
    p.add_argument("--method", choices=("connected-components", "regularized"), default="connected-components",
                   help="inversion: strict per connected component, or with temporal smoothing (default: connected-components)")
    p.add_argument("--smoothing", type=float, help="1-sigma velocity change between intervals for --method regularized, m/yr per year")
    p.add_argument("--outlier-mad", type=float, default=3.0, help="reject pairs beyond this many robust sigmas (default: 3)")
    p.add_argument("--mode", choices=("w-", "w"), default="w-", help="w- refuses to overwrite an existing store (default), w overwrites")
    p.set_defaults(func=_cmd_velocity)

    p = sub.add_parser("melt", help="surface-melt flags, onset, end and melt days from a Sentinel-1 cube",
                       description="Normalize backscatter to a reference incidence angle, detect wet snow against a dry "
                                   "reference per relative orbit and write per-scene flags and per-season onset/end/melt days as Zarr.")
    p.add_argument("cube", help="input Sentinel-1 cube (Zarr store written by `cryocube cube`), backscatter in dB")
    p.add_argument("--out", type=Path, required=True, help="output store (Zarr folder): melt (time, y, x) and melt_onset, melt_end, melt_days (year, y, x)")
    p.add_argument("--method", choices=("nagler", "threshold"), default="nagler", help="nagler (HH/HV, -2 dB) or single-polarization threshold (-3 dB) (default: nagler)")
    p.add_argument("--threshold", type=float, help="melt below this ratio to the dry reference, dB (default: -2 nagler, -3 threshold)")
    p.add_argument("--variable", default="hh", help="polarization of the threshold method (default: hh)")
    p.add_argument("--co-pol", default="hh", help="co-polarized variable for nagler (default: hh)")
    p.add_argument("--cross-pol", default="hv", help="cross-polarized variable for nagler (default: hv)")
    p.add_argument("--reference", nargs=2, metavar=("START", "END"), help="dates of the dry reference scenes (default: --reference-months)")
    p.add_argument("--reference-months", nargs="+", type=int, default=[1, 2, 3], help="months of the dry reference scenes (default: 1 2 3)")
    p.add_argument("--window", type=int, default=3, help="box average before comparing, odd px (default: 3)")
    p.add_argument("--normalize", choices=("fit", "slope", "cosn", "none"), default="fit",
                   help="incidence normalization: fit a slope model on ascending/descending pairs, a fixed --slope, the cos^2 law, or none (default: fit)")
    p.add_argument("--predictors", nargs="+", default=["lon", "lat", "doy"], help="predictors of the fitted slope model (default: lon lat doy)")
    p.add_argument("--slope", type=float, default=-0.12, help="slope for --normalize slope, dB/degree (default: -0.12)")
    p.add_argument("--reference-angle", type=float, default=35.0, help="reference incidence angle, degrees (default: 35)")
    p.add_argument("--year-start", default="01-01", help="first day of each melt season, MM-DD (default: 01-01)")
    p.add_argument("--min-scenes", type=int, default=2, help="consecutive melt scenes needed to count (default: 2)")
    p.add_argument("--mode", choices=("w-", "w"), default="w-", help="w- refuses to overwrite an existing store (default), w overwrites")
    p.add_argument("--maps", type=Path, help="also save a PNG of melt onset and melt days")
    p.set_defaults(func=_cmd_melt)

    p = sub.add_parser("ice-drift", help="sea-ice drift between two SAR scenes (features + rotated pattern matching)",
                       description="Match ORB features, filter the vectors, then pattern-match templates with small rotations "
                                   "on a regular grid; write u, v (m/s), displacements (m), rotation and quality as Zarr.")
    p.add_argument("inputs", nargs="+", help="a cube store (Zarr, scenes picked by --reference/--secondary) or two GeoTIFFs in dB")
    p.add_argument("--out", type=Path, required=True, help="output drift store (Zarr folder)")
    p.add_argument("--variable", help="cube variable (default: the first one, e.g. hh)")
    p.add_argument("--reference", default="0", help="reference scene of a cube: position along time or item id (default: 0)")
    p.add_argument("--secondary", default="1", help="secondary scene of a cube (default: 1)")
    p.add_argument("--times", nargs=2, metavar=("REFERENCE", "SECONDARY"), help="acquisition times of two GeoTIFFs (ISO)")
    p.add_argument("--grid-step", type=float, default=1000.0, help="spacing of the drift grid, CRS units (m) (default: 1000)")
    p.add_argument("--template", type=int, default=35, help="template edge, px (default: 35)")
    p.add_argument("--rotations", nargs="+", type=float, default=[-3.0, 0.0, 3.0], help="template rotations tried, degrees (default: -3 0 3)")
    p.add_argument("--search", type=int, default=6, help="search radius around the first guess, px (default: 6)")
    p.add_argument("--max-speed", type=float, default=0.5, help="fastest plausible drift, m/s (default: 0.5)")
    p.add_argument("--filter", choices=("voronoi", "polynomial"), default="voronoi", help="feature-vector filter (default: voronoi)")
    p.add_argument("--land-mask", type=Path, help="GeoTIFF on any grid covering the scene, non-zero = land (masked)")
    p.add_argument("--mode", choices=("w-", "w"), default="w-", help="w- refuses to overwrite an existing store (default), w overwrites")
    p.add_argument("--quiver", type=Path, help="also save a PNG of the drift arrows over the reference image")
    p.add_argument("--quiver-every", type=int, default=3, help="draw every n-th arrow along each axis (default: 3)")
    p.set_defaults(func=_cmd_ice_drift)

    p = sub.add_parser("insar", help="InSAR displacement time series (SBAS) and deformation fit from an interferogram stack",
                       description="Read unwrapped interferograms and coherence (GeoTIFF stack or Zarr), invert the SBAS "
                                   "time series per pixel, fit velocity and seasonal terms (errors include the "
                                   "interferograms' noise propagated through the network), count closure errors; write Zarr.")
    p.add_argument("source", help="folder or glob of GeoTIFFs (*unw*, *cc*), a STAC catalog of interferogram items "
                                  "(catalog.json or its folder), or a Zarr store with unwrapped_phase and coherence")
    p.add_argument("--datetime", help="STAC source only: keep the pairs overlapping this interval, e.g. 2018-01/2018-06")
    p.add_argument("--out", type=Path, required=True, help="output store (Zarr folder): displacement (time, y, x), velocity, ...")
    p.add_argument("--headers", type=Path, help="folder of GAMMA .par headers (looks, heading)")
    p.add_argument("--reference-point", nargs=2, type=float, metavar=("Y", "X"), help="reference pixel, coordinate units")
    p.add_argument("--reference-area", nargs=4, type=float, metavar=("XMIN", "YMIN", "XMAX", "YMAX"), help="reference area (mean), coordinate units")
    p.add_argument("--method", choices=("l2", "l1"), default="l2", help="l2 (weighted least squares) or l1 (robust to 2 pi errors) (default: l2)")
    p.add_argument("--weight", choices=("coherence", "none"), default="coherence", help="pair weights (default: coherence, as MintPy)")
    p.add_argument("--min-coherence", type=float, default=0.0, help="leave out pairs below this coherence, per pixel (default: 0)")
    p.add_argument("--model", nargs="+", help="deformation model terms: linear annual semiannual (default: linear annual when "
                                              "the stack spans a year, else linear)")
    p.add_argument("--chunk", type=int, default=100, help="spatial chunk edge, px (default: 100)")
    p.add_argument("--mode", choices=("w-", "w"), default="w-", help="w- refuses to overwrite an existing store (default), w overwrites")
    p.add_argument("--map", type=Path, help="also save a PNG of the LoS velocity")
    p.set_defaults(func=_cmd_insar)

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
        with _scheduler(args.scheduler):
            return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as error:
        print(f"cryocube {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. a scheduler that cannot be reached
        print(f"cryocube {args.command}: error: {error}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def _scheduler(address: str) -> Iterator[None]:
    """Run a command on a dask.distributed scheduler, a local in-process cluster, or dask's threads."""
    if address == "threads":
        yield
        return
    from distributed import Client, LocalCluster

    if address == "local":
        with LocalCluster(processes=False, n_workers=1, threads_per_worker=os.cpu_count() or 1, dashboard_address=":0",
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            print(f"dask local cluster ({os.cpu_count()} threads): dashboard {client.dashboard_link}")
            yield
        return
    with Client(address, timeout=SCHEDULER_TIMEOUT) as client:
        print(f"dask scheduler {client.scheduler.address}: {len(client.scheduler_info()['workers'])} workers, "
              f"dashboard {client.dashboard_link}")
        yield

if __name__ == "__main__":
    sys.exit(main())
