"""``cryocube demo``: the whole chain on the bundled catalogs.

Cubes (search, build, write, reopen, quicklook), then one velocity map per sensor
by offset tracking, checked against the simulator's truth.

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
    DemoStep("s2", "greenland-s2", ("B04", "B08")),
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
    scenes = ", ".join(f"{name} {cube.sizes[cv.TIME]} scenes" for name, cube in cubes.items())
    stored = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"done in {time.perf_counter() - started:.1f} s: {scenes}; {stored / 1e6:.1f} MB in {out}")
    return cubes
