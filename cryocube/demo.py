"""``cryocube demo``: the whole chain on the bundled catalogs.

Cubes (search, build, write, reopen, quicklook), then one velocity map per sensor
by offset tracking, then incidence-angle normalization and surface-melt maps from
the Sentinel-1 cube, each checked against the simulator's truth, and the melt days
of a real PROMICE weather station when ``../shared/data`` is present.

Later algorithm issues add their step here, each reading the cubes written by
the steps before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from cryocube import conventions as cv


@dataclass(frozen=True)
class DemoStep:
    """One cube of the demo: which catalog, which assets, where it is stored."""

    name: str
    catalog: str
    assets: tuple[str, ...]


DEMO_CUBES = (
    DemoStep("s1", "greenland-s1", ("hh", "hv", "incidence_angle")),
    DemoStep("s2", "greenland-s2", ("B04", "B08", "detector_footprint")),
)


@dataclass(frozen=True)
class VelocityStep:
    """One velocity map of the demo: which cube, variable and scenes, and the tracking parameters."""

    name: str
    cube: str
    variable: str
    reference: int
    secondary: int
    search_px: int
    prefilter: str | None = None


DEMO_VELOCITIES = (
    VelocityStep("velocity_s1", "s1", "hh", 0, 4, 8),  # descending R025, 12 days apart
    VelocityStep("velocity_s2", "s2", "B08", 0, 1, 8, "wallis"),  # 10 days apart; optical: Wallis pre-filter
)


def _without_detector_jumps(velocity: xr.Dataset, cube: xr.Dataset, label: str) -> xr.Dataset:
    """Remove S2 detector jumps (footprints from the cube's ``detector_footprint``, stable ground from the simulator)."""
    if cv.DETECTOR_FOOTPRINT not in cube:
        return velocity
    from cryocube import synthetic as syn
    from cryocube.detector_offsets import correct_detector_offsets

    x, y = np.meshgrid(velocity[cv.X].values, velocity[cv.Y].values)
    stable = xr.DataArray(syn.stable_mask(x, y), dims=(cv.Y, cv.X), coords={cv.Y: velocity[cv.Y], cv.X: velocity[cv.X]})
    footprint = cube[cv.DETECTOR_FOOTPRINT].max(cv.TIME)  # one orbit: the same footprints in every scene
    corrected = correct_detector_offsets(velocity, footprint, stable_mask=stable, variables=["vx", "vy"]).compute()
    jumps = np.hypot(corrected["vx_detector_offset"], corrected["vy_detector_offset"])
    print(f"[{label}] S2 detector jumps removed on stable ground: up to {float(jumps.max()):.0f} m/yr "
          f"(median {float(jumps.median()):.0f} m/yr over {int(np.isfinite(jumps).sum())} pair-detector combinations)")
    return corrected


def demo_velocity(cube: xr.Dataset, step: VelocityStep, out: Path) -> xr.Dataset:
    """Track one pair, write the velocity store and its quicklook, print its accuracy against the simulator."""
    from cryocube import synthetic as syn
    from cryocube.offsets import select_pair, track_offsets
    from cryocube.plot import velocity_quicklook
    from cryocube.store import write_product
    from cryocube.validation import velocity_errors
    from cryocube.velocity import offsets_to_velocity

    start = time.perf_counter()
    reference, secondary = select_pair(cube, step.reference, step.secondary, variable=step.variable)
    velocity = offsets_to_velocity(track_offsets(reference, secondary, search_px=step.search_px, prefilter=step.prefilter)).compute()
    velocity = _without_detector_jumps(velocity, cube, step.name)
    write_product(velocity, out / f"{step.name}.zarr", mode="w")
    png = velocity_quicklook(velocity, out / f"{step.name}.png", background=reference,
                             title=f"{step.name}: {step.variable} {velocity.attrs['reference_time'][:10]} -> {velocity.attrs['secondary_time'][:10]}")
    x, y = np.meshgrid(velocity[cv.X].values, velocity[cv.Y].values)
    vx, vy = syn.pair_velocity(x, y, reference[cv.TIME].values[0], secondary[cv.TIME].values[0])
    as_da = lambda a: xr.DataArray(a, dims=(cv.Y, cv.X))  # noqa: E731
    stats = velocity_errors(velocity, as_da(vx), as_da(vy), {"glacier": as_da(syn.glacier_mask(x, y)), "stable": as_da(syn.stable_mask(x, y))})
    print(f"[{step.name}] {step.variable} pair {velocity.attrs['reference_time'][:10]} -> {velocity.attrs['secondary_time'][:10]} "
          f"({velocity.attrs['dt_days']:g} days) in {time.perf_counter() - start:.1f} s; quicklook: {png}")
    for name, s in stats.items():
        print(f"[{step.name}]   vs simulator truth over {name}: {100 * s['coverage']:.0f}% returned, |error| RMSE {s['vector']['rmse']:.0f} m/yr, "
              f"vx median {s['vx']['median']:+.0f} MAD {s['vx']['mad']:.0f}, vy median {s['vy']['median']:+.0f} MAD {s['vy']['mad']:.0f} m/yr")
    return velocity


#: Dry reference of the bundled S1 cube: its April scenes (melt starts mid-May at the lowest pixel).
MELT_REFERENCE = ("2019-04-01", "2019-04-30")
#: Elevation quantiles (over ice) of the points in the backscatter time-series plot.
MELT_POINT_QUANTILES = (0.05, 0.5, 0.95)
#: The PROMICE KPC_U logger file (hourly, May-July 2019) shown by the demo when the shared data are present.
PROMICE_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "promice_aws_raw_logger" / "test_raw_SlimTableMem1.txt"


def demo_melt(cube: xr.Dataset, out: Path) -> xr.Dataset:
    """Normalize the S1 cube's incidence angle, detect melt, write maps and plots, print accuracy against the simulator."""
    from cryocube import synthetic as syn
    from cryocube.incidence import fit_incidence_slope, normalize_incidence
    from cryocube.melt import detect_melt, melt_season
    from cryocube.plot import melt_maps, melt_timeseries
    from cryocube.store import write_product

    start = time.perf_counter()
    truth = syn.truth_dataset()
    dem = truth["elevation"]  # the simulator's DEM stands in for a real one (e.g. ArcticDEM)
    model = fit_incidence_slope(cube, dem=dem, predictors=("elevation",))
    normalized = normalize_incidence(cube, model_or_slope=model, dem=dem)
    for pol in ("hh", "hv"):
        slope = model.slope_map(cube, variable=pol, dem=dem)
        error = float(np.sqrt(((slope - truth[f"slope_{pol}"]) ** 2).mean()))
        print(f"[melt] incidence slope {pol}: fitted on {model.diagnostics[pol]['n_pairs']} asc/desc pairs, "
              f"RMS error vs simulator {error:.4f} dB/degree (true {float(truth[f'slope_{pol}'].min()):.3f} to "
              f"{float(truth[f'slope_{pol}'].max()):.3f})")
    melt = detect_melt(normalized, method="nagler", reference=MELT_REFERENCE, window_px=5)
    season = melt_season(melt).compute()
    write_product(season.merge(melt[["melt"]], compat="override"), out / "melt_s1.zarr", mode="w")
    one = season.sel(year=2019)
    ice = truth["ice_fraction"].values > 0.99
    onset_error = one["melt_onset"].values - truth["melt_onset_doy"].values
    end_error = one["melt_end"].values - truth["melt_end_doy"].values
    within = (np.abs(onset_error) <= syn.S1_REPEAT_DAYS) & (np.abs(end_error) <= syn.S1_REPEAT_DAYS)
    print(f"[melt] Nagler wet snow vs {MELT_REFERENCE[0]}..{MELT_REFERENCE[1]} reference in {time.perf_counter() - start:.1f} s: "
          f"onset and end within one revisit ({syn.S1_REPEAT_DAYS} days) of the simulator on {100 * within[ice].mean():.1f}% "
          f"of ice pixels; median onset error {np.nanmedian(onset_error[ice]):+.1f} d, end {np.nanmedian(end_error[ice]):+.1f} d")
    print(f"[melt] maps: {melt_maps(season, out / 'melt_maps.png', title='cryocube demo: melt onset and melt days (S1, Nagler)')}")
    z = truth["elevation"].where(truth["ice_fraction"] > 0.99)
    points, labels = [], []
    for q in MELT_POINT_QUANTILES:
        row, col = np.unravel_index(int(np.nanargmin(np.abs(z.values - np.nanquantile(z.values, q)))), z.shape)
        points.append((float(z.x[col]), float(z.y[row])))
        labels.append(f"ice at {float(z[row, col]):.0f} m: true melt day {float(truth['melt_onset_doy'][row, col]):.0f} to "
                      f"{float(truth['melt_end_doy'][row, col]):.0f}, detected {float(one['melt_onset'][row, col]):.0f} to "
                      f"{float(one['melt_end'][row, col]):.0f} (shaded)")
    png = melt_timeseries(normalized, melt, points, out / "melt_timeseries.png", labels=labels,
                          title="HH backscatter (normalized to 35 degrees) per relative orbit, detected melt shaded")
    print(f"[melt] backscatter time series: {png}")
    return season


def demo_station(out: Path) -> None:
    """Melt days of the PROMICE KPC_U station (2019) from its logger file, with a plot (skipped without shared data)."""
    from cryocube.aws import aws_melt_days, read_aws_logger
    from cryocube.plot import aws_melt_plot

    if not PROMICE_FILE.exists():
        print(f"[aws] {PROMICE_FILE} not found: station step skipped")
        return
    station = read_aws_logger(PROMICE_FILE)
    days = aws_melt_days(station["Temperature_Avg"], method="max")
    known = days.dropna("time")
    print(f"[aws] {station.attrs.get('station_name', PROMICE_FILE.name)}: {int(known.sum())} melt days of {known.sizes['time']} "
          f"known days (daily max air temperature > 0 C), {str(known.time.values[0])[:10]} to {str(known.time.values[-1])[:10]}")
    print(f"[aws] plot: {aws_melt_plot(station['Temperature_Avg'], days, out / 'aws_kpc_u_2019.png')}")


#: Synthetic permafrost stack of the demo (Beiluhe-like: 60 dates, 204 pairs) and its stable reference pixel (fractions of y, x).
INSAR_SHAPE, INSAR_DATES, INSAR_PAIRS, INSAR_REFERENCE = (120, 160), 60, 204, (0.5, 0.97)
#: Time-series plot points (fractions of y, x): a thaw slump and a frost-heave area.
INSAR_POINTS = (("slump", 0.35, 0.30), ("heave", 0.20, 0.55))
#: The Mexico City stack (PyRate cropA) and a stable reference area on the western hills (x_min, y_min, x_max, y_max, degrees).
MEXICO_STACK = PROMICE_FILE.parents[1] / "pyrate_cropA_s1_insar_stack"
MEXICO_REFERENCE = (-99.186, 19.425, -99.165, 19.443)


def demo_insar(out: Path) -> xr.Dataset:
    """SBAS time series of a synthetic permafrost stack (against its truth), and of the real Mexico City stack when present."""
    from cryocube.deformation import fit_deformation
    from cryocube.insar_scenes import permafrost_stack
    from cryocube.interferograms import open_interferograms
    from cryocube.plot.insar import sbas_timeseries_plot, sbas_velocity_map
    from cryocube.sbas import invert_sbas
    from cryocube.store import write_product

    start = time.perf_counter()
    ifgs, truth = permafrost_stack(shape=INSAR_SHAPE, n_dates=INSAR_DATES, n_pairs=INSAR_PAIRS)
    pick = lambda fy, fx: (float(ifgs[cv.Y][int(fy * (ifgs.sizes[cv.Y] - 1))]), float(ifgs[cv.X][int(fx * (ifgs.sizes[cv.X] - 1))]))  # noqa: E731
    ts = invert_sbas(ifgs, reference=pick(*INSAR_REFERENCE), precision=True)  # numpy in memory: no graph to ship
    fit = fit_deformation(ts)  # errors with the network term
    product = xr.merge([ts.drop_vars("network_precision"), fit], combine_attrs="override").compute()
    write_product(product, out / "insar_permafrost.zarr", mode="w")
    recoverable = truth["recoverable_displacement"] - truth["recoverable_displacement"].sel(
        dict(zip((cv.Y, cv.X), pick(*INSAR_REFERENCE))), method="nearest")
    rmse = float(np.sqrt(np.nanmean((product["displacement"] - recoverable) ** 2)))
    v_error = float(np.sqrt(np.nanmean((product["velocity"] - (truth["velocity"] - truth["velocity"].sel(
        dict(zip((cv.Y, cv.X), pick(*INSAR_REFERENCE))), method="nearest"))) ** 2)))
    print(f"[insar] synthetic permafrost: {ifgs.sizes['pair']} interferograms, {product.sizes['time']} dates, "
          f"{ifgs.sizes[cv.Y]}x{ifgs.sizes[cv.X]} px in {time.perf_counter() - start:.1f} s; time-series RMSE "
          f"{rmse * 1000:.2f} mm, velocity RMSE {v_error * 1000:.2f} mm/yr against the truth")
    points = [pick(fy, fx) for _, fy, fx in INSAR_POINTS]
    print(f"[insar] maps: {sbas_velocity_map(product, out / 'insar_permafrost_velocity.png', points=points)}, "
          f"{sbas_timeseries_plot(product, points, out / 'insar_permafrost_timeseries.png', labels=[n for n, _, _ in INSAR_POINTS], truth=recoverable, fit=product)}")
    if not MEXICO_STACK.exists():
        print(f"[insar] {MEXICO_STACK} not found: Mexico City step skipped")
        return product
    start = time.perf_counter()
    mexico = open_interferograms(MEXICO_STACK / "geotiffs", headers=MEXICO_STACK / "headers", chunks=50)
    mx = invert_sbas(mexico, reference=MEXICO_REFERENCE, precision=True)
    mx = xr.merge([mx.drop_vars("network_precision"), fit_deformation(mx, model=("linear",))],
                  combine_attrs="override").compute()
    write_product(mx, out / "insar_mexico_city.zarr", mode="w")
    low, median = np.nanpercentile(mx["velocity"].values, [1, 50])
    print(f"[insar] Mexico City (30 Sentinel-1 interferograms, 2018-01 .. 2018-07) in {time.perf_counter() - start:.1f} s: "
          f"LoS velocity p1 {low * 1000:.0f} mm/yr, median {median * 1000:.0f} mm/yr (subsidence negative); "
          f"median temporal coherence {float(mx['temporal_coherence'].median()):.2f}")
    print(f"[insar] map: {sbas_velocity_map(mx, out / 'insar_mexico_city_velocity.png')}")
    return product


#: Synthetic glacier interferogram of the re-differential step (px): its LoS phase gradient is 3x the unwrapping limit.
REDIFF_SHAPE = (120, 180)


def demo_redifferential(out: Path) -> xr.Dataset:
    """Re-differential D-InSAR (Feng et al. 2023) on a synthetic fast glacier, against direct unwrapping and the truth."""
    from cryocube.conventions import phase_to_displacement
    from cryocube.glacier_insar_scenes import glacier_interferogram
    from cryocube.plot.redifferential import redifferential_plot
    from cryocube.redifferential import S1_WAVELENGTH_M, redifferential_unwrap
    from cryocube.unwrap import align_components, unwrap

    start = time.perf_counter()
    scene = glacier_interferogram(shape=REDIFF_SHAPE)
    velocity = scene[["vx_offsets", "vy_offsets"]].rename(vx_offsets="vx", vy_offsets="vy")  # offset tracking's field
    direct = align_components(unwrap(scene.interferogram, scene.coherence, nlooks=scene.attrs["nlooks"]), scene.stable)
    direct_los = (phase_to_displacement(S1_WAVELENGTH_M) * direct.unwrapped_phase).compute()
    result = redifferential_unwrap(scene.interferogram, simulated_phase_from=velocity, coherence=scene.coherence,
                                   dt_days=scene.attrs["dt_days"], los_unit_vector=tuple(scene.attrs["los_unit_vector"]),
                                   stable=scene.stable, nlooks=scene.attrs["nlooks"]).compute()
    rmse = {name: float(np.sqrt(np.nanmean((los - scene.true_los_displacement) ** 2)))
            for name, los in (("direct", direct_los), ("re-differential", result.los_displacement))}
    print(f"[redifferential] synthetic glacier {REDIFF_SHAPE[0]}x{REDIFF_SHAPE[1]} px, 6-day pair, LoS phase gradient 3x "
          f"the unwrapping limit, in {time.perf_counter() - start:.1f} s: LoS RMSE against the truth "
          f"{rmse['direct'] * 100:.1f} cm unwrapped directly, {rmse['re-differential'] * 100:.2f} cm re-differential")
    png = redifferential_plot(scene.interferogram, direct_los, result.los_displacement, out / "redifferential_glacier.png",
                              truth_los=scene.true_los_displacement,
                              title="synthetic glacier, LoS phase gradient 3x the unwrapping limit")
    print(f"[redifferential] figure: {png}")
    return result


#: Synthetic sea-ice pair of the demo: image size (px, 100 m) and drift grid spacing (m).
ICE_SHAPE, ICE_GRID_STEP_M = (512, 512), 1000.0


def demo_ice_drift(out: Path) -> xr.Dataset:
    """Sea-ice drift on a synthetic floe pair (against its truth) and on the real S1 EW pair when the shared data are there."""
    from cryocube.ice_drift import track_ice_drift
    from cryocube.ice_scenes import S1_EW_PAIR_DIR, floe_pair, read_s1_ew_pair
    from cryocube.plot.ice_drift import drift_quiver
    from cryocube.store import write_product

    start = time.perf_counter()
    reference, secondary, truth = floe_pair(ICE_SHAPE)
    drift = track_ice_drift(reference, secondary, grid_step_m=ICE_GRID_STEP_M).compute()
    write_product(drift, out / "ice_drift_synthetic.zarr", mode="w")
    ok = (drift["flag"] == 0).values
    on_points = truth.sel({cv.Y: drift[cv.Y], cv.X: drift[cv.X]}, method="nearest")
    error = np.hypot(drift["displacement_x"].values - on_points["displacement_x"].values,
                     drift["displacement_y"].values - on_points["displacement_y"].values)[ok]
    rotation = (drift["rotation_deg"].values - on_points["rotation_deg"].values)[ok]
    print(f"[ice] synthetic floes: {ok.sum()} vectors ({100 * ok.mean():.0f}% of the grid) in {time.perf_counter() - start:.1f} s; "
          f"drift RMSE {np.sqrt(np.nanmean(error**2)):.0f} m, rotation RMSE {np.sqrt(np.nanmean(rotation**2)):.2f} deg")
    print(f"[ice] quiver: {drift_quiver(drift, reference, out / 'ice_drift_synthetic.png', every=2)}")
    if not S1_EW_PAIR_DIR.exists():
        print(f"[ice] {S1_EW_PAIR_DIR} not found: real-pair step skipped")
        return drift
    start = time.perf_counter()
    reference, secondary = read_s1_ew_pair()
    real = track_ice_drift(reference, secondary, grid_step_m=ICE_GRID_STEP_M).compute()
    write_product(real, out / "ice_drift_s1_ew.zarr", mode="w")
    ok = (real["flag"] == 0).values
    print(f"[ice] Sentinel-1 EW pair north of Svalbard: {100 * ok.mean():.0f}% of {ok.size} points in {time.perf_counter() - start:.1f} s, "
          f"median drift {np.nanmedian(real['displacement_x'].values[ok]) / 1000:+.2f} km x, "
          f"{np.nanmedian(real['displacement_y'].values[ok]) / 1000:+.2f} km y, median ncc {np.nanmedian(real['ncc'].values[ok]):.2f}")
    print(f"[ice] quiver: {drift_quiver(real, reference, out / 'ice_drift_s1_ew.png', every=3)}")
    return drift


#: Pair network of the demo's velocity time series (days between scenes).
SERIES_MIN_DAYS, SERIES_MAX_DAYS = 4, 12
#: Time grid (days) that joins the S1 ascending/descending and S2 acquisitions into one network (the S1 revisit).
SERIES_STEP_DAYS = 6.0
#: Tracking per cube of the series: variable, output spacing (px; both give one 320 m grid), pre-filter.
SERIES_TRACKING = {"s1": {"variable": "hh", "step_px": 8, "search_px": 8, "chip_px": 16},
                   "s2": {"variable": "B08", "step_px": 16, "search_px": 8, "prefilter": "wallis"}}
#: Simulated GPS stations on the glacier: fractions of the way along the x and y extent of the grid.
GPS_STATIONS = (("GPS1", 0.35, 0.5), ("GPS2", 0.5, 0.45), ("GPS3", 0.65, 0.55))


def demo_velocity_series(cubes: dict[str, xr.Dataset], out: Path) -> xr.Dataset:
    """Velocity time series from every S1 and S2 pair of 4-12 days: network, inversion, validation table and plot."""
    import pandas as pd

    from cryocube import synthetic as syn
    from cryocube.gps import validation_stats
    from cryocube.pair_tracking import track_pairs
    from cryocube.plot import velocity_series_plot
    from cryocube.store import write_product
    from cryocube.velocity import offsets_to_velocity
    from cryocube.velocity_series import invert_velocity, make_pairs

    start = time.perf_counter()
    names = list(SERIES_TRACKING)
    network = make_pairs([cubes[name] for name in names], min_days=SERIES_MIN_DAYS, max_days=SERIES_MAX_DAYS)
    print(f"[series] {network.summary().splitlines()[0]} ({', '.join(network.summary().splitlines()[1:3]).replace('  ', '')})")
    per_sensor = []
    for source, name in enumerate(names):
        pairs = offsets_to_velocity(track_pairs(cubes[name], network.for_source(source), **SERIES_TRACKING[name]))
        per_sensor.append(_without_detector_jumps(pairs, cubes[name], "series")[list(pairs.data_vars)])
    xr.align(*per_sensor, join="exact", exclude=[cv.PAIR])  # one point grid for both sensors, or a clear error
    series = invert_velocity(xr.concat(per_sensor, dim=cv.PAIR), time_step_days=SERIES_STEP_DAYS).compute()
    write_product(series, out / "velocity_series.zarr", mode="w")
    x, y = np.meshgrid(series[cv.X].values, series[cv.Y].values)
    vx, vy = syn.velocity(x, y)
    glacier = syn.glacier_mask(x, y)
    determined = np.isfinite(series["vx"].values).any(axis=(1, 2))
    error = np.hypot(series["vx"].values - vx, series["vy"].values - vy)[:, glacier]
    print(f"[series] {int(determined.sum())} of {series.sizes[cv.TIME]} intervals determined (the others fall between "
          f"components: NaN), in {time.perf_counter() - start:.1f} s; over the glacier: median |error| "
          f"{np.nanmedian(error):.0f} m/yr against the simulator's steady flow")
    stations = []
    for name, fx, fy in GPS_STATIONS:
        sx = float(series[cv.X].min() + fx * (series[cv.X].max() - series[cv.X].min()))
        sy = float(series[cv.Y].min() + fy * (series[cv.Y].max() - series[cv.Y].min()))
        gvx, gvy = syn.velocity(sx, sy)
        stations.append({"station": name, "x": sx, "y": sy, "vx": float(gvx), "vy": float(gvy), "v": float(np.hypot(gvx, gvy))})
    gps = pd.DataFrame(stations)
    mean = series[["vx", "vy", "v"]].mean(cv.TIME)
    stable = xr.DataArray(syn.stable_mask(x, y), dims=(cv.Y, cv.X), coords={cv.Y: series[cv.Y], cv.X: series[cv.X]})
    table = validation_stats(mean, gps_points=gps, stable_mask=stable, label_column="station")
    print("[series] time-mean velocity vs simulated GPS and over stable ground (m/yr; MAD unscaled):")
    print("\n".join("[series]   " + line for line in table.round(1).to_string().splitlines()))
    png = velocity_series_plot(series, list(zip(gps["x"], gps["y"])), out / "velocity_series.png",
                               labels=list(gps["station"]), truth=list(gps["v"]))
    print(f"[series] speed vs time at the GPS stations: {png}")
    return series


def run_demo(out: str | Path = "cryocube-demo", catalogs: str | Path = "catalogs") -> dict[str, xr.Dataset]:
    """Search, build, store and reopen the demo cubes; print a summary and save a quicklook.

    Parameters
    ----------
    out
        Output folder; ``<name>.zarr`` stores in it are overwritten.
    catalogs
        Folder with the bundled ``greenland-s1/`` and ``greenland-s2/`` catalogs.

    Returns
    -------
    dict
        The reopened (lazy) cubes by name.
    """
    from cryocube.catalog import search
    from cryocube.cube import build_cube, describe_cube
    from cryocube.plot import quicklook
    from cryocube.store import open_cube, write_cube

    out = Path(out)
    catalogs = Path(catalogs)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cubes: dict[str, xr.Dataset] = {}
    for step in DEMO_CUBES:
        start = time.perf_counter()
        catalog = catalogs / step.catalog / "catalog.json"
        items = search(catalog)
        cube = build_cube(items, assets=list(step.assets))
        store = out / f"{step.name}.zarr"
        print(f"[{step.name}] {len(items)} items from {catalog}")
        print(f"[{step.name}] {describe_cube(cube)}")
        write_cube(cube, store, mode="w", progress=True)
        cubes[step.name] = open_cube(store)
        print(f"[{step.name}] wrote {store} in {time.perf_counter() - start:.1f} s")
    for name, cube in cubes.items():
        png = quicklook(cube, out / f"quicklook_{name}.png", title=f"cryocube demo: {name} cube (synthetic Greenland outlet glacier)")
        print(f"[{name}] quicklook: {png}")
    for step in DEMO_VELOCITIES:
        demo_velocity(cubes[step.cube], step, out)
    demo_velocity_series(cubes, out)
    demo_melt(cubes["s1"], out)
    demo_station(out)
    demo_ice_drift(out)
    demo_insar(out)
    demo_redifferential(out)
    scenes = ", ".join(f"{name} {cube.sizes[cv.TIME]} scenes" for name, cube in cubes.items())
    stored = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"done in {time.perf_counter() - started:.1f} s: {scenes}; {stored / 1e6:.1f} MB in {out}")
    return cubes
