"""Offset tracking over a network of image pairs: one lazy ``track_offsets`` per pair, stacked along ``pair``.

The stacked result is the input of the velocity time series
(:func:`cryocube.offsets_to_velocity` then :func:`cryocube.invert_velocity`):
dims ``(pair, y, x)`` with per-pair coordinates ``date1``, ``date2`` (datetime64),
``dt_days``, ``sensor1``, ``sensor2`` (platforms) and ``item_id1``, ``item_id2``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from cryocube import conventions as cv
from cryocube.offsets import select_pair, track_offsets

#: Column pairs accepted as (reference, secondary) scene selectors in a pair table, in order of preference.
PAIR_COLUMNS = (("reference", "secondary"), ("reference_index", "secondary_index"), ("index1", "index2"))


def pair_list(pairs: Any) -> list[tuple[int | str, int | str]]:
    """``(reference, secondary)`` scene selectors (positions along ``time`` or item ids) from ``pairs``.

    ``pairs`` is a sequence of 2-tuples, a DataFrame with one of the column pairs of
    :data:`PAIR_COLUMNS`, or an object with such a DataFrame as ``.table`` (the
    network of :func:`cryocube.make_pairs`).
    """
    table = getattr(pairs, "table", pairs)
    if isinstance(table, pd.DataFrame):
        for first, second in PAIR_COLUMNS:
            if first in table.columns and second in table.columns:
                return [(_selector(a), _selector(b)) for a, b in zip(table[first], table[second])]
        raise ValueError(f"the pair table needs columns {' or '.join(map(str, PAIR_COLUMNS))}; it has {list(table.columns)}")
    out = []
    for k, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"pairs[{k}] = {pair!r} is not a (reference, secondary) pair")
        out.append((_selector(pair[0]), _selector(pair[1])))
    if not out:
        raise ValueError("pairs is empty: nothing to track")
    return out


def _selector(value: Any) -> int | str:
    return int(value) if isinstance(value, (int, np.integer)) else str(value)


def track_pairs(cube: xr.Dataset, pairs: Any, *, variable: str | None = None, **track_offsets_kwargs: Any) -> xr.Dataset:
    """Track offsets for every pair of ``pairs`` on the cube's grid, lazily.

    Parameters
    ----------
    cube
        A ``(time, y, x)`` cube.
    pairs
        The pairs (see :func:`pair_list`); the reference must precede the secondary.
    variable
        Variable to track (default: the cube's first image variable).
    **track_offsets_kwargs
        Passed to :func:`cryocube.track_offsets` for every pair (``chip_px``,
        ``search_px``, ``prefilter``...).

    Returns
    -------
    xr.Dataset
        The :func:`cryocube.track_offsets` variables on dims ``(pair, y, x)`` with
        per-pair coordinates ``date1``, ``date2``, ``dt_days``, ``sensor1``,
        ``sensor2``, ``item_id1``, ``item_id2``; attrs of the first pair minus the
        per-pair ones.

    Raises
    ------
    ValueError
        Empty or malformed ``pairs``, scenes out of range, a secondary not after its
        reference.
    """
    selected = pair_list(pairs)
    tracked, meta = [], []
    for k, (reference, secondary) in enumerate(selected):
        ref, sec = select_pair(cube, reference, secondary, variable=variable)
        t1, t2 = ref[cv.TIME].values[0], sec[cv.TIME].values[0]
        if not t2 > t1:
            raise ValueError(f"pair {k} ({reference!r}, {secondary!r}): the secondary scene ({t2}) must follow "
                             f"the reference ({t1})")
        tracked.append(track_offsets(ref, sec, **track_offsets_kwargs))
        meta.append({"date1": t1, "date2": t2, "dt_days": float((t2 - t1) / np.timedelta64(1, "D")),
                     "sensor1": _scene_value(ref, "platform"), "sensor2": _scene_value(sec, "platform"),
                     "item_id1": _scene_value(ref, "item_id"), "item_id2": _scene_value(sec, "item_id")})
    stacked = xr.concat(tracked, dim=cv.PAIR, combine_attrs="drop_conflicts")
    table = pd.DataFrame(meta)
    coords = {name: (cv.PAIR, table[name].to_numpy() if name.startswith(("date", "dt_")) else table[name].to_numpy(str))
              for name in table.columns}
    for key in ("reference_time", "secondary_time", "reference_item_id", "secondary_item_id",
                "reference_sensor", "secondary_sensor"):
        stacked.attrs.pop(key, None)
    return stacked.assign_coords(coords)


def _scene_value(image: xr.DataArray, name: str) -> str:
    return str(image[name].values[0]) if name in image.coords else ""
