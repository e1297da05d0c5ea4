"""Per-pixel deformation model fit to a displacement time series: velocity and seasonal terms.

Model (least squares per pixel, ``tau`` in years since 2000-01-01)::

    d(t) = offset + v (tau - tau_0) + a1 cos(2 pi tau) + b1 sin(2 pi tau)
                                    [+ a2 cos(4 pi tau) + b2 sin(4 pi tau)]

``tau_0`` is the first date of the series, so ``offset`` is the displacement at
that date without the seasonal terms. The annual term is reported as amplitude ``A = hypot(a1, b1)`` and phase
``phase = atan2(b1, a1)`` (``A cos(2 pi tau - phase)``: maximum displacement
towards the satellite at ``tau = phase / 2 pi`` years after 1 January), the
semi-annual likewise. Amplitude and phase errors are propagated from the
coefficients' covariance to first order.

Standard errors. Without more information the dates' errors are taken as
independent (white): ``cov = sigma^2 (G^T G)^-1`` with ``sigma^2`` the residual
variance (``n - p`` degrees of freedom). The atmosphere of each date is white in
time, but an SBAS time series also carries the interferograms' noise propagated
through the network, which correlates the dates (a random-walk-like error that
white errors under-report: 1.85x for the velocity of the synthetic permafrost
stack). Given the ``network_precision`` of :func:`cryocube.sbas.invert_sbas`
(``precision=True``: the inverse covariance ``P`` of that network noise), the
errors are

    cov = sigma_a^2 (G^T G)^-1 + H P^-1 H^T,      H = (G^T G)^-1 G^T,

``sigma_a^2`` the white (atmospheric) variance, estimated without bias from the
residuals ``e``: ``E[e^T e] = (n - p) sigma_a^2 + tr(P^-1 (I - G H))``. The
dates' network errors are relative to the first date (row 0 of ``H`` drops out).

- :func:`deformation_kernel`: numpy, batched over pixels (one small batched
  solve per block), NaN dates skipped per pixel; :func:`network_covariance` the
  network term (banded Cholesky of ``P`` per pixel, :mod:`cryocube.banded`).
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
from cryocube.sbas import LAG
from cryocube.banded import band_cholesky, band_inverse, band_solve
from cryocube.velocity_series import DAYS_PER_YEAR

#: Model terms :func:`fit_deformation` knows (an offset is always fitted).
TERMS = ("linear", "annual", "semiannual")
#: Epoch of ``tau``.
EPOCH = np.datetime64("2000-01-01", "ns")
#: Pixels per batch of :func:`network_covariance` (about ``8 T (h + 2 p)`` bytes each).
NETWORK_BATCH = 10000


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


def deformation_kernel(ts: np.ndarray, precision: np.ndarray | None = None, *, tau: np.ndarray,
                       model: Sequence[str]) -> np.ndarray:
    """Least-squares fit of the deformation model to every pixel of a block.

    Parameters
    ----------
    ts
        ``(..., T)`` displacement (m); NaN dates are skipped.
    precision
        Optional ``(..., T, h + 1)`` network precision band (m^-2) of
        :func:`cryocube.sbas.invert_sbas`; where finite (and every date valid) the
        errors include the network term (:func:`network_covariance`), elsewhere
        they are white.
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
    cov = sigma2[:, None, None] * inverse
    if precision is not None:
        band = precision.reshape(len(y), t, -1)[:, 1:]
        full = np.flatnonzero(ok & (count == t) & np.isfinite(band).all(axis=(1, 2)))
        network, usable = network_covariance(g, resid[full], band[full])
        cov[full[usable]] = network[usable]
    errors = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    cos_columns = [i for i, name in enumerate(names) if name.endswith("_cos")]
    cross = cov[:, cos_columns, [i + 1 for i in cos_columns]]
    out = np.concatenate([coef, errors, np.sqrt(sigma2)[:, None], cross], axis=1)
    out[~ok] = np.nan
    return out.astype(np.float32).reshape(*lead, out.shape[1])


