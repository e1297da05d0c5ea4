"""SBAS displacement time series from a stack of unwrapped interferograms.

- :func:`invert_sbas`: per-pixel (weighted) least-squares or L1 inversion of a
  ``(pair, y, x)`` interferogram stack into a ``(time, y, x)`` displacement time
  series, blockwise and lazy (``xr.apply_ufunc(..., dask="parallelized")`` over
  spatial chunks, ``pair`` whole). Kernel: :func:`cryocube.sbas_kernel.sbas_kernel`,
  one batched banded-Cholesky solve for every pixel of a block, masked or not
  (missing data = zero weight); disconnected networks get the minimum-norm
  velocity solution per pixel and are counted in ``n_gaps``.
- :func:`rereference`: move the reference of a time series (no re-inversion).
- :func:`closure_phase`: closure phase of every pair triplet, and 2*pi
  unwrapping-error flags.

Sign convention (MintPy's): the interferometric phase of a pair ``(date1, date2)``
is ``phi(date2) - phi(date1)`` and grows with the range (distance to the
satellite); the line-of-sight displacement is

    d = -lambda / (4 pi) * phi,

so **positive displacement is motion towards the satellite** (uplift for a
vertical motion), negative is away (subsidence).

Reference. Each unwrapped interferogram carries its own arbitrary constant (the
unwrapper's integration constant), so, as MintPy does, :func:`invert_sbas`
subtracts from every interferogram its phase at the reference (a pixel, the NaN-
skipping mean over an area or over a list of points) before the inversion; the
time series is then zero at a reference pixel. Without a reference
(``reference=None``) the constants stay in the data: fine for synthetic stacks,
wrong for real ones. :func:`rereference` moves the reference afterwards on the
time series (``d(t) - d_new(t)``): the constants are gone by then, so this needs
no re-inversion; it differs from re-inverting with the new reference only by the
inverted closure residual of the new reference (zero for an unweighted inversion
of a pixel with all pairs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import cryocube
from cryocube import conventions as cv
from cryocube.conventions import phase_to_displacement
from cryocube.chunking import core_chunked
from cryocube.sbas_kernel import (closure_kernel, coherence_weights, find_triplets, network_nodes, phase_variance_lut,
                                  sbas_kernel)
from cryocube.velocity_series import DAYS_PER_YEAR, pair_days

#: Inversion methods.
METHODS = ("l2", "l1")
#: Weighting schemes.
WEIGHTS = ("coherence", None)
#: Band dimension of ``network_precision``.
LAG = "lag"

Reference = None | tuple[float, float] | tuple[float, float, float, float] | Sequence[tuple[float, float]]


def _wavelength(ifgs: xr.Dataset, wavelength_m: float | None) -> float:
    value = ifgs.attrs.get("wavelength_m") if wavelength_m is None else wavelength_m
    if value is None:
        raise ValueError("wavelength_m: the interferograms have no 'wavelength_m' attribute; pass wavelength_m "
                         "(e.g. 0.0555 for Sentinel-1)")
    value = float(value)
    if not (np.isfinite(value) and 0 < value < 1):
        raise ValueError(f"wavelength_m must be a radar wavelength in metres (0 < value < 1), got {value!r}")
    return value


def _looks(ifgs: xr.Dataset, n_looks: float | None) -> float:
    value = ifgs.attrs.get("n_looks") if n_looks is None else n_looks
    if value is None:
        raise ValueError("n_looks: weight='coherence' needs the number of independent looks; the interferograms "
                         "have no 'n_looks' attribute, pass n_looks (MintPy: range x azimuth looks / 1.94 for "
                         "Sentinel-1 IW)")
    value = float(value)
    if not (np.isfinite(value) and value >= 1):
        raise ValueError(f"n_looks must be >= 1, got {value!r}")
    return value


def _stack_var(ifgs: xr.Dataset, name: str) -> xr.DataArray:
    if name not in ifgs.data_vars:
        raise ValueError(f"ifgs has no variable {name!r}; it has {sorted(map(str, ifgs.data_vars))}")
    var = ifgs[name]
    if cv.PAIR not in var.dims:
        raise ValueError(f"variable {name!r} has dims {var.dims}: it needs the {cv.PAIR!r} dimension")
    var = core_chunked(var, cv.PAIR, "invert_sbas")
    return var.drop_vars([c for c in var.coords if cv.PAIR in var[c].dims])


def _sbas_block(phase: np.ndarray, coherence: np.ndarray | None, *, inverse_variance: np.ndarray | None,
                min_coherence: float, **kwargs: Any) -> tuple[np.ndarray, ...]:
    """``apply_ufunc`` body: weights from coherence, then :func:`sbas_kernel`; ts as float32 phase (rad)."""
    weight = (np.ones(phase.shape, dtype=np.float32) if inverse_variance is None
              else coherence_weights(coherence, inverse_variance))
    if coherence is not None and min_coherence > 0:
        weight = np.where(coherence >= min_coherence, weight, 0.0)
    ts, *rest = sbas_kernel(phase, weight, **kwargs)
    return ts.astype(np.float32), *rest


def _sbas_block_no_coherence(phase: np.ndarray, **kwargs: Any) -> tuple[np.ndarray, ...]:
    return _sbas_block(phase, None, **kwargs)


def _nearest_index(coord: xr.DataArray, value: float, name: str) -> int:
    values = np.asarray(coord.values, dtype=np.float64)
    step = abs(values[1] - values[0]) if values.size > 1 else 0.0
    if not (values.min() - step / 2 <= value <= values.max() + step / 2):
        raise ValueError(f"reference: {name}={value!r} is outside the grid ({values.min()} .. {values.max()})")
    return int(np.abs(values - value).argmin())


def _reference_series(disp: xr.DataArray, reference: Reference) -> tuple[xr.DataArray | None, dict[str, Any]]:
    """The values of ``disp`` at ``reference`` (over its non-spatial dims, lazy), and a description for attrs."""
    if reference is None:
        return None, {"kind": "first-date", "note": "relative to the first date only; no spatial reference"}
    if isinstance(reference, (str, bytes)) or not isinstance(reference, Sequence) or len(reference) == 0:
        raise ValueError(f"reference must be None, (y, x), (x_min, y_min, x_max, y_max) or a list of (y, x) points, "
                         f"got {reference!r}")
    if all(np.isscalar(v) for v in reference):
        values = [float(v) for v in reference]
        if len(values) == 2:
            iy, ix = _nearest_index(disp[cv.Y], values[0], "y"), _nearest_index(disp[cv.X], values[1], "x")
            return (disp.isel({cv.Y: iy, cv.X: ix}, drop=True),
                    {"kind": "point", "y": float(disp[cv.Y][iy]), "x": float(disp[cv.X][ix]), "row": iy, "col": ix})
        if len(values) == 4:
            x0, y0, x1, y1 = values
            if x1 < x0 or y1 < y0:
                raise ValueError(f"reference bounds must be (x_min, y_min, x_max, y_max), got {reference!r}")
            ys = np.flatnonzero((disp[cv.Y].values >= y0) & (disp[cv.Y].values <= y1))
            xs = np.flatnonzero((disp[cv.X].values >= x0) & (disp[cv.X].values <= x1))
            if ys.size == 0 or xs.size == 0:
                raise ValueError(f"reference bounds {reference!r} hold no pixel of the grid")
            area = disp.isel({cv.Y: ys, cv.X: xs})
            return (area.mean((cv.Y, cv.X), skipna=True),
                    {"kind": "area", "bounds": [x0, y0, x1, y1], "n_pixels": int(ys.size * xs.size)})
        raise ValueError(f"reference: a tuple of numbers must be (y, x) or (x_min, y_min, x_max, y_max), got {reference!r}")
    points = []
    for point in reference:
        if not (isinstance(point, Sequence) and len(point) == 2 and all(np.isscalar(v) for v in point)):
            raise ValueError(f"reference: every point of a list must be (y, x), got {point!r}")
        points.append((_nearest_index(disp[cv.Y], float(point[0]), "y"), _nearest_index(disp[cv.X], float(point[1]), "x")))
    iy = xr.DataArray([p[0] for p in points], dims="reference_point")
    ix = xr.DataArray([p[1] for p in points], dims="reference_point")
    series = disp.isel({cv.Y: iy, cv.X: ix}, drop=True).mean("reference_point", skipna=True)
    return series, {"kind": "points", "points": [[float(disp[cv.Y][a]), float(disp[cv.X][b])] for a, b in points]}


def _apply_reference(ts: xr.Dataset, reference: Reference) -> xr.Dataset:
    series, description = _reference_series(ts["displacement"], reference)
    out = ts.copy()
    if series is not None:
        attrs = ts["displacement"].attrs
        out["displacement"] = (ts["displacement"] - series).astype(np.float32).assign_attrs(attrs)
    out.attrs["reference"] = json.dumps(description)
    return out


def rereference(ts: xr.Dataset, reference: Reference) -> xr.Dataset:
    """The time series of :func:`invert_sbas` relative to another reference, without re-inverting.

    ``d(t) - d_new(t)``: since ``d`` is already relative to the old reference, the
    old one cancels. Lazy. ``reference=None`` keeps the current reference.

    Parameters
    ----------
    ts
        Output of :func:`invert_sbas` (``displacement`` ``(time, y, x)``, m).
    reference
        ``(y, x)`` a pixel (nearest to these coordinates), ``(x_min, y_min, x_max,
        y_max)`` the mean over an area, or a list of ``(y, x)`` points (mean); NaN
        pixels are skipped in means.

    Returns
    -------
    xr.Dataset
        Same variables; ``attrs["reference"]`` (JSON) describes the new reference
        and ``attrs["previous_references"]`` lists the older ones.
    """
    if not isinstance(ts, xr.Dataset) or "displacement" not in ts.data_vars:
        raise ValueError("ts must be the Dataset returned by invert_sbas (with a 'displacement' variable)")
    if reference is None:
        return ts
    previous = json.loads(ts.attrs.get("previous_references", "[]")) + [json.loads(ts.attrs.get("reference", "null"))]
    out = _apply_reference(ts, reference)
    out.attrs["previous_references"] = json.dumps(previous)
    return out


def invert_sbas(ifgs: xr.Dataset, *, weight: str | None = "coherence", method: str = "l2", reference: Reference = None,
                min_coherence: float = 0.0, n_looks: float | None = None, wavelength_m: float | None = None,
                max_iterations: int = 30, precision: bool = False) -> xr.Dataset:
    """Displacement time series from a network of unwrapped interferograms (SBAS).

    Per pixel, the phase of every date relative to the first is the weighted
    least-squares (``method="l2"``) or L1 (``"l1"``, IRLS) solution of
    ``phi_pair = phi(date2) - phi(date1)`` over the pixel's valid pairs (finite
    phase, coherence >= ``min_coherence``); see :mod:`cryocube.sbas_kernel`. A
    pixel whose valid pairs do not connect all dates gets the minimum-norm
    velocity solution (the classic SBAS/MintPy choice: no constraint invented
    across the gap beyond the smallest velocities) and ``n_gaps > 0``; a pixel
    without any valid pair is NaN. Never raises on masked or disconnected data.

    Lazy and blockwise: ``apply_ufunc(dask="parallelized")`` over the spatial
    chunks with ``pair`` whole (a stack chunked along ``pair`` is rechunked to
    the whole ``pair`` axis and ~64 MiB spatial tiles). 100 x 100-pixel chunks
    were the best trade-off on 204 pairs (``benchmarks/sbas.py``: 3.2 s and 561 MB
    peak for 500 x 500 px, against 5.4 s / 321 MB for 50 x 50).

    Parameters
    ----------
    ifgs
        Dataset ``(pair, y, x)`` with ``unwrapped_phase`` (rad, NaN = missing),
        ``coherence`` (needed for ``weight="coherence"`` or ``min_coherence > 0``),
        coordinates ``date1``, ``date2`` on ``pair``; attrs ``wavelength_m`` and
        ``n_looks`` (or pass them), e.g. from :func:`cryocube.interferograms.open_interferograms`.
    weight
        ``"coherence"``: MintPy's default weights, the inverse phase variance of a
        distributed scatterer with that coherence and ``n_looks`` looks
        (Tough et al. 1995); ``None``: all valid pairs weigh the same.
    method
        ``"l2"`` or ``"l1"``: the L1 norm of the standardised residuals, its
        corner smoothed below 1.345 standard deviations (Huber), robust to 2*pi
        unwrapping errors of single pairs; about 6x the time of ``"l2"``.
    reference
        ``None`` (relative to the first date only), ``(y, x)`` a pixel,
        ``(x_min, y_min, x_max, y_max)`` the mean over an area, or a list of
        ``(y, x)`` points (coordinate units, nearest pixels). Each interferogram's
        phase there (NaN-skipping mean) is subtracted before the inversion (a pair
        without a finite reference value is left out everywhere). Real stacks
        need one (unwrapping constants); stored in ``attrs["reference"]``; change
        it later with :func:`rereference`.
    min_coherence
        Pairs with coherence below this are left out of the pixel's inversion.
    n_looks
        Independent looks for the weights (default ``attrs["n_looks"]``).
    wavelength_m
        Radar wavelength (m) (default ``attrs["wavelength_m"]``).
    max_iterations
        IRLS reweightings at most (``method="l1"``).
    precision
        Also return ``network_precision``: per pixel, the inverse covariance of the
        displacements that the interferograms' noise leaves after the inversion
        (``(G^T W G) / s^2``, ``s^2`` the variance of unit weight estimated from
        the residuals). :func:`cryocube.deformation.fit_deformation` uses it to
        report honest errors: the network makes the dates' errors correlated, and
        a fit that treats them as independent under-reports the velocity error
        (about 1.85x on the synthetic permafrost stack). Costs ``h + 1`` floats
        per date and pixel (``h`` the longest pair in date steps).

    Returns
    -------
    xr.Dataset
        ``displacement`` ``(time, y, x)`` float32 m (LoS, positive towards the
        satellite, 0 at the first date); ``temporal_coherence`` (1);
        ``residual_rms`` (rad, RMS of the phase residuals); ``n_observations``
        (valid pairs); ``n_gaps`` (dates or groups of dates not connected to the
        first date, 0 for a connected network). Attrs: ``reference``,
        ``wavelength_m``, ``sign_convention``, ``cryocube_parameters``.

    Raises
    ------
    ValueError, TypeError
        Missing variables/coordinates/attributes, bad ``weight``, ``method``,
        ``min_coherence``, ``reference``.
    """
    if not isinstance(ifgs, xr.Dataset):
        raise TypeError(f"ifgs must be an xarray Dataset, got {type(ifgs).__name__}")
    if weight not in WEIGHTS:
        raise ValueError(f"weight must be one of {WEIGHTS}, got {weight!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not (np.isscalar(min_coherence) and 0.0 <= float(min_coherence) < 1.0):
        raise ValueError(f"min_coherence must be in [0, 1), got {min_coherence!r}")
    if int(max_iterations) != max_iterations or max_iterations < 1:
        raise ValueError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
    if cv.PAIR not in ifgs.dims or ifgs.sizes[cv.PAIR] < 1:
        raise ValueError(f"ifgs has no pairs (dimension {cv.PAIR!r} missing or empty)")
    wavelength = _wavelength(ifgs, wavelength_m)
    days1, days2, _, _ = pair_days(ifgs)
    nodes, node1, node2 = network_nodes(days1, days2)
    t_years = (nodes - nodes[0]) / DAYS_PER_YEAR
    phase = _stack_var(ifgs, "unwrapped_phase")
    use_coherence = weight == "coherence" or min_coherence > 0
    inverse_variance = None
    looks = None
    if weight == "coherence":
        looks = _looks(ifgs, n_looks)
        inverse_variance = 1.0 / phase_variance_lut(looks)[1]
    inputs = [phase]
    if use_coherence:
        coherence = _stack_var(ifgs, "coherence")
        if coherence.shape != phase.shape:
            raise ValueError(f"coherence has shape {coherence.shape}, unwrapped_phase {phase.shape}: they must match")
        inputs.append(coherence)
    kwargs = dict(inverse_variance=inverse_variance, min_coherence=float(min_coherence), node1=node1, node2=node2,
                  t_years=t_years, method=method, max_iterations=int(max_iterations), precision=bool(precision))
    func = _sbas_block if use_coherence else _sbas_block_no_coherence
    ref_phase, description = _reference_series(phase, reference)
    if ref_phase is not None:
        inputs[0] = phase - ref_phase
    lag = int((node2 - node1).max()) + 1
    ts, tcoh, rms, n_obs, n_gaps, *prec = xr.apply_ufunc(
        func, *inputs, kwargs=kwargs, input_core_dims=[[cv.PAIR]] * len(inputs),
        output_core_dims=[[cv.TIME], [], [], [], []] + [[cv.TIME, LAG]] * bool(precision), dask="parallelized",
        output_dtypes=[np.float32, np.float32, np.float32, np.int32, np.int32] + [np.float32] * bool(precision),
        dask_gufunc_kwargs={"output_sizes": {cv.TIME: nodes.size, **({LAG: lag} if precision else {})}})
    other = [d for d in phase.dims if d != cv.PAIR]
    epoch = np.datetime64("1970-01-01T00:00:00", "ns")
    times = epoch + np.round(nodes * 86400e9).astype("timedelta64[ns]")
    scale = np.float32(phase_to_displacement(wavelength))
    out = xr.Dataset({
        "displacement": (ts * scale).transpose(cv.TIME, *other).assign_attrs(
            units="m", long_name="line-of-sight displacement relative to the first date and the reference "
                                 "(positive towards the satellite)"),
        "temporal_coherence": tcoh.assign_attrs(units="1", long_name="temporal coherence of the phase residuals"),
        "residual_rms": rms.assign_attrs(units="rad", long_name="RMS of the interferometric phase residuals"),
        "n_observations": n_obs.assign_attrs(units="1", long_name="valid interferograms used"),
        "n_gaps": n_gaps.assign_attrs(units="1", long_name="dates or groups of dates not connected to the first "
                                                           "date (minimum-norm velocity across them)"),
    }).assign_coords({cv.TIME: (cv.TIME, times)})
    if precision:
        out["network_precision"] = (prec[0] / scale**2).transpose(cv.TIME, LAG, *other).assign_attrs(
            units="m-2", long_name="lower band [a, i] = P[a + i, a] of the inverse covariance of the displacements "
                                   "due to the interferograms' noise (dates after the first)")
    if "spatial_ref" in ifgs.coords:
        out = out.assign_coords(spatial_ref=ifgs["spatial_ref"])
    params = dict(weight=weight, method=method, min_coherence=float(min_coherence), n_looks=looks,
                  wavelength_m=wavelength, n_pairs=int(node1.size), n_dates=int(nodes.size),
                  network_bandwidth=int((node2 - node1).max()), reference=description, max_iterations=int(max_iterations),
                  gaps="minimum-norm velocity per pixel")
    out.attrs = {cv.ATTR_VERSION: cryocube.__version__, cv.ATTR_PARAMS: json.dumps(params),
                 "wavelength_m": wavelength, "phase_to_displacement_m_per_rad": float(scale),
                 "sign_convention": "d = -wavelength/(4 pi) * phase; positive = towards the satellite (MintPy)",
                 "first_date": str(pd.Timestamp(times[0]).date())}
    for key in ("incidence_deg", "heading_deg", "n_looks", "platform", "processor"):
        if key in ifgs.attrs:
            out.attrs[key] = ifgs.attrs[key]
    out.attrs["reference"] = json.dumps(description)
    return out


def closure_phase(ifgs: xr.Dataset, *, reference: Reference = None, variable: str = "unwrapped_phase") -> xr.Dataset:
    """Closure phase of every triplet ``(i, j), (j, k), (i, k)`` of the network, and 2*pi error flags.

    For unwrapped phases, ``phi_ij + phi_jk - phi_ik`` is ~0 (a small
    decorrelation/filtering part) unless one of the three pairs carries an
    unwrapping error, which makes it ~``2 pi n``. Lazy (``apply_ufunc`` over
    spatial chunks, ``pair`` whole).

    Parameters
    ----------
    ifgs
        Dataset ``(pair, y, x)`` with ``variable`` (rad) and ``date1``, ``date2`` coordinates.
    reference
        As in :func:`invert_sbas`: each interferogram's phase there is subtracted
        first, removing the unwrapping constants (which would otherwise give every
        triplet a constant closure). Needed for real stacks.
    variable
        Phase variable to close.

    Returns
    -------
    xr.Dataset
        ``closure_phase`` ``(triplet, y, x)`` float32 rad; ``ambiguity``
        ``(triplet, y, x)`` int8 ``round(closure / 2 pi)``; ``n_triplets``
        ``(y, x)`` triplets with a finite closure; ``n_nonzero_closure`` ``(y, x)``
        triplets with a non-zero ambiguity (MintPy's ``numTriNonzeroIntAmbiguity``);
        coordinates ``date_i``, ``date_j``, ``date_k`` and ``pair_ij``, ``pair_jk``,
        ``pair_ik`` (pair positions) on ``triplet``.

    Raises
    ------
    ValueError
        Missing variable/dates, or a network without any triplet.
    """
    if not isinstance(ifgs, xr.Dataset):
        raise TypeError(f"ifgs must be an xarray Dataset, got {type(ifgs).__name__}")
    days1, days2, _, _ = pair_days(ifgs)
    nodes, node1, node2 = network_nodes(days1, days2)
    triplets = find_triplets(node1, node2)
    if triplets.shape[0] == 0:
        raise ValueError("closure_phase: the network has no triplet (i, j), (j, k), (i, k) of pairs")
    phase = _stack_var(ifgs, variable)
    ref_phase, description = _reference_series(phase, reference)
    if ref_phase is not None:
        phase = phase - ref_phase
    closure = xr.apply_ufunc(closure_kernel, phase, kwargs={"triplets": triplets}, input_core_dims=[[cv.PAIR]],
                             output_core_dims=[["triplet"]], dask="parallelized", output_dtypes=[np.float32],
                             dask_gufunc_kwargs={"output_sizes": {"triplet": triplets.shape[0]}})
    other = [d for d in phase.dims if d != cv.PAIR]
    closure = closure.transpose("triplet", *other)
    finite = np.isfinite(closure)
    ambiguity = xr.where(finite, (closure / (2 * np.pi)).round(), 0).astype(np.int8)
    d1 = ifgs["date1"].values
    d2 = ifgs["date2"].values
    coords = {"date_i": ("triplet", d1[triplets[:, 0]]), "date_j": ("triplet", d2[triplets[:, 0]]),
              "date_k": ("triplet", d2[triplets[:, 1]]), "pair_ij": ("triplet", triplets[:, 0]),
              "pair_jk": ("triplet", triplets[:, 1]), "pair_ik": ("triplet", triplets[:, 2])}
    out = xr.Dataset({
        "closure_phase": closure.assign_attrs(units="rad", long_name="triplet closure phase phi_ij + phi_jk - phi_ik"),
        "ambiguity": ambiguity.assign_attrs(units="1", long_name="integer 2 pi ambiguity of the closure phase"),
        "n_triplets": finite.sum("triplet").astype(np.int32).assign_attrs(units="1", long_name="triplets with a finite closure"),
        "n_nonzero_closure": (ambiguity != 0).sum("triplet").astype(np.int32).assign_attrs(
            units="1", long_name="triplets whose closure is a non-zero multiple of 2 pi (unwrapping errors)"),
    }).assign_coords(coords)
    if "spatial_ref" in ifgs.coords:
        out = out.assign_coords(spatial_ref=ifgs["spatial_ref"])
    out.attrs = {cv.ATTR_VERSION: cryocube.__version__,
                 "reference": json.dumps(description),
                 cv.ATTR_PARAMS: json.dumps({"variable": variable, "n_triplets": int(triplets.shape[0])})}
    return out
