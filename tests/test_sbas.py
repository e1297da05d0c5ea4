"""SBAS inversion: kernel against a reference least-squares solver, synthetic truth, real stack, laziness, chunks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.special
import xarray as xr

from cryocube.insar_scenes import permafrost_stack, sbas_network
from cryocube.sbas import closure_phase, invert_sbas, phase_to_displacement, rereference
from cryocube.sbas_kernel import coherence_weights, phase_pdf, phase_variance_lut, sbas_kernel
from cryocube.store import write_product
from cryocube.testing import raise_if_dask_computes

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pyrate_cropA_s1_insar_stack"
MEXICO_REFERENCE = (-99.186, 19.425, -99.165, 19.443)  # west, hills: stable (x_min, y_min, x_max, y_max)


@pytest.fixture(scope="module")
def stack():
    return permafrost_stack(shape=(36, 44), n_dates=24, seed=3)


# ------------------------------------------------------------------ weights
def test_phase_pdf_integrates_to_one():
    phi = np.linspace(-np.pi, np.pi, 20001)
    for looks in (1, 4, 20):
        for g in (0.1, 0.5, 0.9):
            assert np.trapezoid(phase_pdf(phi, g, looks), phi) == pytest.approx(1.0, abs=1e-6)


def test_phase_variance_matches_closed_form_single_look():
    # Tough et al. 1995 / Hanssen 2001 eq. 4.2.26 for L = 1:
    # var = pi^2/3 - pi asin(g) + asin(g)^2 - Li2(g^2)/2
    centres, variance = phase_variance_lut(1)
    sel = centres < 0.9
    g = centres[sel]
    closed = np.pi**2 / 3 - np.pi * np.arcsin(g) + np.arcsin(g) ** 2 - scipy.special.spence(1 - g**2) / 2
    np.testing.assert_allclose(variance[sel], closed, rtol=0.02)
    # weights decrease with the variance, bin lookup as MintPy (floor of (g - 0.0025) / 0.005)
    inv = 1 / variance
    assert coherence_weights(np.array([0.0031, 0.0079, np.nan, 0.5]), inv)[:2].tolist() == [inv[9], inv[9]]
    assert coherence_weights(np.array([0.5]), inv)[0] == inv[99]


# ------------------------------------------------------------------ kernel vs a reference solver
def _lstsq_reference(phase, weight, n1, n2, t):
    """Per-pixel scipy/numpy lstsq: node formulation when connected, minimum-norm velocity otherwise."""
    n_dates = t.size
    dt = np.diff(t)
    out = np.full((phase.shape[0], n_dates), np.nan)
    for px in range(phase.shape[0]):
        v = np.isfinite(phase[px]) & (weight[px] > 0)
        if not v.any():
            continue
        sw = np.sqrt(weight[px, v])
        b = np.zeros((v.sum(), n_dates - 1))
        for row, (i, j) in enumerate(zip(n1[v], n2[v])):
            b[row, i:j] = dt[i:j]
        vel = np.linalg.lstsq(b * sw[:, None], phase[px, v] * sw, rcond=1e-10)[0]
        out[px] = np.concatenate([[0.0], np.cumsum(vel * dt)])
    return out


@pytest.mark.parametrize("method_gaps", [False, True])
def test_kernel_matches_lstsq(method_gaps):
    rng = np.random.default_rng(0)
    n1, n2 = sbas_network(15, max_span=3)
    t = np.cumsum(rng.uniform(6, 24, 15)) / 365.25
    t -= t[0]
    phase = rng.normal(scale=3.0, size=(300, n1.size))
    weight = rng.uniform(0.2, 30, size=phase.shape)
    phase[rng.random(phase.shape) < 0.1] = np.nan  # scattered missing pairs
    if method_gaps:
        weight[:150, (n1 <= 6) & (n2 > 6)] = 0  # splits the network of half the pixels
        weight[150:160] = 0  # nothing valid at all
    ts, tcoh, rms, n_obs, n_gaps = sbas_kernel(phase, weight, node1=n1, node2=n2, t_years=t)
    ref = _lstsq_reference(phase, weight, n1, n2, t)
    np.testing.assert_allclose(ts, ref, atol=1e-9)
    valid = np.isfinite(phase) & (weight > 0)
    np.testing.assert_array_equal(n_obs, valid.sum(axis=1))
    if method_gaps:
        assert (n_gaps[:150][n_obs[:150] > 0] >= 1).all() and (n_gaps[150:160] == 14).all()
        assert np.isnan(ts[150:160]).all() and np.isnan(tcoh[150:160]).all()
    # temporal coherence and RMS from the residuals, closed form
    resid = np.where(valid, phase - (ref[:, n2] - ref[:, n1]), np.nan)
    ok = n_obs > 0
    expect = np.abs(np.nansum(np.exp(1j * resid), axis=1))[ok] / n_obs[ok]
    np.testing.assert_allclose(tcoh[ok], expect, atol=2e-5)
    np.testing.assert_allclose(rms[ok], np.sqrt(np.nansum(resid**2, axis=1)[ok] / n_obs[ok]), rtol=1e-5)
    # network precision: the dense normal matrix over the unit-weight variance, band by band
    *_, prec = sbas_kernel(phase, weight, node1=n1, node2=n2, t_years=t, precision=True)
    h = int((n2 - n1).max())
    assert prec.shape == (300, 15, h + 1) and np.isnan(prec[:, 0]).all()
    for px in range(160, 300, 7):  # connected pixels
        w = np.where(valid[px], weight[px], 0.0)
        a = np.zeros((n1.size, 15))
        a[np.arange(n1.size), n2], a[np.arange(n1.size), n1] = 1, -1
        normal = (a[:, 1:].T * w) @ a[:, 1:]
        s2 = np.nansum(w * resid[px] ** 2) / (n_obs[px] - 14)
        for lag in range(h + 1):
            np.testing.assert_allclose(prec[px, 1:15 - lag, lag], np.diagonal(normal, -lag) / s2, rtol=1e-4)
    if method_gaps:
        assert np.isnan(prec[:160]).all()  # disconnected or empty: not estimable


# ------------------------------------------------------------------ synthetic truth
def _dense_reference(ifgs):
    """Plain dense weighted least squares per pixel (numpy batched solve of the normal equations)."""
    phase = ifgs["unwrapped_phase"].values.reshape(ifgs.sizes["pair"], -1).T.astype(np.float64)
    w = coherence_weights(ifgs["coherence"].values.reshape(ifgs.sizes["pair"], -1).T, 1 / phase_variance_lut(ifgs.attrs["n_looks"])[1])
    valid = np.isfinite(phase)
    w = np.where(valid, w, 0.0)
    dates = np.unique(np.concatenate([ifgs["date1"].values, ifgs["date2"].values]))
    a = np.zeros((ifgs.sizes["pair"], dates.size))
    a[np.arange(a.shape[0]), np.searchsorted(dates, ifgs["date2"].values)] = 1
    a[np.arange(a.shape[0]), np.searchsorted(dates, ifgs["date1"].values)] = -1
    a = a[:, 1:]
    normal = np.einsum("np,pk,pl->nkl", w, a, a)
    ok = valid.any(axis=1)
    normal[~ok] = np.eye(a.shape[1])
    x = np.linalg.solve(normal, np.einsum("np,pk->nk", w * np.nan_to_num(phase), a)[..., None])[..., 0]
    ts = np.concatenate([np.zeros((x.shape[0], 1)), x], axis=1) * phase_to_displacement(ifgs.attrs["wavelength_m"])
    ts[~ok] = np.nan
    return ts.T.reshape(dates.size, ifgs.sizes["y"], ifgs.sizes["x"])


def test_synthetic_truth_equals_dense_least_squares(stack):
    ifgs, truth = stack
    ts = invert_sbas(ifgs.chunk({"y": 13, "x": 17})).compute()
    dense = _dense_reference(ifgs)
    got = ts["displacement"].values
    assert np.nanmax(np.abs(got - dense)) < 1e-6  # m, i.e. 1e-3 mm
    rec = truth["recoverable_displacement"].values
    rmse = lambda d: np.sqrt(np.nanmean((d - rec) ** 2))  # noqa: E731
    assert abs(rmse(got) - rmse(dense)) < 1e-6
    assert rmse(got) < 0.002  # decorrelation noise only: < 2 mm
    lake = truth["lake"].values
    assert np.isnan(got[:, lake]).all() and (ts["n_observations"].values[lake] == 0).all()
    assert (ts["n_gaps"].values[~lake] == 0).all()
    assert float(ts["temporal_coherence"].where(~truth["lake"]).min()) > 0.5
    assert ts["displacement"].attrs["units"] == "m" and "cryocube_parameters" in ts.attrs


def test_l1_halves_the_error_of_l2_with_unwrapping_errors():
    ifgs, truth = permafrost_stack(shape=(30, 36), n_dates=24, unwrap_error_fraction=0.01, seed=5)
    rec = truth["recoverable_displacement"]
    err = {m: float(np.sqrt(((invert_sbas(ifgs, method=m)["displacement"] - rec) ** 2).mean())) for m in ("l2", "l1")}
    assert err["l1"] <= 0.5 * err["l2"], err


def test_sign_convention_uplift_is_positive():
    ifgs, _ = permafrost_stack(shape=(4, 5), n_dates=6, atmosphere_m=0.0, nodata=False, seed=1)
    days = (ifgs["dt_days"].values / 365.25)[:, None, None]
    wavelength = ifgs.attrs["wavelength_m"]
    uplift = 0.05  # m/yr towards the satellite: range shrinks, phase decreases
    ifgs = ifgs.assign(unwrapped_phase=(("pair", "y", "x"), np.broadcast_to(-4 * np.pi / wavelength * uplift * days, ifgs["unwrapped_phase"].shape).astype(np.float32)))
    ts = invert_sbas(ifgs, weight=None)
    t_years = (ts["time"] - ts["time"][0]) / np.timedelta64(1, "D") / 365.25
    np.testing.assert_allclose(ts["displacement"].values, (uplift * t_years).values[:, None, None] * np.ones((1, 4, 5)), atol=1e-6)


def test_disconnected_network_minimum_norm_and_reported():
    ifgs, truth = permafrost_stack(shape=(12, 16), n_dates=12, disconnect_after=5, nodata=False, seed=2)
    ts = invert_sbas(ifgs.chunk({"y": 5, "x": 7})).compute()
    west = ts["x"] < ts["x"].values.mean()
    assert (ts["n_gaps"].where(west, 0) <= 1).all() and (ts["n_gaps"].where(west) == 1).sum() == west.sum() * 12
    assert (ts["n_gaps"].where(~west) == 0).sum() == (~west).sum() * 12
    # west: the minimum-norm velocity solution of the reference solver, per pixel
    phase = ifgs["unwrapped_phase"].values.reshape(ifgs.sizes["pair"], -1).T
    w = coherence_weights(ifgs["coherence"].values.reshape(ifgs.sizes["pair"], -1).T, 1 / phase_variance_lut(8)[1])
    dates = np.unique(np.concatenate([ifgs["date1"].values, ifgs["date2"].values]))
    t = (dates - dates[0]) / np.timedelta64(1, "D") / 365.25
    n1, n2 = np.searchsorted(dates, ifgs["date1"].values), np.searchsorted(dates, ifgs["date2"].values)
    ref = _lstsq_reference(phase, np.where(np.isfinite(phase), w, 0), n1, n2, t)
    got = ts["displacement"].values.reshape(dates.size, -1).T / phase_to_displacement(ifgs.attrs["wavelength_m"])
    np.testing.assert_allclose(got, ref, atol=1e-4)
    # east: the connected truth, as without the gap
    east = ts["displacement"].where(~west).values
    assert np.sqrt(np.nanmean((east - truth["recoverable_displacement"].where(~west).values) ** 2)) < 0.002


def test_all_pixels_masked_is_not_an_error(stack):
    ifgs, _ = stack
    ts = invert_sbas(ifgs, min_coherence=0.999).compute()
    assert np.isnan(ts["displacement"]).all() and (ts["n_observations"] == 0).all()
    assert (ts["n_gaps"] == ts.sizes["time"] - 1).all()


def test_chunking_does_not_change_the_result(stack):
    ifgs, _ = stack
    one = invert_sbas(ifgs, method="l1").compute()
    many = invert_sbas(ifgs.chunk({"pair": 7, "y": 5, "x": 9}), method="l1").compute()
    xr.testing.assert_allclose(one, many, atol=1e-9)


def test_lazy(stack):
    ifgs, _ = stack
    lazy = ifgs.copy()
    for name in lazy.data_vars:  # pair coordinates stay in memory, as open_interferograms gives them
        lazy[name] = lazy[name].chunk({"y": 10, "x": 10})
    with raise_if_dask_computes():
        ts = invert_sbas(lazy, reference=(float(ifgs.y[3]), float(ifgs.x[4])))
        rereference(ts, [(float(ifgs.y[10]), float(ifgs.x[10]))])
        closure_phase(lazy, reference=(float(ifgs.x[0]), float(ifgs.y[8]), float(ifgs.x[8]), float(ifgs.y[0])))


def test_reference_point_area_points_and_rereference(stack):
    ifgs, _ = stack
    y0, x0 = float(ifgs.y[5]), float(ifgs.x[6])
    ts = invert_sbas(ifgs, reference=(y0 + 3.0, x0 - 2.0)).compute()  # nearest pixel
    assert json.loads(ts.attrs["reference"])["kind"] == "point"
    np.testing.assert_allclose(ts["displacement"].sel(y=y0, x=x0).values, 0.0, atol=1e-9)
    plain = invert_sbas(ifgs).compute()
    # moving the reference needs no re-inversion: the series minus its value at the new point
    y1, x1 = float(ifgs.y[20]), float(ifgs.x[30])
    moved = rereference(ts, (y1, x1)).compute()
    np.testing.assert_allclose(moved["displacement"].values,
                               (ts["displacement"] - ts["displacement"].sel(y=y1, x=x1)).values, atol=1e-9)
    # ... and differs from re-inverting with the new reference only by the weighted closure residual (0.54 mm max here)
    again = invert_sbas(ifgs, reference=(y1, x1)).compute()
    assert float(np.abs(again["displacement"] - moved["displacement"]).max()) < 1e-3
    assert json.loads(moved.attrs["previous_references"])[0]["kind"] == "point"
    bounds = (float(ifgs.x[2]), float(ifgs.y[6]), float(ifgs.x[5]), float(ifgs.y[2]))
    area = invert_sbas(ifgs, reference=bounds).compute()
    assert json.loads(area.attrs["reference"]) == {"kind": "area", "bounds": list(bounds), "n_pixels": 20}
    pts = rereference(plain, [(float(ifgs.y[1]), float(ifgs.x[1])), (float(ifgs.y[2]), float(ifgs.x[3]))]).compute()
    mean = plain["displacement"].isel(y=[1, 2], x=[1, 3]).values[:, [0, 1], [0, 1]].mean(axis=1)
    np.testing.assert_allclose(pts["displacement"].values, plain["displacement"].values - mean[:, None, None], atol=1e-7)


@pytest.mark.parametrize("reference", [(1.0, 2.0), (0.0, 0.0, 1.0, 1.0), "west", [(1.0,)], (1, 2, 3)])
def test_bad_reference(stack, reference):
    with pytest.raises(ValueError, match="reference"):
        invert_sbas(stack[0], reference=reference)


@pytest.mark.parametrize("kwargs, match", [({"weight": "var"}, "weight"), ({"method": "l3"}, "method"),
                                           ({"min_coherence": 1.5}, "min_coherence"), ({"wavelength_m": 5.0}, "wavelength_m")])
def test_bad_parameters(stack, kwargs, match):
    with pytest.raises(ValueError, match=match):
        invert_sbas(stack[0], **kwargs)


def test_bad_inputs(stack):
    ifgs, _ = stack
    with pytest.raises(TypeError, match="ifgs"):
        invert_sbas(ifgs["unwrapped_phase"])
    with pytest.raises(ValueError, match="'unwrapped_phase'"):
        invert_sbas(ifgs.drop_vars("unwrapped_phase"))
    with pytest.raises(ValueError, match="'coherence'"):
        invert_sbas(ifgs.drop_vars("coherence"))
    with pytest.raises(ValueError, match="n_looks"):
        invert_sbas(ifgs.drop_attrs(), wavelength_m=0.0555)
    with pytest.raises(ValueError, match="date1"):
        invert_sbas(ifgs.drop_vars("date1"))
    assert invert_sbas(ifgs.drop_vars("coherence"), weight=None)["displacement"].shape[0] == 24


def test_closure_flags_the_simulated_unwrapping_errors():
    ifgs, truth = permafrost_stack(shape=(20, 24), n_dates=12, unwrap_error_fraction=0.02, seed=9, nodata=False)
    cl = closure_phase(ifgs).compute()
    e = truth["unwrap_error"].values.astype(int)
    expect = e[cl["pair_ij"].values] + e[cl["pair_jk"].values] - e[cl["pair_ik"].values]
    assert (cl["ambiguity"].values == expect).mean() > 0.999
    assert (cl["n_nonzero_closure"].values == (expect != 0).sum(axis=0)).mean() > 0.99
    assert cl.sizes["triplet"] == 10 + 9 + 9  # (i, i+1, i+2), (i, i+1, i+3), (i, i+2, i+3)


def test_zarr_round_trip(stack, tmp_path):
    ts = invert_sbas(stack[0].chunk({"y": 12, "x": 22}))
    write_product(ts, tmp_path / "ts.zarr")
    back = xr.open_zarr(tmp_path / "ts.zarr", decode_coords="all")
    xr.testing.assert_allclose(back.compute(), ts.compute())
    assert back.attrs["reference"] == ts.attrs["reference"]


@pytest.mark.skipif(not DATA.exists(), reason="shared real-data folder absent")
def test_mexico_city_stack_subsides():
    from cryocube.deformation import fit_deformation
    from cryocube.interferograms import open_interferograms

    ifgs = open_interferograms(DATA / "geotiffs", headers=DATA / "headers", chunks=32)
    ts = invert_sbas(ifgs, reference=MEXICO_REFERENCE)
    ts = ts.compute()
    v = fit_deformation(ts, model=("linear",))["velocity"]
    east, west = v.isel(x=slice(85, None)), v.isel(x=slice(0, 15))
    assert float(east.median()) < -0.15 and abs(float(west.median())) < 0.02  # m/yr LoS: strong subsidence in the east
    assert float(ts["temporal_coherence"].median()) > 0.8
    cl = closure_phase(ifgs, reference=MEXICO_REFERENCE).compute()
    assert float((cl["ambiguity"] != 0).mean()) < 0.01


def test_plots(stack, tmp_path):
    from cryocube.deformation import fit_deformation
    from cryocube.plot.insar import sbas_timeseries_plot, sbas_velocity_map

    ifgs, truth = stack
    ts = invert_sbas(ifgs, reference=(float(ifgs.y[2]), float(ifgs.x[2])))
    fit = fit_deformation(ts)
    points = [(float(ifgs.y[12]), float(ifgs.x[13])), (float(ifgs.y[5]), float(ifgs.x[30]))]
    for path in (sbas_velocity_map(fit, tmp_path / "v.png", points=points),
                 sbas_velocity_map(fit, tmp_path / "a.png", variable="annual_amplitude", units="mm"),
                 sbas_timeseries_plot(ts, points, tmp_path / "ts.png", truth=truth["recoverable_displacement"], fit=fit)):
        assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="velocity_std"):
        sbas_velocity_map(fit, tmp_path / "x.png", variable="velocity_std")
