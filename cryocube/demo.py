"""``cryocube demo``: the whole chain on the bundled catalogs.

Later algorithm issues add their step here, each reading the cubes written by
the steps before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

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
    scenes = ", ".join(f"{name} {cube.sizes[cv.TIME]} scenes" for name, cube in cubes.items())
    stored = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"done in {time.perf_counter() - started:.1f} s: {scenes}; {stored / 1e6:.1f} MB in {out}")
    return cubes
