"""Per-pixel deformation model fit to a displacement time series: velocity and seasonal terms.

Model (least squares per pixel, ``tau`` in years since 2000-01-01)::

    d(t) = offset + v (tau - tau_0) + a1 cos(2 pi tau) + b1 sin(2 pi tau)
                                    [+ a2 cos(4 pi tau) + b2 sin(4 pi tau)]

``tau_0`` is the first date of the series, so ``offset`` is the displacement at
that date without the seasonal terms. The annual term is reported as amplitude ``A = hypot(a1, b1)`` and phase
``phase = atan2(b1, a1)`` (``A cos(2 pi tau - phase)``: maximum displacement
towards the satellite at ``tau = phase / 2 pi`` years after 1 January), the
semi-annual likewise. Standard errors: ``sigma^2 (G^T G)^-1`` with ``sigma^2``
the residual variance (``n - p`` degrees of freedom), propagated to amplitude and
phase to first order. They treat the dates' errors as independent: the
atmosphere of each date is, but SBAS time-series errors are correlated through
the network, so treat them as a lower bound on real data.

- :func:`deformation_kernel`: numpy, batched over pixels (one small batched
  solve per block), NaN dates skipped per pixel.
- :func:`fit_deformation`: ``xr.apply_ufunc(..., dask="parallelized")`` over the
  spatial chunks, ``time`` whole; lazy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xarray as xr

import cryocube
from cryocube import conventions as cv
from cryocube.chunking import core_chunked
from cryocube.velocity_series import DAYS_PER_YEAR

#: Model terms :func:`fit_deformation` knows (an offset is always fitted).
TERMS = ("linear", "annual", "semiannual")
#: Epoch of ``tau``.
EPOCH = np.datetime64("2000-01-01", "ns")


def design_matrix(tau: np.ndarray, model: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Columns of the model for times ``tau`` (years since 2000-01-01): ``(T, p)`` and their names."""
    columns, names = [np.ones_like(tau)], ["offset"]
    if "linear" in model:
        columns.append(tau - tau[0])
        names.append("velocity")
    for term, freq in (("annual", 1.0), ("semiannual", 2.0)):
        if term in model:
            columns += [np.cos(2 * np.pi * freq * tau), np.sin(2 * np.pi * freq * tau)]
            names += [f"{term}_cos", f"{term}_sin"]
    return np.stack(columns, axis=1), names


def deformation_kernel(ts: np.ndarray, *, tau: np.ndarray, model: Sequence[str]) -> np.ndarray:
    """Least-squares fit of the deformation model to every pixel of a block.

    Parameters
    ----------
    ts
        ``(..., T)`` displacement (m); NaN dates are skipped.
    tau
        ``(T,)`` date of each sample (years since 2000-01-01).
    model
        Terms among :data:`TERMS`.

    Returns
    -------
    ``(..., 2 p + 1 + h)`` float32: the ``p`` coefficients (offset m, velocity m/yr,
    cos/sin pairs m, in :func:`design_matrix` order), their standard errors, the
    residual standard deviation (m) and, for each of the ``h`` harmonic terms, the
    covariance of its cos and sin coefficients (m^2). NaN where fewer than
    ``p + 1`` dates are valid.
    """
    g, names = design_matrix(np.asarray(tau, np.float64), model)
    t, p = g.shape
    lead = ts.shape[:-1]
    y = ts.reshape(-1, t).astype(np.float64)
    valid = np.isfinite(y)
    y = np.where(valid, y, 0.0)
    count = valid.sum(axis=1)
    outer = (g[:, :, None] * g[:, None, :]).reshape(t, p * p)
    normal = (valid.astype(np.float64) @ outer).reshape(-1, p, p)
    rhs = y @ g
    ok = count > p
    if ok.any():
        cond = np.linalg.cond(normal[ok])
        ok[np.flatnonzero(ok)[~(cond < 1e10)]] = False
    normal[~ok] = np.eye(p)
    inverse = np.linalg.inv(normal)
    coef = np.einsum("nkl,nl->nk", inverse, rhs)
    resid = np.where(valid, y - coef @ g.T, 0.0)
    sigma2 = (resid**2).sum(axis=1) / np.maximum(count - p, 1)
    errors = np.sqrt(sigma2[:, None] * np.diagonal(inverse, axis1=1, axis2=2))
    cos_columns = [i for i, name in enumerate(names) if name.endswith("_cos")]
    cross = np.stack([sigma2 * inverse[:, i, i + 1] for i in cos_columns], axis=1) if cos_columns else np.empty((len(y), 0))
    out = np.concatenate([coef, errors, np.sqrt(sigma2)[:, None], cross], axis=1)
    out[~ok] = np.nan
    return out.astype(np.float32).reshape(*lead, out.shape[1])


def _harmonic(coef: dict[str, xr.DataArray], err: dict[str, xr.DataArray], cab: xr.DataArray,
              term: str) -> dict[str, xr.DataArray]:
    """Amplitude and phase of ``a cos + b sin`` with first-order standard errors (``cab``: cov(a, b))."""
    a, b = coef[f"{term}_cos"], coef[f"{term}_sin"]
    va, vb = err[f"{term}_cos"] ** 2, err[f"{term}_sin"] ** 2
    amp = np.hypot(a, b)
    amp_err = np.sqrt((a**2 * va + b**2 * vb + 2 * a * b * cab) / amp**2)
    phase = np.arctan2(b, a)
    phase_err = np.sqrt((b**2 * va + a**2 * vb - 2 * a * b * cab) / amp**4)
    return {"amplitude": amp, "amplitude_error": amp_err, "phase": phase, "phase_error": phase_err}


