"""The ``.cryo`` accessor on xarray Datasets: forwarding only, no logic.

Registered when :mod:`cryocube` is imported. Each method calls the module-level
function it names with the Dataset as first argument (modules are imported on
first use, so the accessor costs nothing at import time).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import xarray as xr

#: accessor method -> (module, function): ``ds.cryo.<method>(*args, **kw)`` is ``<module>.<function>(ds, *args, **kw)``.
FORWARDS: dict[str, tuple[str, str]] = {
    "load": ("cryocube.cube", "load_cube"),
    "write": ("cryocube.store", "write_cube"),
    "append": ("cryocube.store", "append_cube"),
    "write_product": ("cryocube.store", "write_product"),
    "quicklook": ("cryocube.plot", "quicklook"),
    "track_pairs": ("cryocube.pair_tracking", "track_pairs"),
    "offsets_to_velocity": ("cryocube.velocity", "offsets_to_velocity"),
    "calibrate_stable": ("cryocube.velocity", "calibrate_stable"),
    "smooth_offsets": ("cryocube.offsets", "smooth_offsets"),
    "correct_detector_offsets": ("cryocube.detector_offsets", "correct_detector_offsets"),
    "pair_orbits": ("cryocube.incidence", "pair_orbits"),
    "fit_incidence_slope": ("cryocube.incidence", "fit_incidence_slope"),
    "normalize_incidence": ("cryocube.incidence", "normalize_incidence"),
    "dry_reference": ("cryocube.melt", "dry_reference"),
    "detect_melt": ("cryocube.melt", "detect_melt"),
    "melt_season": ("cryocube.melt", "melt_season"),
    "detect_surge": ("cryocube.gps", "detect_surge"),
    "validation_stats": ("cryocube.gps", "validation_stats"),
    "make_pairs": ("cryocube.velocity_series", "make_pairs"),
    "invert_velocity": ("cryocube.velocity_series", "invert_velocity"),
    "invert_sbas": ("cryocube.sbas", "invert_sbas"),
    "rereference": ("cryocube.sbas", "rereference"),
    "closure_phase": ("cryocube.sbas", "closure_phase"),
    "fit_deformation": ("cryocube.deformation", "fit_deformation"),
}


def _forward(name: str, module: str, function: str) -> Callable[..., Any]:
    def method(self: CryoAccessor, *args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), function)(self._ds, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"Forward to :func:`{module}.{function}` with this Dataset as first argument."
    return method


@xr.register_dataset_accessor("cryo")
class CryoAccessor:
    """``ds.cryo.<method>(...)`` forwards to the cryocube function of :data:`FORWARDS` with ``ds`` first."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds


#: accessor method -> (module, function) of two-image algorithms: ``ds.cryo.<method>(reference=0, secondary=1,
#: variable=None, **kw)`` is ``<function>(*select_pair(ds, reference, secondary, variable=variable), **kw)``.
PAIR_FORWARDS: dict[str, tuple[str, str]] = {
    "track_offsets": ("cryocube.offsets", "track_offsets"),
    "track_ice_drift": ("cryocube.ice_drift", "track_ice_drift"),
}


def _forward_pair(name: str, module: str, function: str) -> Callable[..., Any]:
    def method(self: CryoAccessor, reference: int | str = 0, secondary: int | str = 1, *, variable: str | None = None,
               **kwargs: Any) -> Any:
        from cryocube.offsets import select_pair

        images = select_pair(self._ds, reference, secondary, variable=variable)
        return getattr(importlib.import_module(module), function)(*images, **kwargs)

    method.__name__ = name
    method.__doc__ = (f"Forward to :func:`{module}.{function}` on two scenes (position along time or item id) "
                      "picked by :func:`cryocube.offsets.select_pair`.")
    return method


for _name, (_module, _function) in FORWARDS.items():
    setattr(CryoAccessor, _name, _forward(_name, _module, _function))
for _name, (_module, _function) in PAIR_FORWARDS.items():
    setattr(CryoAccessor, _name, _forward_pair(_name, _module, _function))