def network_covariance(g: np.ndarray, resid: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Covariance of the model coefficients with white and network errors (see the module notes).

    Parameters
    ----------
    g
        ``(T, p)`` design matrix (:func:`design_matrix`).
    resid
        ``(n, T)`` least-squares residuals (m) of ``n`` pixels, every date valid.
    band
        ``(n, T - 1, h + 1)`` lower band of the network precision ``P`` of dates
        ``1..T-1`` (m^-2, ``[a, i] = P[a + i, a]``).

    Returns
    -------
    cov, usable
        ``(n, p, p)`` covariance (units of the coefficients squared); ``(n,)`` False
        where ``P`` is singular (then ``cov`` is meaningless).
    """
    t, p = g.shape
    n0_inv = np.linalg.inv(g.T @ g)
    h_r, g_r = (n0_inv @ g.T)[:, 1:], g[1:]
    cov = np.empty((len(resid), p, p))
    usable = np.empty(len(resid), dtype=bool)
    for start in range(0, len(resid), NETWORK_BATCH):
        sl = slice(start, start + NETWORK_BATCH)
        factor, zero = band_cholesky(np.ascontiguousarray(band[sl].transpose(1, 2, 0), dtype=np.float64))
        m = factor.shape[2]
        x = band_solve(factor, zero, np.repeat(h_r.T[:, :, None], m, axis=2))  # P^-1 H^T, (K, p, m)
        network = np.einsum("jk,kln->njl", h_r, x)  # H P^-1 H^T
        trace_hpg = np.einsum("kjn,kj->n", x, g_r)  # tr(H P^-1 G)
        trace_p_inv = band_inverse(factor, zero)[:, 0].sum(axis=0)
        white = np.maximum((resid[sl] ** 2).sum(axis=1) - (trace_p_inv - trace_hpg), 0.0) / (t - p)
        cov[sl] = white[:, None, None] * n0_inv + network
        usable[sl] = ~zero.any(axis=0) & np.isfinite(trace_p_inv)
    return cov, usable


def _harmonic(coef: dict[str, xr.DataArray], err: dict[str, xr.DataArray], cab: xr.DataArray,
              term: str) -> dict[str, xr.DataArray]:
    """Amplitude and phase of ``a cos + b sin`` with first-order standard errors (``cab``: cov(a, b))."""
    a, b = coef[f"{term}_cos"], coef[f"{term}_sin"]
    va, vb = err[f"{term}_cos"] ** 2, err[f"{term}_sin"] ** 2
    amp = np.hypot(a, b)
    nonzero = amp.where(amp > 0)  # a zero amplitude (the reference pixel) has no first-order error or phase error
    amp_err = xr.where(amp > 0, np.sqrt((a**2 * va + b**2 * vb + 2 * a * b * cab) / nonzero**2), np.sqrt((va + vb) / 2))
    phase = np.arctan2(b, a)
    phase_err = np.sqrt((b**2 * va + a**2 * vb - 2 * a * b * cab) / nonzero**4)
    return {"amplitude": amp, "amplitude_error": amp_err, "phase": phase, "phase_error": phase_err}


def fit_deformation(ts: xr.Dataset | xr.DataArray, *, model: Sequence[str] = ("linear", "annual"),
                    variable: str = "displacement") -> xr.Dataset:
    """Velocity and seasonal amplitude/phase of a displacement time series, per pixel, with standard errors.

    Parameters
    ----------
    ts
        ``(time, y, x)`` displacement (m): the Dataset of
        :func:`cryocube.sbas.invert_sbas` (its ``variable``) or a DataArray. NaN =
        missing date at that pixel. If the Dataset holds ``network_precision``
        (``invert_sbas(..., precision=True)``), the errors of ``displacement``
        include the network term (module notes); otherwise they are white-noise
        errors, a lower bound for an SBAS series.
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
    inputs, core_dims = [da], [[cv.TIME]]
    network = isinstance(ts, xr.Dataset) and variable == "displacement" and "network_precision" in ts.data_vars
    if network:
        precision = ts["network_precision"].drop_vars([c for c in ts.coords if cv.TIME in ts[c].dims])
        inputs.append(precision.chunk({cv.TIME: -1, LAG: -1}) if precision.chunks else precision)
        core_dims.append([cv.TIME, LAG])
    p = len(names)
    harmonics = [t for t in ("annual", "semiannual") if t in model]
    raw = xr.apply_ufunc(deformation_kernel, *inputs, kwargs={"tau": tau, "model": model}, input_core_dims=core_dims,
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
                                             "errors": "white + network" if network else "white",
                                             "first_date": str(times[0])[:10]})}
    return out