def fit_deformation(ts: xr.Dataset | xr.DataArray, *, model: Sequence[str] = ("linear", "annual"),
                    variable: str = "displacement") -> xr.Dataset:
    """Velocity and seasonal amplitude/phase of a displacement time series, per pixel, with standard errors.

    Parameters
    ----------
    ts
        ``(time, y, x)`` displacement (m): the Dataset of
        :func:`cryocube.sbas.invert_sbas` (its ``variable``) or a DataArray. NaN =
        missing date at that pixel.
    model
        Terms among ``"linear"``, ``"annual"``, ``"semiannual"`` (an offset is always fitted).
    variable
        Variable of a Dataset to fit.

    Returns
    -------
    xr.Dataset
        ``offset`` (m, the constant term: first date, seasonal terms excluded), ``velocity`` (m/yr), ``annual_amplitude``
        (m), ``annual_phase`` (rad, ``A cos(2 pi tau - phase)``), the same for
        ``semiannual``, each with a ``*_error`` (1-sigma), and ``residual_std`` (m).
        Float32, ``(y, x)``; NaN where fewer than ``p + 1`` dates are valid.
    """
    if isinstance(ts, xr.Dataset):
        if variable not in ts.data_vars:
            raise ValueError(f"ts has no variable {variable!r}; it has {sorted(map(str, ts.data_vars))}")
        da = ts[variable]
    elif isinstance(ts, xr.DataArray):
        da = ts
    else:
        raise TypeError(f"ts must be an xarray Dataset or DataArray, got {type(ts).__name__}")
    model = (model,) if isinstance(model, str) else tuple(model)
    unknown = [m for m in model if m not in TERMS]
    if unknown or not model:
        raise ValueError(f"model must be a non-empty subset of {TERMS}, got {model!r}")
    if cv.TIME not in da.dims:
        raise ValueError(f"ts has dims {da.dims}: it needs {cv.TIME!r}")
    times = np.asarray(da[cv.TIME].values)
    if not np.issubdtype(times.dtype, np.datetime64):
        raise ValueError(f"the {cv.TIME!r} coordinate must hold datetime64 dates, got {times.dtype}")
    tau = ((times.astype("datetime64[ns]") - EPOCH) / np.timedelta64(1, "D")) / DAYS_PER_YEAR
    _, names = design_matrix(tau, model)
    if len(tau) <= len(names):
        raise ValueError(f"fit_deformation: {len(tau)} dates cannot fit {len(names)} parameters ({names}); "
                         "use fewer model terms")
    da = core_chunked(da, cv.TIME, "fit_deformation")
    da = da.drop_vars([c for c in da.coords if cv.TIME in da[c].dims])
    p = len(names)
    harmonics = [t for t in ("annual", "semiannual") if t in model]
    raw = xr.apply_ufunc(deformation_kernel, da, kwargs={"tau": tau, "model": model}, input_core_dims=[[cv.TIME]],
                         output_core_dims=[["parameter"]], dask="parallelized", output_dtypes=[np.float32],
                         dask_gufunc_kwargs={"output_sizes": {"parameter": 2 * p + 1 + len(harmonics)}})
    coef = {n: raw.isel(parameter=i, drop=True) for i, n in enumerate(names)}
    err = {n: raw.isel(parameter=p + i, drop=True) for i, n in enumerate(names)}
    out = xr.Dataset()
    out["offset"] = coef["offset"].assign_attrs(units="m", long_name="constant term: model displacement at the first date without seasonal terms")
    out["offset_error"] = err["offset"].assign_attrs(units="m", long_name="1-sigma error of offset")
    if "linear" in model:
        out["velocity"] = coef["velocity"].assign_attrs(units="m/yr", long_name="LoS velocity (positive towards the satellite)")
        out["velocity_error"] = err["velocity"].assign_attrs(units="m/yr", long_name="1-sigma error of velocity")
    for j, term in enumerate(harmonics):
        if term in model:
            h = _harmonic(coef, err, raw.isel(parameter=2 * p + 1 + j, drop=True), term)
            out[f"{term}_amplitude"] = h["amplitude"].assign_attrs(units="m", long_name=f"{term} amplitude")
            out[f"{term}_amplitude_error"] = h["amplitude_error"].assign_attrs(units="m", long_name=f"1-sigma error of {term} amplitude")
            out[f"{term}_phase"] = h["phase"].assign_attrs(
                units="rad", long_name=f"{term} phase: maximum towards the satellite at 2 pi f tau = phase (tau: years since 2000-01-01)")
            out[f"{term}_phase_error"] = h["phase_error"].assign_attrs(units="rad", long_name=f"1-sigma error of {term} phase")
    out["residual_std"] = raw.isel(parameter=2 * p, drop=True).assign_attrs(units="m", long_name="standard deviation of the residuals")
    for name in out.data_vars:
        out[name] = out[name].astype(np.float32, keep_attrs=True)
    if "spatial_ref" in da.coords or (isinstance(ts, xr.Dataset) and "spatial_ref" in ts.coords):
        out = out.assign_coords(spatial_ref=(ts if isinstance(ts, xr.Dataset) else da)["spatial_ref"])
    attrs = {k: v for k, v in (ts.attrs if isinstance(ts, xr.Dataset) else da.attrs).items()
             if k in ("reference", "wavelength_m", "sign_convention", "incidence_deg")}
    out.attrs = {**attrs, cv.ATTR_VERSION: cryocube.__version__,
                 cv.ATTR_PARAMS: json.dumps({"model": list(model), "epoch": "2000-01-01", "n_dates": int(len(tau)),
                                             "first_date": str(times[0])[:10]})}
    return out
