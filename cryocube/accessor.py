"""The ``.cryo`` accessor on xarray Datasets: forwarding only, no logic.

Registered when :mod:`cryocube` is imported. Each method calls the module-level
function of the same name with the Dataset as first argument.
"""

from __future__ import annotations

from typing import Any

import xarray as xr


@xr.register_dataset_accessor("cryo")
class CryoAccessor:
    """``ds.cryo.<function>(...)`` forwards to ``cryocube.<function>(ds, ...)``."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def load(self, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.load_cube`."""
        from cryocube.cube import load_cube

        return load_cube(self._ds, **kwargs)

    def write(self, store: Any, **kwargs: Any) -> Any:
        """Forward to :func:`cryocube.write_cube`."""
        from cryocube.store import write_cube

        return write_cube(self._ds, store, **kwargs)

    def append(self, store: Any, **kwargs: Any) -> Any:
        """Forward to :func:`cryocube.append_cube`."""
        from cryocube.store import append_cube

        return append_cube(self._ds, store, **kwargs)

    def quicklook(self, path: Any, **kwargs: Any) -> Any:
        """Forward to :func:`cryocube.plot.quicklook`."""
        from cryocube.plot import quicklook

        return quicklook(self._ds, path, **kwargs)

    def track_offsets(self, reference: int | str = 0, secondary: int | str = 1, *, variable: str | None = None, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.track_offsets` on two scenes picked by :func:`cryocube.offsets.select_pair`."""
        from cryocube.offsets import select_pair, track_offsets

        return track_offsets(*select_pair(self._ds, reference, secondary, variable=variable), **kwargs)

    def track_pairs(self, pairs: Any, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.track_pairs`."""
        from cryocube.pair_tracking import track_pairs

        return track_pairs(self._ds, pairs, **kwargs)

    def offsets_to_velocity(self, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.offsets_to_velocity`."""
        from cryocube.velocity import offsets_to_velocity

        return offsets_to_velocity(self._ds, **kwargs)

    def calibrate_stable(self, stable_mask: Any = None, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.calibrate_stable`."""
        from cryocube.velocity import calibrate_stable

        return calibrate_stable(self._ds, stable_mask, **kwargs)

    def smooth_offsets(self, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.smooth_offsets`."""
        from cryocube.offsets import smooth_offsets

        return smooth_offsets(self._ds, **kwargs)

    def pair_orbits(self, **kwargs: Any) -> Any:
        """Forward to :func:`cryocube.pair_orbits`."""
        from cryocube.incidence import pair_orbits

        return pair_orbits(self._ds, **kwargs)

    def fit_incidence_slope(self, **kwargs: Any) -> Any:
        """Forward to :func:`cryocube.fit_incidence_slope`."""
        from cryocube.incidence import fit_incidence_slope

        return fit_incidence_slope(self._ds, **kwargs)

    def normalize_incidence(self, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.normalize_incidence`."""
        from cryocube.incidence import normalize_incidence

        return normalize_incidence(self._ds, **kwargs)

    def dry_reference(self, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.dry_reference`."""
        from cryocube.melt import dry_reference

        return dry_reference(self._ds, **kwargs)

    def detect_melt(self, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.detect_melt`."""
        from cryocube.melt import detect_melt

        return detect_melt(self._ds, **kwargs)

    def melt_season(self, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.melt_season` (on the output of ``detect_melt``)."""
        from cryocube.melt import melt_season

        return melt_season(self._ds, **kwargs)

    def detect_surge(self, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.detect_surge` (on a velocity time series)."""
        from cryocube.gps import detect_surge

        return detect_surge(self._ds, **kwargs)

    def validation_stats(self, **kwargs: Any) -> Any:
        """Forward to :func:`cryocube.validation_stats`."""
        from cryocube.gps import validation_stats

        return validation_stats(self._ds, **kwargs)

    def make_pairs(self, **kwargs: Any) -> Any:
        """Forward to :func:`cryocube.make_pairs`."""
        from cryocube.velocity_series import make_pairs

        return make_pairs(self._ds, **kwargs)

    def invert_velocity(self, **kwargs: Any) -> xr.Dataset:
        """Forward to :func:`cryocube.invert_velocity` (on per-pair velocities)."""
        from cryocube.velocity_series import invert_velocity

        return invert_velocity(self._ds, **kwargs)
